"""`fairsched simulate`: tables, csv, json, plots, and clear errors for bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

from click.testing import CliRunner

from fairsched.cli import main
from tests.servers import real_trace, unavailable

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
AZURE = "azure_functions_2021/azure_functions_2021.fairsched.csv"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


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
