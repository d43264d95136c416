"""Trace reading and writing: streaming, typed errors naming file, line and field."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from policies import FairschedError
from simulator import Trace, TraceError, TraceFile, poisson, write_trace
from tests.servers import real_trace

DATA = Path(__file__).resolve().parents[1] / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_sample_is_read_in_file_order() -> None:
    rows = list(TraceFile(DATA / "simulator_sample.csv"))
    assert len(rows) == 10
    assert rows[0] == ("alice", 0.0, 2.0, None, None)
    assert rows[-1] == ("carol", 3.0, 1.5, None, None)


def test_jsonl_sample_reads_optional_deadline_and_cost() -> None:
    source = TraceFile(DATA / "simulator_sample.jsonl")
    rows = list(source)
    assert rows[0] == ("alice", 0.0, 2.0, 10.0, 2.0)
    assert rows[2] == ("bulk", 0.0, 1.0, None, None)
    assert rows[3] == ("bob", 1.0, 0.5, None, 0.5)
    assert source.has_deadlines()


def test_csv_with_optional_columns_leaves_blank_cells_none(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "key,arrival,service,deadline,cost\na,0,1,,\nb,1,2,5,3\n")
    assert list(TraceFile(path)) == [("a", 0.0, 1.0, None, None), ("b", 1.0, 2.0, 5.0, 3.0)]


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("key,arrival,service\na,0,1\nb,1\n", 3, "service", "missing column"),
        ("key,arrival,service\na,0,1,9\n", 2, "#4", "extra column"),
        ("key,arrival,service\na,zero,1\n", 2, "arrival", "expected a number"),
        ("key,arrival,service\na,0,1\na,1,nan\n", 3, "service", "finite"),
        ("key,arrival,service\na,0,0\n", 2, "service", "service must be > 0"),
        ("key,arrival,service\na,0,-1\n", 2, "service", "service must be > 0"),
        ("key,arrival,service\na,5,1\nb,4.5,1\n", 3, "arrival", "goes backwards"),
        ("key,arrival,service\n,0,1\n", 2, "key", "non-empty"),
        ("key,arrival\na,0\n", 1, "service", "missing column"),
        ("key,arrival,service,color\na,0,1,red\n", 1, "color", "unknown column"),
        ("key,arrival,service,deadline\na,0,1,soon\n", 2, "deadline", "expected a number"),
        ("key,arrival,service,cost\na,0,1,-2\n", 2, "cost", "cost must be >= 0"),
    ],
)
def test_bad_csv_row_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, column: str, words: str
) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TraceError) as caught:
        list(TraceFile(path))
    error = caught.value
    assert (error.path, error.line, error.column) == (str(path), line, column)
    assert words in str(error)
    assert f"{path}, line {line}" in str(error)
    assert isinstance(error, FairschedError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ('{"key": "a", "arrival": 0}\n', 1, "service", "missing column"),
        ('{"key": "a", "arrival": 0, "service": 1, "x": 2}\n', 1, "x", "extra column"),
        ('{"key": "a", "arrival": 0, "service": "1s"}\n', 1, "service", "expected a number"),
        ('{"key": "a", "arrival": 0, "service": true}\n', 1, "service", "expected a number"),
        (
            '{"key": "a", "arrival": 2, "service": 1}\n\n'
            '{"key": "a", "arrival": 1, "service": 1}\n',
            3,
            "arrival",
            "goes backwards",
        ),
        ('{"key": "a", "arrival": 0, "service": 0}\n', 1, "service", "> 0"),
        ('{"key": 7, "arrival": 0, "service": 1}\n', 1, "key", "non-empty string"),
        ("[1, 2]\n", 1, "", "JSON object"),
        ("{oops\n", 1, "", "not valid JSON"),
    ],
)
def test_bad_jsonl_row_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, column: str, words: str
) -> None:
    path = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(TraceError) as caught:
        list(TraceFile(path))
    assert (caught.value.line, caught.value.column) == (line, column)
    assert words in str(caught.value)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        list(TraceFile(tmp_path / "nope.csv"))


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.csv.gz", "t.jsonl.gz"])
def test_write_then_read_round_trips_every_column(tmp_path: Path, name: str) -> None:
    rows = list(poisson(50, rate=2.0, keys=4, deadline_slack=3.0, seed=5))
    rows = [(k, a, s, d, float(i % 3)) for i, (k, a, s, d, _) in enumerate(rows)]
    assert write_trace(tmp_path / name, rows) == 50
    assert list(TraceFile(tmp_path / name)) == rows


def test_write_quotes_keys_with_commas(tmp_path: Path) -> None:
    rows = [('a,"b"', 0.0, 1.0, None, None)]
    write_trace(tmp_path / "q.csv", rows)
    assert list(TraceFile(tmp_path / "q.csv")) == rows


def test_trace_from_rows_checks_rows_like_a_file() -> None:
    with pytest.raises(TraceError, match="line 2, field 'service'"):
        Trace.from_rows([("a", 0.0, 1.0, None, None), ("a", 1.0, -1.0, None, None)])


def test_reading_a_file_streams_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_trace(path, poisson(200_000, rate=10.0, keys=100, zipf=1.0, seed=1))
    tracemalloc.start()
    try:
        count = sum(1 for _ in TraceFile(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    # Holding the rows would take well over 20 MB; a streaming read stays near one buffer.
    assert peak < 2_000_000, peak


def test_real_azure_functions_trace_reads_whole() -> None:
    trace = Trace.load(real_trace("azure_functions_2021/azure_functions_2021.fairsched.csv"))
    assert len(trace) == 998
    assert len(set(trace.keys)) == 21
    assert trace.columns() == ("key", "arrival", "service")
