"""`fairsched simulate`: tables, csv, json, plots, and clear errors for bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import simulator
from fairsched.cli import main
from tests.servers import real_trace, unavailable
from tests.unit.test_trace_bounds import HEADER, MALFORMED, write_case

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
AZURE = "azure_functions_2021/azure_functions_2021.fairsched.csv"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["simulate", *args])
    # Any exception but click's own exit would have been a traceback for the user.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_clean_error(code: int, out: str, err: str, words: str) -> None:
    assert code == 1, out + err
    assert words in err
    assert err.count("Error:") == 1
    assert "Traceback" not in out + err
    assert "Aborted!" not in out + err


def test_table_compares_the_baseline_and_every_built_in_policy() -> None:
    code, out, _ = run(str(DATA / "simulator_sample.csv"), "--workers", "2")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["policy", "done", "expired"]
    labels = [line.split()[0] for line in lines[2:]]
    assert labels == ["fifo", "lru", "weighted_lru", "drr", "expiry_aware"]
    assert all(line.split()[1] == "10" for line in lines[2:])


def test_csv_and_json_carry_the_same_numbers() -> None:
    trace = str(DATA / "simulator_sample.csv")
    args = [trace, "--policy", "drr:quantum=2", "--policy", "lru", "--window", "inf"]
    code, out, _ = run(*args, "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    code, out, _ = run(*args, "--format", "json")
    assert code == 0, out
    parsed = json.loads(out)
    assert [r["label"] for r in rows] == [p["label"] for p in parsed] == ["drr:quantum=2", "lru"]
    assert float(rows[0]["wait_mean"]) == parsed[0]["wait_mean"]
    assert parsed[0]["window"] == "inf"


def test_plot_option_writes_a_png(tmp_path: Path) -> None:
    target = tmp_path / "cmp.png"
    code, out, err = run(str(DATA / "simulator_sample.jsonl"), "--plot", str(target))
    assert code == 0, out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot written" in err


def test_bad_trace_gives_a_message_naming_the_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("key,arrival,service\na,0,1\nb,zero,1\n", encoding="utf-8")
    code, out, err = run(str(bad))
    assert code == 1
    assert f"{bad}, line 3, field 'arrival'" in err
    assert "Traceback" not in out + err


def test_missing_trace_bad_policy_and_bad_window_fail_cleanly(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.csv"))
    assert code == 1
    assert "no such file" in err
    code, _, err = run(str(DATA / "simulator_sample.csv"), "--policy", "fastest")
    assert code == 1
    assert "unknown policy 'fastest'" in err
    code, _, err = run(str(DATA / "simulator_sample.csv"), "--window", "0")
    assert code == 2
    assert "--window" in err or "must be >= 1" in err


def test_progress_bar_on_request(tmp_path: Path) -> None:
    code, out, err = run(str(DATA / "simulator_sample.csv"), "--policy", "lru", "--progress")
    assert code == 0, out
    assert "lru" in err


def test_real_subprocess_on_a_real_trace(tmp_path: Path) -> None:
    trace = real_trace(AZURE)
    binary = REPO / ".venv" / "bin" / "fairsched"
    if not binary.exists():
        unavailable(f"{binary} is not installed")
    png = tmp_path / "azure.png"
    done = subprocess.run(
        [str(binary), "simulate", str(trace), "--workers", "4", "--plot", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert set(rows) == {"fifo", "lru", "weighted_lru", "drr", "expiry_aware"}
    assert all(r[1] == "998" for r in rows.values())
    # DRR shields the light Azure apps: its median wait is far below FIFO's.
    assert float(rows["drr"][4]) < float(rows["fifo"][4]) / 2
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_trace_prints_one_error_naming_file_and_line(tmp_path: Path, case: str) -> None:
    path, line, words = write_case(tmp_path, case)
    code, out, err = run(str(path))
    assert_one_clean_error(code, out, err, f"Error: bad trace: {path}, line {line}")
    assert words in err


def test_truncated_gzip_in_a_real_process_is_an_error_not_aborted(tmp_path: Path) -> None:
    binary = REPO / ".venv" / "bin" / "fairsched"
    if not binary.exists():
        unavailable(f"{binary} is not installed")
    path = tmp_path / "cut.csv.gz"
    whole = gzip.compress(HEADER + b"".join(b"k,%d,1\n" % i for i in range(5_000)))
    path.write_bytes(whole[: len(whole) // 2])
    done = subprocess.run(
        [str(binary), "simulate", str(path), "--policy", "lru"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: bad trace: {path}, line ")
    assert "compressed data is truncated" in done.stderr
    assert "Traceback" not in done.stderr and "Aborted!" not in done.stderr


@pytest.mark.parametrize("value", ["nan", "NaN", "-nan", "0", "-1"])
def test_starvation_must_be_a_positive_number_of_seconds(value: str) -> None:
    code, out, err = run(str(DATA / "simulator_sample.csv"), "--starvation", value)
    assert code == 2, out
    assert "Invalid value for '--starvation'" in err
    assert "Traceback" not in out + err


def test_starvation_inf_counts_no_episode() -> None:
    code, out, _ = run(
        str(DATA / "simulator_sample.csv"),
        "--policy",
        "lru",
        "--starvation",
        "inf",
        "--format",
        "json",
    )
    assert code == 0, out
    assert json.loads(out)[0]["starvation_episodes"] == 0


def test_plot_into_a_missing_folder_fails_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation ran")

    monkeypatch.setattr(simulator, "simulate", never)
    code, out, err = run(str(DATA / "simulator_sample.csv"), "--plot", "/nonexistent/dir/x.png")
    assert_one_clean_error(
        code, out, err, "Error: --plot: folder '/nonexistent/dir' does not exist"
    )
    code, out, err = run(
        str(DATA / "simulator_sample.csv"), "--plot", str(tmp_path / "a" / "b.png")
    )
    assert_one_clean_error(code, out, err, "does not exist")


@pytest.mark.parametrize("value", ["inf", "INF", " Infinity ", "+inf", "unbounded"])
def test_window_accepts_every_spelling_of_unbounded(value: str) -> None:
    code, out, _ = run(
        str(DATA / "simulator_sample.csv"), "--policy", "lru", "--window", value, "--format", "json"
    )
    assert code == 0, out
    assert json.loads(out)[0]["window"] == "inf"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("nan", "expected a whole number or 'inf'"),
        ("NaN", "expected a whole number or 'inf'"),
        ("-inf", "expected a whole number or 'inf'"),
        ("1.5", "expected a whole number or 'inf'"),
        ("1e3", "expected a whole number or 'inf'"),
        ("0", "must be >= 1"),
        ("-3", "must be >= 1"),
        ("1" + "0" * 400, "too large; use 'inf'"),
    ],
)
def test_window_refuses_nan_negatives_and_overflow(value: str, words: str) -> None:
    code, out, err = run(str(DATA / "simulator_sample.csv"), "--window", value)
    assert code == 2, out
    assert "Invalid value for '--window'" in err
    assert words in err
    assert "Traceback" not in out + err


def test_workers_beyond_the_cap_are_a_usage_error() -> None:
    code, out, err = run(str(DATA / "simulator_sample.csv"), "--workers", "1000000000")
    assert code == 2, out
    assert "Invalid value for '--workers'" in err
