"""Reading trace files, bounded: lines, fields and keys capped, every fault one TraceError.

Reading is bounded: a line holds at most `MAX_LINE_BYTES` bytes and a key at most
`MAX_KEY_BYTES` (the runtime's limit). Every malformed input raises one `TraceError` naming the
file and line: bytes that are not UTF-8, a NUL byte, a truncated or corrupt gzip stream, a line,
row or key over its cap, a number that is not finite (NaN, or a JSON integer too large for a
float), bad CSV quoting.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from policies import MAX_KEY_BYTES as _RUNTIME_KEY_BYTES
from policies import FairschedError

#: A trace row: key, arrival (s), service (s, > 0), deadline (absolute s or None), cost or None.
Row = tuple[str, float, float, float | None, float | None]

REQUIRED = ("key", "arrival", "service")
OPTIONAL = ("deadline", "cost")
COLUMNS = REQUIRED + OPTIONAL
#: Columns a recording export adds (`fairsched record export`): read by `load_recording`,
#: accepted and skipped by the trace reader, so an export replays as it is. Any other column
#: is refused, so a misspelt `dedline` is an error, not silently ignored.
RECORDING = ("id", "queue", "dispatched", "started", "finished", "weight", "outcome", "worker")

#: Longest line of a trace file, in bytes with its line ending; also the size of each read. A
#: row needs far less (a key of at most MAX_KEY_BYTES and four numbers fit in 1.2 KB); the cap
#: stops a file of one endless line (a gzip of 1 MB can hold a 1 GB line) from being read into
#: memory. A CSV row whose quoted key spans lines is refused once it outgrows a whole read.
MAX_LINE_BYTES = 64 * 1024

#: Longest key, in UTF-8 bytes: the runtime's own limit (`policies.check_key`, 1024), so a
#: trace never holds a key a real queue would refuse.
MAX_KEY_BYTES = _RUNTIME_KEY_BYTES

#: Keys of at most this many characters fit MAX_KEY_BYTES whatever they hold (UTF-8 spends at
#: most 4 bytes on a character), so only longer ones are encoded to be measured.
_SHORT_KEY = MAX_KEY_BYTES // 4

#: The first bytes of any gzip stream, for a hint when a plain-named file holds one.
_GZIP_MAGIC = b"\x1f\x8b"


class TraceError(FairschedError, ValueError):
    """Raised when a trace row is malformed; names the file, the line number and the field."""

    def __init__(
        self, message: str, path: str = "<trace>", line: int = 0, column: str = ""
    ) -> None:
        self.path, self.line, self.column = path, line, column
        where = f"{path}, line {line}" if line else path
        if column:
            where += f", field {_clip(column)!r}"
        super().__init__(f"{where}: {message}")
        self._message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its parts, so one raised in a worker process keeps its path and line.
        return (type(self), (self._message, self.path, self.line, self.column))


def _clip(text: str, size: int = 40) -> str:
    # Messages quote what they refuse; a 60 KB value would bury the message itself.
    return text if len(text) <= size else f"{text[: size - 3]}..."


def _show(value: Any) -> str:
    return _clip(repr(value), 60)


def _open(path: Path) -> io.BufferedIOBase:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # closed by the caller
        return open(path, "rb")  # closed by the caller
    except OSError as exc:
        raise TraceError(f"cannot open: {exc.strerror or exc}", str(path)) from None


def _is_jsonl(path: Path) -> bool:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return bool(suffixes) and suffixes[-1] in (".jsonl", ".ndjson")


def _read_failure(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        return f"the compressed data is truncated ({exc})"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"the compressed data is corrupt ({exc})"
    return f"cannot read the file ({exc})"


def _lines(
    read: Callable[[int], bytes],
    name: str,
    row_end: Callable[[], int] | None = None,
    limit: int = MAX_LINE_BYTES,
) -> Iterator[list[str]]:
    """Yield the file's lines, decoded with their endings, in one list per read of `limit` bytes.

    Lines end at `\\n`, `\\r` or `\\r\\n`, as in text mode with `newline=""`. Each list
    holds the lines one read completed; every one of them but the first lies inside that read,
    so checking the first and the unfinished tail bounds all of them at `limit` bytes. Lines
    are checked (UTF-8, no NUL byte, length) a read at a time; when a read holds a bad line,
    the good lines before it are yielded first, then `TraceError` names the bad one.

    `row_end()`, when given, is the line the reader's latest row ended on. Once the reader has
    taken over `limit` bytes of lines without finishing a row (a quoted value running over
    lines), that row is refused rather than gathered.
    """
    done = 0  # lines yielded so far: the line being read is done + 1
    pending = 0  # bytes yielded since the reader last finished a row
    tail = b""
    while True:
        try:
            block = read(limit)
        except (EOFError, OSError, zlib.error) as exc:
            raise TraceError(_read_failure(exc), name, done + 1) from None
        if block:
            data = tail + block
            raw = data.splitlines(keepends=True)
            tail = raw.pop()
            if tail.endswith(b"\n"):  # complete; a last "\r" waits, in case "\n" comes next
                raw.append(tail)
                tail = b""
        elif tail:
            raw, tail = [tail], b""  # the last line, with no line ending
        else:
            return
        text: list[str] = []
        fault = ""
        if b"\x00" in block or len(tail) > limit or (raw and len(raw[0]) > limit):
            text, fault = _decode(raw, tail, limit)
        else:
            try:
                text = list(map(bytes.decode, raw))
            except UnicodeDecodeError:
                text, fault = _decode(raw, tail, limit)
        if text:
            first = done  # the list holds lines first + 1 .. first + len(text)
            before = row_end() if row_end is not None else 0
            yield text
            done += len(text)
            if row_end is not None:
                end = row_end()
                if end != before:
                    pending = 0
                # The lines after the latest row belong to the row in progress; normally none.
                pending += sum(map(len, raw[max(end - first, 0) : len(text)]))
                if pending > limit:
                    raise TraceError(
                        f"the row runs on for over {limit} bytes (a quote left open?)",
                        name,
                        end + 1,
                    )
        if fault:
            raise TraceError(fault, name, done + 1)
        if not block:
            return


def _decode(raw: list[bytes], tail: bytes, limit: int) -> tuple[list[str], str]:
    """Decode `raw` up to its first bad line (or a bad unfinished `tail`): (lines, fault)."""
    text: list[str] = []
    for line in raw:
        fault = _fault(line, limit, whole=True)
        if fault:
            return text, fault
        text.append(line.decode())
    return text, _fault(tail, limit, whole=False)


def _fault(line: bytes, limit: int, whole: bool) -> str:
    """The first thing wrong with `line`, or "". An unfinished line (`whole` false) is
    decoded only up to a NUL byte: its last character may be cut off at the end of a read."""
    if len(line) > limit:
        return f"line longer than {limit} bytes"
    nul = line.find(b"\x00")
    if whole or nul >= 0:
        try:
            line[: nul if nul >= 0 else len(line)].decode()
        except UnicodeDecodeError as exc:
            hint = " (gzip data in a file not named .gz?)" if line.startswith(_GZIP_MAGIC) else ""
            return f"not UTF-8 text: byte {line[exc.start]:#04x} at column {exc.start + 1}{hint}"
    if nul >= 0:
        return f"NUL byte at column {nul + 1}: not a text file (UTF-16?)"
    return ""


class _RowChecker:
    """Checks one row's values in file order; keeps the previous arrival."""

    __slots__ = ("last_arrival", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.last_arrival = -math.inf

    def number(self, raw: Any, column: str, line: int) -> float:
        if isinstance(raw, bool):
            raise TraceError(f"expected a number, got {_show(raw)}", self.path, line, column)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise TraceError(
                f"expected a number, got {_show(raw)}", self.path, line, column
            ) from None
        except OverflowError:  # a JSON integer beyond the largest float
            value = math.inf
        if not math.isfinite(value):
            raise TraceError(f"expected a finite number, got {_show(raw)}", self.path, line, column)
        return value

    def key(self, key: Any, line: int) -> str:
        if not isinstance(key, str) or not key:
            raise TraceError(
                f"key must be a non-empty string, got {_show(key)}", self.path, line, "key"
            )
        if len(key) > _SHORT_KEY or not key.isascii():
            try:
                size = len(key.encode("utf-8"))
            except UnicodeEncodeError:  # a lone surrogate, from a JSON escape such as \ud800
                raise TraceError(
                    f"key is not valid Unicode text, got {_show(key)}", self.path, line, "key"
                ) from None
            if size > MAX_KEY_BYTES:
                raise TraceError(
                    f"key is {size} bytes; the limit is {MAX_KEY_BYTES}", self.path, line, "key"
                )
        return key

    def row(self, key: Any, arrival: Any, service: Any, deadline: Any, cost: Any, line: int) -> Row:
        key = self.key(key, line)
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
            raise TraceError(
                f"service must be > 0, got {_show(service)}", self.path, line, "service"
            )
        due = None
        if deadline is not None and deadline != "":
            due = self.number(deadline, "deadline", line)
        paid = None if cost is None or cost == "" else self.number(cost, "cost", line)
        if paid is not None and paid < 0:
            raise TraceError(f"cost must be >= 0, got {_show(cost)}", self.path, line, "cost")
        return (key, at, svc, due, paid)


def _csv_rows(read: Callable[[int], bytes], name: str) -> Iterator[Row]:
    line = 0  # the line the latest row ended on; `_lines` reads it to bound a row in progress
    reader = csv.reader(chain.from_iterable(_lines(read, name, lambda: line)), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise TraceError(f"bad CSV: {exc}", name, 1) from None
    if header is None:
        raise TraceError("empty file; expected a header 'key,arrival,service'", name, 1)
    header = [h.strip() for h in header]
    for column in header:
        if column not in COLUMNS and column not in RECORDING:
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
    line = reader.line_num
    last = -math.inf
    try:
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
            if (
                not key
                or len(key) > _SHORT_KEY
                or at < last
                or not svc > 0
                or svc == math.inf
                or not math.isfinite(at)
            ):
                # A check failed, or the key is long: the full checker names the field at fault.
                check.last_arrival = last
                check.row(key, row[ia], row[isv], None, None, line)
            last = at
            yield (key, at, svc, None, None)
    except csv.Error as exc:
        raise TraceError(f"bad CSV: {exc}", name, line + 1) from None


_JSON_FIELDS = frozenset(COLUMNS + RECORDING)


def _jsonl_rows(read: Callable[[int], bytes], name: str) -> Iterator[Row]:
    check = _RowChecker(name)
    for line, text in enumerate(chain.from_iterable(_lines(read, name)), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"not valid JSON: {exc.msg}", name, line) from None
        except ValueError:  # Python refuses to parse an integer of over 4,300 digits
            raise TraceError("not valid JSON: a number with too many digits", name, line) from None
        except RecursionError:
            raise TraceError("not valid JSON: nested too deeply", name, line) from None
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
