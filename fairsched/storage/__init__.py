"""Storage backends: where backlogs, policy state and leases live."""

from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    Clock,
    Dispatch,
    Storage,
    Task,
    WorkerRegistry,
)
from ._memory import MemoryStorage
from ._redis import RedisStorage
from ._workers import MemoryWorkerRegistry, RedisWorkerRegistry

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_LEASE_TIMEOUT",
    "Clock",
    "Dispatch",
    "MemoryStorage",
    "MemoryWorkerRegistry",
    "RedisStorage",
    "RedisWorkerRegistry",
    "Storage",
    "Task",
    "WorkerRegistry",
]
