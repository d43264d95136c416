"""Simulator benchmark: speed against SimPy and a hand-written floor, memory, queueing errors.

Run from the repository root:

    .venv/bin/python benchmarks/simulator.py                 # the full run (several minutes)
    .venv/bin/python benchmarks/simulator.py --tasks 100000 --oracle-tasks 200000 --no-memory

Speed, in CPU time of the process (the machine is shared): one in-memory trace (Poisson
arrivals at utilisation 0.9, exponential service of mean 1 s, `--keys` Zipf(1) keys,
`--workers` workers, window = workers) is replayed per policy by
1. `simulator.simulate` (public API, real policy objects, all metrics),
2. a SimPy model of the same system (processes per task, the policy through `FairQueue`),
3. a hand-written heapq loop with the policy inlined, measuring only the mean wait (the floor).
All three must agree on the mean wait; the script checks that before printing rates.
Memory: peak RSS of a child process that streams a 1M-row and a 10M-row trace file (written by
streaming to a temporary folder, deleted afterwards). Oracle: mean wait in queue against M/M/1,
M/M/c (Erlang C, c = 4) and M/D/1 at utilisation 0.5, 0.7, 0.9.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies import FairQueue, Job, from_config
from simulator import Trace, poisson, simulate, write_trace

POLICIES = ("lru", "weighted_lru", "drr", "expiry_aware")

#: The configuration each policy runs with, here: the floor's hand-written DRR charges a fixed
#: quantum of 1, so the simulator and SimPy run DRR with that quantum too (DRR's default, the
#: automatic quantum, is measured in benchmarks/drr_defaults.py).
SPECS: dict[str, Any] = {name: name for name in POLICIES} | {
    "drr": {"policy": "drr", "quantum": 1.0}
}
NEVER = -(2**52)


# -- the floor: heapq loops with each policy inlined --------------------------------------------


def floor_lru(trace: Trace, workers: int) -> float:
    """Pure LRU, inlined: returns the mean wait. Also the floor for expiry_aware without
    deadlines, which then defers every pick to its inner LRU."""
    keys, arrivals, services = trace.keys, trace.arrivals, trace.services
    n = len(arrivals)
    finish: list[float] = []
    idle = workers
    queues: dict[str, deque[int]] = {}
    served: dict[str, int] = {}
    first: dict[str, int] = {}
    ranks: list[tuple[int, str]] = []
    counter = 0
    wait = 0.0
    i = 0
    next_at = arrivals[0]
    while True:
        if finish and finish[0] <= next_at:
            now = heappop(finish)
            idle += 1
        elif i < n:
            now = next_at
            key = keys[i]
            q = queues.get(key)
            if q is None:
                if key not in first:
                    first[key] = len(first)
                queues[key] = deque((i,))
                rank = served.get(key)
                heappush(ranks, (NEVER + first[key] if rank is None else rank, key))
            else:
                q.append(i)
            i += 1
            next_at = arrivals[i] if i < n else math.inf
        else:
            break
        if idle and queues:
            while True:
                rank, key = ranks[0]
                if key in queues and rank == served.get(key, NEVER + first[key]):
                    break
                heappop(ranks)
            q = queues[key]
            j = q.popleft()
            counter += 1
            served[key] = counter
            if q:
                heappush(ranks, (counter, key))
            else:
                del queues[key]
            idle -= 1
            wait += now - arrivals[j]
            heappush(finish, now + services[j])
    return wait / n


def floor_weighted_lru(trace: Trace, workers: int) -> float:
    """Start-time fair queuing with unit cost, inlined (all weights 1)."""
    keys, arrivals, services = trace.keys, trace.arrivals, trace.services
    n = len(arrivals)
    finish: list[float] = []
    idle = workers
    queues: dict[str, deque[int]] = {}
    tags: dict[str, float] = {}
    first: dict[str, int] = {}
    heap: list[tuple[float, int, str]] = []
    vtime = 0.0
    wait = 0.0
    i = 0
    next_at = arrivals[0]
    while True:
        if finish and finish[0] <= next_at:
            now = heappop(finish)
            idle += 1
        elif i < n:
            now = next_at
            key = keys[i]
            q = queues.get(key)
            if q is None:
                if key not in first:
                    first[key] = len(first)
                queues[key] = deque((i,))
                tag = tags.get(key, vtime)
                if tag < vtime:
                    tag = vtime
                tags[key] = tag
                heappush(heap, (tag, first[key], key))
            else:
                q.append(i)
            i += 1
            next_at = arrivals[i] if i < n else math.inf
        else:
            break
        if idle and queues:
            while True:
                tag, _, key = heap[0]
                if key in queues and tags[key] == tag:
                    break
                heappop(heap)
            heappop(heap)
            # Virtual time: the smallest start tag among keys backlogged before this dispatch.
            if tag > vtime:
                vtime = tag
            q = queues[key]
            j = q.popleft()
            tag += 1.0
            tags[key] = tag
            if q:
                heappush(heap, (tag, first[key], key))
            else:
                del queues[key]
            idle -= 1
            wait += now - arrivals[j]
            heappush(finish, now + services[j])
    return wait / n


def floor_drr(trace: Trace, workers: int, quantum: float = 1.0, alpha: float = 0.2) -> float:
    """Deficit round-robin with run-time estimates and round skipping, inlined."""
    keys, arrivals, services = trace.keys, trace.arrivals, trace.services
    n = len(arrivals)
    finish: list[tuple[float, int]] = []
    idle = workers
    queues: dict[str, deque[int]] = {}
    estimate: dict[str, float] = {}
    deficit: dict[str, float] = {}
    base: dict[str, int] = {}
    slots: dict[str, tuple[int, int]] = {}
    heap: list[tuple[int, int, str]] = []
    rnd = 0
    positions = 0
    wait = 0.0
    i = 0
    next_at = arrivals[0]
    ceil = math.ceil
    while True:
        if finish and finish[0][0] <= next_at:
            now, j = heappop(finish)
            idle += 1
            key = keys[j]
            old = estimate.get(key)
            runtime = services[j]
            estimate[key] = runtime if old is None else alpha * runtime + (1 - alpha) * old
        elif i < n:
            now = next_at
            key = keys[i]
            q = queues.get(key)
            if q is None:
                queues[key] = deque((i,))
                positions += 1
                base[key] = rnd - 1
                deficit[key] = 0.0
                cost = estimate.get(key, 1.0)
                visit = rnd - 1 + max(1, ceil(cost / quantum))
                slots[key] = (visit, positions)
                heappush(heap, (visit, positions, key))
            else:
                q.append(i)
            i += 1
            next_at = arrivals[i] if i < n else math.inf
        else:
            break
        if idle and queues:
            while True:
                visit, pos, key = heap[0]
                if slots.get(key) == (visit, pos):
                    break
                heappop(heap)
            rnd = visit
            q = queues[key]
            j = q.popleft()
            credit = deficit[key] + (visit - base[key]) * quantum
            base[key] = visit
            left = credit - estimate.get(key, 1.0)
            if q:
                deficit[key] = left
                cost = estimate.get(key, 1.0)
                if left < cost:
                    visit += max(1, ceil((cost - left) / quantum))
                slots[key] = (visit, pos)
                heappush(heap, (visit, pos, key))
            else:
                del queues[key], slots[key], base[key], deficit[key]
            idle -= 1
            wait += now - arrivals[j]
            heappush(finish, (now + services[j], j))
    return wait / n


FLOORS: dict[str, Callable[[Trace, int], float]] = {
    "lru": floor_lru,
    "weighted_lru": floor_weighted_lru,
    "drr": floor_drr,
    "expiry_aware": floor_lru,
}


# -- SimPy: the same system as processes ---------------------------------------------------------


def simpy_model(trace: Trace, policy_name: Any, workers: int) -> float:
    """Arrivals as one process, each task as a process, the policy through FairQueue."""
    import simpy

    env = simpy.Environment()
    queue = FairQueue(from_config(policy_name))
    in_flight = [0]
    waits = [0.0]
    services: dict[str, float] = {}

    def serve(job: Job) -> Any:
        waits[0] += env.now - job.enqueued_at
        service = services.pop(job.id)
        yield env.timeout(service)
        queue.complete(job, service)
        in_flight[0] -= 1
        dispatch()

    def dispatch() -> None:
        if in_flight[0] < workers:
            job = queue.dispatch(env.now).job
            if job is not None:
                in_flight[0] += 1
                env.process(serve(job))

    def arrivals() -> Any:
        for i, (key, at, service, _, _) in enumerate(trace):
            if at > env.now:
                yield env.timeout(at - env.now)
            job_id = str(i)
            services[job_id] = service
            queue.enqueue(Job(job_id, key, at), env.now)
            dispatch()

    env.process(arrivals())
    env.run()
    return waits[0] / len(trace)


# -- measurements ---------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this process spent in `fn` (the 2-core machine is shared: wall time
    measures the neighbours as much as the code) and its value."""
    gc.collect()
    start = time.process_time()
    value = fn()
    return time.process_time() - start, value


def speed(tasks: int, keys: int, workers: int, simpy_tasks: int) -> None:
    print(f"\n## Speed: {tasks:,} tasks, {keys:,} Zipf(1) keys, {workers} workers, rho 0.9")
    trace = Trace.from_rows(poisson(tasks, rate=0.9 * workers, keys=keys, zipf=1.0, seed=42))
    small = trace
    if simpy_tasks < tasks:
        small = Trace(
            trace.keys[:simpy_tasks], trace.arrivals[:simpy_tasks], trace.services[:simpy_tasks]
        )
    print(
        "| policy | simulator tasks/s | SimPy tasks/s | floor tasks/s | floor / simulator "
        "| simulator / SimPy | mean wait (sim = floor) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in POLICIES:
        spec = SPECS[name]
        t_sim, result = timed(lambda spec=spec: simulate(trace, spec, workers=workers))
        t_floor, floor_wait = timed(lambda name=name: FLOORS[name](trace, workers))
        t_simpy, simpy_wait = timed(lambda spec=spec: simpy_model(small, spec, workers))
        if not math.isclose(result.wait_mean, floor_wait, rel_tol=1e-9):
            raise SystemExit(
                f"{name}: floor mean wait {floor_wait} != simulator {result.wait_mean}"
            )
        if small is trace and not math.isclose(result.wait_mean, simpy_wait, rel_tol=1e-9):
            raise SystemExit(
                f"{name}: SimPy mean wait {simpy_wait} != simulator {result.wait_mean}"
            )
        r_sim, r_floor, r_simpy = tasks / t_sim, tasks / t_floor, len(small) / t_simpy
        print(
            f"| {name} | {r_sim:,.0f} | {r_simpy:,.0f} | {r_floor:,.0f} | {r_floor / r_sim:.2f}x "
            f"| {r_sim / r_simpy:.2f}x | {result.wait_mean:.4f} s |",
            flush=True,
        )


CHILD = """
import resource, sys, time
from simulator import simulate
start = time.process_time()
result = simulate(sys.argv[1], "drr", workers=8)
elapsed = time.process_time() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.tasks, peak, elapsed)
"""


def memory(sizes: list[int], keys: int) -> None:
    print("\n## Memory: peak RSS of a child streaming a trace file through DRR, 8 workers")
    print("| rows | file size | peak RSS | run time | rows/s (file read included) |")
    print("|---:|---:|---:|---:|---:|")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="fairsched-bench-") as folder:
        for rows in sizes:
            path = Path(folder) / f"trace-{rows}.csv"
            write_trace(path, poisson(rows, rate=7.2, keys=keys, zipf=1.0, seed=7))
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=root,
            )
            tasks, peak_kb, elapsed = done.stdout.split()
            size_mb = path.stat().st_size / 1e6
            path.unlink()
            print(
                f"| {int(tasks):,} | {size_mb:,.0f} MB | {int(peak_kb) / 1024:,.1f} MB "
                f"| {float(elapsed):,.1f} s | {int(tasks) / float(elapsed):,.0f} |",
                flush=True,
            )


def erlang_c(servers: int, offered: float) -> float:
    rho = offered / servers
    tail = offered**servers / math.factorial(servers) / (1 - rho)
    head = sum(offered**k / math.factorial(k) for k in range(servers))
    return tail / (head + tail)


def oracle(tasks: int, seeds: int) -> None:
    """Mean wait in queue against the closed forms, averaged over `seeds` independent runs.

    `tasks` per case are split evenly over the seeds; the standard error is that of the mean
    of the per-seed errors, so an error within about two standard errors is sampling noise.
    """
    per_seed = tasks // seeds
    print(
        f"\n## Queueing oracle: mean wait in queue, {per_seed * seeds:,} tasks per case "
        f"({seeds} seeds x {per_seed:,}), mean service 1 s"
    )
    print("| model | rho | formula | simulated (mean of seeds) | error | standard error |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    noise = []
    for model, servers, kind in (
        ("M/M/1", 1, "exp"),
        ("M/M/c, c=4", 4, "exp"),
        ("M/D/1", 1, "det"),
    ):
        for rho in (0.5, 0.7, 0.9):
            if kind == "det":
                theory = rho / (2 * (1 - rho))
            else:
                lam = rho * servers
                theory = erlang_c(servers, lam) / (servers - lam)
            errors = []
            for seed in range(seeds):
                rows = poisson(
                    per_seed,
                    rate=rho * servers,
                    service=kind,
                    seed=1000 * (seed + 1) + int(rho * 10),
                )
                result = simulate(Trace.from_rows(rows), "lru", workers=servers)
                errors.append((result.wait_mean - theory) / theory)
            error = statistics.fmean(errors)
            stderr = statistics.stdev(errors) / math.sqrt(seeds) if seeds > 1 else math.nan
            worst = max(worst, abs(error))
            noise.append(abs(error) / stderr)
            print(
                f"| {model} | {rho} | {theory:.4f} | {theory * (1 + error):.4f} "
                f"| {error:+.2%} | {stderr:.2%} |",
                flush=True,
            )
    print(
        f"\nlargest error: {worst:.2%} (goal: within 1.5%); "
        f"largest |error| / standard error: {max(noise):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the speed trace")
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--simpy-tasks", type=int, default=None, help="default: --tasks")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--oracle-tasks", type=int, default=2_000_000, help="per case")
    parser.add_argument("--oracle-seeds", type=int, default=8, help="runs the tasks are split over")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M')}")
    if not args.no_speed:
        speed(args.tasks, args.keys, args.workers, args.simpy_tasks or args.tasks)
    if not args.no_memory:
        memory(args.memory_rows, args.keys)
    if not args.no_oracle:
        oracle(args.oracle_tasks, args.oracle_seeds)


if __name__ == "__main__":
    main()
