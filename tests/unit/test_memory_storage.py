"""MemoryStorage: thread safety, domains, leases and monitoring."""

from __future__ import annotations

import threading
import time
from collections import Counter

from fairsched import Job, MemoryStorage, Task


def test_concurrent_producers_and_dispatchers_lose_and_duplicate_nothing():
    storage = MemoryStorage({"policy": "drr"})
    producers, per_producer, window = 4, 2_500, 8
    dispatched: Counter[str] = Counter()
    lock = threading.Lock()
    done = threading.Event()

    def produce(p: int) -> None:
        for i in range(per_producer):
            storage.enqueue(Task(Job(f"{p}-{i}", f"key{i % 37}"), b"x"))

    def dispatch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            task = storage.dispatch(window=window).task
            if task is None:
                if done.is_set() and not storage.keys():
                    return
                continue
            while task is not None:  # finish hands over the next task, as a worker does
                with lock:
                    dispatched[task.id] += 1
                assert storage.in_flight() <= window
                task = storage.finish(task.id, "celery", runtime=0.001, window=window).task

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    workers = [threading.Thread(target=dispatch) for _ in range(4)]
    for t in threads + workers:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in workers:
        t.join(timeout=60)
    assert len(dispatched) == producers * per_producer
    assert set(dispatched.values()) == {1}
    assert storage.in_flight() == 0


def test_domains_are_independent_schedulers():
    storage = MemoryStorage("lru")
    storage.enqueue(Task(Job("a", "k"), b"", "fast"), now=0.0)
    storage.enqueue(Task(Job("b", "k"), b"", "slow"), now=0.0)
    assert storage.dispatch("fast", now=0.0, window=1).task.id == "a"
    assert storage.dispatch("fast", now=0.0, window=1).task is None
    assert storage.dispatch("slow", now=0.0, window=1).task.id == "b"
    assert storage.dispatch("missing", now=0.0).task is None
    assert storage.in_flight("fast") == storage.in_flight("slow") == 1


def test_complete_of_a_reclaimed_task_withdraws_it_since_it_ran():
    storage = MemoryStorage("lru")
    storage.enqueue(Task(Job("t", "k"), b"p"), now=0.0)
    storage.dispatch(now=0.0, lease_timeout=1.0)
    assert [t.id for t in storage.reclaim(now=5.0)] == ["t"]
    assert storage.complete("t", "celery", runtime=0.5, now=6.0) == Task(Job("t", "k"), b"p")
    assert storage.keys() == []
    assert storage.complete("t", "celery") is None


def test_expired_tasks_come_back_with_their_payload_and_never_dispatch():
    storage = MemoryStorage("lru")
    storage.enqueue(Task(Job("old", "k", deadline=5.0), b"p1"), now=0.0)
    storage.enqueue(Task(Job("new", "k", deadline=50.0), b"p2"), now=0.0)
    assert storage.expire(now=1.0) == []
    result = storage.dispatch(now=10.0)
    assert [t.payload for t in result.expired] == [b"p1"]
    assert result.task.id == "new"
    assert result.lease_deadline is not None


def test_weights_apply_to_existing_and_future_domains():
    storage = MemoryStorage({"policy": "weighted_lru", "weights": {"a": 2}})
    assert storage.get_weight("a") == 2.0
    storage.set_weight("b", 3.0)
    for name in ("d1", "d2"):
        for i in range(8):
            for key in "ab":
                storage.enqueue(Task(Job(f"{name}{key}{i}", key), b"", name), now=0.0)
    for name in ("d1", "d2"):
        keys = [storage.dispatch(name, now=0.0).task.key for _ in range(8)]
        assert keys.count("b") == 5  # 3 : 2


def test_monitoring_calls_and_purge():
    storage = MemoryStorage("lru")
    for i in range(3):
        storage.enqueue(Task(Job(f"x{i}", "x"), b""), now=0.0)
    storage.enqueue(Task(Job("y0", "y"), b"", "other"), now=0.0)
    storage.dispatch(now=4.0)
    assert storage.keys() == ["x", "y"]
    assert storage.keys("other") == ["y"]
    assert [t.id for t in storage.queued("x", limit=1)] == ["x1"]
    assert storage.last_dispatched() == {"x": 4.0}
    assert storage.backlog_size("x") == 2
    assert storage.purge("other") == 1
    assert storage.keys() == ["x"]
    assert storage.purge() == 3  # two queued and one leased
    assert storage.keys() == []
    assert storage.in_flight() == 0


def test_clock_is_read_when_now_is_not_given():
    ticks = iter([100.0, 200.0])
    storage = MemoryStorage("lru", clock=lambda: next(ticks))
    storage.enqueue(Task(Job("t", "k"), b""))
    assert storage.dispatch(lease_timeout=10.0).lease_deadline == 210.0


def test_bad_window_or_lease_is_refused_before_anything_is_stored():
    import pytest

    from fairsched import ConfigurationError

    storage = MemoryStorage("lru")
    for window, lease in ((-1, 5.0), (1.5, 5.0), (True, 5.0), (1, 0.0), (1, float("nan"))):
        with pytest.raises(ConfigurationError):
            storage.submit(Task(Job("t", "k"), b""), now=0.0, window=window, lease_timeout=lease)
        with pytest.raises(ConfigurationError):
            storage.dispatch(now=0.0, window=window, lease_timeout=lease)
    assert storage.keys() == []
