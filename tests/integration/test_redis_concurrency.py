"""Many processes on one Redis: no task is dispatched twice and none is lost.

8 processes enqueue while 8 others dispatch and complete (`finish`: complete + dispatch in one
script), 20,000 tasks over 1,000 keys by default, 100,000 with FAIRSCHED_LONG=1;
FAIRSCHED_CONCURRENCY_TASKS sets any size.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from typing import Any

import pytest

from fairsched import Job, RedisStorage, Task

pytestmark = pytest.mark.redis

LONG = os.environ.get("FAIRSCHED_LONG") == "1"
TASKS = int(os.environ.get("FAIRSCHED_CONCURRENCY_TASKS", "100000" if LONG else "20000"))
KEYS = 1000
PRODUCERS = CONSUMERS = 8


def produce(url: str, prefix: str, worker: int, count: int) -> None:
    storage = RedisStorage.from_url(url, prefix=prefix, policy="drr")
    for i in range(count):
        tid = f"p{worker}-{i}"
        storage.enqueue(Task(Job(tid, f"key{(i * 7 + worker) % KEYS}"), tid.encode()))
    storage.close()


def consume(url: str, prefix: str, done: Any, out: Any) -> None:
    storage = RedisStorage.from_url(url, prefix=prefix, policy="drr")
    served: list[str] = []
    drained_after_done = False
    current = storage.dispatch().task
    while True:
        if current is None:
            if drained_after_done:
                break
            # Every enqueue happened before `done` was set, so an empty dispatch after it
            # means the backlog is empty; before it, producers may still be behind.
            drained_after_done = done.is_set()
            time.sleep(0.001)
            current = storage.dispatch().task
            continue
        assert current.payload == current.id.encode()
        served.append(current.id)
        current = storage.finish(current.id, "celery", runtime=0.001).task
    storage.close()
    out.put(served)


def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing(redis_url, redis_prefix):
    ctx = mp.get_context("fork")
    done, out = ctx.Event(), ctx.Queue()
    per_producer = TASKS // PRODUCERS
    producers = [
        ctx.Process(target=produce, args=(redis_url, redis_prefix, w, per_producer))
        for w in range(PRODUCERS)
    ]
    consumers = [
        ctx.Process(target=consume, args=(redis_url, redis_prefix, done, out))
        for _ in range(CONSUMERS)
    ]
    for proc in producers + consumers:
        proc.start()
    for proc in producers:
        proc.join(timeout=600)
        assert proc.exitcode == 0
    done.set()
    served = [tid for _ in consumers for tid in out.get(timeout=600)]
    for proc in consumers:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    counts = Counter(served)
    duplicates = [tid for tid, n in counts.items() if n > 1]
    expected = {f"p{w}-{i}" for w in range(PRODUCERS) for i in range(per_producer)}
    assert duplicates == []
    assert set(counts) == expected  # nothing lost, nothing invented
    storage = RedisStorage.from_url(redis_url, prefix=redis_prefix, policy="drr")
    assert storage.in_flight() == 0
    assert storage.keys() == []
