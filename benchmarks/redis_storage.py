"""RedisStorage against its goals, side by side in one run on a private redis-server.

Prints, for the given policy:
  * µs per enqueue and per dispatch at backlog 1,000 vs 100,000 (10 keys) and at 10 vs
    100,000 keys (one task each); the scenarios are measured in alternating batches so machine
    noise hits them alike (goal: ratio <= 1.3);
  * round trips per enqueue and per dispatch: EVALSHA calls from INFO commandstats and commands
    the client sent (goal: 1 each);
  * a plain LPUSH / RPOP of the same payload on the same connection (goal: fairsched <= 2x);
  * Redis memory per backlogged task beyond its payload (goal <= 150 bytes), with uuid ids (as
    Celery makes them) and with other 32-character ids, and per idle key;
  * celery-ranch 0.1.1's Redis storage enqueue at the same backlogs: the reference to beat.

Never touches 127.0.0.1:6379: it starts its own redis-server (tests.servers.private_redis).

    .venv/bin/python benchmarks/redis_storage.py [--policy drr] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from tqdm import tqdm

from fairsched import Job, RedisStorage, Task
from tests import servers

PAYLOAD = b'{"task":"proj.tasks.resize","args":["s3://bucket/image-000123.png",800,600],"kw":{}}'


class Counting:
    """Counts the commands a redis-py client sends (each is one round trip here)."""

    def __init__(self, client: redis.Redis) -> None:
        self.calls = 0
        original = client.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        client.execute_command = counted  # type: ignore[method-assign]


def new_task(key: str, domain: str = "celery", plain_id: bool = False) -> Task:
    # Celery's ids are uuids (stored packed, 17 bytes); `plain_id` gives a 32-character id
    # that is not a uuid, stored as its 32 bytes.
    tid = f"job:{uuid.uuid4().hex[:28]}" if plain_id else uuid.uuid4().hex
    return Task(Job(tid, key, time.time()), PAYLOAD, domain)


def fill(storage: RedisStorage, tasks: Iterable[Task], total: int, label: str) -> None:
    """Enqueue many tasks through the enqueue script, pipelined (set-up only, not timed)."""
    script = storage._scripts["enqueue"]
    pipe = storage.client.pipeline(transaction=False)
    first = True
    for n, task in enumerate(tqdm(tasks, total=total, desc=f"fill {label}", leave=False), 1):
        if first:
            storage.enqueue(task)  # registers the domain, loads the script
            first = False
            continue
        args = [storage._preamble, b"0", *storage._task_args(task, repr(time.time()))]
        script(keys=[storage._base(task.domain)], args=args, client=pipe)
        if n % 2000 == 0:
            pipe.execute()
    pipe.execute()


class Scenario:
    """One storage in a given state; each round enqueues one task and dispatches one."""

    def __init__(self, client: redis.Redis, name: str, policy: str, keys: list[str]) -> None:
        self.name = name
        self.keys = keys
        self.storage = RedisStorage(client, prefix=f"bench-{uuid.uuid4().hex[:8]}:", policy=policy)
        self.enqueue_us: list[float] = []
        self.dispatch_us: list[float] = []
        self.rng = random.Random(name)

    def rounds(self, n: int) -> None:
        storage, keys, rng = self.storage, self.keys, self.rng
        enq, dis = self.enqueue_us, self.dispatch_us
        for _ in range(n):
            task = new_task(rng.choice(keys))
            t0 = time.perf_counter()
            storage.enqueue(task)
            t1 = time.perf_counter()
            got = storage.dispatch()
            t2 = time.perf_counter()
            assert got.task is not None
            enq.append((t1 - t0) * 1e6)
            dis.append((t2 - t1) * 1e6)


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternate(scenarios: list[Scenario], rounds: int, batch: int = 100) -> None:
    for _ in tqdm(range(rounds // batch), desc="measure", leave=False):
        for scenario in scenarios:
            scenario.rounds(batch)


def used_memory(client: redis.Redis) -> int:
    """Bytes in use, once memory freed in the background (UNLINK) is really freed."""
    while int(client.info("memory").get("lazyfree_pending_objects", 0)):
        time.sleep(0.05)
    return int(client.info("memory")["used_memory"])


def memory_figures(client: redis.Redis, policy: str, n: int) -> dict[str, float]:
    """Bytes per backlogged task beyond its payload, per idle key, and for a plain list."""
    storage = RedisStorage(client, prefix=f"mem-{uuid.uuid4().hex[:8]}:", policy=policy)
    storage.enqueue(new_task("warm"))
    storage.dispatch()
    before = used_memory(client)
    fill(storage, (new_task(f"k{i % 100}") for i in range(n)), n, "memory")
    per_task = (used_memory(client) - before) / n
    storage.purge()
    before = used_memory(client)
    fill(storage, (new_task(f"k{i % 100}", plain_id=True) for i in range(n)), n, "memory")
    per_plain_id_task = (used_memory(client) - before) / n
    storage.purge()

    idle = RedisStorage(client, prefix=f"idle-{uuid.uuid4().hex[:8]}:", policy=policy)
    idle.enqueue(new_task("warm"))
    idle.finish(idle.dispatch().task.id, "celery")  # type: ignore[union-attr]
    before = used_memory(client)
    keys = n // 10
    for i in range(keys):
        idle.enqueue(new_task(f"idle-{i}"))
        got = idle.dispatch().task
        idle.complete(got.id, "celery", runtime=0.01)  # type: ignore[union-attr]
    per_key = (used_memory(client) - before) / keys
    idle.purge()

    name = f"plain-{uuid.uuid4().hex[:8]}"
    before = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.lpush(name, PAYLOAD)
        if i % 2000 == 0:
            pipe.execute()
    pipe.execute()
    plain = (used_memory(client) - before) / n
    client.delete(name)
    # A task is its payload plus an id, key name and times: report the bytes beyond the payload,
    # for uuid ids (as Celery makes them) and for 32-character ids that are not uuids.
    return {
        "task": per_task - len(PAYLOAD),
        "task_plain_id": per_plain_id_task - len(PAYLOAD),
        "plain_list": plain - len(PAYLOAD),
        "idle_key": per_key,
    }


class PlainList:
    """LPUSH then RPOP of the same payload: the floor for one push and one pop."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.name = f"plain-{uuid.uuid4().hex[:8]}"
        self.enqueue_us: list[float] = []
        self.dispatch_us: list[float] = []
        for _ in range(1000):
            client.lpush(self.name, PAYLOAD)

    def rounds(self, n: int) -> None:
        client, name = self.client, self.name
        for _ in range(n):
            t0 = time.perf_counter()
            client.lpush(name, PAYLOAD)
            t1 = time.perf_counter()
            client.rpop(name)
            t2 = time.perf_counter()
            self.enqueue_us.append((t1 - t0) * 1e6)
            self.dispatch_us.append((t2 - t1) * 1e6)


def round_trips(client: redis.Redis, policy: str, n: int) -> dict[str, float]:
    storage = RedisStorage(client, prefix=f"rt-{uuid.uuid4().hex[:8]}:", policy=policy)
    storage.enqueue(new_task("warm"))
    storage.dispatch()
    counter = Counting(client)
    figures: dict[str, float] = {}
    for verb, action in (
        ("enqueue", lambda i: storage.enqueue(new_task(f"k{i % 10}"))),
        ("dispatch", lambda i: storage.dispatch()),
    ):
        stats = client.info("commandstats")
        evalsha = stats.get("cmdstat_evalsha", {}).get("calls", 0)
        usec = stats.get("cmdstat_evalsha", {}).get("usec", 0)
        counter.calls = 0
        for i in range(n):
            action(i)
        sent = counter.calls
        after = client.info("commandstats")["cmdstat_evalsha"]
        figures[f"{verb}_evalsha"] = (after["calls"] - evalsha) / n
        figures[f"{verb}_server_us"] = (after["usec"] - usec) / n
        figures[f"{verb}_sent"] = (sent - 1) / n  # minus the INFO call
    storage.purge()
    return figures


def ranch_enqueue(client: redis.Redis, backlog_per_key: int, rounds: int) -> list[float]:
    """celery-ranch 0.1.1: TaskBacklog.add_task over its RedisStorage (default settings)."""
    from celery_ranch.utils.backlog import TaskBacklog
    from celery_ranch.utils.persistence import RedisStorage as RanchStorage

    storage = RanchStorage(client, prefix=f"ranch-{uuid.uuid4().hex[:8]}:")
    backlog = TaskBacklog(storage=storage)
    keys = [f"k{i}" for i in range(10)]
    # Its per-key index is one serialized dict rewritten on every enqueue: build it directly
    # at the target size (enqueueing 100,000 tasks one by one would take hours).
    now = time.time()
    for key in keys:
        index = {uuid.uuid4().hex: now for _ in range(backlog_per_key)}
        storage.set(f"lru_index:{key}", index)
    rng = random.Random(1)
    out = []
    for _ in range(rounds):
        key = rng.choice(keys)
        t0 = time.perf_counter()
        backlog.add_task("proj.tasks.resize", key, ("s3://bucket/image.png", 800, 600), {})
        out.append((time.perf_counter() - t0) * 1e6)
    storage.clear_all_ranch_keys()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="lru")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    big = 10_000 if args.quick else 100_000
    rounds = 400 if args.quick else 3000

    with servers.private_redis() as url:
        client = redis.Redis.from_url(url)
        print(f"redis-server {client.info('server')['redis_version']} at {url}; "
              f"policy {args.policy}; payload {len(PAYLOAD)} bytes")  # fmt: skip
        ten = [f"k{i}" for i in range(10)]
        many = [f"k{i}" for i in range(big)]
        scenarios = {
            "backlog 1,000 / 10 keys": Scenario(client, "b1k", args.policy, ten),
            f"backlog {big:,} / 10 keys": Scenario(client, "b100k", args.policy, ten),
            "10 keys / 1 task each": Scenario(client, "k10", args.policy, ten),
            f"{big:,} keys / 1 task each": Scenario(client, "k100k", args.policy, many),
        }
        specs = [(ten, 1000), (ten, big), (ten, 10), (many, big)]
        for (label, scenario), (keys, size) in zip(scenarios.items(), specs, strict=True):
            tasks = (new_task(keys[i % len(keys)]) for i in range(size))
            fill(scenario.storage, tasks, size, label)
        plain = PlainList(client)
        alternate([*scenarios.values(), plain], rounds)  # type: ignore[list-item]
        push, pop = plain.enqueue_us, plain.dispatch_us
        stats = client.info("commandstats")
        plain_server = (
            stats["cmdstat_lpush"]["usec_per_call"],
            stats["cmdstat_rpop"]["usec_per_call"],
        )
        trips = round_trips(client, args.policy, 1000)
        memory = memory_figures(client, args.policy, big)
        ranch_small = ranch_enqueue(client, 100, 200 if not args.quick else 50)
        ranch_big = ranch_enqueue(client, big // 10, 20 if not args.quick else 5)
        for scenario in scenarios.values():
            scenario.storage.purge()

    med = {label: (median(s.enqueue_us), median(s.dispatch_us)) for label, s in scenarios.items()}
    labels = list(med)
    print("\nmedian µs per call (enqueue, dispatch)")
    print(f"{'state':<28}{'enqueue':>10}{'dispatch':>10}")
    for label in labels:
        print(f"{label:<28}{med[label][0]:>10.1f}{med[label][1]:>10.1f}")
    print(f"{'plain LPUSH / RPOP':<28}{median(push):>10.1f}{median(pop):>10.1f}")
    print(f"{'celery-ranch, 1,000 / 10':<28}{median(ranch_small):>10.1f}{'-':>10}")
    print(f"{'celery-ranch, ' + format(big, ',') + ' / 10':<28}{median(ranch_big):>10.1f}{'-':>10}")

    def ratio(a: str, b: str, i: int) -> float:
        return med[b][i] / med[a][i]

    print("\nratios (goal <= 1.3 for growth, <= 2 vs plain list)")
    print(f"  backlog {big:,} / 1,000:   enqueue {ratio(labels[0], labels[1], 0):.2f}  "
          f"dispatch {ratio(labels[0], labels[1], 1):.2f}")  # fmt: skip
    print(f"  keys {big:,} / 10:         enqueue {ratio(labels[2], labels[3], 0):.2f}  "
          f"dispatch {ratio(labels[2], labels[3], 1):.2f}")  # fmt: skip
    print(f"  vs LPUSH / RPOP (1,000):   enqueue {med[labels[0]][0] / median(push):.2f}  "
          f"dispatch {med[labels[0]][1] / median(pop):.2f}")  # fmt: skip
    print(f"  celery-ranch / fairsched enqueue: {median(ranch_small) / med[labels[0]][0]:.1f}x "
          f"at 1,000, {median(ranch_big) / med[labels[1]][0]:.0f}x at {big:,}")  # fmt: skip
    print("\nround trips per call (goal 1)")
    print(f"  enqueue:  {trips['enqueue_evalsha']:.2f} EVALSHA, {trips['enqueue_sent']:.2f} sent")
    print(f"  dispatch: {trips['dispatch_evalsha']:.2f} EVALSHA, {trips['dispatch_sent']:.2f} sent")
    print("\nserver time per call, µs (INFO commandstats; the client's share is the rest)")
    print(f"  enqueue script {trips['enqueue_server_us']:.1f}, "
          f"dispatch script {trips['dispatch_server_us']:.1f}; "
          f"LPUSH {plain_server[0]:.2f}, RPOP {plain_server[1]:.2f}")  # fmt: skip
    print("  celery-ranch enqueue: 3 (SET task, GET index, SET index), 4 with an expiry")
    print("\nmemory (bytes, from used_memory)")
    print(f"  per backlogged task beyond its payload: {memory['task']:.0f} with uuid ids "
          f"(stored as 17 bytes), {memory['task_plain_id']:.0f} with 32-character "
          "non-uuid ids")  # fmt: skip
    print(f"  plain list element beyond its payload:  {memory['plain_list']:.0f}")
    print(f"  per idle key (served once, bookkeeping kept): {memory['idle_key']:.0f}")


if __name__ == "__main__":
    main()
