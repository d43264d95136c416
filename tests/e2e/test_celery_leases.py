"""End to end on the Redis broker: weights set at run time, and a worker killed mid-task."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import fairsched
from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(300)]


@pytest.fixture(params=["late", "window"])
def make_cluster(request: pytest.FixtureRequest, redis_url: str) -> Iterator[object]:
    """Clusters on the Redis broker, with late-binding or windowed dispatch."""
    made: list[Cluster] = []

    def make(**settings: object) -> Cluster:
        cluster = Cluster(redis_url, redis_url, {"dispatch": request.param, **settings})
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def test_weights_three_to_one_give_three_quarters_of_dispatches(make_cluster):
    cluster = make_cluster()
    mod = cluster.module
    fairsched.set_weight(cluster.app, "gold", 3)
    fairsched.set_weight(cluster.app, "free", 1)
    # No worker yet: the idle window lets one task out, the rest wait in the two backlogs.
    for i in range(400):
        mod.work.lru_delay("gold", f"gold-{i}")
        mod.work.lru_delay("free", f"free-{i}")
    cluster.start("w1", pool="prefork", concurrency=2)
    cluster.wait_started([f"gold-{i}" for i in range(300)], timeout=120)
    first = cluster.runs()[:400]
    share = sum(t.startswith("gold-") for t in first) / len(first)
    print(f"\ngold share of the first 400 dispatches at weight 3:1: {share:.1%}")
    assert len(first) == 400
    assert 0.70 <= share <= 0.80


def test_task_of_a_killed_worker_runs_again_after_its_lease(make_cluster):
    cluster = make_cluster(lease_timeout=3.0, reclaim_interval=0.25, heartbeat_interval=0.5)
    mod = cluster.module
    cluster.start("doomed", pool="solo", concurrency=1)
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    result = mod.work.lru_delay("k", victim, 2.0)
    cluster.wait_started([victim], timeout=30)
    cluster.kill("doomed")  # kill -9 in the middle of the task
    killed_at = time.time()
    others = [mod.work.lru_delay("k", f"other-{i}", 0.0) for i in range(5)]
    cluster.start("rescuer", pool="solo", concurrency=1)
    assert result.get(timeout=60) == victim
    assert [r.get(timeout=60) for r in others] == [f"other-{i}" for i in range(5)]
    runs = cluster.runs()
    assert runs.count(victim) == 2  # at least once: it ran again, nothing was lost
    rerun_delay = time.time() - killed_at
    assert rerun_delay >= 3.0 - 0.5  # not before the lease ran out
    storage = fairsched.dispatcher_for(cluster.app).storage
    deadline = time.monotonic() + 10
    while storage.in_flight(cluster.queue) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.in_flight(cluster.queue) == 0


@pytest.mark.parametrize("make_cluster", ["late"], indirect=True)
def test_late_binding_chooses_a_task_only_for_a_free_process(make_cluster):
    """With prefetch as fairsched configures it (worker_disable_prefetch), a worker whose two
    processes are busy holds no chosen task: a key that arrives then starts as soon as a
    process frees, ahead of the busy key's backlog, never behind an earlier choice."""
    cluster = make_cluster()
    mod = cluster.module
    cluster.start("w1", pool="prefork", concurrency=2)
    bulk = [f"bulk-{i}" for i in range(6)]
    for i, tok in enumerate(bulk):
        # The two first run 1.0 s and 1.6 s, so the processes free at distinct moments.
        mod.work.lru_delay("bulk", tok, 1.6 if i == 1 else 1.0)
    cluster.wait_started(bulk[:2], timeout=30)
    storage = fairsched.dispatcher_for(cluster.app).storage
    time.sleep(0.3)
    assert storage.in_flight(cluster.queue) == 2  # the two running: nothing chosen ahead
    assert storage.backlog_size("bulk") == 4
    mod.work.lru_delay("ui", "ui-0", 0.0)
    started = cluster.wait_started(["ui-0", *bulk[:3]], timeout=30)
    # The ui task took the first process that freed (at about 1.0 s), before the third bulk
    # task, which followed it on that process (the other is busy until about 1.6 s).
    assert started["ui-0"] - started[bulk[0]] < 1.0 + 0.3
    assert started["ui-0"] < started[bulk[2]] < started[bulk[1]] + 1.6
