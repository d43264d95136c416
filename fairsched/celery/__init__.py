"""Celery integration: `@lru_task`, `LRUTask.lru_delay`, `configure`, the worker bootstep.

>>> from celery import Celery
>>> app = Celery("docs", broker="memory://")
>>> @lru_task(app)
... def add(x, y):
...     return x + y
>>> add.name, hasattr(add, "lru_delay")
('fairsched.celery.add', True)
"""

from __future__ import annotations

from ._api import (
    LRUTask,
    get_all_lru_keys,
    get_last_used_times,
    get_tasks_by_lru_key,
    lru_task,
    revoke,
    set_weight,
)
from ._apps import DispatcherStep, configure, dispatcher_for

__all__ = [
    "DispatcherStep",
    "LRUTask",
    "configure",
    "dispatcher_for",
    "get_all_lru_keys",
    "get_last_used_times",
    "get_tasks_by_lru_key",
    "lru_task",
    "revoke",
    "set_weight",
]
