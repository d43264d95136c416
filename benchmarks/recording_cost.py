"""What recording costs Redis: server time, commands and memory per task, recording on vs off.

One task's life is `submit` (enqueue + dispatch when the window has room) and `finish`
(complete + dispatch of the next), as in `storage_lifecycle.py`; `finish` carries what a
worker reports (outcome, start time, worker name). Two storages on one private redis-server,
one with `record_size=0` and one with `record_size=100_000`, run in alternating rounds so
machine noise hits both; the figures are medians over rounds:

    .venv/bin/python benchmarks/recording_cost.py [--tasks 20000] [--rounds 5]

Memory per recorded task is the stream's MEMORY USAGE over its length (XLEN). On this shared
machine the on/off ratio of two totals moves by +-15% from round to round; Redis also times
each command run inside a script, so the XADD's own time per task is printed too, a steadier
lower bound of what recording adds (the rest is packing the values and one HGET).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage_lifecycle import lifecycle  # noqa: E402  (this folder is sys.path[0])

#: The goal of issue 12: recording adds at most this much Redis time per task.
GOAL = 1.10


def one_round(url: str, tasks: int, record_size: int) -> dict[str, float]:
    import redis

    from fairsched import RedisStorage
    from fairsched.storage import Outcome

    client = redis.Redis.from_url(url)
    storage = RedisStorage(
        client, prefix=f"rec:{uuid.uuid4().hex[:8]}:", policy="drr", record_size=record_size
    )
    how = Outcome("done", time.time(), "celery@worker-host-01:12345")

    def finish(task_id: str, runtime: float, now: float, window: int) -> Any:
        return storage.finish(task_id, "celery", runtime, now, window=window, outcome=how)

    figures = lifecycle(storage, client, finish, tasks, keys=20, window=4)
    stream = f"{storage.prefix}{{celery}}:trace"
    length = client.xlen(stream)
    figures["bytes_per_record"] = (client.memory_usage(stream) or 0) / length if length else 0.0
    for name in client.scan_iter(match=f"{storage.prefix}*", count=1000):
        client.delete(name)
    client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from tests import servers

    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with servers.private_redis() as url:
        for _ in range(args.rounds):
            runs["off"].append(one_round(url, args.tasks, 0))
            runs["on"].append(one_round(url, args.tasks, 100_000))
    med = {
        m: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for m, rows in runs.items()
    }
    print(f"{args.tasks} tasks per round, {args.rounds} rounds, drr, window 4, medians:")
    print(
        f"{'recording':>10}  {'commands/task':>14}  {'server us/task':>15}  {'XADD us/task':>13}"
        f"  {'bytes/record':>13}"
    )
    for mode, m in med.items():
        print(
            f"{mode:>10}  {m['commands_per_task']:>14.1f}  {m['server_us_per_task']:>15.1f}"
            f"  {m['xadd_us_per_task']:>13.1f}  {m['bytes_per_record']:>13.0f}"
        )
    ratio = med["on"]["server_us_per_task"] / med["off"]["server_us_per_task"]
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"server time on/off: {ratio:.3f} (goal <= {GOAL:.2f}: {verdict})")
    per_round = [
        on["server_us_per_task"] / off["server_us_per_task"]
        for on, off in zip(runs["on"], runs["off"], strict=True)
    ]
    print("per round: " + ", ".join(f"{r:.3f}" for r in per_round))
    share = med["on"]["xadd_us_per_task"] / med["off"]["server_us_per_task"]
    print(f"the XADD alone: {share:.1%} of the server time per task without recording")


if __name__ == "__main__":
    main()
