"""Slot release from a prefork pool child: off the task's thread, drained on a clean exit."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from attrs import define, field
from celery import Celery

import fairsched
from fairsched import MemoryStorage, StorageUnavailable
from fairsched.celery._release import Release, Releaser, release


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

    releaser = Releaser()
    for task_id in ids[:3]:
        # returns while finish is blocked
        releaser.put(Release(dispatcher, task_id, queue, 0.01, time.time() + 60))
    assert storage.threads == []
    assert storage.in_flight(queue) == 3  # nothing released yet: the window still holds

    storage.gate.set()
    releaser.drain()
    assert storage.threads == ["fairsched-release"] * 3
    # Each release leased the next task in its place, up to the window; none leaked.
    assert storage.in_flight(queue) == 2
    assert storage.backlog_size("alice") == 0
    releaser.drain()  # a second drain (no thread) is a no-op


@define
class DownStorage(MemoryStorage):
    """A MemoryStorage whose `finish` fails as an unreachable Redis does, `failures` times."""

    failures: int = 0
    calls: int = 0

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise StorageUnavailable("Redis unavailable during finish: Connection refused")
        return super().finish(*args, **kwargs)


def configured(storage: MemoryStorage) -> tuple[Any, str]:
    app = Celery(f"r{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://")
    app.conf.task_default_queue = queue = f"q-{uuid.uuid4().hex[:8]}"
    return fairsched.configure(app=app, storage=storage, window=1), queue


def test_a_release_the_storage_refused_is_retried_until_it_succeeds():
    storage = DownStorage(policy="lru", failures=4)
    dispatcher, queue = configured(storage)
    first, second = dispatcher.submit("t", "alice"), dispatcher.submit("t", "alice")
    assert storage.in_flight(queue) == 1
    started = time.monotonic()
    # On the task's own thread (threads/solo pools): one try, then handed to the releaser.
    release(dispatcher.app, first, queue, 0.01, time.time() + 60)
    deadline = time.monotonic() + 10
    while storage.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert storage.calls == 5  # 1 inline + 4 retries, the last one succeeding
    assert time.monotonic() - started < 3.5  # back-off 0.1, 0.2, 0.4, 0.8 s
    # The slot went to the next task: the first is done, the second leased.
    assert storage.in_flight(queue) == 1
    assert storage.queued("alice") == []
    assert second not in {t.id for t in storage.queued("alice")}


def test_a_release_is_given_up_when_the_lease_ends(caplog):
    storage = DownStorage(policy="lru", failures=10**6)
    dispatcher, queue = configured(storage)
    task_id = dispatcher.submit("t", "alice")
    releaser = Releaser()
    releaser.put(Release(dispatcher, task_id, queue, 0.01, time.time() + 0.5))
    time.sleep(1.5)
    calls = storage.calls
    time.sleep(0.5)
    assert storage.calls == calls  # stopped retrying
    assert 3 <= calls <= 8
    assert "the lease lapses and the task may run again" in caplog.text
    assert storage.in_flight(queue) == 1  # the lease is left to lapse and be reclaimed
    releaser.drain()
