"""The Celery app the end-to-end tests run in real `celery worker` processes.

Configured from the environment so each test session gets its own broker, Redis prefix and
queue: FAIRSCHED_E2E_BROKER, FAIRSCHED_E2E_REDIS (results, and what the tasks record),
FAIRSCHED_E2E_STORAGE (the fairsched storage; default: the same Redis), FAIRSCHED_E2E_PREFIX,
FAIRSCHED_E2E_QUEUE and FAIRSCHED_E2E_SETTINGS (JSON merged into app.conf.fairsched). The
reliability tests hurt the storage Redis, so it can be another server than the one the tasks
record their runs in.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery, signals

import fairsched
from fairsched import LRUTask, lru_task

BROKER = os.environ.get("FAIRSCHED_E2E_BROKER", "redis://127.0.0.1:6379/0")
REDIS = os.environ.get("FAIRSCHED_E2E_REDIS", "redis://127.0.0.1:6379/0")
STORAGE = os.environ.get("FAIRSCHED_E2E_STORAGE") or REDIS
PREFIX = os.environ.get("FAIRSCHED_E2E_PREFIX", "fairsched-e2e:")
QUEUE = os.environ.get("FAIRSCHED_E2E_QUEUE", "fairsched-e2e")

app = Celery("e2e", broker=BROKER, backend=REDIS)
app.conf.update(
    task_default_queue=QUEUE,
    result_expires=600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    fairsched={
        "redis_url": STORAGE,
        "redis_prefix": PREFIX,
        **json.loads(os.environ.get("FAIRSCHED_E2E_SETTINGS", "{}")),
    },
)
fairsched.configure(app=app)

_client = redis.Redis.from_url(REDIS)


def mark(name: str, value: str) -> None:
    """Append `value` to the list `name` under this session's prefix."""
    _client.rpush(f"{PREFIX}e2e:{name}", value)


@signals.worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    mark("ready", str(getattr(sender, "hostname", "")))


@lru_task(app, name="e2e.work", bind=True, shared=False)
def work(self: Any, token: str, seconds: float = 0.0) -> str:
    """Record when this task started (and that it ran), then sleep."""
    # One transaction: a reader that sees the start also sees the run (a kill between two
    # separate commands would leave a start without a run, counted as a lost task).
    pipe = _client.pipeline(transaction=True)
    pipe.hsetnx(f"{PREFIX}e2e:started", token, repr(time.time()))
    pipe.rpush(f"{PREFIX}e2e:runs", token)
    pipe.execute()
    if seconds:
        time.sleep(seconds)
    return token


@lru_task(app, name="e2e.add", shared=False)
def add(x: int, y: int) -> int:
    return x + y


@lru_task(app, name="e2e.boom", shared=False)
def boom(message: str) -> None:
    raise ValueError(message)


@lru_task(app, name="e2e.noop", ignore_result=True, shared=False)
def noop() -> None:
    """Does nothing: for throughput measurements."""


class Hooked(LRUTask):
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        mark("hooks", json.dumps(["success", task_id, list(args), dict(kwargs)]))
        super().on_success(retval, task_id, args, kwargs)

    def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        mark("hooks", json.dumps(["failure", task_id, list(args), dict(kwargs)]))
        super().on_failure(exc, task_id, args, kwargs, einfo)


@lru_task(app, name="e2e.hooked", base=Hooked, shared=False)
def hooked(x: int, fail: bool = False) -> int:
    if fail:
        raise RuntimeError("requested failure")
    return x


@lru_task(app, name="e2e.sleep", ignore_result=True, shared=False)
def sleep(seconds: float) -> None:
    """Sleeps: a task of a known run time, with no side effect to slow it down."""
    time.sleep(seconds)
