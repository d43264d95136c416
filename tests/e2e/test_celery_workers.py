"""End to end: real `celery worker` processes, a real broker (Redis, and RabbitMQ where
reachable; required under CI=true) and RedisStorage, driven as a user would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import fairsched
from tests import servers
from tests.e2e.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(300)]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@pytest.fixture(scope="module", params=["redis-late", "redis-window", "amqp"])
def cluster(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Cluster]:
    """Two worker processes (one prefork worker, concurrency 2) on the given broker, with
    late-binding dispatch (Redis) or windowed dispatch (Redis, RabbitMQ)."""
    if request.param == "amqp":
        broker = servers.rabbitmq_url()
        if broker is None:
            servers.unavailable("RabbitMQ is not reachable")
    else:
        broker = redis_url
    assert broker is not None
    mode = "late" if request.param == "redis-late" else "window"
    cluster = Cluster(broker, redis_url, {"dispatch": mode, "record_size": 10_000})
    try:
        cluster.start("w1", pool="prefork", concurrency=2)
        yield cluster
    finally:
        cluster.close()


def token(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_results_and_states_come_through_async_result(cluster: Cluster):
    mod = cluster.module
    result = mod.add.lru_delay("alice", 2, 3)
    assert result.get(timeout=30) == 5
    assert result.state == "SUCCESS"
    failed = mod.boom.lru_delay("alice", "nope")
    with pytest.raises(ValueError, match="nope"):
        failed.get(timeout=30)
    assert failed.state == "FAILURE"
    assert mod.add.delay(1, 1).get(timeout=30) == 2  # plain Celery still works


def test_lru_task_hooks_get_the_tasks_own_id_args_and_kwargs(cluster: Cluster):
    mod = cluster.module
    ok = mod.hooked.lru_delay("k", 1, fail=False)
    bad = mod.hooked.lru_delay("k", 2, fail=True)
    assert ok.get(timeout=30) == 1
    with pytest.raises(RuntimeError):
        bad.get(timeout=30)
    expected = [["success", ok.id, [1], {"fail": False}], ["failure", bad.id, [2], {"fail": True}]]
    deadline = time.monotonic() + 10  # hooks run just after the result is stored
    while not all(e in cluster.hooks() for e in expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    hooks = cluster.hooks()
    assert expected[0] in hooks
    assert expected[1] in hooks


def fill_window(cluster: Cluster, seconds: float) -> list[str]:
    """Occupy every slot of the window (4: concurrency 2 x factor 2) for `seconds`."""
    tokens = [token("blocker") for _ in range(4)]
    for t in tokens:
        cluster.module.work.lru_delay("blockers", t, seconds)
    return tokens


def test_expired_task_never_runs_and_is_revoked(cluster: Cluster):
    mod = cluster.module
    blockers = fill_window(cluster, 1.0)
    doomed = token("doomed")
    result = mod.work.lru_apply_async("late", (doomed, 0.0), expires=0.3)
    after = token("after")
    after_result = mod.work.lru_delay("late", after, 0.0)
    assert after_result.get(timeout=30) == after
    cluster.wait_started(blockers, 30)
    deadline = time.monotonic() + 10
    while result.state != "REVOKED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.state == "REVOKED"
    assert doomed not in cluster.started()
    # Recorded once each, by whichever verb withdrew or ended it (when late, the worker's
    # dispatch withdraws the expired one): the slot release runs after the result is stored.
    storage = fairsched.celery.dispatcher_for(mod.app).storage

    def outcomes() -> list[tuple[str, str]]:
        wanted = (result.id, after_result.id)
        return sorted((r.id, r.outcome) for r in storage.records(cluster.queue) if r.id in wanted)

    deadline = time.monotonic() + 10
    while len(outcomes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcomes() == sorted([(result.id, "expired"), (after_result.id, "done")])


def test_revoke_removes_a_task_from_the_backlog(cluster: Cluster):
    mod = cluster.module
    fill_window(cluster, 1.0)
    victim_token = token("victim")
    victim = mod.work.lru_delay("revoked", victim_token, 0.0)
    assert fairsched.revoke(cluster.app, victim.id) is True
    after = token("after")
    assert mod.work.lru_delay("revoked", after, 0.0).get(timeout=30) == after
    assert victim.state == "REVOKED"
    assert victim_token not in cluster.started()


def test_interactive_key_waits_little_under_a_flood_unlike_plain_delay(cluster: Cluster):
    """1,000 bulk tasks of 20 ms, then 20 interactive ones, one per 100 ms, 2 processes."""
    mod = cluster.module
    waits: dict[str, list[float]] = {}
    for mode in ("plain", "fair"):
        bulk = [token(f"{mode}-bulk") for _ in range(1000)]
        for t in bulk:
            if mode == "plain":
                mod.work.delay(t, 0.02)
            else:
                mod.work.lru_delay("bulk", t, 0.02)
        submitted: dict[str, float] = {}
        for i in range(20):
            t = token(f"{mode}-ui{i}")
            submitted[t] = time.time()
            if mode == "plain":
                mod.work.delay(t, 0.0)
            else:
                mod.work.lru_delay("interactive", t, 0.0)
            time.sleep(max(0.0, submitted[t] + 0.1 - time.time()))
        started = cluster.wait_started([*submitted, *bulk], timeout=120)
        waits[mode] = [started[t] - at for t, at in submitted.items()]
    plain, fair = p95(waits["plain"]), p95(waits["fair"])
    print(
        f"\ninteractive p95 wait: plain delay {plain * 1000:.0f} ms, lru_delay {fair * 1000:.0f} ms"
    )
    assert fair <= 0.100
    assert plain >= 2.0
