"""What production does to the storage Redis, against real servers and real prefork workers.

Each test starts its own storage redis-server (the one it hurts) beside the session's Redis,
which carries the broker, the results and the record of every run, then counts every task
by its unique token: accepted by the producer, run, lost, run twice.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import fairsched
from fairsched import RedisStorage, StorageUnavailable
from tests.e2e.cluster import Cluster
from tests.reliability.harness import RedisServer, TcpProxy, redis_servers, wait_for
from tests.reliability.ledger import Ledger, report

pytestmark = [pytest.mark.reliability, pytest.mark.redis, pytest.mark.timeout(300)]

#: Dispatch must resume within this many seconds of the storage answering again, with the
#: default lease_timeout (300 s): failed releases are retried, not left to their leases.
RESUME_WITHIN = 5.0

#: The long variants run with `make reliability-long` (FAIRSCHED_LONG=1).
LONG = os.environ.get("FAIRSCHED_LONG") == "1"


@pytest.fixture
def storage_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    config = getattr(request, "param", {})
    with redis_servers(config) as (server,):
        yield server


@pytest.fixture
def make_cluster(redis_url: str, storage_server: RedisServer) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(**settings: object) -> Cluster:
        cluster = Cluster(redis_url, redis_url, dict(settings), storage_url=storage_server.url)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def flood(ledger: Ledger, count: int, keys: int, seconds: float, tag: str) -> None:
    for i in range(count):
        ledger.submit(f"{tag}-k{i % keys}", f"{tag}-{i}", seconds)


@pytest.mark.parametrize("storage_server", [{"appendonly": True}], indirect=True)
def test_redis_killed_and_restarted_with_aof_loses_nothing_and_resumes_at_once(
    make_cluster, storage_server
):
    cluster = make_cluster()
    cluster.start("w1", pool="prefork", concurrency=2)
    ledger = Ledger(cluster)
    flood(ledger, 500, keys=20, seconds=0.02, tag="aof")
    assert ledger.refused == []
    counts, down = ledger.fault_then_settle(
        "redis kill -9, AOF, restart after 1 s", 150, storage_server.restart, 90
    )
    assert counts["lost"] == 0
    assert counts["duplicated"] <= 4  # at most the window (2 x concurrency) in flight
    assert counts["longest_stall_s"] <= down + RESUME_WITHIN


def test_redis_restarted_empty_recovers_keys_weights_and_monitoring(make_cluster, storage_server):
    cluster = make_cluster(weights={"vip": 3})
    cluster.start("w1", pool="prefork", concurrency=2)
    ledger = Ledger(cluster)
    flood(ledger, 60, keys=3, seconds=0.2, tag="old")
    wait_for("a few tasks started", lambda: len(cluster.started()) >= 4, timeout=30)
    storage_server.restart(down=0.5, empty=True)  # no persistence: the backlog is gone
    restarted = time.monotonic()

    # New work is accepted and monitored again without restarting any process.
    fairsched.set_weight(cluster.app, "runtime", 2.0)
    for i in range(40):
        ledger.submit("vip", f"vip-{i}", 0.01)
        ledger.submit("bulk", f"bulk-{i}", 0.01)
    storage = fairsched.dispatcher_for(cluster.app).storage
    keys = set(storage.keys())
    recovered = time.monotonic() - restarted
    new = [t for t in ledger.accepted if not t.startswith("old-")]
    cluster.wait_started(new, timeout=60)

    # The configured weight (3:1) holds again: the first 20 of the new tasks started after
    # the window's first few are about three quarters vip.
    started = cluster.started()
    order = sorted(new, key=started.__getitem__)[4:24]
    vip_share = sum(t.startswith("vip-") for t in order) / len(order)
    weights = storage.client.hgetall(storage._base(cluster.queue) + "weights")
    counts = ledger.counts()
    lost_old = sum(1 for t in ledger.accepted if t.startswith("old-") and t not in started)
    report(
        "redis restarted empty (no persistence)",
        **counts,
        lost_of_backlog_at_restart=lost_old,
        lost_of_new=counts["lost"] - lost_old,
        recovered_s=round(recovered, 2),
        vip_share=round(vip_share, 2),
    )
    assert {"vip", "bulk"} <= keys  # listed while backlogged
    assert {k.decode(): float(v) for k, v in weights.items()} == {"vip": 3.0, "runtime": 2.0}
    assert fairsched.dispatcher_for(cluster.app).storage.get_weight("runtime") == 2.0
    assert counts["lost"] == lost_old  # only the backlog held at the restart is gone
    assert vip_share >= 0.6
    assert recovered < RESUME_WITHIN


def test_debug_sleep_shorter_than_the_timeout_is_only_a_delay(make_cluster, storage_server):
    cluster = make_cluster(redis_socket_timeout=1.0)
    cluster.start("w1", pool="prefork", concurrency=2)
    ledger = Ledger(cluster)
    flood(ledger, 200, keys=10, seconds=0.01, tag="short")
    wait_for("40 started", lambda: len(cluster.started()) >= 40, timeout=60)
    storage_server.client().execute_command("DEBUG", "SLEEP", "0.5")
    flood(ledger, 50, keys=10, seconds=0.01, tag="during")
    ledger.wait_all_ran(timeout=60)
    counts = ledger.counts()
    report("DEBUG SLEEP 0.5 s, socket timeout 1 s", **counts)
    assert counts["refused"] == 0
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0


def test_debug_sleep_longer_than_the_timeout_fails_fast_then_recovers(make_cluster, storage_server):
    cluster = make_cluster(redis_socket_timeout=0.5, redis_max_retries=1)
    cluster.start("w1", pool="prefork", concurrency=2)
    ledger = Ledger(cluster)
    flood(ledger, 200, keys=10, seconds=0.01, tag="long")
    wait_for("40 started", lambda: len(cluster.started()) >= 40, timeout=60)
    sleeper = threading.Thread(
        target=lambda: storage_server.client().execute_command("DEBUG", "SLEEP", "4")
    )
    sleeper.start()
    time.sleep(0.2)
    began = time.monotonic()
    with pytest.raises(StorageUnavailable, match="Timeout"):
        cluster.module.work.lru_delay("k", "refused-during-sleep", 0.0)
    failed_after = time.monotonic() - began
    sleeper.join()
    counts = ledger.settle(
        "DEBUG SLEEP 4 s, socket timeout 0.5 s, 1 retry",
        time.time() - 5,
        60,
        producer_error_after_s=round(failed_after, 2),
    )
    # Bounded by (max_retries + 1) x socket_timeout plus the back-off, not by the sleep.
    assert failed_after < 2 * 0.5 + 0.5
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["longest_stall_s"] < 4 + RESUME_WITHIN


def test_full_memory_refuses_producers_lets_workers_drain_then_runs_all(
    make_cluster, storage_server
):
    cluster = make_cluster(window=4)
    ledger = Ledger(cluster)
    flood(ledger, 300, keys=10, seconds=0.0, tag="before")
    admin = storage_server.client()
    admin.config_set("maxmemory-policy", "noeviction")
    used = int(admin.info("memory")["used_memory"])
    dataset = int(admin.info("memory")["used_memory_dataset"])
    # Full: used memory is above the limit, so every write that may grow memory is refused.
    admin.config_set("maxmemory", used - 64 * 1024)
    # Producers get a typed error naming the cause, and nothing is stored.
    assert not ledger.submit("k0", "refused-when-full", 0.0)
    assert "OOM" in ledger.errors[-1] or "maxmemory" in ledger.errors[-1]
    # Workers drain everything accepted while memory is still full.
    cluster.start("w1", pool="prefork", concurrency=2)
    ledger.wait_all_ran(timeout=60)
    drained = ledger.counts()
    # Draining freed data (connections and loaded scripts of the new worker aside).
    assert int(admin.info("memory")["used_memory_dataset"]) < dataset
    admin.config_set("maxmemory", 0)  # memory raised
    flood(ledger, 50, keys=10, seconds=0.0, tag="after")
    ledger.wait_all_ran(timeout=60)
    counts = ledger.counts()
    report("maxmemory reached, noeviction", **counts, drained_while_full=drained["ran"])
    assert drained["lost"] == 0 and drained["ran"] == 300
    assert "refused-when-full" not in cluster.runs()  # refused means not stored
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0


def test_a_hung_redis_surfaces_within_the_configured_timeout(storage_server):
    storage = RedisStorage.from_url(storage_server.url, socket_timeout=0.3, max_retries=2)
    sleeper = threading.Thread(
        target=lambda: storage_server.client().execute_command("DEBUG", "SLEEP", "3")
    )
    sleeper.start()
    time.sleep(0.2)
    began = time.monotonic()
    with pytest.raises(StorageUnavailable):
        storage.in_flight("celery")
    took = time.monotonic() - began
    sleeper.join()
    storage.close()
    assert took < 3 * 0.3 + 0.5  # (max_retries + 1) x socket_timeout, plus back-off


def test_primary_failover_keeps_every_acknowledged_task(redis_url):
    """A coordinated failover (Redis's FAILOVER: writes paused until the replica caught up,
    then the roles swap), clients reaching the primary through an address that is moved to
    the new primary afterwards, as a virtual IP or DNS name is. Until it moves, the old
    primary answers READONLY, which the storage treats as "not now" and retries."""
    with redis_servers({}) as (primary,):
        replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port)).start()
        proxy = TcpProxy(primary.port)
        cluster = Cluster(redis_url, redis_url, {}, storage_url=proxy.url)
        try:
            wait_for(
                "replica in sync",
                lambda: replica.client().info("replication")["master_link_status"] == "up",
            )
            cluster.start("w1", pool="prefork", concurrency=2)
            ledger = Ledger(cluster)
            flood(ledger, 400, keys=20, seconds=0.02, tag="fo")
            wait_for("100 started", lambda: len(cluster.started()) >= 100, timeout=60)
            began = time.time()
            primary.client().execute_command("FAILOVER", "TIMEOUT", "5000")
            wait_for(
                "replica promoted",
                lambda: replica.client().info("replication")["role"] == "master",
                timeout=10,
            )
            time.sleep(0.5)  # the address moves a little later, as DNS or a VIP does
            proxy.switch(replica.port)
            moved = time.time()
            flood(ledger, 50, keys=20, seconds=0.02, tag="after")
            counts = ledger.settle(
                "primary failover (FAILOVER, address moved 0.5 s later)",
                began,
                90,
                address_moved_after_s=round(moved - began, 2),
            )
            assert counts["lost"] == 0
            assert counts["duplicated"] <= 4
            assert counts["longest_stall_s"] <= (moved - began) + RESUME_WITHIN
        finally:
            cluster.close()
            proxy.close()
            replica.stop()


@pytest.mark.parametrize("storage_server", [{"appendonly": True}], indirect=True)
@pytest.mark.parametrize(
    "kills", [pytest.param(1, id="1-kill"), pytest.param(10, marks=pytest.mark.long)]
)
def test_late_binding_survives_its_broker_redis_killed_and_restarted(
    redis_url, storage_server, kills
):
    """Late-binding dispatch keeps the backlogs, leases and wake tokens in the broker's Redis:
    kill -9 of that Redis (AOF, appendfsync always) and a restart 1 s later lose nothing
    accepted, and workers (reconnecting as Celery does) resume dispatch. The long variant
    kills it 10 times, each at a random moment of a flood, to catch the rare windows (a
    token popped, a dispatch whose reply is lost, a message not yet acknowledged)."""
    if kills > 1 and not LONG:
        pytest.skip("long variant: make reliability-long")
    cluster = Cluster(storage_server.url, redis_url, {}, storage_url=storage_server.url)
    try:
        assert fairsched.dispatcher_for(cluster.app).late  # "auto" chose late binding
        cluster.start("w1", pool="prefork", concurrency=2)
        ledger = Ledger(cluster)
        rng = random.Random(kills)
        for kill in range(kills):
            tag = f"late-aof-{kill}"
            flood(ledger, 400, keys=20, seconds=0.02, tag=tag)
            assert ledger.refused == []
            ran_before = len(ledger.accepted) - 400
            counts, down = ledger.fault_then_settle(
                f"late binding: broker Redis kill -9, AOF, restart after 1 s ({kill + 1}/{kills})",
                ran_before + rng.randint(60, 240),
                storage_server.restart,
                120,
            )
            assert counts["lost"] == 0
            # At most the tasks running at each kill.
            assert counts["duplicated"] <= 2 * (kill + 1)
            # Celery's own reconnect to the broker (its retry interval) bounds the resume.
            assert counts["longest_stall_s"] <= down + RESUME_WITHIN + 5
    finally:
        cluster.close()


def test_late_binding_with_its_broker_redis_paused_is_only_a_delay(redis_url, storage_server):
    """The broker's Redis, which holds the backlogs, stalls for 4 s (DEBUG SLEEP) while
    workers run and dispatch: with kombu's default timeouts a delay only, nothing lost or run
    twice. (Dispatches cut by a broker lost mid-call are the kill test's and
    tests/integration/test_transport.py's.)"""
    cluster = Cluster(storage_server.url, redis_url, {}, storage_url=storage_server.url)
    try:
        assert fairsched.dispatcher_for(cluster.app).late
        cluster.start("w1", pool="prefork", concurrency=2)
        ledger = Ledger(cluster)
        flood(ledger, 300, keys=20, seconds=0.01, tag="late-pause")
        wait_for("60 started", lambda: len(cluster.started()) >= 60, timeout=60)
        began = time.time()
        storage_server.client().execute_command("DEBUG", "SLEEP", "4")  # returns when it ends
        counts = ledger.settle("late binding: broker Redis DEBUG SLEEP 4 s", began, 60)
        assert counts["lost"] == 0
        assert counts["duplicated"] == 0
        assert counts["longest_stall_s"] <= 4 + RESUME_WITHIN
    finally:
        cluster.close()
