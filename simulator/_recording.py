"""Recorded runs: what a deployment did, task by task, and the model parameters it implies.

A recording is a trace with more columns (`fairsched record export` writes one): besides
`key,arrival,service[,deadline,cost]` each row says which task it was (`id`, `queue`), when it
was dispatched, started and finished, the key's weight then, how it ended (`outcome`) and which
worker process ran it (`worker`). The trace reader replays such a file as it is, skipping
those columns; `load_recording` reads them all, and `calibrate` measures from them what the
simulator's model needs beyond the trace: the per-task overhead of a busy worker process and
the submit-to-start latency of an idle one.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import statistics
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

from attrs import asdict, frozen

from ._trace_read import (
    COLUMNS,
    RECORDING,
    TraceError,
    _is_jsonl,
    _lines,
    _open,
    _RowChecker,
)

#: The columns of a recording export, in file order.
RECORDING_COLUMNS = COLUMNS + RECORDING


@frozen
class RecordedTask:
    """One task of a recorded run. Times are wall-clock seconds; `service` is the run time the
    worker measured (for a task that never ran, an estimate: see `fairsched record export`)."""

    key: str
    arrival: float
    service: float
    deadline: float | None = None
    cost: float | None = None
    id: str = ""
    queue: str = ""
    dispatched: float | None = None
    started: float | None = None
    finished: float | None = None
    weight: float = 1.0
    outcome: str = "done"
    worker: str = ""

    @property
    def ran(self) -> bool:
        """Whether the task ran on a worker (done, failed or retried), as opposed to being
        withdrawn before it started (expired, revoked)."""
        return self.outcome not in ("expired", "revoked")


def write_recording(path: str | Path, tasks: Iterable[RecordedTask]) -> int:
    """Write `tasks` to `path` as a recording (CSV, or JSON Lines for `.jsonl`; gzip for
    `.gz`), in the order given; returns how many. Keys and worker names are CSV-quoted when
    they need it, so any string survives the round trip."""
    target = Path(path)
    opener: Any = gzip.open if target.suffix == ".gz" else open
    count = 0
    with opener(target, "wt", encoding="utf-8", newline="") as out:
        if _is_jsonl(target):
            for task in tasks:
                # Every field, null included: the trace reader learns from the first row
                # which columns the file has (a deadline in a later row must not be missed).
                out.write(json.dumps(asdict(task)) + "\n")
                count += 1
            return count
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(RECORDING_COLUMNS)
        for task in tasks:
            writer.writerow([_cell(getattr(task, c)) for c in RECORDING_COLUMNS])
            count += 1
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def load_recording(path: str | Path) -> list[RecordedTask]:
    """Read a recording export (CSV or JSON Lines, gzipped or not) into memory.

    The trace columns are checked as the trace reader checks them (arrivals sorted, service >
    0); the recording's own columns must be numbers where they are times or weights.

    Raises:
        TraceError: the file is missing, malformed, or lacks the recording's `started` and
            `worker` columns; the message names the file and line.
    """
    name = str(path)
    target = Path(path)
    if not target.is_file():
        raise TraceError("no such file", name)
    with _open(target) as stream:
        lines = chain.from_iterable(_lines(stream.read1, name))
        if _is_jsonl(target):
            rows: Iterator[tuple[int, dict[str, Any]]] = _json_objects(lines, name)
        else:
            rows = _csv_dicts(lines, name)
        return list(_tasks(rows, name))


def _csv_dicts(lines: Iterable[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(lines, strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        for column in ("started", "worker"):
            if column not in header:
                raise TraceError("not a recording: no such column", name, 1, column)
        for row in reader:
            if row:
                yield reader.line_num, dict(zip(header, row, strict=False))
    except csv.Error as exc:
        raise TraceError(f"bad CSV: {exc}", name, reader.line_num) from None


def _json_objects(lines: Iterable[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise TraceError("not valid JSON", name, line) from None
        if not isinstance(obj, dict):
            raise TraceError(f"expected a JSON object, got {type(obj).__name__}", name, line)
        yield line, obj


def _tasks(rows: Iterator[tuple[int, dict[str, Any]]], name: str) -> Iterator[RecordedTask]:
    check = _RowChecker(name)
    for line, row in rows:
        key, arrival, service, deadline, cost = check.row(
            row.get("key"),
            row.get("arrival"),
            row.get("service"),
            row.get("deadline"),
            row.get("cost"),
            line,
        )

        def time(column: str, line: int = line, row: dict[str, Any] = row) -> float | None:
            raw = row.get(column)
            return None if raw is None or raw == "" else check.number(raw, column, line)

        weight = time("weight")
        yield RecordedTask(
            key,
            arrival,
            service,
            deadline,
            cost,
            str(row.get("id") or ""),
            str(row.get("queue") or ""),
            time("dispatched"),
            time("started"),
            time("finished"),
            1.0 if weight is None else weight,
            str(row.get("outcome") or "done"),
            str(row.get("worker") or ""),
        )


@frozen
class Calibration:
    """What a recorded run says about the model, measured (not fitted); see `calibrate`.

    `overhead` and `latency` are seconds (the simulator's parameters of those names);
    `workers` is the number of worker processes seen; `dispatch` is "late" or "window" as the
    run's dispatch-to-start times suggest. `*_samples` count the tasks each figure rests on.
    """

    overhead: float
    latency: float
    workers: int
    dispatch: str
    overhead_samples: int
    latency_samples: int
    tasks: int

    def options(self) -> dict[str, Any]:
        """The keyword arguments for `simulate`/`compare` that model the recorded run."""
        return {
            "workers": self.workers,
            "dispatch": self.dispatch,
            "overhead": self.overhead,
            "latency": self.latency,
        }


def calibrate(recording: str | Path | Sequence[RecordedTask]) -> Calibration:
    """Measure the model's per-task overhead and submit-to-start latency from a recording.

    - `overhead`: the median, over pairs of tasks run one after the other by one worker
      process while the second was already waiting, of the gap between the first's end
      (start + run time) and the second's start: what a busy process spends per task beyond
      the task itself (ack, result, slot release, the hand-off to the next task).
    - `latency`: the median of start minus arrival over tasks that arrived while some worker
      process was idle (so nothing queued ahead of them): the floor of submit-to-start.
    - `workers`: distinct worker processes (`worker` column, host and pid).
    - `dispatch`: "window" when tasks typically waited in the broker after being dispatched
      (the 75th percentile of start minus dispatch above a quarter of the median run time plus
      5 ms), else "late".

    Medians, because a few tasks delayed by a garbage collection or a busy core would drag a
    mean. Tasks without a start time (withdrawn, or recorded by an older worker) are skipped.

    Raises:
        TraceError: the recording cannot be read, or has no task with a start time.
    """
    tasks = load_recording(recording) if isinstance(recording, (str, Path)) else recording
    ran = [t for t in tasks if t.ran and t.started is not None and t.worker]
    if not ran:
        raise TraceError("no task with a start time and a worker: is this a recording?")
    per_worker: dict[str, list[RecordedTask]] = defaultdict(list)
    for task in ran:
        per_worker[task.worker].append(task)
    gaps: list[float] = []
    for runs in per_worker.values():
        runs.sort(key=lambda t: t.started or 0.0)
        for before, after in pairwise(runs):
            end = (before.started or 0.0) + before.service
            if after.arrival <= end:
                gaps.append(max(0.0, (after.started or 0.0) - end))
    overhead = statistics.median(gaps) if gaps else 0.0
    # A task found a process idle when fewer tasks than there are processes were in the
    # system at its arrival: those that arrived before it, less those that had ended (start
    # + run time + overhead) by then; one binary search each, over the sorted ends.
    ends = sorted((t.started or 0.0) + t.service + overhead for t in ran)
    processes = len(per_worker)
    waits = [
        (t.started or 0.0) - t.arrival
        for before, t in enumerate(sorted(ran, key=lambda t: t.arrival))
        if before - bisect_right(ends, t.arrival) < processes
    ]
    latency = max(0.0, statistics.median(waits)) if waits else 0.0
    in_broker = sorted((t.started or 0.0) - t.dispatched for t in ran if t.dispatched is not None)
    median_service = statistics.median(t.service for t in ran)
    late = True
    if in_broker:
        p75 = in_broker[min(len(in_broker) - 1, math.ceil(0.75 * len(in_broker)) - 1)]
        late = p75 <= 0.25 * median_service + 0.005
    return Calibration(
        overhead=overhead,
        latency=latency,
        workers=len(per_worker),
        dispatch="late" if late else "window",
        overhead_samples=len(gaps),
        latency_samples=len(waits),
        tasks=len(ran),
    )
