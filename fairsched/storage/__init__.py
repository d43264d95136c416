"""Storage backends: where backlogs, policy state and leases live."""

from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    MAX_RECORD_SIZE,
    OUTCOMES,
    Clock,
    Dispatch,
    Outcome,
    Storage,
    Task,
    TaskRecord,
    WorkerRegistry,
)
from ._memory import MemoryStorage
from ._redis import RedisStorage, Unsettled
from ._workers import MemoryWorkerRegistry, RedisWorkerRegistry

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_LEASE_TIMEOUT",
    "MAX_RECORD_SIZE",
    "OUTCOMES",
    "Clock",
    "Dispatch",
    "MemoryStorage",
    "MemoryWorkerRegistry",
    "Outcome",
    "RedisStorage",
    "RedisWorkerRegistry",
    "Storage",
    "Task",
    "TaskRecord",
    "Unsettled",
    "WorkerRegistry",
]
