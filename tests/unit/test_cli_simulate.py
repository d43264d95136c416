"""`fairsched simulate`: tables, csv, json, plots, and clear errors for bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import simulator
from fairsched._cli_tables import time_unit
from fairsched.cli import main
from policies import parse_spec
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


# ---- per-key output, units, model options, parallel runs, replicates and seeds -------------

SAMPLE = str(DATA / "simulator_sample.csv")
#: Seconds per unit of the table's time columns.
UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "h": 3600.0, "d": 86400.0}


def parse_tables(text: str) -> list[tuple[str, list[dict[str, str]]]]:
    """Every table in `text`: (the line above it, rows as {header: cell}).

    Columns are found from the dashes under the header, so headers may hold spaces.
    """
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if not line or set(line) - {"-", " "}:
            continue
        spans, at = [], 0
        for dashes in line.split("  "):
            spans.append((at, at + len(dashes)))
            at += len(dashes) + 2
        header = [lines[i - 1][a:b].strip() for a, b in spans]
        rows = []
        for row in lines[i + 1 :]:
            if not row.strip():
                break
            rows.append(dict(zip(header, (row[a:b].strip() for a, b in spans), strict=True)))
        tables.append((lines[i - 2] if i >= 2 else "", rows))
    return tables


def seconds(table_row: dict[str, str], title: str) -> float:
    """The value of time column `title` in seconds, whatever unit its header names."""
    (header,) = [h for h in table_row if h.startswith(f"{title} (")]
    unit = header[len(title) + 2 : -1]
    return float(table_row[header]) * UNIT_SECONDS[unit]


def api_run(trace: Any, spec: str, **options: Any) -> simulator.RunResult:
    config = None if spec == "fifo" else parse_spec(spec)
    return simulator.simulate(trace, config, name=spec, **options)


def test_per_key_table_has_a_block_per_policy_with_units_in_the_headers() -> None:
    code, out, _ = run(SAMPLE, "--workers", "2", "--policy", "lru", "--policy", "drr", "--per-key")
    assert code == 0, out
    tables = parse_tables(out)
    assert [title for title, _ in tables[1:]] == ["lru: per key", "drr: per key"]
    for (title, rows), spec in zip(tables[1:], ["lru", "drr"], strict=True):
        result = api_run(Path(SAMPLE), spec, workers=2)
        assert [r["key"] for r in rows] == [k.key for k in result.per_key]
        for row, stats in zip(rows, result.per_key, strict=True):
            assert int(row["tasks"]) == stats.count
            for title, field in [
                ("wait mean", "wait_mean"),
                ("p99", "wait_p99"),
                ("max", "wait_max"),
            ]:
                assert seconds(row, title) == pytest.approx(getattr(stats, field), abs=0.06)
            assert seconds(row, "p99") <= seconds(row, "max")
    # Waits of seconds at most: milliseconds.
    header = out.splitlines()[0]
    assert "wait mean (ms)" in header and "p95 (ms)" in header


def test_per_key_csv_matches_the_python_api() -> None:
    args = [SAMPLE, "--workers", "2", "--policy", "drr:quantum=2", "--policy", "fifo"]
    code, out, _ = run(*args, "--per-key", "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    for spec in ("drr:quantum=2", "fifo"):
        result = api_run(Path(SAMPLE), spec, workers=2)
        classes = simulator.key_classes(result)
        mine = [r for r in rows if r["label"] == spec]
        assert [r["key"] for r in mine] == [k.key for k in result.per_key]
        for row, stats in zip(mine, result.per_key, strict=True):
            assert row["class"] == classes[stats.key]
            for field in ("count", "expired", "wait_mean", "wait_p50", "wait_p95", "wait_p99"):
                assert float(row[field]) == getattr(stats, field), field
            for field in ("wait_max", "slowdown_mean", "share", "first_service", "service"):
                assert float(row[field]) == getattr(stats, field), field
            assert float(row["wait_p99"]) <= float(row["wait_max"])


def test_per_key_json_nests_the_keys_under_each_policy() -> None:
    code, out, _ = run(SAMPLE, "--policy", "lru", "--per-key", "--format", "json")
    assert code == 0, out
    (entry,) = json.loads(out)
    result = api_run(Path(SAMPLE), "lru")
    assert entry["wait_mean"] == result.wait_mean
    assert [k["key"] for k in entry["per_key"]] == [k.key for k in result.per_key]
    for row, stats in zip(entry["per_key"], result.per_key, strict=True):
        assert row["wait_p95"] == stats.wait_p95
        assert row["first_service"] == stats.first_service
        assert row["share"] == stats.share
        assert "wait_histogram" not in row


@pytest.mark.parametrize(
    ("values", "unit"),
    [
        ([0.0004, 0.2, 9.99], "ms"),
        ([0.5, 10.0], "s"),
        ([9_999.0], "s"),
        ([10_000.0, 3.0], "h"),
        ([240 * 3600.0], "d"),
        ([float("nan"), float("inf")], "ms"),
        ([], "ms"),
    ],
)
def test_a_time_column_takes_the_unit_of_its_largest_value(values: list[float], unit: str) -> None:
    assert time_unit(values)[0] == unit


def test_hour_long_waits_are_printed_in_hours(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("key,arrival,service\n" + "k,0,100\n" * 400, encoding="utf-8")
    code, out, _ = run(str(path), "--policy", "fifo", "--per-key")
    assert code == 0, out
    (_, summary), (_, keys) = parse_tables(out)
    assert "max (h)" in summary[0] and "p50 (h)" in summary[0]
    assert seconds(summary[0], "max") == pytest.approx(39_900, abs=36)
    assert seconds(keys[0], "wait mean") == pytest.approx(19_950, abs=36)


def test_p99_never_exceeds_max_in_the_printed_tables() -> None:
    code, out, _ = run(str(real_trace(AZURE)), "--workers", "4", "--per-key", "--jobs", "1")
    assert code == 0, out
    tables = parse_tables(out)
    assert len(tables) == 6
    for _, rows in tables:
        for row in rows:
            assert seconds(row, "p50") <= seconds(row, "p95") <= seconds(row, "p99")
            assert seconds(row, "p99") <= seconds(row, "max")


def test_parallel_runs_print_exactly_what_serial_runs_print() -> None:
    args = [str(real_trace(AZURE)), "--workers", "4", "--per-key", "--format", "csv"]
    code, serial, _ = run(*args, "--jobs", "1")
    assert code == 0, serial
    code, parallel, _ = run(*args, "--jobs", "2")
    assert code == 0, parallel
    assert parallel == serial


def test_model_options_reach_the_simulator() -> None:
    model = {
        "dispatch": "window",
        "overhead": 0.01,
        "latency": 0.005,
        "loop": "closed",
        "starvation_factor": 5.0,
    }
    code, out, _ = run(
        SAMPLE,
        "--policy",
        "drr",
        "--workers",
        "2",
        "--dispatch",
        "window",
        "--overhead",
        "0.01",
        "--latency",
        "0.005",
        "--loop",
        "closed",
        "--starvation-factor",
        "5",
        "--format",
        "json",
    )
    assert code == 0, out
    (entry,) = json.loads(out)
    assert {k: entry[k] for k in model} == model
    assert entry["window"] == 4
    result = api_run(Path(SAMPLE), "drr", workers=2, **model)
    assert entry["wait_mean"] == result.wait_mean
    assert entry["starvation_episodes"] == result.starvation_episodes
    code, out, _ = run(SAMPLE, "--policy", "drr", "--starvation", "0.5", "--format", "json")
    assert json.loads(out)[0]["starvation_threshold"] == 0.5


def test_help_says_what_the_dispatch_modes_are() -> None:
    code, out, _ = run("--help")
    assert code == 0
    text = " ".join(out.split())
    assert "window = --workers" in text
    assert "window = 2 x --workers" in text


def poisson_file(tmp_path: Path, n: int = 1500) -> Path:
    path = tmp_path / "poisson.csv"
    simulator.write_trace(path, simulator.poisson(n, rate=1.6, keys=5, zipf=1.0, seed=7))
    return path


def test_replicates_print_a_mean_and_an_interval_per_policy(tmp_path: Path) -> None:
    path = poisson_file(tmp_path)
    args = [str(path), "--workers", "2", "--policy", "fifo", "--policy", "drr"]
    code, out, _ = run(*args, "--replicates", "8", "--block", "50")
    assert code == 0, out
    assert out.startswith("mean [95% confidence interval] over 8 block-bootstrap replicates")
    ((_, rows),) = parse_tables(out)
    assert [r["policy"] for r in rows] == ["fifo", "drr"]
    for row in rows:
        assert row["runs"] == "8"
        cell = next(v for h, v in row.items() if h.startswith("wait mean"))
        mean, low, high = (
            float(x) for x in cell.replace("[", "").replace("]", "").replace(",", "").split()
        )
        assert low <= mean <= high
    code, out, _ = run(
        *args, "--replicates", "8", "--block", "50", "--format", "csv", "--jobs", "2"
    )
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    runs = simulator.replicate(path, "drr", replicates=8, block=50.0, workers=2, name="drr")
    expected = simulator.confidence([r.wait_mean for r in runs])
    (drr,) = [r for r in rows if r["label"] == "drr"]
    assert (drr["method"], float(drr["level"])) == ("percentile", 0.95)
    got = tuple(float(drr[f"wait_mean{s}"]) for s in ("", "_low", "_high"))
    assert got == expected
    assert float(drr["contention_share_low"]) <= float(drr["contention_share_high"])
    code, out, _ = run(*args, "--replicates", "8", "--block", "50", "--format", "json")
    assert code == 0, out
    entry = json.loads(out)[1]
    assert entry["runs"] == 8
    assert (
        entry["metrics"]["wait_mean"]["mean"],
        entry["metrics"]["wait_mean"]["low"],
    ) == expected[:2]


def test_seeds_of_a_generated_workload_give_a_t_interval() -> None:
    spec = "poisson:n=300,rate=0.8,keys=3"
    code, out, _ = run(
        "--workload", spec, "--policy", "lru", "--seeds", "4", "--seed", "3", "--format", "json"
    )
    assert code == 0, out
    (entry,) = json.loads(out)
    assert (entry["runs"], entry["method"]) == (4, "t")
    workload = simulator.seeded(simulator.poisson, n=300, rate=0.8, keys=3)
    runs = simulator.seeds(workload, "lru", 4, seed=3)
    mean, low, high = simulator.confidence([r.wait_mean for r in runs], method="t")
    metric = entry["metrics"]["wait_mean"]
    assert (metric["mean"], metric["low"], metric["high"]) == (mean, low, high)
    assert low < mean < high


def test_a_generated_workload_runs_once_without_seeds() -> None:
    code, out, _ = run(
        "--workload",
        "flood:burst=200,light_keys=3",
        "--seed",
        "2",
        "--policy",
        "drr",
        "--per-key",
        "--format",
        "json",
    )
    assert code == 0, out
    (entry,) = json.loads(out)
    result = api_run(simulator.Trace.from_rows(simulator.flood(200, light_keys=3, seed=2)), "drr")
    assert entry["wait_mean"] == result.wait_mean
    assert {k["key"] for k in entry["per_key"]} == {"flood", "user0", "user1", "user2"}
    assert {k["key"]: k["class"] for k in entry["per_key"]}["flood"] == "heavy"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([SAMPLE, "--workload", "poisson:n=10,rate=1"], "not both"),
        ([], "missing TRACE"),
        ([SAMPLE, "--seeds", "3"], "--seeds needs --workload"),
        ([SAMPLE, "--replicates", "3"], "--replicates needs --block"),
        ([SAMPLE, "--block", "3"], "--block only applies to --replicates"),
        (
            [
                "--workload",
                "poisson:n=10,rate=1",
                "--seeds",
                "3",
                "--replicates",
                "3",
                "--block",
                "1",
            ],
            "one or the other",
        ),
        ([SAMPLE, "--replicates", "3", "--block", "1", "--per-key"], "--per-key shows one run"),
        (
            ["--workload", "poisson:n=10,rate=1", "--seeds", "3", "--plot", "x.png"],
            "--plot draws one run",
        ),
        (["--workload", "uniform"], "unknown workload 'uniform'"),
        (["--workload", "poisson:n=10,rate=1,speed=3"], "poisson takes no option 'speed'"),
        (["--workload", "poisson:n=10"], "poisson needs rate="),
        (["--workload", "diurnal"], "diurnal needs duration=, base_rate=, peak_rate="),
        (["--workload", "poisson:n=1.5,rate=1"], "n must be a whole number"),
        (["--workload", "poisson:n=10,rate=fast"], "rate must be a number"),
        (["--workload", "poisson:n=10,rate=inf"], "rate must be a finite number"),
        (["--workload", "poisson:n=10,rate=nan"], "rate must be a finite number"),
        (["--workload", "poisson:n=10,rate=-1"], "rate must be > 0"),
        (["--workload", "poisson:n=10,rate=1,service=weird"], "unknown service kind 'weird'"),
        (["--workload", "poisson:n=10,rate=1,seed=4"], "set the seed with --seed"),
        (["--workload", "poisson:n=10,rate=1,keys"], "expected k=v"),
        (["--workload", "poisson:n=0,rate=1"], "generates no task"),
        (["--workload", "poisson:n=10,rate=1,keys=0"], "keys must be >= 1"),
        (["--workload", "sybil:n=10,rate=1,honest_keys=0"], "honest_keys must be >= 1"),
        (
            ["--workload", "diurnal:duration=100,base_rate=1,peak_rate=2,period=0"],
            "diurnal cannot run with these options: ZeroDivisionError",
        ),
        (["--workload", "poisson:n=10,rate=1e308,mean_service=1e308"], "expected a finite number"),
        ([SAMPLE, "--replicates", "3", "--block", "1000"], "is not shorter than the trace"),
        ([SAMPLE, "--replicates", "3", "--block", "0"], "--block"),
        ([SAMPLE, "--replicates", "3", "--block", "nan"], "--block"),
        ([SAMPLE, "--replicates", "3", "--block", "inf"], "--block"),
        ([SAMPLE, "--replicates", "1", "--block", "1"], "--replicates"),
        (["--workload", "poisson:n=10,rate=1", "--seeds", "1"], "--seeds"),
        ([SAMPLE, "--jobs", "0"], "--jobs"),
        ([SAMPLE, "--overhead", "-1"], "--overhead"),
        ([SAMPLE, "--overhead", "nan"], "--overhead"),
        ([SAMPLE, "--latency", "inf"], "--latency"),
        ([SAMPLE, "--dispatch", "eager"], "--dispatch"),
        ([SAMPLE, "--loop", "half"], "--loop"),
        ([SAMPLE, "--starvation-factor", "0"], "--starvation-factor"),
        ([SAMPLE, "--starvation-factor", "nan"], "--starvation-factor"),
        ([SAMPLE, "--seed", "x"], "--seed"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], words: str) -> None:
    code, out, err = run(*args)
    assert code == 2, out + err
    assert words in err
    assert "Traceback" not in out + err


def test_a_bad_trace_fails_alike_serial_parallel_and_resampled(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("key,arrival,service\na,0,1\nb,zero,1\n", encoding="utf-8")
    expected = f"Error: bad trace: {bad}, line 3, field 'arrival'"
    for extra in (["--jobs", "1"], ["--jobs", "2"], ["--replicates", "3", "--block", "1"]):
        code, out, err = run(str(bad), *extra)
        assert_one_clean_error(code, out, err, expected)
