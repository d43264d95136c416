"""Storage backends: where backlogs, policy state and leases live."""

from ._base import DEFAULT_DOMAIN, DEFAULT_LEASE_TIMEOUT, Clock, Dispatch, Storage, Task
from ._memory import MemoryStorage
from ._redis import RedisStorage

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_LEASE_TIMEOUT",
    "Clock",
    "Dispatch",
    "MemoryStorage",
    "RedisStorage",
    "Storage",
    "Task",
]
