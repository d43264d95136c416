"""Discrete-event simulator for fairsched policies (imports `policies` only)."""
