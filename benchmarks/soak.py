"""Soak: a steady mixed load on real Celery workers for N minutes; throughput, memory, waits.

Servers: two private redis-servers started here. One is the broker, the result backend and
where the `work` task of `tests.e2e.app` records its starts; the other holds the fairsched
storage and nothing else, so its `used_memory` and `DBSIZE` measure the storage alone (the
results and the start records grow with every task by design). `--workers` real
`celery worker -P prefork -c 2` processes (`tests.e2e.cluster.Cluster`) consume the queue.

Load, submitted with `lru_delay` by this process:

- bulk keys (`--bulk-keys`, default 3), each topped up every 0.1 s to about `--bulk-backlog`
  queued tasks of 10-40 ms: a closed loop, so the storage always holds that backlog and the
  workers always have work (`--bulk-rate` caps it to an open load instead);
- light keys (`--light-keys`, default 50), Poisson arrivals at `--light-rate` tasks/s over
  all of them, 2-10 ms each: a small share of capacity, so their waits should stay short.

Every `--interval` seconds one line: tasks started per second, the share of worker slots spent
in task sleep, the storage server's `used_memory` and `DBSIZE`, the storage backlog and the
tasks in flight, and the p99 wait (submission to start) of the light and the bulk tasks that
started in the interval. At the end: tasks submitted, started, completed (a stored result),
lost (never started after the drain) and duplicated (started twice), counted by token; the
trend of `used_memory` and `DBSIZE` over the second half of the run; and the storage keys by
name pattern at 40% of the load, at its end and after the drain. (The first look at the keys
raises the server's `used_memory` once, by 25-150 KB that stay; a second look adds nothing.
Taken at 40%, that step falls before the second half, whose trend is the leak figure.)

Starts are read incrementally: `work` records its start time with HSETNX into the `started`
hash, then appends its token to the `runs` list, on every run. Each interval reads only the
new tail of that list (LRANGE from the last offset) and the start times of its new tokens
(HMGET), so the observer's cost follows the task rate, not the length of the run (HSCAN would
walk the whole hash). A token twice in the list ran twice.

Run: .venv/bin/python benchmarks/soak.py [--minutes 5] [--interval 10] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from attrs import define, field, frozen

from fairsched import dispatcher_for
from tests import servers
from tests.e2e.cluster import Cluster

#: Seconds each task sleeps, uniform between the two bounds, by key class.
SECONDS = {"light": (0.002, 0.010), "bulk": (0.010, 0.040)}
#: How often the bulk backlogs are checked and topped up (s).
REFILL_EVERY = 0.1
#: Per Redis data type, the command that gives its number of elements.
LENGTH = {"hash": "HLEN", "list": "LLEN", "zset": "ZCARD", "set": "SCARD", "string": "STRLEN"}


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile of `values` (linear interpolation); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def ms(seconds: float) -> float | None:
    """Seconds as milliseconds rounded to 0.1; None for nan (no tasks), which JSON lacks."""
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


def class_of(token: str) -> str:
    """The key class a token was submitted under ("L..." light, "B..." bulk)."""
    return "light" if token.startswith("L") else "bulk"


# -- memory trend -----------------------------------------------------------------------------


@frozen
class Trend:
    """How a sampled figure moved over a span: fitted slope, spread and a flatness verdict."""

    slope_per_min: float  # least-squares slope, units per minute
    ratio: float  # max / min of the samples
    growth: float  # fitted change over the span
    noise: float  # what counts as noise: 2 x residual stdev, at least the floor given
    samples: int

    @property
    def flat(self) -> bool:
        """Whether the fitted growth over the span stays within the noise."""
        return self.growth <= self.noise


def trend(points: Sequence[tuple[float, float]], floor: float) -> Trend | None:
    """Fit a line through `points` (seconds, value); None with fewer than three points.

    `floor` is the smallest change counted as growth (e.g. 2 keys), so a figure that
    barely moves is not called a leak because its residuals happen to be tiny.
    """
    if len(points) < 3:
        return None
    xs = [t / 60 for t, _ in points]
    ys = [v for _, v in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    residuals = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys, strict=True)]
    noise = max(floor, 2 * statistics.pstdev(residuals))
    low = min(ys)
    return Trend(
        slope_per_min=slope,
        ratio=max(ys) / low if low else math.inf,
        growth=slope * (xs[-1] - xs[0]),
        noise=noise,
        samples=len(points),
    )


# -- storage keys by pattern ------------------------------------------------------------------


def pattern(name: str, prefix: str) -> str:
    """A storage key's name with its domain and user key replaced: `{domain}:q:*`."""
    rest = name[len(prefix) :]
    if rest.startswith("{"):
        _, _, rest = rest.partition("}:")
        head, sep, _ = rest.partition(":")
        return "{domain}:" + head + (":*" if sep else "")
    return rest


def census(client: redis.Redis, prefix: str) -> dict[str, dict[str, int]]:
    """The keys under `prefix` by pattern: how many, their elements and bytes (MEMORY USAGE).

    Three pipelined round trips over a few dozen keys; the storage holds no key per task.
    """
    names = [n.decode() for n in client.scan_iter(match=f"{prefix}*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    kinds = [k.decode() for k in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    present = [(n, k) for n, k in zip(names, kinds, strict=True) if k in LENGTH]
    for name, kind in present:
        pipe.execute_command(LENGTH[kind], name)
        pipe.memory_usage(name)
    replies = pipe.execute()
    out: dict[str, dict[str, int]] = {}
    for i, (name, _) in enumerate(present):
        row = out.setdefault(pattern(name, prefix), {"keys": 0, "elements": 0, "bytes": 0})
        row["keys"] += 1
        row["elements"] += int(replies[2 * i] or 0)
        row["bytes"] += int(replies[2 * i + 1] or 0)
    return dict(sorted(out.items()))


# -- the run ----------------------------------------------------------------------------------


@define
class Ledger:
    """Every task by token: when it was submitted and first started, and extra runs."""

    submitted: dict[str, float] = field(factory=dict)
    started: dict[str, float] = field(factory=dict)
    seconds: dict[str, float] = field(factory=dict)
    duplicates: dict[str, int] = field(factory=dict)
    strangers: int = 0  # runs of tokens this run never submitted


@define
class StartReader:
    """Reads the runs recorded since its last read: the new tail of the `runs` list only."""

    client: redis.Redis
    prefix: str
    offset: int = 0

    def read(self, ledger: Ledger) -> list[str]:
        """Record new runs in `ledger`; return the tokens that started for the first time."""
        tail = self.client.lrange(f"{self.prefix}e2e:runs", self.offset, -1)
        self.offset += len(tail)
        fresh: list[str] = []
        for raw in tail:
            token = raw.decode()
            if token in ledger.started or token in fresh:
                ledger.duplicates[token] = ledger.duplicates.get(token, 0) + 1
            else:
                fresh.append(token)
        if not fresh:
            return []
        # `work` sets its start time before it appends to `runs`, so every time is there.
        times = self.client.hmget(f"{self.prefix}e2e:started", fresh)
        for token, at in zip(fresh, times, strict=True):
            ledger.started[token] = float(at)
            if token not in ledger.submitted:
                ledger.strangers += 1
        return fresh


@define
class Producer:
    """Submits the light (Poisson) and bulk (topped-up backlog) load with `lru_delay`."""

    cluster: Cluster
    ledger: Ledger
    rng: random.Random
    light_keys: int
    bulk_keys: int
    bulk_backlog: int
    bulk_rate: float | None
    count: int = 0
    bulk_budget: float = 0.0

    def submit(self, cls: str, index: int) -> None:
        """Submit one `work` task under key `<cls><index>` with a fresh token."""
        self.count += 1
        token = f"{cls[0].upper()}{index}-{self.count}"
        seconds = round(self.rng.uniform(*SECONDS[cls]), 4)
        key = f"{cls}{index}"
        self.ledger.seconds[token] = seconds
        self.ledger.submitted[token] = time.time()
        self.cluster.module.work.lru_delay(key, token, seconds)

    def refill(self, storage: Any, dt: float) -> None:
        """Top each bulk key up to its target backlog (within the rate budget, if any)."""
        if self.bulk_rate is not None:
            self.bulk_budget = min(self.bulk_budget + self.bulk_rate * dt, self.bulk_rate)
        for i in range(self.bulk_keys):
            missing = self.bulk_backlog - storage.backlog_size(f"bulk{i}", self.cluster.queue)
            if self.bulk_rate is not None:
                missing = min(missing, int(self.bulk_budget))
                self.bulk_budget -= max(missing, 0)
            for _ in range(missing):
                self.submit("bulk", i)


def interrupted(signum: int, frame: Any) -> NoReturn:
    """Turn SIGTERM into KeyboardInterrupt, so the same clean-up runs."""
    raise KeyboardInterrupt


def sample(client: redis.Redis) -> tuple[int, int]:
    """The storage server's used_memory (bytes) and DBSIZE, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.dbsize()
    info, size = pipe.execute()
    return int(info["used_memory"]), int(size)


def backlog(storage: Any, keys: Sequence[str], queue: str) -> tuple[int, int]:
    """Tasks queued in the storage over `keys`, and tasks leased (in flight)."""
    return sum(storage.backlog_size(k, queue) for k in keys), storage.in_flight(queue)


def interval_row(
    elapsed: float, span: float, fresh: Sequence[str], ledger: Ledger, slots: int, **figures: Any
) -> dict[str, Any]:
    """The figures of one interval from the tokens that first started in it."""
    waits: dict[str, list[float]] = {"light": [], "bulk": []}
    for token in fresh:
        waits[class_of(token)].append(ledger.started[token] - ledger.submitted.get(token, 0.0))
    busy = sum(ledger.seconds.get(t, 0.0) for t in fresh) / (span * slots)
    return {
        "kind": "interval",
        "elapsed_s": round(elapsed, 1),
        "started": len(fresh),
        "tasks_per_s": round(len(fresh) / span, 1),
        "sleep_share": round(busy, 3),
        **figures,
        "light_started": len(waits["light"]),
        "p99_wait_ms": {c: ms(pct(w, 99)) for c, w in waits.items()},
    }


def megabytes(value: float) -> str:
    return f"{value / 1e6:.2f} MB"


def print_row(row: dict[str, Any], header: bool) -> None:
    """One interval as a line of text."""
    if header:
        print(
            f"{'elapsed':>7} {'tasks/s':>8} {'sleep':>6} {'used_memory':>12} {'dbsize':>7}"
            f" {'backlog':>8} {'flight':>6} {'light p99 ms':>13} {'bulk p99 ms':>12}"
        )
    p99 = {c: "-" if v is None else f"{v:.1f}" for c, v in row["p99_wait_ms"].items()}
    print(
        f"{row['elapsed_s']:>6.0f}s {row['tasks_per_s']:>8.1f} {row['sleep_share']:>6.0%}"
        f" {megabytes(row['used_memory']):>12} {row['dbsize']:>7} {row['backlog']:>8}"
        f" {row['in_flight']:>6} {p99['light']:>13} {p99['bulk']:>12}",
        flush=True,
    )


def drain(
    reader: StartReader, ledger: Ledger, storage: Any, keys: Sequence[str], queue: str, wait: float
) -> float:
    """Wait until every submitted task started and the storage is empty; return seconds."""
    begin = time.monotonic()
    deadline = begin + wait
    while time.monotonic() < deadline:
        reader.read(ledger)
        if len(ledger.started) >= len(ledger.submitted) and backlog(storage, keys, queue) == (0, 0):
            break
        time.sleep(0.5)
    reader.read(ledger)
    return time.monotonic() - begin


def completed(client: redis.Redis, expected: int, wait: float) -> int:
    """Tasks with a stored result on the result server, once they reach `expected` or `wait`
    seconds pass (a result is stored just before the slot is released, so they may lag)."""
    deadline = time.monotonic() + wait
    while True:
        found = sum(1 for _ in client.scan_iter(match="celery-task-meta-*", count=1000))
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def summarize(
    args: argparse.Namespace,
    ledger: Ledger,
    rows: Sequence[dict[str, Any]],
    samples: Sequence[tuple[float, int, int]],
    censuses: dict[str, dict[str, dict[str, int]]],
    done: int,
    drained_s: float,
    workers: int,
) -> dict[str, Any]:
    """The end-of-run figures: counts by token, memory and DBSIZE trends, steadiness."""
    half = args.minutes * 30
    second = [s for s in samples if s[0] >= half]
    memory = trend(
        [(t, m) for t, m, _ in second], floor=0.01 * max((m for _, m, _ in second), default=0)
    )
    keys = trend([(t, k) for t, _, k in second], floor=2)
    lost = [t for t in ledger.submitted if t not in ledger.started]
    steady = [r for r in rows if r["elapsed_s"] > args.interval]  # first interval: warm-up
    rates = [r["tasks_per_s"] for r in steady]

    def shape(t: Trend | None) -> dict[str, Any] | None:
        if t is None:
            return None
        return {
            "slope_per_min": round(t.slope_per_min, 1),
            "max_over_min": round(t.ratio, 4),
            "growth": round(t.growth, 1),
            "noise": round(t.noise, 1),
            "samples": t.samples,
            "flat": t.flat,
        }

    def spread(values: Sequence[float | None]) -> dict[str, float] | None:
        finite = [v for v in values if v is not None]
        if not finite:
            return None
        return {
            "min": round(min(finite), 1),
            "median": round(statistics.median(finite), 1),
            "max": round(max(finite), 1),
        }

    by_class: dict[str, list[float]] = {"light": [], "bulk": []}
    for token, at in ledger.submitted.items():
        if token in ledger.started:
            by_class[class_of(token)].append(ledger.started[token] - at)
    return {
        "kind": "summary",
        "minutes": args.minutes,
        "workers": workers,
        "submitted": len(ledger.submitted),
        "submitted_light": sum(1 for t in ledger.submitted if class_of(t) == "light"),
        "started": len(ledger.started),
        "completed": done,
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": len(ledger.duplicates),
        "duplicate_examples": list(ledger.duplicates)[:5],
        "strangers": ledger.strangers,
        "drain_s": round(drained_s, 1),
        "tasks_per_s": spread(rates),
        "p99_wait_ms_by_interval": {
            c: spread([r["p99_wait_ms"][c] for r in steady]) for c in ("light", "bulk")
        },
        "p99_wait_ms_whole_run": {c: ms(pct(w, 99)) for c, w in by_class.items()},
        "p50_wait_ms_whole_run": {c: ms(pct(w, 50)) for c, w in by_class.items()},
        "second_half": {
            "used_memory_bytes": shape(memory),
            "dbsize_keys": shape(keys),
        },
        "flat": keys.flat if keys is not None else None,
        "storage_keys": censuses,
    }


def print_summary(s: dict[str, Any]) -> None:
    """The summary as text."""
    print(
        f"\nsubmitted {s['submitted']} ({s['submitted_light']} light), started {s['started']},"
        f" completed {s['completed']} (a stored result), lost {s['lost']},"
        f" duplicated {s['duplicated']} (drain {s['drain_s']} s)"
    )
    if s["lost"]:
        print(f"  lost, e.g. {s['lost_examples']}")
    if s["duplicated"]:
        print(f"  duplicated, e.g. {s['duplicate_examples']}")
    if s["strangers"]:
        print(f"  {s['strangers']} runs of tokens this run never submitted")
    print(f"this process (producer and observer): {s['producer_cpu_s']} s of CPU")
    rate = s["tasks_per_s"]
    if rate:
        print(
            f"tasks/s per interval (after the first): min {rate['min']}, median"
            f" {rate['median']}, max {rate['max']}"
        )
    for c, p in s["p99_wait_ms_by_interval"].items():
        if p:
            print(
                f"{c} p99 wait per interval (ms): min {p['min']}, median {p['median']},"
                f" max {p['max']}; whole run p50 {s['p50_wait_ms_whole_run'][c]},"
                f" p99 {s['p99_wait_ms_whole_run'][c]}"
            )
    print("second half of the run:")
    for name, unit in (("used_memory_bytes", "bytes"), ("dbsize_keys", "keys")):
        t = s["second_half"][name]
        if t is None:
            print(f"  {name}: too few samples")
            continue
        print(
            f"  {name}: slope {t['slope_per_min']:+,.1f} {unit}/min,"
            f" max/min {t['max_over_min']:.4f},"
            f" fitted growth {t['growth']:+,.1f} vs noise {t['noise']:,.1f}"
            f" -> {'flat' if t['flat'] else 'GROWING'} ({t['samples']} samples)"
        )
    verdict = {True: "flat", False: "NOT flat (DBSIZE grows)", None: "unknown (run too short)"}
    print(f"storage DBSIZE: {verdict[s['flat']]}")
    stages = list(s["storage_keys"])
    names = sorted({p for c in s["storage_keys"].values() for p in c})
    if not names:
        return
    print("storage keys by pattern, keys/elements/bytes: " + " | ".join(stages))
    for name in names:
        cells = []
        for stage in stages:
            row = s["storage_keys"][stage].get(name)
            cells.append(
                f"{row['keys']:>4}/{row['elements']:>6}/{row['bytes']:>8}" if row else f"{'-':>20}"
            )
        print(f"  {name:22} " + "  ".join(cells))


def run(args: argparse.Namespace, stack: ExitStack) -> dict[str, Any]:
    """Start the servers and workers, run the load, drain, and return the summary."""
    # With --json, stdout carries only JSON lines; what happens goes to stderr.
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    broker = stack.enter_context(servers.private_redis())
    store_url = stack.enter_context(servers.private_redis())
    cluster = Cluster(broker, broker, storage_url=store_url, settings={"policy": args.policy})
    stack.callback(shutil.rmtree, cluster._logdir, ignore_errors=True)

    def close() -> None:
        # A Ctrl-C in a terminal reaches the servers as well; what they held went with them.
        with suppress(redis.RedisError):
            cluster.close()
        for name in list(cluster.workers):
            cluster.stop(name)

    stack.callback(close)
    store = redis.Redis.from_url(store_url)
    stack.callback(store.close)
    storage = dispatcher_for(cluster.app).storage
    for i in range(args.workers):
        cluster.start(f"soak{i}", pool="prefork", concurrency=2)
    say(
        f"broker/results {broker}, storage {store_url}, {args.workers} worker(s) x 2 (prefork),"
        f" policy {args.policy}; {args.bulk_keys} bulk keys at {args.bulk_backlog} queued each"
        + (f" (at most {args.bulk_rate}/s)" if args.bulk_rate else "")
        + f", {args.light_keys} light keys at {args.light_rate}/s (Poisson);"
        f" {args.minutes} min, line every {args.interval} s"
    )

    ledger = Ledger()
    reader = StartReader(cluster.client, cluster.prefix)
    producer = Producer(
        cluster,
        ledger,
        random.Random(args.seed),
        args.light_keys,
        args.bulk_keys,
        args.bulk_backlog,
        args.bulk_rate,
    )
    keys = [f"bulk{i}" for i in range(args.bulk_keys)] + [
        f"light{i}" for i in range(args.light_keys)
    ]
    rows: list[dict[str, Any]] = []
    samples: list[tuple[float, int, int]] = []
    censuses: dict[str, dict[str, dict[str, int]]] = {}
    rng = producer.rng

    def report(now: float, since: float, latest: tuple[float, int, int]) -> None:
        fresh = reader.read(ledger)
        queued, flight = backlog(storage, keys, cluster.queue)
        row = interval_row(
            now - begin,
            now - since,
            fresh,
            ledger,
            2 * args.workers,
            used_memory=latest[1],
            dbsize=latest[2],
            backlog=queued,
            in_flight=flight,
        )
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print_row(row, header=len(rows) == 1)

    cpu = time.process_time()
    begin = time.monotonic()
    end = begin + args.minutes * 60
    first_look = begin + args.minutes * 60 * 0.4
    next_light = begin + rng.expovariate(args.light_rate) if args.light_rate > 0 else math.inf
    next_refill = last_refill = begin
    next_sample = begin
    next_row = begin + args.interval
    last_row = begin
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_light:
            producer.submit("light", rng.randrange(args.light_keys))
            next_light += rng.expovariate(args.light_rate)
        elif now >= next_refill:
            producer.refill(storage, now - last_refill)
            last_refill = now
            next_refill += REFILL_EVERY
        elif now >= next_sample:
            samples.append((now - begin, *sample(store)))
            next_sample += args.sample
            if not censuses and now >= first_look:
                censuses["at 40%"] = census(store, cluster.prefix)
        elif now >= next_row:
            report(now, last_row, samples[-1])
            last_row = now
            next_row += args.interval
        else:
            time.sleep(max(0.0, min(next_light, next_refill, next_sample, next_row, end) - now))
    now = time.monotonic()
    samples.append((now - begin, *sample(store)))
    if now - last_row >= args.interval / 2:  # the last, partial interval
        report(now, last_row, samples[-1])
    censuses["end of load"] = census(store, cluster.prefix)
    say(f"load stopped after {time.monotonic() - begin:.0f} s; draining (up to {args.drain} s)")
    drained = drain(reader, ledger, storage, keys, cluster.queue, args.drain)
    censuses["after drain"] = census(store, cluster.prefix)
    done = completed(cluster.client, len(ledger.started), wait=5.0)
    summary = summarize(args, ledger, rows, samples, censuses, done, drained, args.workers)
    summary["producer_cpu_s"] = round(time.process_time() - cpu, 1)
    return summary


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the load")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between lines")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--workers", type=int, default=1, help="celery workers (-c 2 each)")
    parser.add_argument("--policy", default="weighted_lru", help="fairsched policy")
    parser.add_argument("--bulk-keys", type=int, default=3)
    parser.add_argument("--bulk-backlog", type=int, default=20, help="queued tasks per bulk key")
    parser.add_argument(
        "--bulk-rate", type=float, help="cap on bulk submissions (tasks/s); default: none"
    )
    parser.add_argument("--light-keys", type=int, default=50)
    parser.add_argument("--light-rate", type=float, default=20.0, help="light tasks/s, in all")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the rest")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.sample <= 0:
        parser.error("--minutes, --interval and --sample must be > 0")
    if args.light_keys < 1 or args.bulk_keys < 0 or args.workers < 1:
        parser.error("need --light-keys >= 1, --bulk-keys >= 0 and --workers >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        with ExitStack() as stack:
            summary = run(args, stack)
    except KeyboardInterrupt:
        print("interrupted; workers and servers stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
