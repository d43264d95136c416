"""Fuzzing the trace reader: whatever a file holds, reading it yields valid rows or raises one
`TraceError` naming the file, never any other exception."""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Callable
from itertools import cycle
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from simulator import Row, Trace, TraceError, TraceFile
from simulator._trace import MAX_KEY_BYTES, _lines

# -- what a row can hold: sane values mixed with every kind of trouble --------------------------

clean_keys = st.sampled_from(["a", "b", "tenant-1", "é", "k,1", 'q"q', "line\nbreak", "cr\r\n"])
keys = st.one_of(
    clean_keys,
    st.text(max_size=6),
    st.sampled_from(["k" * 1024, "k" * 1025, "é" * 512, "é" * 513, " "]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-5, 10**6).map(str),
    st.sampled_from(
        ["", "nan", "inf", "-inf", "1e400", "1" * 400, "zero", " 1 ", "0x10", "1_0", "١"]
    ),
)
json_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.sampled_from([10**400, True, None, "1", [1], {"a": 1}, "", -0.0]),
)
broken_lines = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"\x00",
            b"a\x00,1,1",
            b"\xff\xfe",
            b"caf\xe9,1,1",
            b'"unclosed,1,1',
            b'"a"b,1,1',
            b"\x1f\x8b\x08",
            b"[" * 3000,
            b'{"key": "\\ud800", "arrival": 1, "service": 1}',
            b'{"key": "a", "arrival": ' + b"9" * 5000 + b', "service": 1}',
            b'{"key": "a", "arrival": NaN, "service": 1}',
            b"a,1,1,1,1,1,1",
            b",,",
        ]
    ),
)
endings = st.sampled_from([b"\n", b"\r\n", b"\r"])
#: True about one time in four: how often a row or a file gets some trouble.
messy = st.integers(0, 3).map(lambda n: n == 0)


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A CSV trace: a header, mostly valid rows in arrival order, some broken lines."""
    good = [["key", "arrival", "service"], ["key", "arrival", "service", "deadline", "cost"]]
    bad = [["service", "key", "arrival"], ["key", "arrival"], ["key", "arrival", "colour"]]
    header = draw(st.sampled_from(bad if draw(messy) else good))
    lines = [",".join(header).encode()]
    at = 0.0
    for _ in range(draw(st.integers(0, 12))):
        at += draw(st.floats(0, 10))
        values = {"key": draw(clean_keys), "arrival": repr(at), "service": "0.5"}
        values |= {"deadline": draw(st.sampled_from(["", repr(at + 5)])), "cost": "", "colour": ""}
        if draw(messy):  # one value of the row from anywhere
            column = draw(st.sampled_from(sorted(values)))
            values[column] = draw(keys if column == "key" else numbers)
        lines.append(",".join(csv_cell(values[c]) for c in header).encode())
    return mix(draw, lines)


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """A JSON Lines trace: mostly valid objects in arrival order, some broken lines."""
    lines = []
    at = 0.0
    for _ in range(draw(st.integers(0, 12))):
        at += draw(st.floats(0, 10))
        obj: dict[str, object] = {"key": draw(clean_keys), "arrival": at, "service": 0.5}
        if draw(st.booleans()):
            obj["deadline"] = draw(st.sampled_from([None, at + 5]))
        if draw(messy):  # one value of the row from anywhere, or an extra field
            column = draw(st.sampled_from(["key", "arrival", "service", "cost", "extra"]))
            obj[column] = draw(keys | json_values if column == "key" else json_values)
        lines.append(json.dumps(obj).encode())  # writes NaN and Infinity for non-finite floats
    return mix(draw, lines)


def mix(draw: st.DrawFn, lines: list[bytes]) -> bytes:
    """Join `lines`, now and then with a broken line among them or the end cut off."""
    for _ in range(3):
        if draw(messy):
            lines.insert(draw(st.integers(0, len(lines))), draw(broken_lines))
    ending = draw(endings)
    text = b"".join(line + ending for line in lines)
    return text[: draw(st.integers(0, len(text)))] if draw(messy) else text


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes): CSV-ish, JSON-Lines-ish or random bytes, maybe gzipped or cut."""
    kind = draw(st.sampled_from(["csv", "jsonl"]))
    shaped = csv_files() if kind == "csv" else jsonl_files()
    data = draw(st.binary(max_size=300) if draw(messy) else shaped)
    packing = "cut gzip" if draw(messy) else draw(st.sampled_from(["plain", "gzip"]))
    if packing == "plain":
        return f"t.{kind}", data
    packed = gzip.compress(data, mtime=0)
    if packing == "cut gzip":
        packed = packed[: draw(st.integers(0, len(packed) - 1))]
    return f"t.{kind}.gz", packed


# -- the laws -----------------------------------------------------------------------------------


def assert_valid(rows: list[Row]) -> None:
    last = -math.inf
    for key, at, service, deadline, cost in rows:
        assert isinstance(key, str) and key
        assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
        assert type(at) is float and math.isfinite(at) and at >= last
        assert type(service) is float and math.isfinite(service) and service > 0
        assert deadline is None or (type(deadline) is float and math.isfinite(deadline))
        assert cost is None or (type(cost) is float and math.isfinite(cost) and cost >= 0)
        last = at


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@given(trace_files())
def test_reading_any_file_yields_valid_rows_or_one_trace_error(
    folder: Path, file: tuple[str, bytes]
) -> None:
    name, data = file
    path = folder / name
    path.write_bytes(data)
    for rows, error in (
        outcome(lambda: list(TraceFile(path))),
        outcome(lambda: list(Trace.load(path))),
    ):
        if error is None:
            assert isinstance(rows, list)
            assert_valid(rows)
            event(f"read whole: {'no rows' if not rows else 'rows'}")
        else:
            event(f"TraceError: {str(error).split(': ', 1)[1][:24]}")
            assert type(error) is TraceError
            assert error.path == str(path) and error.line >= 1
            assert f"{path}, line {error.line}" in str(error)
    _, error = outcome(TraceFile(path).has_deadlines)
    assert error is None or f"{path}, line" in str(error)


def short_reads(data: bytes, sizes: list[int]) -> Callable[[int], bytes]:
    """A `read(n)` over `data` that returns at most the next of `sizes` (cycled) bytes, as
    `read1` may."""
    stream = io.BytesIO(data)
    turns = cycle(sizes)
    return lambda n: stream.read(min(n, next(turns)))


def outcome(read: Callable[[], object]) -> tuple[object, TraceError | None]:
    """(what `read` returned, None), or (None, the TraceError it raised)."""
    try:
        return read(), None
    except TraceError as exc:
        return None, exc


@given(
    st.lists(st.sampled_from([b"a", b",", b"\r", b"\n", b"\r\n", "é".encode(), b"\xff", b"\x00"])),
    st.integers(1, 12),
    st.lists(st.integers(1, 13), min_size=1, max_size=5),
)
def test_line_reader_splits_like_splitlines_and_names_the_first_bad_line(
    parts: list[bytes], limit: int, sizes: list[int]
) -> None:
    """For any block size and any short reads, `_lines` yields the lines `bytes.splitlines`
    finds, up to the first one that is too long, not UTF-8 or holds a NUL byte, and names
    that line."""
    data = b"".join(parts)
    expected = data.splitlines(keepends=True)
    bad = next(
        (
            i
            for i, line in enumerate(expected)
            if len(line) > limit or b"\x00" in line or b"\xff" in line
        ),
        None,
    )
    got: list[str] = []

    def read() -> None:
        for block in _lines(short_reads(data, sizes), "x", limit=limit):
            got.extend(block)

    _, error = outcome(read)
    if bad is None:
        assert error is None
        assert got == [line.decode() for line in expected]
    else:
        assert error is not None and error.line == bad + 1
        assert got == [line.decode() for line in expected[:bad]]
