"""fairsched: weighted fair queuing for Celery, with pluggable policies.

The runtime package: storage backends, dispatch, Celery integration, configuration and CLI.
Policies live in the `policies` package and the simulator in `simulator`.
"""

from policies import Job

from .errors import (
    ConfigurationError,
    FairschedError,
    InvalidJob,
    InvalidWeight,
    PolicyError,
    ScriptError,
    SerializationError,
    StorageError,
    StorageUnavailable,
    UnknownOption,
    UnknownPolicy,
)
from .storage import DEFAULT_DOMAIN, Dispatch, MemoryStorage, Storage, Task

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DOMAIN",
    "ConfigurationError",
    "Dispatch",
    "FairschedError",
    "InvalidJob",
    "InvalidWeight",
    "Job",
    "MemoryStorage",
    "PolicyError",
    "ScriptError",
    "SerializationError",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "Task",
    "UnknownOption",
    "UnknownPolicy",
    "__version__",
]
