"""The shared generators moved to `fairsched.testing.strategies`; re-exported for old imports."""

from __future__ import annotations

from fairsched.testing.strategies import (
    BUILT_IN,
    KEYS,
    costs,
    key_sets,
    keys,
    policy_configs,
    quanta,
    ttls,
    weights,
)

__all__ = [
    "BUILT_IN",
    "KEYS",
    "costs",
    "key_sets",
    "keys",
    "policy_configs",
    "quanta",
    "ttls",
    "weights",
]
