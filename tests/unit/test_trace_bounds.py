"""Reading a trace is bounded and fails cleanly: every malformed file is one `TraceError` that
names the file and the line, and memory stays flat whatever the file holds."""

from __future__ import annotations

import gzip
import json
import random
import re
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import policies
from policies._job import check_key
from simulator import Trace, TraceError, TraceFile, write_trace
from simulator._trace import MAX_KEY_BYTES, MAX_LINE_BYTES

HEADER = b"key,arrival,service\n"

#: Peak traced memory allowed while reading a hostile file: holding the long line would
#: take 50 to 200 MB; a bounded read keeps a few blocks of MAX_LINE_BYTES.
MEMORY_BOUND = 8_000_000


def jsonl(*objects: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def gzip_bomb(megabytes: int = 200) -> bytes:
    """A gzip file of about 200 KB that decompresses to one line of `megabytes` MB."""
    member = gzip.compress(b"a" * (1 << 20), compresslevel=9)
    # Concatenated members form one stream for every gzip reader.
    return member * megabytes


def truncated_gzip(rows: int) -> tuple[bytes, int]:
    """A gzipped CSV cut in half, and the line its data stops in (found without the reader)."""
    text = HEADER + b"".join(b"k%d,%d,1\n" % (i % 7, i) for i in range(rows))
    whole = gzip.compress(text)
    cut = whole[: len(whole) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    return cut, readable.count(b"\n") + 1


def wrong_checksum() -> bytes:
    data = bytearray(gzip.compress(HEADER + b"a,0,1\n"))
    data[-8:-4] = bytes(b ^ 0xFF for b in data[-8:-4])  # the CRC-32 of the trailer
    return bytes(data)


def long_line(path: Path) -> None:
    """A CSV whose third line is 50 MB long, written in chunks."""
    with open(path, "wb") as out:
        out.write(HEADER + b"a,0,1\n")
        chunk = b"7" * (1 << 20)
        for _ in range(50):
            out.write(chunk)
        out.write(b",1\n")


def content(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)  # type: ignore[return-value]


_CUT, _CUT_LINE = truncated_gzip(200)
_DEEP = b"[" * 50_000 + b"\n"

#: Malformed traces: name -> (file name, writer, line named in the error, words in the error).
MALFORMED: dict[str, tuple[str, Callable[[Path], None], int, str]] = {
    "random bytes": ("noise.csv", content(random.Random(0).randbytes(4096)), 1, "not UTF-8"),
    "random bytes named .jsonl": (
        "noise.jsonl",
        content(random.Random(1).randbytes(4096)),
        1,
        "not UTF-8 text: byte 0xf5 at column 1",
    ),
    "random bytes named .gz": (
        "noise.csv.gz",
        content(random.Random(2).randbytes(4096)),
        1,
        "compressed data is corrupt",
    ),
    "UTF-16 export": (
        "excel.csv",
        content("key,arrival,service\r\na,0,1\r\n".encode("utf-16")),
        1,
        "not UTF-8",
    ),
    "Latin-1 byte": (
        "latin1.csv",
        content(HEADER + b"a,0,1\n" + "café,1,1\n".encode("latin-1")),
        3,
        "byte 0xe9 at column 4",
    ),
    "NUL byte in a key": ("nul.csv", content(HEADER + b"a,0,1\nb\x00c,1,1\n"), 3, "NUL byte"),
    "NUL byte in JSON": (
        "nul.jsonl",
        content(jsonl({"key": "a", "arrival": 0, "service": 1}) + b'{"key": "\x00"}\n'),
        2,
        "NUL byte",
    ),
    "truncated gzip": ("cut.csv.gz", content(_CUT), _CUT_LINE, "compressed data is truncated"),
    "gzip with a wrong checksum": (
        "crc.csv.gz",
        content(wrong_checksum()),
        3,
        "compressed data is corrupt",
    ),
    "plain text named .gz": (
        "plain.csv.gz",
        content(HEADER + b"a,0,1\n"),
        1,
        "compressed data is corrupt",
    ),
    "gzip named .csv": (
        "packed.csv",
        content(gzip.compress(HEADER)),
        1,
        "gzip data in a file not named .gz",
    ),
    "gzip bomb of one 200 MB line": (
        "bomb.csv.gz",
        content(gzip_bomb()),
        1,
        f"line longer than {MAX_LINE_BYTES} bytes",
    ),
    "50 MB line": ("long.csv", long_line, 3, f"line longer than {MAX_LINE_BYTES} bytes"),
    "1,025-byte key": (
        "key.csv",
        content(HEADER + b"a,0,1\n" + b"k" * 1025 + b",1,1\n"),
        3,
        "key is 1025 bytes; the limit is 1024",
    ),
    "513-character key of 1,026 bytes": (
        "key.jsonl",
        content(jsonl({"key": "é" * 513, "arrival": 0, "service": 1})),
        1,
        "key is 1026 bytes",
    ),
    "JSON integer of 1e400": (
        "huge.jsonl",
        content(b'{"key": "a", "arrival": 1' + b"0" * 400 + b', "service": 1}\n'),
        1,
        "expected a finite number",
    ),
    "JSON integer of 5,000 digits": (
        "digits.jsonl",
        content(b'{"key": "a", "arrival": ' + b"9" * 5000 + b', "service": 1}\n'),
        1,
        "too many digits",
    ),
    "JSON NaN": (
        "nan.jsonl",
        content(b'{"key": "a", "arrival": NaN, "service": 1}\n'),
        1,
        "expected a finite number",
    ),
    "JSON Infinity": (
        "inf.jsonl",
        content(jsonl({"key": "a", "arrival": 0, "service": 1}).replace(b"1}", b"Infinity}")),
        1,
        "expected a finite number",
    ),
    "JSON nested too deeply": ("deep.jsonl", content(_DEEP), 1, "nested too deeply"),
    "JSON lone surrogate in a key": (
        "surrogate.jsonl",
        content(b'{"key": "\\ud800", "arrival": 0, "service": 1}\n'),
        1,
        "not valid Unicode",
    ),
    "CSV infinite arrival": ("inf.csv", content(HEADER + b"a,inf,1\n"), 2, "finite"),
    "CSV text after a closing quote": (
        "quote.csv",
        content(HEADER + b'"a"b,0,1\n'),
        2,
        "bad CSV",
    ),
    "CSV quote never closed": (
        "open.csv",
        content(HEADER + b'a,0,1\n"b,1,1\nc,2,1\n'),
        3,
        "bad CSV: unexpected end of data",
    ),
}


def write_case(folder: Path, case: str) -> tuple[Path, int, str]:
    """Write the MALFORMED trace `case` into `folder`: (path, line named, words)."""
    name, write, line, words = MALFORMED[case]
    path = folder / name
    write(path)
    return path, line, words


def rows_until_error(path: Path) -> tuple[int, TraceError]:
    """How many rows a read yields before its TraceError, and the error."""
    count = 0
    try:
        for _ in TraceFile(path):
            count += 1
    except TraceError as exc:
        return count, exc
    raise AssertionError(f"{path} was read whole ({count} rows)")


def peak_memory(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_trace_raises_one_trace_error_naming_file_and_line(
    tmp_path: Path, case: str
) -> None:
    path, line, words = write_case(tmp_path, case)
    with pytest.raises(TraceError) as caught:
        list(TraceFile(path))
    error = caught.value
    assert type(error) is TraceError
    assert (error.path, error.line) == (str(path), line)
    assert f"{path}, line {line}" in str(error)
    assert words in str(error)
    with pytest.raises(TraceError, match=re.escape(f"{path}, line {line}")):
        Trace.load(path)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_columns_of_a_malformed_trace_answer_or_raise_a_trace_error(
    tmp_path: Path, case: str
) -> None:
    path, _, _ = write_case(tmp_path, case)
    try:
        TraceFile(path).has_deadlines()
    except TraceError as exc:
        error: TraceError | None = exc
    else:
        error = None
    assert error is None or (type(error) is TraceError and str(path) in str(error))


def test_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip_bomb(200))
    assert path.stat().st_size < 400_000

    def read() -> None:
        with pytest.raises(TraceError, match=f"{re.escape(str(path))}, line 1: line longer"):
            list(TraceFile(path))
        with pytest.raises(TraceError, match="line 1: line longer"):
            TraceFile(path).columns()

    assert peak_memory(read) < MEMORY_BOUND


def test_gzip_bomb_of_jsonl_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip_bomb(100))

    def read() -> None:
        with pytest.raises(TraceError, match="line 1: line longer"):
            list(TraceFile(path))
        with pytest.raises(TraceError, match="line 1: line longer"):
            TraceFile(path).columns()

    assert peak_memory(read) < MEMORY_BOUND


def test_fifty_megabyte_line_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_line(path)

    def read() -> None:
        with pytest.raises(TraceError, match="line 3: line longer"):
            list(TraceFile(path))

    assert peak_memory(read) < MEMORY_BOUND


def test_unclosed_quote_in_a_long_file_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "open.csv"
    with open(path, "wb") as out:
        out.write(HEADER + b"a,0,1\n" + b'"open,1,1\n')
        out.write(b"".join(b"b,%d,1\n" % i for i in range(2, 400_000)))

    def read() -> None:
        with pytest.raises(TraceError, match="line 3: the row runs on"):
            list(TraceFile(path))

    assert peak_memory(read) < MEMORY_BOUND


def test_line_at_the_cap_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    first = jsonl({"key": "a", "arrival": 0, "service": 1})
    body = jsonl({"key": "b", "arrival": 1, "service": 1})
    padded = body[:-2] + b" " * (MAX_LINE_BYTES - len(body)) + b"}\n"
    assert len(padded) == MAX_LINE_BYTES
    path = tmp_path / "cap.jsonl"
    last = jsonl({"key": "c", "arrival": 2, "service": 1})
    path.write_bytes(first + padded + last)
    assert [row[0] for row in TraceFile(path)] == ["a", "b", "c"]
    path.write_bytes(first + padded[:-2] + b" }\n" + last)
    with pytest.raises(TraceError, match="line 2: line longer than 65536 bytes"):
        list(TraceFile(path))


def key_files(folder: Path, key: str) -> Iterator[Path]:
    """The same one-row trace in every reading path: CSV fast path, CSV with optional
    columns, JSON Lines."""
    quoted = '"' + key.replace('"', '""') + '"'
    fast = folder / "fast.csv"
    fast.write_text(f"key,arrival,service\n{quoted},0,1\n", encoding="utf-8")
    yield fast
    slow = folder / "slow.csv"
    slow.write_text(f"key,arrival,service,deadline\n{quoted},0,1,\n", encoding="utf-8")
    yield slow
    lines = folder / "t.jsonl"
    lines.write_text(json.dumps({"key": key, "arrival": 0, "service": 1}) + "\n")
    yield lines


@pytest.mark.parametrize("key", ["k" * 1024, "é" * 512, "€" * 341 + "a", 'a"\n,b' * 200])
def test_key_up_to_the_runtime_limit_is_read_in_every_format(tmp_path: Path, key: str) -> None:
    assert len(key.encode()) <= 1024
    assert check_key(key) == key
    for path in key_files(tmp_path, key):
        assert [row[0] for row in TraceFile(path)] == [key], path
    assert Trace.from_rows([(key, 0.0, 1.0, None, None)]).keys == [key]


@pytest.mark.parametrize("key", ["k" * 1025, "é" * 513, "€" * 342])
def test_key_over_the_runtime_limit_is_refused_in_every_format(tmp_path: Path, key: str) -> None:
    size = len(key.encode())
    assert MAX_KEY_BYTES == policies.MAX_KEY_BYTES == 1024
    with pytest.raises(policies.InvalidJob):
        check_key(key)
    for path in key_files(tmp_path, key):
        with pytest.raises(TraceError) as caught:
            list(TraceFile(path))
        assert (caught.value.line, caught.value.column) == (
            1 if path.suffix == ".jsonl" else 2,
            "key",
        )
        assert f"key is {size} bytes; the limit is 1024" in str(caught.value)
    with pytest.raises(TraceError, match="line 1, field 'key': key is"):
        Trace.from_rows([(key, 0.0, 1.0, None, None)])


def test_bad_byte_far_into_a_file_is_named_by_its_exact_line(tmp_path: Path) -> None:
    path = tmp_path / "far.csv"
    good = b"".join(b"k%d,%d,1\n" % (i % 9, i) for i in range(20_000))
    path.write_bytes(HEADER + good + b"caf\xe9,20000,1\n" + good)
    assert path.stat().st_size > 4 * MAX_LINE_BYTES
    count, error = rows_until_error(path)
    assert (count, error.line) == (20_000, 20_002)
    assert "byte 0xe9 at column 4" in str(error)


def test_an_earlier_bad_row_is_named_before_a_later_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "order.csv"
    path.write_bytes(HEADER + b"a,0,1\na,zero,1\na,2,1\n\xff,3,1\n")
    with pytest.raises(TraceError) as caught:
        list(TraceFile(path))
    assert (caught.value.line, caught.value.column) == (3, "arrival")


def test_truncated_gzip_names_the_line_its_data_stops_in(tmp_path: Path) -> None:
    cut, line = truncated_gzip(50_000)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(cut)
    count, error = rows_until_error(path)
    assert line > 1_000  # the cut falls many reads into the file
    assert (count, error.line) == (line - 2, line)  # every whole row before it was read
    assert "truncated" in str(error)


def test_keys_with_line_breaks_and_quotes_round_trip_across_reads(tmp_path: Path) -> None:
    rows = [(f'k{i % 13}\n,"x"\r\ny\r', float(i), 1.0, None, None) for i in range(12_000)]
    path = tmp_path / "breaks.csv"
    write_trace(path, rows)
    assert path.stat().st_size > 4 * MAX_LINE_BYTES
    assert list(TraceFile(path)) == rows


def test_carriage_return_line_endings_count_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"key,arrival,service\ra,0,1\r\rb,1,1\rc,zero,1\r")
    with pytest.raises(TraceError) as caught:
        list(TraceFile(path))
    assert (caught.value.line, caught.value.column) == (5, "arrival")
    path.write_bytes(b"key,arrival,service\ra,0,1\r\nb,1,1\r")
    assert [r[0] for r in TraceFile(path)] == ["a", "b"]


def test_columns_reads_only_a_bounded_first_line(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b'"key","arrival"x,service\n')
    with pytest.raises(TraceError, match="line 1: bad CSV"):
        TraceFile(path).columns()
    path.write_bytes(HEADER.rstrip() + b",deadline\na,0,1,5\n" + b"\xff" * 10)
    assert TraceFile(path).has_deadlines()
