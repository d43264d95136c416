"""Faults outside the storage: a broker restarted mid-run, workers killed again and again, and
tasks that can never be published. Real servers, real prefork workers, every task counted."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fairsched import InvalidJob, SerializationError, dispatcher_for
from tests.e2e.cluster import Cluster
from tests.reliability.harness import RabbitNode, redis_servers, wait_for
from tests.reliability.ledger import Ledger, report

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(600)]

#: The long variants run with `make reliability-long` (FAIRSCHED_LONG=1).
LONG = os.environ.get("FAIRSCHED_LONG") == "1"


@pytest.fixture
def rabbit() -> Iterator[RabbitNode]:
    node = RabbitNode().start()
    yield node
    node.close()


def test_rabbitmq_restarted_mid_run_loses_nothing(rabbit, redis_url):
    # A lease shorter than the default so that what the restart drops (messages a worker had
    # taken but not started) is reclaimed within the test; the figure is reported.
    cluster = Cluster(rabbit.url, redis_url, {"lease_timeout": 15.0, "reclaim_interval": 0.25})
    try:
        cluster.start("w1", pool="prefork", concurrency=2)
        ledger = Ledger(cluster)
        for i in range(300):
            ledger.submit(f"k{i % 10}", f"amqp-{i}", 0.02)
        wait_for("80 started", lambda: len(cluster.started()) >= 80, timeout=60)
        began = time.time()
        rabbit.stop()
        time.sleep(1.0)
        rabbit.start()
        back = time.time()
        for i in range(50):
            ledger.submit(f"k{i % 10}", f"amqp-after-{i}", 0.02)
        counts = ledger.settle(
            "RabbitMQ restarted mid-run (lease_timeout 15 s)",
            began,
            120,
            broker_down_s=round(back - began, 2),
        )
        assert counts["lost"] == 0
        assert counts["duplicated"] <= 4 + 2  # the window, plus the worker's prefetch
        # Dispatch resumes once Celery's worker has reconnected (its own retry interval).
        assert counts["longest_stall_s"] <= (back - began) + 10
    finally:
        cluster.close()


@pytest.mark.parametrize(
    "kills", [pytest.param(1, id="1-kill"), pytest.param(5, marks=pytest.mark.long)]
)
def test_redis_broker_killed_mid_run_with_windowed_dispatch_loses_nothing(redis_url, kills):
    """A Redis broker beside a storage Redis of its own (so dispatch is windowed, through
    kombu's Redis transport) killed -9 and restarted: workers reconnect, nothing is lost.
    What the kill drops (messages published but not yet in the AOF, or taken and not started)
    comes back through its lease."""
    if kills > 1 and not LONG:
        pytest.skip("long variant: make reliability-long")
    with redis_servers({"appendonly": True}) as (broker,):
        settings = {"lease_timeout": 15.0, "reclaim_interval": 0.25}
        cluster = Cluster(broker.url, redis_url, settings, storage_url=redis_url)
        try:
            assert not dispatcher_for(cluster.app).late
            cluster.start("w1", pool="prefork", concurrency=2)
            ledger = Ledger(cluster)
            for kill in range(kills):
                for i in range(300):
                    ledger.submit(f"k{i % 10}", f"redis-broker-{kill}-{i}", 0.02)
                counts, down = ledger.fault_then_settle(
                    f"Redis broker kill -9, AOF, windowed dispatch ({kill + 1}/{kills})",
                    len(ledger.accepted) - 220,
                    broker.restart,
                    120,
                )
                assert counts["lost"] == 0
                assert counts["duplicated"] <= (4 + 2) * (kill + 1)
                assert counts["longest_stall_s"] <= down + 15 + 5  # + lease_timeout
        finally:
            cluster.close()


@pytest.mark.parametrize(
    ("tasks", "kills"),
    [pytest.param(600, 3, id="600-tasks"), pytest.param(5000, 12, marks=pytest.mark.long)],
)
def test_workers_killed_again_and_again_lose_nothing(redis_url, tasks, kills):
    if tasks > 1000 and not LONG:
        pytest.skip("long variant: make reliability-long")
    cluster = Cluster(
        redis_url,
        redis_url,
        {"lease_timeout": 3.0, "reclaim_interval": 0.25, "heartbeat_interval": 0.5},
    )
    try:
        cluster.start("steady", pool="prefork", concurrency=2)
        cluster.start("victim", pool="prefork", concurrency=2)
        ledger = Ledger(cluster)
        for i in range(tasks):
            ledger.submit(f"k{i % 25}", f"kill-{i}", 0.02)
        for round_ in range(kills):
            target = len(ledger.accepted) * (round_ + 1) // (kills + 1)
            wait_for(f"{target} started", lambda t=target: len(cluster.started()) >= t, 300)
            cluster.kill("victim")  # kill -9 of the worker; its pool children die with it
            cluster.start("victim", pool="prefork", concurrency=2)
        ledger.wait_all_ran(timeout=300)
        counts = ledger.counts()
        report(f"worker kill -9 x{kills} during {tasks} tasks", **counts, kills=kills)
        assert counts["lost"] == 0
        # Each kill can re-run what the victim had in flight: its processes' tasks and the
        # message it had prefetched, within its share of the window.
        assert counts["duplicated"] <= kills * 4
    finally:
        cluster.close()


@pytest.fixture
def poisoned(redis_url: str) -> Iterator[Any]:
    cluster = Cluster(redis_url, redis_url, {"window": 1, "redis_serializer": "msgpack"})
    cluster.start("w1", pool="prefork", concurrency=2)
    yield cluster
    cluster.close()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"expires": time.time() * 1000}, InvalidJob),  # a timestamp in milliseconds
        ({"serializer": "jsn"}, InvalidJob),
        ({"queue": 5}, InvalidJob),
        ({"args": ["token", object()]}, SerializationError),  # no serializer encodes it
    ],
    ids=["expires-ms", "serializer-jsn", "queue-5", "unpublishable-args"],
)
def test_poison_tasks_are_refused_and_never_block_the_window(poisoned, options, error):
    work = poisoned.module.work
    options = dict(options)
    args = options.pop("args", ["poison"])
    with pytest.raises(error):
        work.lru_apply_async("alice", args, **options)
    assert dispatcher_for(poisoned.app).storage.keys() == []  # nothing stored
    # With window 1, one poison task holding its slot would stop everything behind it.
    tokens = [f"fine-{i}" for i in range(10)]
    began = time.time()
    results = [work.lru_delay("bob", token, 0.0) for token in tokens]
    assert [r.get(timeout=30) for r in results] == tokens
    assert time.time() - began < 10
    assert "poison" not in poisoned.runs()
