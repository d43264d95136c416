"""Every error fairsched raises, under one root::

    FairschedError
    ├── PolicyError             bad policy input: key, weight, cost, option (also ValueError)
    │   ├── InvalidJob          bad key, id, cost or deadline, or a duplicate task id
    │   ├── InvalidWeight       weight not finite and > 0
    │   ├── UnknownPolicy       name not in the registry (also LookupError)
    │   └── UnknownOption       option the policy does not take
    ├── ConfigurationError      bad settings or unsupported policy/storage pair (also ValueError)
    ├── SerializationError      arguments the chosen serializer cannot encode (also TypeError)
    ├── PublishRefused          Celery or the broker refused a dispatched task's message; the
    │                           task's result is FAILURE with this error and it never runs
    └── StorageError            the backend failed; .__cause__ holds the driver exception
        ├── StorageUnavailable  unreachable, timed out, or refusing for now (out of memory,
        │                       read-only replica, loading); safe to retry
        └── ScriptError         a Lua script failed; a bug, not an outage

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
    "PublishRefused",
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


class PublishRefused(FairschedError):
    """Stored as the result of a task whose message Celery or the broker refused to send."""


class StorageError(FairschedError):
    """Raised when the storage backend fails; `__cause__` holds the driver's exception."""


class StorageUnavailable(StorageError):
    """Raised when the backend cannot be reached, times out, or refuses for now (out of
    memory, a read-only replica, loading its data) after the configured retries."""


class ScriptError(StorageError):
    """Raised when a server-side script fails: a bug in fairsched, not an outage."""
