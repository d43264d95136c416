"""Record a real run, replay it in the simulator, compare: the harness of the fidelity test
(tests/e2e/test_fidelity.py) and benchmark (benchmarks/fidelity.py).

A run is one `Cluster` (a prefork worker of 2 processes, Redis broker holding the storage,
late-binding dispatch, recording on) fed a seeded workload: three bulk keys each flooding
tasks of about 20 ms, and light keys sending 5 ms tasks as Poisson arrivals. The run's own
recording is the ground truth (each task's real start minus its submission) and the input of
the replay, so the simulator sees exactly the arrivals and run times the real run had.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from attrs import frozen

from fairsched.recording import export
from simulator import Calibration, RecordedTask, calibrate, load_recording, simulate

from .cluster import Cluster

#: Keys by class: what `mape` is reported over, besides all keys.
BULK = ("bulk0", "bulk1", "bulk2")


@frozen
class Workload:
    """What a run submits: (offset s, key, run time s) rows, sorted by offset."""

    rows: tuple[tuple[float, str, float], ...]

    @classmethod
    def make(
        cls,
        seed: int = 7,
        scale: float = 1.0,
        light_keys: int = 10,
        light_rate: float = 4.0,
        duration: float = 10.0,
    ) -> Workload:
        """Bulk keys flood at 0, 0.5 and 1 s: bulk0 300 tasks of about 10 ms, bulk1 200 of
        about 20 ms, bulk2 120 of about 40 ms (run times +-25%), times `scale`; each light
        key sends 5 ms tasks at `light_rate` per second (Poisson) for `duration` seconds.
        Run times differ between bulk keys so that policies differ: LRU shares dispatches,
        DRR shares run time."""
        rng = random.Random(seed)
        rows = []
        for i, (key, count, mean) in enumerate(
            zip(BULK, (300, 200, 120), (0.01, 0.02, 0.04), strict=True)
        ):
            rows += [
                (0.5 * i, key, mean * rng.uniform(0.75, 1.25)) for _ in range(round(count * scale))
            ]
        for k in range(light_keys):
            at = rng.expovariate(light_rate)
            while at < duration:
                rows.append((at, f"light{k}", 0.005))
                at += rng.expovariate(light_rate)
        return cls(tuple(sorted(rows)))


def record_run(redis_url: str, policy: Any, workload: Workload, out: Path) -> Path:
    """Run `workload` on a real cluster under `policy`; export its recording to `out`."""
    cluster = Cluster(
        redis_url, redis_url, {"dispatch": "late", "policy": policy, "record_size": 100_000}
    )
    try:
        cluster.start("w1", pool="prefork", concurrency=2)
        sleep = cluster.module.sleep
        begin = time.monotonic()
        for offset, key, seconds in workload.rows:
            pause = begin + offset - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sleep.lru_delay(key, seconds)
        storage = _storage(cluster)
        stream = f"{cluster.prefix}{{{cluster.queue}}}:trace"
        deadline = time.monotonic() + 120
        while cluster.client.xlen(stream) < len(workload.rows):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{cluster.client.xlen(stream)} of {len(workload.rows)} tasks recorded"
                )
            time.sleep(0.2)
        export(storage, out, cluster.queue)
    finally:
        cluster.close()
    return out


def _storage(cluster: Cluster) -> Any:
    from fairsched.celery import dispatcher_for

    return dispatcher_for(cluster.app).storage


def real_waits(recording: list[RecordedTask]) -> dict[str, float]:
    """Mean wait (real start minus submission) per key of a recorded run."""
    waits: dict[str, list[float]] = defaultdict(list)
    for task in recording:
        if task.started is not None:
            waits[task.key].append(task.started - task.arrival)
    return {key: statistics.fmean(w) for key, w in waits.items()}


def simulated_waits(
    path: Path, policy: Any, calibration: Calibration | None, workers: int = 2
) -> dict[str, float]:
    """Mean wait per key when the recording at `path` is replayed under `policy`, with the
    calibrated model (or the plain one: no overhead, no latency, late dispatch)."""
    options: dict[str, Any] = (
        calibration.options() if calibration is not None else {"workers": workers}
    )
    result = simulate(path, policy, **options)
    return {k.key: k.wait_mean for k in result.per_key}


def mape(predicted: dict[str, float], actual: dict[str, float], keys: Any = None) -> float:
    """Mean absolute percentage error of `predicted` against `actual`, over `keys` (all)."""
    chosen = [k for k in (keys or actual) if k in actual and actual[k] > 0]
    return statistics.fmean(abs(predicted[k] - actual[k]) / actual[k] for k in chosen)


def light(waits: dict[str, float]) -> list[str]:
    return [k for k in waits if k not in BULK]


def overall_wait(path: Path) -> float:
    """Task-weighted mean wait of a recorded run (real start minus submission)."""
    recording = load_recording(path)
    return statistics.fmean(t.started - t.arrival for t in recording if t.started is not None)


def replay(path: Path, policy: Any, workers: int = 2) -> dict[str, Any]:
    """The recording at `path` against its replay, plain and calibrated: MAPE over all keys,
    bulk and light keys, and the calibration used."""
    recording = load_recording(path)
    actual = real_waits(recording)
    found = calibrate(recording)
    plain = simulated_waits(path, policy, None, workers)
    fitted = simulated_waits(path, policy, found)
    return {
        "calibration": found,
        "actual": actual,
        "plain": plain,
        "calibrated": fitted,
        "mape_plain": mape(plain, actual),
        "mape_calibrated": mape(fitted, actual),
        "mape_bulk": mape(fitted, actual, BULK),
        "mape_light": mape(fitted, actual, light(actual)),
        "mape_bulk_plain": mape(plain, actual, BULK),
        "mape_light_plain": mape(plain, actual, light(actual)),
    }


def scratch() -> Path:
    """A folder for recordings that outlives nothing but this process's run."""
    return Path(tempfile.mkdtemp(prefix="fairsched-fidelity-"))


def main() -> None:
    """`python -m tests.e2e.fidelity OUT.csv [--policy P] [--seed N]`: record one real run
    (a private redis-server, real workers) and export it to OUT.csv."""
    import argparse

    from tests import servers

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--policy", default="lru")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with servers.private_redis() as url:
        record_run(url, args.policy, Workload.make(seed=args.seed), args.out)
    print(f"{len(load_recording(args.out))} tasks recorded to {args.out}")


if __name__ == "__main__":
    main()
