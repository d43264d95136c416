"""`fairsched demo` runs with no services (and with --redis), and shows the fair run winning;
bad sizes are usage errors and a Redis password never reaches the output."""

from __future__ import annotations

import json
import logging
import math
import time

import pytest
from click.testing import CliRunner

from fairsched._cli_demo import run_demo
from fairsched._urls import redact_url
from fairsched.cli import main
from fairsched.errors import ConfigurationError

SMALL = ["--bulk", "150", "--interactive", "8", "--service-ms", "10", "--gap-ms", "50", "--json"]


def run(*extra: str) -> dict[str, dict[str, float]]:
    result = CliRunner().invoke(main, ["demo", *SMALL, *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures: dict[str, dict[str, float]] = json.loads(result.output.strip().splitlines()[-1])
    print(figures)
    return figures


def test_demo_fair_run_cuts_the_interactive_p95_wait():
    figures = run()
    assert figures["fair"]["p95_ms"] < figures["plain"]["p95_ms"] / 3
    assert figures["plain"]["p95_ms"] > 200  # the flood really delays plain delay


@pytest.mark.redis
def test_demo_runs_against_redis(redis_url):
    figures = run("--redis", redis_url)
    assert figures["fair"]["p95_ms"] < figures["plain"]["p95_ms"] / 3


def test_demo_table_output_names_both_runs():
    result = CliRunner().invoke(
        main,
        ["demo", "--bulk", "20", "--interactive", "2", "--service-ms", "5", "--gap-ms", "10"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for word in ("delay", "lru_delay", "p50", "p95", "max"):
        assert word in result.output


def never_started(*args, **kwargs):
    raise AssertionError("the demo started")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--service-ms", "nan"),
        ("--service-ms", "inf"),
        ("--service-ms", "-1"),
        ("--service-ms", "10001"),
        ("--gap-ms", "nan"),
        ("--gap-ms", "-inf"),
        ("--bulk", "-1"),
        ("--bulk", "100001"),
        ("--bulk", "1e3"),
        ("--interactive", "0"),
        ("--concurrency", "0"),
        ("--concurrency", "65"),
    ],
)
def test_demo_refuses_a_bad_size_as_a_usage_error_without_starting(monkeypatch, option, value):
    monkeypatch.setattr("fairsched._cli_demo.run_demo", never_started)
    result = CliRunner().invoke(main, ["demo", option, value])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "sizes",
    [
        {"service_ms": math.nan},
        {"gap_ms": math.inf},
        {"bulk": -1},
        {"bulk": 2.5},
        {"interactive": 0},
        {"concurrency": True},
    ],
)
def test_run_demo_refuses_a_bad_size_before_building_an_app(monkeypatch, sizes):
    monkeypatch.setattr("fairsched._cli_demo._demo_app", never_started)
    name = next(iter(sizes))
    with pytest.raises(ConfigurationError, match=f"{name} must be between"):
        run_demo(**sizes, progress=False)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:1/0",
        "redis://worker:hunter2@127.0.0.1:1/0",
        "redis://hunter2@127.0.0.1:1/0",
        "redis://127.0.0.1:1/0?password=hunter2",
    ],
)
def test_demo_against_unreachable_redis_fails_cleanly_and_hides_the_password(capfd, caplog, url):
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["demo", "--bulk", "5", "--interactive", "1", "--redis", url])
    captured = capfd.readouterr()
    seen = result.output + captured.out + captured.err + caplog.text
    assert result.exit_code == 1, seen
    assert isinstance(result.exception, SystemExit)
    assert "hunter2" not in seen
    assert f"Redis at {redact_url(url)}." in result.output
    assert f"Error: cannot reach Redis at {redact_url(url)}: " in result.output
    assert "Connection refused" in result.output
    assert "Traceback" not in seen
    assert time.monotonic() - started < 20  # refused before any worker starts
