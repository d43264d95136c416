"""Every error fairsched raises, under one root::

    FairschedError
    ├── PolicyError             bad policy input: key, weight, cost, option (also ValueError)
    │   ├── InvalidJob          bad key, id, cost or deadline, or a duplicate task id
    │   ├── InvalidWeight       weight not finite and > 0
    │   ├── UnknownPolicy       name not in the registry (also LookupError)
    │   └── UnknownOption       option the policy does not take
    ├── ConfigurationError      bad settings or unsupported policy/storage pair (also ValueError)
    ├── SerializationError      arguments the chosen serializer cannot encode (also TypeError)
    └── StorageError            the backend failed; .__cause__ holds the driver exception
        ├── StorageUnavailable  connection refused or timed out; safe to retry
        └── ScriptError         a Lua script returned an error; a bug, not an outage

Misuse errors are raised before anything is stored and are never retried.
"""

from __future__ import annotations

from policies import (
    FairschedError,
    InvalidJob,
    InvalidWeight,
    PolicyError,
    UnknownOption,
    UnknownPolicy,
)

__all__ = [
    "ConfigurationError",
    "FairschedError",
    "InvalidJob",
    "InvalidWeight",
    "PolicyError",
    "ScriptError",
    "SerializationError",
    "StorageError",
    "StorageUnavailable",
    "UnknownOption",
    "UnknownPolicy",
]


class ConfigurationError(FairschedError, ValueError):
    """Raised when settings are invalid or a policy and storage cannot work together."""


class SerializationError(FairschedError, TypeError):
    """Raised when task arguments cannot be encoded by the configured serializer."""


class StorageError(FairschedError):
    """Raised when the storage backend fails; `__cause__` holds the driver's exception."""


class StorageUnavailable(StorageError):
    """Raised when the backend cannot be reached after the configured retries."""


class ScriptError(StorageError):
    """Raised when a server-side script fails: a bug in fairsched, not an outage."""
