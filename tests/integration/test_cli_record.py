"""`fairsched record export` and `calibrate` against an app whose storage is a real Redis."""

from __future__ import annotations

import json
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner

import fairsched
from fairsched.cli import main
from fairsched.storage import Outcome, Task
from policies import Job
from simulator import Trace, load_recording


def recorded_app(redis_url: str, prefix: str, record_size: int = 1000) -> Celery:
    app = Celery(f"t{uuid.uuid4().hex[:8]}", broker="memory://")
    app.conf.fairsched = {
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "record_size": record_size,
        "dispatch": "window",
    }
    fairsched.configure(app=app)
    return app


def run(app: Celery, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), obj=types.SimpleNamespace(app=app))


def test_export_writes_a_sorted_quoted_recording_the_simulator_replays(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    app = recorded_app(redis_url, redis_prefix)
    storage = fairsched.celery.dispatcher_for(app).storage
    keys = ["tenant,a", "b", "tenant,a", "c"]
    for i, key in enumerate(keys):
        storage.enqueue(Task(Job(f"t{i}", key, 10.0 + i), b"{}", "q1"), now=10.0 + i)
    finished = 20.0
    while (got := storage.dispatch("q1", now=finished).task) is not None:
        # Finished out of arrival order: the export sorts them back.
        storage.complete(got.id, "q1", 0.5, now=finished, outcome=Outcome("done", finished, "w:1"))
        finished -= 1.0
    storage.enqueue(Task(Job("r", "b", 30.0), b"{}", "q2"), now=30.0)
    storage.revoke("r", "q2", now=31.0)

    out = tmp_path / "run.csv"
    result = run(app, "record", "export", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = load_recording(out)
    assert [(r.id, r.key, r.queue) for r in rows] == [
        ("t0", "tenant,a", "q1"),
        ("t1", "b", "q1"),
        ("t2", "tenant,a", "q1"),
        ("t3", "c", "q1"),
    ]  # the revoked task is not exported by default
    assert Trace.load(out).keys == keys

    only = tmp_path / "revoked.jsonl"
    assert (
        run(
            app, "record", "export", "--queue", "q2", "--outcome", "revoked", "-o", str(only)
        ).exit_code
        == 0
    )
    assert [json.loads(line)["id"] for line in only.read_text().splitlines()] == ["r"]

    window = tmp_path / "window.csv"
    assert (
        run(app, "record", "export", "--since", "11", "--until", "13", "-o", str(window)).exit_code
        == 0
    )
    assert [r.id for r in load_recording(window)] == ["t1", "t2"]

    calibrated = run(app, "record", "calibrate", str(out), "--json")
    assert calibrated.exit_code == 0, calibrated.output
    assert json.loads(calibrated.output)["workers"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue", "nope"], "no queue 'nope'"),
        (["--since", "yesterday"], "cannot read 'yesterday'"),
        (["--outcome", "finished"], "Invalid value for '--outcome'"),
    ],
)
def test_export_refuses_bad_options_with_a_message(
    redis_url: str, redis_prefix: str, tmp_path: Path, args: list[str], message: str
) -> None:
    app = recorded_app(redis_url, redis_prefix)
    result = run(app, "record", "export", "-o", str(tmp_path / "x.csv"), *args)
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "x.csv").exists()


def test_export_says_when_the_app_records_nothing(
    redis_url: str, redis_prefix: str, tmp_path: Path
):
    app = recorded_app(redis_url, redis_prefix, record_size=0)
    result = run(app, "record", "export", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and "record_size" in result.output


def test_calibrate_names_a_file_that_is_not_a_recording(tmp_path: Path):
    plain = tmp_path / "plain.csv"
    plain.write_text("key,arrival,service\na,0,1\n")
    result = CliRunner().invoke(main, ["record", "calibrate", str(plain)])
    assert result.exit_code == 1 and "not a recording" in result.output
