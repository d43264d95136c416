"""End-to-end benchmark: plain `delay` vs `lru_delay` side by side on the same real workers.

One prefork worker (concurrency 2) on a Redis broker with RedisStorage; every figure is
measured for both modes in the same run, alternating rounds so machine noise hits both:

- throughput of no-op tasks (tasks started per second, first submit to last start);
- added latency on an idle system (submission to task start, one task at a time);
- the interactive key's wait under a bulk flood (p50, p95).

Run: .venv/bin/python benchmarks/e2e.py [--redis URL] [--broker URL] [--tasks 2000]
Without --redis a private redis-server is started (as the tests do).
"""

from __future__ import annotations

import argparse
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


def submit(cluster: Cluster, mode: str, key: str, token: str, seconds: float = 0.0) -> Any:
    work = cluster.module.work
    if mode == "plain":
        return work.delay(token, seconds)
    return work.lru_delay(key, token, seconds)


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


def flood(cluster: Cluster, mode: str, bulk: int, interactive: int) -> list[float]:
    """Waits of `interactive` tasks (one per 100 ms) behind `bulk` tasks of 20 ms."""
    tag = uuid.uuid4().hex[:8]
    bulk_tokens = [f"fl-{mode}-{tag}-b{i}" for i in range(bulk)]
    for t in bulk_tokens:
        submit(cluster, mode, "bulk", t, 0.02)
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
    parser.add_argument("--redis", help="Redis URL for storage and results (default: private)")
    parser.add_argument("--broker", help="broker URL (default: the Redis URL)")
    parser.add_argument("--tasks", type=int, default=2000, help="no-op tasks per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per mode")
    parser.add_argument("--idle", type=int, default=200, help="tasks per idle-latency round")
    parser.add_argument("--bulk", type=int, default=1000, help="flood size")
    args = parser.parse_args()

    with ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(servers.private_redis())
        cluster = Cluster(args.broker or redis_url, redis_url)
        stack.callback(cluster.close)
        cluster.start("bench", pool="prefork", concurrency=2)
        modes = ("plain", "fair")
        rates: dict[str, list[float]] = {m: [] for m in modes}
        idle: dict[str, list[float]] = {m: [] for m in modes}
        waits: dict[str, list[float]] = {m: [] for m in modes}
        total = args.rounds * len(modes)
        with tqdm(total=total * 3, desc="rounds", unit="round", file=sys.stderr) as bar:
            for _ in range(args.rounds):
                for mode in modes:
                    rates[mode].append(throughput(cluster, mode, args.tasks))
                    bar.update(1)
            with tqdm(total=args.idle * total, desc="idle", unit="task", file=sys.stderr) as ib:
                for _ in range(args.rounds):
                    for mode in modes:
                        idle[mode].extend(idle_latency(cluster, mode, args.idle, ib))
                        bar.update(1)
            for _ in range(args.rounds):
                for mode in modes:
                    waits[mode].extend(flood(cluster, mode, args.bulk, 20))
                    bar.update(1)

    tp = {m: statistics.median(rates[m]) for m in modes}
    print(
        f"\nbroker {cluster.broker.split('://')[0]}, 1 worker x 2 processes (prefork), "
        f"RedisStorage, window auto (2 x 2 = 4); {args.rounds} alternating rounds per mode"
    )
    print(f"{'figure':44}{'delay':>12}{'lru_delay':>12}{'ratio/diff':>14}")
    print(
        f"{'no-op throughput (tasks/s, median)':44}{tp['plain']:>12.0f}{tp['fair']:>12.0f}"
        f"{tp['fair'] / tp['plain']:>13.0%}"
    )
    for q in (50, 95):
        a, b = pct(idle["plain"], q) * 1000, pct(idle["fair"], q) * 1000
        print(f"{f'idle submit-to-start p{q} (ms)':44}{a:>12.2f}{b:>12.2f}{b - a:>+12.2f}ms")
    for q in (50, 95):
        a, b = pct(waits["plain"], q) * 1000, pct(waits["fair"], q) * 1000
        print(
            f"{f'interactive wait under {args.bulk}-task flood p{q} (ms)':44}{a:>12.0f}{b:>12.0f}"
            f"{a / max(b, 1e-9):>12.0f}x"
        )


if __name__ == "__main__":
    main()
