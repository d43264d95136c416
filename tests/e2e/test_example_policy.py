"""The example third-party policy (examples/shortest_first, installed by its entry point) runs
end to end: real Celery workers, Redis storage through its Lua twin, chosen by name."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import fairsched
from tests.e2e.cluster import Cluster

pytest.importorskip("fairsched_shortest_first", reason="pip install -e examples/shortest_first")


@pytest.fixture(scope="module", params=["late", "window"])
def cluster(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Cluster]:
    settings = {
        "policy": {"policy": "shortest_first", "age": 0.001},
        "dispatch": request.param,
        "record_size": 10_000,
    }
    cluster = Cluster(redis_url, redis_url, settings)
    try:
        cluster.start("w1", pool="prefork", concurrency=2)
        yield cluster
    finally:
        cluster.close()


def test_short_tasks_overtake_a_backlog_of_long_ones_and_every_task_runs(cluster: Cluster):
    mod = cluster.module
    storage = fairsched.celery.dispatcher_for(mod.app).storage
    assert type(storage.policy).__name__ == "ShortestFirst"
    # Teach the policy the keys' run times: one task each, finished.
    learn = [f"learn-{k}-{uuid.uuid4().hex[:6]}" for k in ("batch", "quick")]
    mod.work.lru_delay("batch", learn[0], 0.05).get(timeout=30)
    mod.work.lru_delay("quick", learn[1], 0.0).get(timeout=30)
    batch = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(60)]
    for token in batch:
        mod.work.lru_delay("batch", token, 0.05)
    time.sleep(0.2)  # the backlog is there: 60 x 50 ms on 2 processes is 1.5 s of work
    submitted = {}
    for i in range(8):
        token = f"quick-{i}-{uuid.uuid4().hex[:6]}"
        submitted[token] = time.time()
        mod.work.lru_delay("quick", token, 0.0)
        time.sleep(0.05)
    started = cluster.wait_started([*batch, *submitted], timeout=60)
    waits = sorted(started[t] - at for t, at in submitted.items())
    print(f"\nquick waits under a batch backlog (ms): {[round(w * 1000) for w in waits]}")
    # Served ahead of the backlog: a quick task waits for a process to free (<= 50 ms), not
    # for the 1.5 s of batch work queued before it.
    assert waits[-1] < 0.3
    last_batch = max(started[t] for t in batch)
    assert all(started[t] < last_batch for t in submitted)
    # Every task ran once, and the recording saw every one of them end.
    runs = cluster.runs()
    assert sorted(runs) == sorted([*learn, *batch, *submitted])
    deadline = time.monotonic() + 10
    while len(storage.records(cluster.queue)) < len(runs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {r.outcome for r in storage.records(cluster.queue)} == {"done"}
    assert len(storage.records(cluster.queue)) == len(runs)
