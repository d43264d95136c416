"""Traces: `key,arrival,service[,deadline,cost]` rows, streamed from CSV or JSON Lines.

A row is the plain tuple `(key, arrival, service, deadline, cost)`; `deadline` (absolute
seconds) and `cost` (the declared cost DRR charges) are None when absent. Files are read in
blocks of `MAX_LINE_BYTES`, so memory stays flat whatever the trace length and whatever the
file holds; `Trace` holds a trace in memory as columns when it is small enough and will be
replayed many times.

Reading is bounded (`_trace_read`): every malformed input raises one `TraceError` naming the
file and line.
"""

from __future__ import annotations

import csv
import gzip
import json
from array import array
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from attrs import define, field, frozen

from ._trace_read import (
    COLUMNS,
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    OPTIONAL,
    REQUIRED,
    Row,
    TraceError,
    _csv_rows,
    _is_jsonl,
    _jsonl_rows,
    _lines,
    _open,
    _RowChecker,
)

__all__ = [
    "COLUMNS",
    "MAX_KEY_BYTES",
    "MAX_LINE_BYTES",
    "OPTIONAL",
    "REQUIRED",
    "Row",
    "Trace",
    "TraceError",
    "TraceFile",
    "write_trace",
]


@frozen
class TraceFile:
    """A trace on disk, read afresh (streamed) on every iteration.

    `.csv` (with a header row) or `.jsonl`/`.ndjson`; either may be gzipped (`.gz`). Memory
    stays bounded whatever the file holds (see `MAX_LINE_BYTES`).

    Raises (while iterating):
        TraceError: the file is malformed; the message names the file, line and field.
    """

    path: Path = field(converter=Path)

    def __iter__(self) -> Iterator[Row]:
        if not self.path.is_file():
            raise TraceError("no such file", str(self.path))
        with _open(self.path) as stream:
            rows = _jsonl_rows if _is_jsonl(self.path) else _csv_rows
            yield from rows(stream.read1, str(self.path))

    def columns(self) -> tuple[str, ...]:
        """The columns the file declares (CSV header, or the first JSON Lines row).

        Raises:
            TraceError: the file cannot be read as text, or its CSV header is malformed.
        """
        name = str(self.path)
        if not self.path.is_file():
            raise TraceError("no such file", name)
        with _open(self.path) as stream:
            if _is_jsonl(self.path):
                for text in chain.from_iterable(_lines(stream.read1, name)):
                    if text.strip():
                        try:
                            obj = json.loads(text)
                        except (ValueError, RecursionError):
                            return REQUIRED  # reading the rows names the error
                        return tuple(c for c in COLUMNS if isinstance(obj, dict) and c in obj)
                return REQUIRED
            lines = chain.from_iterable(_lines(stream.read1, name, lambda: 0))
            try:
                header = next(csv.reader(lines, strict=True), [])
            except csv.Error as exc:
                raise TraceError(f"bad CSV: {exc}", name, 1) from None
            return tuple(h.strip() for h in header)

    def has_deadlines(self) -> bool:
        """Whether rows may carry a deadline (the file declares the column)."""
        return "deadline" in self.columns()


@define
class Trace:
    """A trace held in memory as columns (arrays of floats), replayable any number of times.

    >>> trace = Trace.from_rows([("a", 0.0, 1.0, None, None), ("b", 0.5, 2.0, None, None)])
    >>> len(trace), trace.keys
    (2, ['a', 'b'])
    """

    keys: list[str] = field(factory=list)
    arrivals: array[float] = field(factory=lambda: array("d"))
    services: array[float] = field(factory=lambda: array("d"))
    deadlines: list[float | None] | None = None
    costs: list[float | None] | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[Row], name: str = "<rows>") -> Trace:
        """Collect rows (checked as a file's would be) into columns.

        Raises:
            TraceError: a row is malformed; `line` is the row's 1-based position.
        """
        trace = cls()
        keys, arrivals, services = trace.keys, trace.arrivals, trace.services
        deadlines: list[float | None] = []
        costs: list[float | None] = []
        intern: dict[str, str] = {}
        check = _RowChecker(name)
        for line, row in enumerate(rows, 1):
            if len(row) != 5:
                raise TraceError(f"expected 5 fields, got {len(row)}", name, line)
            key, at, svc, due, paid = check.row(*row, line)
            keys.append(intern.setdefault(key, key))
            arrivals.append(at)
            services.append(svc)
            deadlines.append(due)
            costs.append(paid)
        if any(d is not None for d in deadlines):
            trace.deadlines = deadlines
        if any(c is not None for c in costs):
            trace.costs = costs
        return trace

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a whole trace file into memory (use `TraceFile` to stream a large one)."""
        source = TraceFile(path)
        return cls.from_rows(source, str(source.path))

    def __len__(self) -> int:
        return len(self.arrivals)

    def __iter__(self) -> Iterator[Row]:
        return zip(
            self.keys,
            self.arrivals,
            self.services,
            self.deadlines if self.deadlines is not None else repeat(None),
            self.costs if self.costs is not None else repeat(None),
            strict=False,
        )

    def has_deadlines(self) -> bool:
        """Whether any row carries a deadline."""
        return self.deadlines is not None

    def columns(self) -> tuple[str, ...]:
        """The columns this trace uses (optional ones only when some row has them)."""
        cols = list(REQUIRED)
        if self.deadlines is not None:
            cols.append("deadline")
        if self.costs is not None:
            cols.append("cost")
        return tuple(cols)


def write_trace(path: str | Path, rows: Iterable[Row]) -> int:
    """Write rows to `path` (CSV, or JSON Lines for `.jsonl`; gzip for `.gz`) by streaming.

    Optional columns are written only if the first row has them. Returns the number of rows.
    """
    target = Path(path)
    iterator = iter(rows)
    first = next(iterator, None)
    with_deadline = first is not None and first[3] is not None
    with_cost = first is not None and first[4] is not None
    opener: Any = gzip.open if target.suffix == ".gz" else open
    count = 0
    with opener(target, "wt", encoding="utf-8", newline="") as out:
        jsonl = _is_jsonl(target)
        if not jsonl:
            header = ["key", "arrival", "service"]
            header += ["deadline"] * with_deadline + ["cost"] * with_cost
            out.write(",".join(header) + "\n")
        if first is None:
            return 0
        write = out.write
        for key, at, svc, due, paid in _chain(first, iterator):
            if jsonl:
                obj: dict[str, Any] = {"key": key, "arrival": at, "service": svc}
                if due is not None:
                    obj["deadline"] = due
                if paid is not None:
                    obj["cost"] = paid
                write(json.dumps(obj) + "\n")
            else:
                text = f"{_csv_key(key)},{at!r},{svc!r}"
                if with_deadline:
                    text += "," if due is None else f",{due!r}"
                if with_cost:
                    text += "," if paid is None else f",{paid!r}"
                write(text + "\n")
            count += 1
    return count


def _chain(first: Row, rest: Iterator[Row]) -> Iterator[Row]:
    yield first
    yield from rest


def _csv_key(key: str) -> str:
    if any(c in key for c in ',"\r\n'):
        return '"' + key.replace('"', '""') + '"'
    return key
