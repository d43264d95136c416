"""The example policy, tested as its author would: with fairsched.testing's laws and twin check,
by name in configuration and in `fairsched simulate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fairsched_shortest_first import ShortestFirst

from fairsched.cli import main
from fairsched.storage import MemoryStorage, Task
from fairsched.testing import UNIVERSAL_LAWS, bounded_wait, check_policy, check_twin
from policies import Job, PolicyError, from_config

#: The kit's run times lie in [0, 10] s, so with age 1 a waiting key is served within
#: 10 / 1 + (keys: at most 6) dispatches, plus one for the key served as it activates.
BOUND = 17


def test_it_is_found_by_name_with_its_options() -> None:
    policy = from_config({"policy": "shortest_first", "age": 0.5})
    assert policy == ShortestFirst(age=0.5)
    for bad in ({"age": 0}, {"age": float("inf")}, {"alpha": 2.0}):
        with pytest.raises(PolicyError):
            from_config({"policy": "shortest_first", **bad})


def test_it_keeps_the_universal_laws() -> None:
    check_policy(ShortestFirst(), laws=UNIVERSAL_LAWS)


def test_aging_bounds_the_wait() -> None:
    check_policy(ShortestFirst(age=1.0), laws=[bounded_wait(BOUND)])


def test_without_enough_aging_a_long_task_key_starves() -> None:
    # Shortest first alone is the textbook starvation: the law catches it.
    with pytest.raises(AssertionError, match=r"breaks bounded_wait\(17\)"):
        check_policy(ShortestFirst(age=1e-9), laws=[bounded_wait(BOUND)])


def test_its_lua_twin_decides_as_the_python(fairsched_redis: Any) -> None:
    check_twin(ShortestFirst(age=0.5), redis=fairsched_redis)


def test_short_tasks_go_first_in_memory_storage() -> None:
    storage = MemoryStorage(policy="shortest_first")
    storage.enqueue(Task(Job("long", "batch"), b"{}"), now=0.0)
    storage.complete(storage.dispatch(now=0.0).task.id, "celery", 2.0, now=2.0)
    storage.enqueue(Task(Job("quick", "ui"), b"{}"), now=2.0)
    storage.complete(storage.dispatch(now=2.0).task.id, "celery", 0.01, now=2.0)
    for i in range(3):
        storage.enqueue(Task(Job(f"b{i}", "batch"), b"{}"), now=3.0)
    storage.enqueue(Task(Job("q1", "ui"), b"{}"), now=3.0)
    assert storage.dispatch(now=3.0).task.id == "q1"


def test_fairsched_simulate_runs_it_by_name(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = ["key,arrival,service"]
    rows += [f"batch,{i * 0.01},0.5" for i in range(40)]
    rows += [f"ui,{0.2 + i * 0.5},0.01" for i in range(10)]
    trace.write_text("\n".join([rows[0], *sorted(rows[1:], key=lambda r: float(r.split(",")[1]))]))
    args = ["simulate", str(trace), "--policy", "shortest_first:age=0.01", "--policy", "fifo"]
    result = CliRunner().invoke(main, [*args, "--per-key", "--format", "json"])
    assert result.exit_code == 0, result.output
    runs = {run["label"]: run for run in json.loads(result.output)}
    ui = {label: next(k for k in run["per_key"] if k["key"] == "ui") for label, run in runs.items()}
    assert ui["shortest_first:age=0.01"]["wait_mean"] < ui["fifo"]["wait_mean"] / 10
