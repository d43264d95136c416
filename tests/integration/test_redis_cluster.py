"""RedisStorage on a real three-node Redis Cluster decides like MemoryStorage.

Each domain's keys share one hash tag, so every script runs on the node owning that slot, and
domains spread over nodes. The cluster is private: three redis-server processes on free ports,
joined with `redis-cli --cluster create`, stopped by pid.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairsched import Job, MemoryStorage, RedisStorage, Task
from tests import servers

pytestmark = pytest.mark.redis

#: Domains whose hash tags fall on the three nodes of a fresh 3-node cluster (slots 3213,
#: 5718, 11361), plus one with braces in its name (slot 11370).
DOMAINS = ["celery", "default", "other", "q{x}"]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too."""
    rng = random.Random()
    found: list[int] = []
    while len(found) < count:
        port = rng.randrange(20000, 30000)
        if port not in found and _bindable(port) and _bindable(port + 10000):
            found.append(port)
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary, cli = servers.redis_server_binary(), shutil.which("redis-cli")
    if binary is None or cli is None:
        servers.unavailable("the cluster test needs redis-server and redis-cli")
    ports = cluster_ports(3)
    procs = []
    try:
        for port in ports:
            workdir: Path = tmp_path_factory.mktemp(f"node{port}")
            procs.append(
                subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1",
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ),
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while not all(servers.port_open("127.0.0.1", p) for p in ports):
            if time.monotonic() > deadline:
                servers.unavailable("cluster nodes did not start")
            time.sleep(0.02)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        while (
            b"cluster_state:ok"
            not in subprocess.run(
                [cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, check=True
            ).stdout
        ):
            if time.monotonic() > deadline + 20:
                servers.unavailable("cluster did not become ready")
            time.sleep(0.1)
        yield "127.0.0.1", ports[0]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


@pytest.mark.parametrize(
    "policy",
    [
        "lru",
        {"policy": "drr", "quantum": 0.5},
        {"policy": "expiry_aware", "inner": {"policy": "weighted_lru"}, "slack": 1.0},
    ],
)
def test_cluster_storage_decides_like_memory_storage(cluster, policy):
    from redis.cluster import RedisCluster

    host, port = cluster
    client = RedisCluster(host=host, port=port)
    redis_storage = RedisStorage(client, prefix=f"c{abs(hash(str(policy)))}:", policy=policy)
    slots = {client.keyslot(redis_storage._base(d)) for d in DOMAINS}
    owners = {client.nodes_manager.get_node_from_slot(s).name for s in slots}
    assert len(owners) == 3  # the domains really live on different nodes
    memory = MemoryStorage(policy=policy)

    def both(verb: str, *args: Any, **kwargs: Any) -> Any:
        mine = getattr(memory, verb)(*args, **kwargs)
        assert getattr(redis_storage, verb)(*args, **kwargs) == mine, verb
        return mine

    for domain in DOMAINS:
        for i in range(12):
            deadline = 3.0 if i % 5 == 0 else None
            job = Job(f"{domain}-{i}", f"k{i % 3}", 0.0, 1.0 + i % 2, deadline)
            both("enqueue", Task(job, b"p%d" % i, domain), now=0.0)
    both("set_weight", "k1", 2.0, now=0.5)
    for domain in DOMAINS:
        for _ in range(4):
            both("dispatch", domain, now=1.0, lease_timeout=2.0)
        both("complete", f"{domain}-0", domain, runtime=0.3, now=1.5)
        both("revoke", f"{domain}-7", domain, now=1.5)
        both("finish", f"{domain}-3", domain, runtime=0.2, now=2.0, window=3)
        both("requeue", f"{domain}-1", domain, now=2.0)
        both("reclaim", domain, now=10.0)
        both("dispatch", domain, now=10.0)
        both("expire", domain, now=11.0)
        both("keys", domain)
        both("last_dispatched", domain)
        for key in ("k0", "k1", "k2"):
            both("queued", key, None, domain)
            both("backlog_size", key, domain)
    both("in_flight", "other")
    assert redis_storage.purge() == memory.purge()
    client.close()
