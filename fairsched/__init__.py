"""fairsched: weighted fair queuing for Celery, with pluggable policies.

The runtime package: storage backends, dispatch, Celery integration, configuration and CLI.
Policies live in the `policies` package and the simulator in `simulator`.
"""

from policies import Job

from .config import FairschedConfig
from .errors import (
    ConfigurationError,
    FairschedError,
    InvalidJob,
    InvalidWeight,
    PolicyError,
    PublishRefused,
    ScriptError,
    SerializationError,
    StorageError,
    StorageUnavailable,
    UnknownOption,
    UnknownPolicy,
)
from .serializers import SerializerType
from .storage import DEFAULT_DOMAIN, Dispatch, MemoryStorage, RedisStorage, Storage, Task

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DOMAIN",
    "ConfigurationError",
    "Dispatch",
    "FairschedConfig",
    "FairschedError",
    "InvalidJob",
    "InvalidWeight",
    "Job",
    "LRUTask",
    "MemoryStorage",
    "PolicyError",
    "PublishRefused",
    "RedisStorage",
    "ScriptError",
    "SerializationError",
    "SerializerType",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "Task",
    "UnknownOption",
    "UnknownPolicy",
    "__version__",
    "configure",
    "dispatcher_for",
    "get_all_lru_keys",
    "get_last_used_times",
    "get_tasks_by_lru_key",
    "lru_task",
    "revoke",
    "set_weight",
]

#: Celery names, imported on first use so `import fairsched` works without Celery installed.
_CELERY_NAMES = frozenset(
    {
        "LRUTask",
        "configure",
        "dispatcher_for",
        "get_all_lru_keys",
        "get_last_used_times",
        "get_tasks_by_lru_key",
        "lru_task",
        "revoke",
        "set_weight",
    }
)


def __getattr__(name: str) -> object:
    if name in _CELERY_NAMES:
        from . import celery as _celery

        return getattr(_celery, name)
    raise AttributeError(f"module 'fairsched' has no attribute {name!r}")
