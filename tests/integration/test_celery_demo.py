"""`fairsched demo` runs with no services (and with --redis), and shows the fair run winning."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fairsched.cli import main

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
