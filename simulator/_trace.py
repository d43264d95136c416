"""Traces: `key,arrival,service[,deadline,cost]` rows, streamed from CSV or JSON Lines.

A row is the plain tuple `(key, arrival, service, deadline, cost)`; `deadline` (absolute
seconds) and `cost` (the declared cost DRR charges) are None when absent. Files are read one
line at a time, so memory stays flat whatever the trace length; `Trace` holds a trace in memory
as columns when it is small enough and will be replayed many times.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from array import array
from collections.abc import Iterable, Iterator
from itertools import repeat
from pathlib import Path
from typing import IO, Any

from attrs import define, field, frozen

from policies import FairschedError

#: A trace row: key, arrival (s), service (s, > 0), deadline (absolute s or None), cost or None.
Row = tuple[str, float, float, float | None, float | None]

REQUIRED = ("key", "arrival", "service")
OPTIONAL = ("deadline", "cost")
COLUMNS = REQUIRED + OPTIONAL


class TraceError(FairschedError, ValueError):
    """Raised when a trace row is malformed; names the file, the line number and the field."""

    def __init__(
        self, message: str, path: str = "<trace>", line: int = 0, column: str = ""
    ) -> None:
        self.path, self.line, self.column = path, line, column
        where = f"{path}, line {line}" if line else path
        if column:
            where += f", field {column!r}"
        super().__init__(f"{where}: {message}")


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # closed by the caller


def _is_jsonl(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return bool(suffixes) and suffixes[-1] in (".jsonl", ".ndjson")


class _RowChecker:
    """Checks one row's values in file order; keeps the previous arrival."""

    __slots__ = ("last_arrival", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.last_arrival = -math.inf

    def number(self, raw: Any, column: str, line: int) -> float:
        if isinstance(raw, bool):
            raise TraceError(f"expected a number, got {raw!r}", self.path, line, column)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise TraceError(f"expected a number, got {raw!r}", self.path, line, column) from None
        if not math.isfinite(value):
            raise TraceError(f"expected a finite number, got {raw!r}", self.path, line, column)
        return value

    def row(self, key: Any, arrival: Any, service: Any, deadline: Any, cost: Any, line: int) -> Row:
        if not isinstance(key, str) or not key:
            raise TraceError(f"key must be a non-empty string, got {key!r}", self.path, line, "key")
        at = self.number(arrival, "arrival", line)
        if at < self.last_arrival:
            raise TraceError(
                f"arrival {at!r} goes backwards (previous row: {self.last_arrival!r})",
                self.path,
                line,
                "arrival",
            )
        self.last_arrival = at
        svc = self.number(service, "service", line)
        if svc <= 0:
            raise TraceError(f"service must be > 0, got {service!r}", self.path, line, "service")
        due = None
        if deadline is not None and deadline != "":
            due = self.number(deadline, "deadline", line)
        paid = None if cost is None or cost == "" else self.number(cost, "cost", line)
        if paid is not None and paid < 0:
            raise TraceError(f"cost must be >= 0, got {cost!r}", self.path, line, "cost")
        return (key, at, svc, due, paid)


def _csv_rows(stream: IO[str], name: str) -> Iterator[Row]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise TraceError("empty file; expected a header 'key,arrival,service'", name, 1)
    header = [h.strip() for h in header]
    for column in header:
        if column not in COLUMNS:
            raise TraceError(f"unknown column; valid: {', '.join(COLUMNS)}", name, 1, column)
    for column in REQUIRED:
        if column not in header:
            raise TraceError("missing column in header", name, 1, column)
    width = len(header)
    ik, ia, isv = header.index("key"), header.index("arrival"), header.index("service")
    idl = header.index("deadline") if "deadline" in header else -1
    ic = header.index("cost") if "cost" in header else -1
    check = _RowChecker(name)
    number = check.number
    line = 1
    last = -math.inf
    for row in reader:
        line = reader.line_num
        if len(row) != width:
            if not row:
                continue  # a blank line
            which = header[len(row)] if len(row) < width else f"#{width + 1}"
            kind = "missing" if len(row) < width else "extra"
            raise TraceError(
                f"{kind} column: expected {width} fields ({','.join(header)}), got {len(row)}",
                name,
                line,
                which,
            )
        if idl >= 0 or ic >= 0:
            yield check.row(
                row[ik],
                row[ia],
                row[isv],
                row[idl] if idl >= 0 else None,
                row[ic] if ic >= 0 else None,
                line,
            )
            continue
        # The common case (no optional columns), inlined: this loop feeds 10M-row replays.
        key = row[ik]
        try:
            at = float(row[ia])
        except ValueError:
            at = number(row[ia], "arrival", line)
        try:
            svc = float(row[isv])
        except ValueError:
            svc = number(row[isv], "service", line)
        if not key or at < last or not svc > 0 or svc == math.inf or not math.isfinite(at):
            # One of the checks failed: the full checker raises the error naming the field.
            check.last_arrival = last
            check.row(key, row[ia], row[isv], None, None, line)
        last = at
        yield (key, at, svc, None, None)


_JSON_FIELDS = frozenset(COLUMNS)


def _jsonl_rows(stream: IO[str], name: str) -> Iterator[Row]:
    check = _RowChecker(name)
    for line, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"not valid JSON: {exc.msg}", name, line) from None
        if not isinstance(obj, dict):
            raise TraceError(f"expected a JSON object, got {type(obj).__name__}", name, line)
        extra = sorted(set(obj) - _JSON_FIELDS)
        if extra:
            raise TraceError(
                f"extra column; valid: {', '.join(COLUMNS)}", name, line, str(extra[0])
            )
        for column in REQUIRED:
            if column not in obj:
                raise TraceError("missing column", name, line, column)
        yield check.row(
            obj["key"], obj["arrival"], obj["service"], obj.get("deadline"), obj.get("cost"), line
        )


@frozen
class TraceFile:
    """A trace on disk, read afresh (streamed) on every iteration.

    `.csv` (with a header row) or `.jsonl`/`.ndjson`; either may be gzipped (`.gz`).

    Raises (while iterating):
        TraceError: a row is malformed; the message names the file, line and field.
    """

    path: Path = field(converter=Path)

    def __iter__(self) -> Iterator[Row]:
        if not self.path.is_file():
            raise TraceError("no such file", str(self.path))
        with _open_text(self.path) as stream:
            if _is_jsonl(self.path):
                yield from _jsonl_rows(stream, str(self.path))
            else:
                yield from _csv_rows(stream, str(self.path))

    def columns(self) -> tuple[str, ...]:
        """The columns the file declares (CSV header, or the first JSON Lines row)."""
        if not self.path.is_file():
            raise TraceError("no such file", str(self.path))
        with _open_text(self.path) as stream:
            if _is_jsonl(self.path):
                for text in stream:
                    if text.strip():
                        try:
                            obj = json.loads(text)
                        except json.JSONDecodeError:
                            return REQUIRED
                        return tuple(c for c in COLUMNS if isinstance(obj, dict) and c in obj)
                return REQUIRED
            header = next(csv.reader(stream), [])
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
