"""Redis work per task over its whole life in the storage, this tree against a git ref.

One task's life is `submit` (enqueue + dispatch when the window has room) and `finish`
(complete + dispatch of the next). For each build, in alternating rounds on one private
redis-server, this prints the Redis commands per task (INFO commandstats, commands run inside
scripts included) and the server time per task (the EVALSHA usec), so the cost of a change to
the scripts is measured side by side, e.g. the op tokens and freeing-first order of the
reliability work:

    .venv/bin/python benchmarks/storage_lifecycle.py --against 6f9667c [--tasks 20000]

Each build runs in its own process with that build's `fairsched` first on sys.path (the ref
is checked out with `git worktree` into a temporary folder and removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = b'{"task":"proj.tasks.resize","args":["s3://bucket/image-000123.png",800,600],"kw":{}}'


def child(url: str, tasks: int, keys: int, window: int) -> None:
    """Run `tasks` lifecycles on `url` with the `fairsched` found first on sys.path."""
    import inspect

    import redis

    from fairsched import RedisStorage

    client = redis.Redis.from_url(url)
    storage = RedisStorage(client, prefix=f"life:{uuid.uuid4().hex[:8]}:", policy="drr")
    # Builds before the domain argument (issue 10) found a task's domain themselves.
    if "domain" in inspect.signature(storage.finish).parameters:
        finish = partial(_finish_in, storage)
    else:
        finish = storage.finish
    print(json.dumps(lifecycle(storage, client, finish, tasks, keys, window)))
    storage.purge()


def lifecycle(
    storage: Any, client: Any, finish: Any, tasks: int, keys: int, window: int
) -> dict[str, float]:
    """Submit `tasks` tasks over `keys` keys and finish them `window` at a time, as workers
    would; return Redis commands, scripts and server time (us) per task."""
    from fairsched import Job, Task

    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    # Warm up: scripts loaded, domain registered.
    storage.submit(Task(Job("warm", "k0"), PAYLOAD), 0.0, window=window)
    finish("warm", 0.01, 0.0, window=window)
    client.config_resetstat()
    leased: list[str] = []
    for i, task_id in enumerate(ids):
        dispatch = storage.submit(
            Task(Job(task_id, f"k{i % keys}", float(i)), PAYLOAD), float(i), window=window
        )
        if dispatch.task is not None:
            leased.append(dispatch.task.id)
        while len(leased) >= window:  # a worker finishes the oldest, which leases the next
            done = leased.pop(0)
            nxt = finish(done, 0.01, float(i), window=window)
            if nxt.task is not None:
                leased.append(nxt.task.id)
    while leased:
        nxt = finish(leased.pop(0), 0.01, float(tasks), window=window)
        if nxt.task is not None:
            leased.append(nxt.task.id)
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    commands = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_evalsha")
    client.config_resetstat()
    return {
        "commands_per_task": commands / tasks,
        "scripts_per_task": evalsha.get("calls", 0) / tasks,
        "server_us_per_task": evalsha.get("usec", 0) / tasks,
        # Commands run inside scripts are timed too: a steadier measure of one command's cost
        # than the difference of two noisy totals.
        "xadd_us_per_task": stats.get("cmdstat_xadd", {}).get("usec", 0) / tasks,
    }


def _finish_in(storage: Any, task_id: str, *args: Any, **kwargs: Any) -> Any:
    return storage.finish(task_id, "celery", *args, **kwargs)


def run(path: Path, url: str, tasks: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, "--tasks", str(tasks)],
        env=env,
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="git ref to compare with")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        # This folder is sys.path[0] and holds benchmarks/policies.py, which would shadow
        # the `policies` package of the build under test.
        here = Path(__file__).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        child(args.child, args.tasks, keys=20, window=4)
        return
    sys.path.insert(0, str(ROOT))
    from tests import servers

    worktree = Path(tempfile.mkdtemp(prefix="fairsched-ref-")) / "ref"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), args.against],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    results: dict[str, list[dict[str, float]]] = {"this tree": [], args.against: []}
    try:
        with servers.private_redis() as url:
            for _ in range(args.rounds):
                results[args.against].append(run(worktree, url, args.tasks))
                results["this tree"].append(run(ROOT, url, args.tasks))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT)
    print(f"{args.tasks} tasks per round, {args.rounds} rounds, drr, window 4, medians:")
    print(f"{'build':>12}  {'commands/task':>14}  {'scripts/task':>12}  {'server us/task':>15}")
    medians = {}
    for build, rows in results.items():
        medians[build] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = medians[build]
        print(
            f"{build:>12}  {m['commands_per_task']:>14.1f}  {m['scripts_per_task']:>12.2f}"
            f"  {m['server_us_per_task']:>15.1f}"
        )
    new, old = medians["this tree"], medians[args.against]
    print(
        f"ratio this/ref: commands {new['commands_per_task'] / old['commands_per_task']:.2f}, "
        f"server time {new['server_us_per_task'] / old['server_us_per_task']:.2f}"
    )


if __name__ == "__main__":
    main()
