"""Slot release from a prefork pool child: off the task's thread, drained on a clean exit."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from attrs import define, field
from celery import Celery

import fairsched
from fairsched import MemoryStorage
from fairsched.celery import _Releaser


@define
class GatedStorage(MemoryStorage):
    """A MemoryStorage whose `finish` waits for a gate and records the thread it ran on."""

    gate: threading.Event = field(factory=threading.Event)
    threads: list[str] = field(factory=list)

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(10)
        self.threads.append(threading.current_thread().name)
        return super().finish(*args, **kwargs)


def test_release_runs_off_the_callers_thread_and_drain_waits_for_every_slot():
    app = Celery(f"r{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://")
    app.conf.task_default_queue = queue = f"q-{uuid.uuid4().hex[:8]}"
    storage = GatedStorage(policy="weighted_lru")
    dispatcher = fairsched.configure(app=app, storage=storage, window=3)
    ids = [dispatcher.submit("t", "alice") for _ in range(5)]
    assert storage.in_flight(queue) == 3

    releaser = _Releaser()
    for task_id in ids[:3]:
        releaser.put(dispatcher, task_id, queue, 0.01)  # returns while finish is blocked
    assert storage.threads == []
    assert storage.in_flight(queue) == 3  # nothing released yet: the window still holds

    storage.gate.set()
    releaser.drain()
    assert storage.threads == ["fairsched-release"] * 3
    # Each release leased the next task in its place, up to the window; none leaked.
    assert storage.in_flight(queue) == 2
    assert storage.backlog_size("alice") == 0
    releaser.drain()  # a second drain (no thread) is a no-op
