"""Recording exports and calibration: rows, imputed run times, round trips, measured model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairsched.recording import FALLBACK_SERVICE, exported, parse_time
from fairsched.storage import TaskRecord
from simulator import (
    RecordedTask,
    Trace,
    TraceError,
    calibrate,
    load_recording,
    simulate,
    write_recording,
)


def rec(
    tid: str,
    key: str,
    arrival: float,
    service: float | None,
    outcome: str = "done",
    domain: str = "celery",
    **extra: object,
) -> TaskRecord:
    fields: dict[str, object] = {
        "dispatched": None,
        "started": None,
        "cost": None,
        "deadline": None,
        "weight": 1.0,
        "worker": "",
        "finished": arrival + 1.0,
    }
    fields.update(extra)
    return TaskRecord(
        id=tid, key=key, domain=domain, arrival=arrival, service=service, outcome=outcome, **fields
    )  # type: ignore[arg-type]


def test_export_sorts_by_arrival_and_lends_run_times_to_tasks_that_never_ran():
    rows = exported(
        [
            rec("c", "a", 3.0, 0.5),
            rec("x", "a", 1.0, None, "expired", deadline=1.5),
            rec("a", "a", 2.0, 0.25),
            rec("y", "b", 2.0, None, "expired"),
            rec("z", "c", 2.5, None, "expired", domain="other"),
            rec("r", "a", 0.5, None, "revoked"),
        ]
    )
    assert [r.id for r in rows] == ["x", "a", "y", "z", "c"]  # revoked left out by default
    service = {r.id: r.service for r in rows}
    assert service["x"] == pytest.approx((0.25 + 0.5) / 2)  # its key's median
    assert service["y"] == service["x"]  # no measured run of its key: its domain's median
    assert service["z"] == FALLBACK_SERVICE  # nothing measured in its domain at all
    assert [r.outcome for r in exported([rec("r", "a", 0.5, None, "revoked")], ["revoked"])] == [
        "revoked"
    ]


def test_export_refuses_an_unknown_outcome():
    with pytest.raises(ValueError, match="unknown outcome 'finished'"):
        exported([], ["finished"])


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl", "r.csv.gz", "r.jsonl.gz"])
def test_a_recording_round_trips_and_replays_as_a_trace(tmp_path: Path, name: str):
    rows = [
        RecordedTask(
            'tenant, "quoted"',
            0.0,
            0.5,
            None,
            2.0,
            "id1",
            "q",
            0.0,
            0.1,
            0.6,
            2.0,
            "done",
            "celery@h:1",
        ),
        RecordedTask("b", 0.25, 0.25, 0.3, None, "id2", "q", None, None, 0.3, 1.0, "expired", ""),
    ]
    path = tmp_path / name
    assert write_recording(path, rows) == 2
    assert load_recording(path) == rows
    trace = Trace.load(path)  # the extra columns are skipped by the trace reader
    assert trace.keys == ['tenant, "quoted"', "b"] and list(trace.services) == [0.5, 0.25]
    assert simulate(path, "lru").completed == 1  # the expired one expires again


def test_the_trace_reader_still_refuses_a_misspelt_column(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("key,arrival,service,dedline\na,0,1,2\n")
    with pytest.raises(TraceError, match="dedline"):
        Trace.load(path)


def test_a_plain_trace_is_not_a_recording(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("key,arrival,service\na,0,1\n")
    with pytest.raises(TraceError, match="not a recording"):
        load_recording(path)


def synthetic_run(overhead: float, latency: float, late: bool) -> list[RecordedTask]:
    """One worker process: a flood of 20 tasks at t=0, then 5 lone tasks on an idle system."""
    rows = []
    start = latency
    for i in range(20):
        dispatched = start if late else 0.0
        rows.append(
            RecordedTask(
                "bulk", 0.0, 0.01, id=f"f{i}", dispatched=dispatched, started=start, worker="w:1"
            )
        )
        start += 0.01 + overhead
    for i in range(5):
        at = 10.0 + i
        rows.append(
            RecordedTask(
                "light",
                at,
                0.01,
                id=f"l{i}",
                dispatched=at + latency,
                started=at + latency,
                worker="w:1",
            )
        )
    return rows


@pytest.mark.parametrize("late", [True, False])
def test_calibrate_measures_the_overhead_and_latency_a_run_was_made_with(late: bool):
    found = calibrate(synthetic_run(overhead=0.0025, latency=0.004, late=late))
    assert found.overhead == pytest.approx(0.0025)
    assert found.latency == pytest.approx(0.004)
    assert (found.workers, found.tasks, found.overhead_samples) == (1, 25, 19)
    assert found.latency_samples == 6  # the flood's first task and the five lone ones
    assert found.dispatch == ("late" if late else "window")
    assert found.options() == {
        "workers": 1,
        "dispatch": found.dispatch,
        "overhead": found.overhead,
        "latency": found.latency,
    }


def test_calibrate_needs_start_times():
    with pytest.raises(TraceError, match="no task with a start time"):
        calibrate([RecordedTask("a", 0.0, 1.0)])


def test_parse_time_reads_epoch_iso_and_spans_ago():
    assert parse_time("1796083200") == 1796083200.0
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("90s", now=100.0) == 10.0
    assert parse_time("2026-12-01T00:00:00+00:00") == 1796083200.0
    for bad in ("yesterday", "nan", "-3h"):
        with pytest.raises(ValueError, match="cannot read"):
            parse_time(bad)
    assert math.isfinite(parse_time("7d"))


def test_a_trace_error_keeps_its_file_and_line_across_processes():
    import pickle

    error = pickle.loads(pickle.dumps(TraceError("bad", "f.csv", 3, "key")))
    assert (str(error), error.path, error.line, error.column) == (
        "f.csv, line 3, field 'key': bad",
        "f.csv",
        3,
        "key",
    )
