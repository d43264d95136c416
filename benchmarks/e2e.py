"""End-to-end benchmark: plain `delay` vs `lru_delay`, late-binding and windowed dispatch.

On one Redis (broker, storage and results; a private redis-server unless --redis), two
clusters of one prefork worker (concurrency 2) each: one with late-binding dispatch
(fairsched.transport), one with windowed dispatch. Modes, measured in alternating rounds so
machine noise hits them alike:

- plain: `delay` on the late-binding cluster (kombu's own path: the transport adds nothing);
- late: `lru_delay` with late-binding dispatch;
- window: `lru_delay` with windowed dispatch (window 2 x 2 = 4).

Figures: no-op throughput (first submit to last start); idle submission-to-start latency (one
task at a time); the interactive key's wait under a flood of 20 ms tasks and of 200 ms tasks;
Redis commands per task (INFO commandstats over the throughput rounds, commands run inside
scripts included); CPU per task of the producer (this process), the worker parent, its pool
children and redis-server, over the throughput rounds.

Run: .venv/bin/python benchmarks/e2e.py [--redis URL] [--tasks 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm

from tests import servers
from tests.e2e.cluster import Cluster


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


MODES = ("plain", "late", "window")


def submit(cluster: Cluster, mode: str, key: str, token: str, seconds: float = 0.0) -> Any:
    work = cluster.module.work
    if mode == "plain":
        return work.delay(token, seconds)
    return work.lru_delay(key, token, seconds)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.exists() else []


def redis_pid(client: Any) -> int:
    return int(client.info("server")["process_id"])


def commands(client: Any) -> int:
    """Commands the server ran so far (EVALSHA itself not counted, what scripts ran is)."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_evalsha",))


def started_at(
    cluster: Cluster, tokens: list[str], timeout: float, before: int | None = None
) -> list[float]:
    """Start times of `tokens`, read with HMGET once they can all have started.

    With `before` (the size of the start-time hash before the tokens were submitted) only
    HLEN is polled while waiting. Reading the whole hash every 50 ms, as
    `Cluster.wait_started` does, costs the benchmark process and Redis CPU that grows with the
    hash, during the measurement and for longer in the slower mode.
    """
    name = f"{cluster.prefix}e2e:started"
    deadline = time.monotonic() + timeout
    while True:
        if before is None or cluster.client.hlen(name) >= before + len(tokens):
            values = cluster.client.hmget(name, tokens)
            if all(v is not None for v in values):
                return [float(v) for v in values]
        if time.monotonic() > deadline:
            raise TimeoutError(f"tasks never started, e.g. {tokens[:3]}")
        time.sleep(0.02)


def throughput(cluster: Cluster, mode: str, n: int) -> float:
    """Tasks started per second for `n` no-op tasks submitted at once."""
    before = cluster.client.hlen(f"{cluster.prefix}e2e:started")
    tokens = [f"tp-{mode}-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)]
    begin = time.time()
    for t in tokens:
        submit(cluster, mode, "bulk", t)
    started = started_at(cluster, tokens, timeout=300, before=before)
    return n / (max(started) - begin)


def idle_latency(cluster: Cluster, mode: str, n: int, bar: Any) -> list[float]:
    """Submission-to-start delay of `n` tasks sent one at a time to an idle system."""
    out = []
    for i in range(n):
        t = f"idle-{mode}-{uuid.uuid4().hex[:8]}-{i}"
        at = time.time()
        submit(cluster, mode, f"user{i % 7}", t).get(timeout=30)
        out.append(started_at(cluster, [t], timeout=30)[0] - at)
        bar.update(1)
    return out


#: What is added up per mode over the throughput rounds.
COSTS = ("commands", "producer", "worker parent", "pool children", "redis-server")


def flood(
    cluster: Cluster, mode: str, bulk: int, interactive: int, seconds: float = 0.02
) -> list[float]:
    """Waits of `interactive` tasks (one per 100 ms) behind `bulk` tasks of `seconds`."""
    tag = uuid.uuid4().hex[:8]
    bulk_tokens = [f"fl-{mode}-{tag}-b{i}" for i in range(bulk)]
    for t in bulk_tokens:
        submit(cluster, mode, "bulk", t, seconds)
    submitted = {}
    for i in range(interactive):
        t = f"fl-{mode}-{tag}-i{i}"
        submitted[t] = time.time()
        submit(cluster, mode, "interactive", t)
        time.sleep(max(0.0, submitted[t] + 0.1 - time.time()))
    started = cluster.wait_started([*submitted, *bulk_tokens], timeout=300)
    return [started[t] - at for t, at in submitted.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="Redis URL for broker, storage and results")
    parser.add_argument("--tasks", type=int, default=2000, help="no-op tasks per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per mode")
    parser.add_argument("--idle", type=int, default=200, help="tasks per idle-latency round")
    parser.add_argument("--bulk", type=int, default=1000, help="flood size (20 ms tasks)")
    args = parser.parse_args()

    with ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(servers.private_redis())
        late = Cluster(redis_url, redis_url, {"dispatch": "late"})
        stack.callback(late.close)
        windowed = Cluster(redis_url, redis_url, {"dispatch": "window"})
        stack.callback(windowed.close)
        clusters = {"plain": late, "late": late, "window": windowed}
        workers = {
            "late": late.start("bench", pool="prefork", concurrency=2),
            "window": windowed.start("bench", pool="prefork", concurrency=2),
        }
        server = redis_pid(late.client)
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        cost: dict[str, dict[str, float]] = {m: dict.fromkeys(COSTS, 0.0) for m in MODES}
        idle: dict[str, list[float]] = {m: [] for m in MODES}
        waits: dict[str, dict[float, list[float]]] = {m: {0.02: [], 0.2: []} for m in MODES}
        total = args.rounds * len(MODES)
        with tqdm(total=total * 4, desc="rounds", unit="round", file=sys.stderr) as bar:
            for _ in range(args.rounds):
                for mode in MODES:
                    worker = workers["window" if mode == "window" else "late"]
                    pids = {"worker parent": [worker], "pool children": children(worker)}
                    pids["redis-server"] = [server]
                    before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
                    producer = time.process_time()
                    calls = commands(late.client)
                    rates[mode].append(throughput(clusters[mode], mode, args.tasks))
                    cost[mode]["commands"] += commands(late.client) - calls
                    cost[mode]["producer"] += time.process_time() - producer
                    for k, v in pids.items():
                        cost[mode][k] += sum(cpu_seconds(p) for p in v) - before[k]
                    bar.update(1)
            with tqdm(total=args.idle * total, desc="idle", unit="task", file=sys.stderr) as ib:
                for _ in range(args.rounds):
                    for mode in MODES:
                        idle[mode].extend(idle_latency(clusters[mode], mode, args.idle, ib))
                        bar.update(1)
            for seconds, bulk in ((0.02, args.bulk), (0.2, max(20, args.bulk // 10))):
                for _ in range(args.rounds):
                    for mode in MODES:
                        waits[mode][seconds].extend(flood(clusters[mode], mode, bulk, 20, seconds))
                        bar.update(1)

    tp = {m: statistics.median(rates[m]) for m in MODES}
    done = args.tasks * args.rounds
    print(
        f"\nRedis broker, 1 worker x 2 processes (prefork) per dispatch mode, RedisStorage; "
        f"{args.rounds} alternating rounds per mode"
    )
    print(f"{'figure':46}{'delay':>10}{'late':>10}{'window':>10}")

    def row(label: str, values: dict[str, float], spec: str) -> None:
        print(f"{label:46}" + "".join(f"{values[m]:>10{spec}}" for m in MODES))

    row("no-op throughput (tasks/s, median)", tp, ".0f")
    row("  ratio to plain delay", {m: tp[m] / tp["plain"] for m in MODES}, ".0%")
    for q in (50, 95):
        row(f"idle submit-to-start p{q} (ms)", {m: pct(idle[m], q) * 1000 for m in MODES}, ".2f")
    for seconds, label in ((0.02, f"{args.bulk} x 20 ms"), (0.2, "200 ms")):
        for q in (50, 95):
            values = {m: pct(waits[m][seconds], q) * 1000 for m in MODES}
            row(f"interactive wait, flood of {label} tasks, p{q} (ms)", values, ".0f")
    row("Redis commands per task", {m: cost[m]["commands"] / done for m in MODES}, ".1f")
    for part in ("producer", "worker parent", "pool children", "redis-server"):
        row(f"CPU per task: {part} (us)", {m: cost[m][part] / done * 1e6 for m in MODES}, ".0f")


if __name__ == "__main__":
    main()
