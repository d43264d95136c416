"""DRR's defaults on the light-key scenario, before and after they followed the costs.

The scenario (issue 10): 2 workers, window 4 (the runtime default, 2 x concurrency); 3 bulk
keys flooding tasks of about 20 ms; 10 light keys submitting tasks of about 10 ms at 2/s each.
Printed: the light keys' wait (submission to start) mean and p95, in ms, per policy.

    .venv/bin/python benchmarks/drr_defaults.py --sim --against 6f9667c   # simulator, 2 builds
    .venv/bin/python benchmarks/drr_defaults.py --real                    # real workers

`--sim` runs the same trace through `{"policy": "drr"}` of this tree and of a git ref (the
defaults before: quantum 1 s, a new key charged 1 s), each build in its own process, with
`lru` beside them. `--real` runs this tree on real `celery worker -P prefork -c 2` processes
(private Redis, RedisStorage) with drr's defaults, drr with the old quantum of 1, and lru.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BULK, LIGHT, RATE, SECONDS = 3, 10, 2.0, 30.0


def scenario(seed: int = 7) -> list[tuple[str, float, float, None, None]]:
    """Trace rows: the bulk keys' backlogs at t=0, then the light keys' Poisson arrivals."""
    rng = random.Random(seed)
    rows: list[tuple[str, float, float, None, None]] = []
    per_bulk = int(SECONDS * 2 / 0.02 / BULK) + 100  # more than 2 workers can finish
    for _ in range(per_bulk):
        for k in range(BULK):
            rows.append((f"bulk{k}", 0.0, rng.uniform(0.016, 0.024), None, None))
    for k in range(LIGHT):
        at = rng.expovariate(RATE)
        while at < SECONDS:
            rows.append((f"light{k}", at, rng.uniform(0.008, 0.012), None, None))
            at += rng.expovariate(RATE)
    rows.sort(key=lambda r: r[1])
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def summary(waits: list[float]) -> dict[str, float]:
    return {
        "mean_ms": 1000 * statistics.fmean(waits),
        "p95_ms": 1000 * pct(waits, 95),
        "tasks": len(waits),
    }


def child_sim(policies: list[str]) -> None:
    """Simulate with the `simulator` and `policies` first on sys.path; print JSON."""
    import simulator

    rows = scenario()
    out = {}
    for label in policies:
        config = json.loads(label)
        result = simulator.simulate(
            simulator.Trace.from_rows(rows), config, workers=2, window=4, record=True
        )
        waits = [
            r.started - r.arrival
            for r in result.records or ()
            if r.key.startswith("light") and r.started < SECONDS
        ]
        out[label] = summary(waits)
    print(json.dumps(out))


def run_sim(against: str) -> None:
    worktree = Path(tempfile.mkdtemp(prefix="fairsched-ref-")) / "ref"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), against],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    drr, lru, old_q = '{"policy": "drr"}', '{"policy": "lru"}', '{"policy": "drr", "quantum": 1.0}'
    try:
        rows = {}
        for build, path, labels in (
            (against, worktree, [drr, lru]),
            ("this tree", ROOT, [drr, old_q, lru]),
        ):
            done = subprocess.run(
                [sys.executable, __file__, "--child-sim", *labels],
                env={**os.environ, "PYTHONPATH": str(path)},
                cwd=path,
                capture_output=True,
                text=True,
                check=True,
            )
            for label, figures in json.loads(done.stdout.strip().splitlines()[-1]).items():
                rows[f"{build}: {label}"] = figures
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT)
    print("simulator, 2 workers, window 4; light keys' wait (submission to start):")
    table(rows)


def run_real() -> None:
    sys.path.insert(0, str(ROOT))
    from tests import servers
    from tests.e2e.cluster import Cluster

    rows = scenario()
    configs = {
        "drr (defaults)": {"policy": "drr"},
        "drr quantum=1 (the old default)": {"policy": "drr", "quantum": 1.0},
        "lru": {"policy": "lru"},
    }
    out = {}
    with servers.private_redis() as url:
        for label, policy in configs.items():
            cluster = Cluster(url, url, {"policy": policy})
            try:
                cluster.start("w1", pool="prefork", concurrency=2)
                out[label] = real_round(cluster, rows)
            finally:
                cluster.close()
    print("real workers (1 x prefork -c 2, Redis broker and storage, window auto = 4);")
    print("light keys' wait (submission to start):")
    table(out)


def real_round(cluster: Any, rows: list[tuple[str, float, float, None, None]]) -> dict[str, float]:
    work = cluster.module.work
    submitted: dict[str, float] = {}
    began = time.time()
    for i, (key, at, service, _, _) in enumerate(rows):
        delay = began + at - time.time()
        if delay > 0:
            time.sleep(delay)
        token = f"{key}-{i}"
        submitted[token] = time.time()
        work.lru_delay(key, token, service)
    light = [t for t in submitted if t.startswith("light")]
    started = cluster.wait_started(light, timeout=120)
    return summary([started[t] - submitted[t] for t in light])


def table(rows: dict[str, dict[str, float]]) -> None:
    width = max(len(k) for k in rows)
    print(f"{'policy':<{width}}  {'mean ms':>9}  {'p95 ms':>9}  {'tasks':>6}")
    for label, f in rows.items():
        print(f"{label:<{width}}  {f['mean_ms']:>9.1f}  {f['p95_ms']:>9.1f}  {f['tasks']:>6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action="store_true", help="simulate this tree and --against")
    parser.add_argument("--against", default="6f9667c", help="git ref for the 'before' build")
    parser.add_argument("--real", action="store_true", help="real workers, this tree")
    parser.add_argument("--child-sim", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sim:
        here = Path(__file__).resolve().parent  # benchmarks/policies.py would shadow policies
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        child_sim(args.child_sim)
        return
    if args.sim:
        run_sim(args.against)
    if args.real:
        run_real()
    if not (args.sim or args.real):
        parser.error("choose --sim, --real or both")


if __name__ == "__main__":
    main()
