"""Validation against closed forms: M/M/1, M/M/c (Erlang C) and M/D/1 mean wait in queue.

One key, so every policy serves in arrival order. The tolerance comes from the run itself:
waits are cut into 20 batches after a warm-up, and the simulated mean must lie within 4
standard errors of the batch means (about a 1-in-15,000 false alarm for independent batches).
With 100,000 tasks, at utilisation 0.9 that is roughly +-21% of the formula; a wrong worker
count, a wrong tie rule or a wrong service draw moves the mean far further than that.
"""

from __future__ import annotations

import math
import statistics

import pytest

from simulator import Trace, poisson, simulate

TASKS = 100_000
BATCHES = 20


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c, offered load `offered` = lambda / mu."""
    rho = offered / servers
    tail = offered**servers / math.factorial(servers) / (1 - rho)
    head = sum(offered**k / math.factorial(k) for k in range(servers))
    return tail / (head + tail)


def expected_wait(model: str, servers: int, rho: float) -> float:
    """Mean wait in queue with mean service 1 (mu = 1)."""
    if model == "M/D/1":
        return rho / (2 * (1 - rho))
    lam = rho * servers
    return erlang_c(servers, lam) / (servers - lam)


def batch_interval(waits: list[float]) -> tuple[float, float]:
    """Mean and standard error by batch means, dropping the first 2% as warm-up."""
    kept = waits[len(waits) // 50 :]
    size = len(kept) // BATCHES
    means = [statistics.fmean(kept[i * size : (i + 1) * size]) for i in range(BATCHES)]
    return statistics.fmean(means), statistics.stdev(means) / math.sqrt(BATCHES)


CASES = [
    (model, servers, rho)
    for model, servers in (("M/M/1", 1), ("M/M/c", 4), ("M/D/1", 1))
    for rho in (0.5, 0.7, 0.9)
]


@pytest.mark.parametrize(("model", "servers", "rho"), CASES)
def test_mean_wait_matches_the_closed_form(model: str, servers: int, rho: float) -> None:
    kind = "det" if model == "M/D/1" else "exp"
    seed = int(rho * 10) * 7 + servers
    trace = Trace.from_rows(poisson(TASKS, rate=rho * servers, service=kind, seed=seed))
    result = simulate(trace, "drr", workers=servers, record=True)
    records = result.records or ()
    waits = [r.started - r.arrival for r in sorted(records, key=lambda r: r.arrival)]
    mean, stderr = batch_interval(waits)
    theory = expected_wait(model, servers, rho)
    assert abs(mean - theory) <= 4 * stderr, (model, rho, mean, theory, stderr)
    # The interval is informative: no wider than a third of the value it checks.
    assert 4 * stderr < theory / 3


def test_erlang_c_reduces_to_m_m_1() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert expected_wait("M/M/c", 1, 0.7) == pytest.approx(0.7 / 0.3)


def test_a_miscounted_server_would_be_caught() -> None:
    # The same 4-server trace run on 3 workers is far outside the 4-server interval.
    trace = Trace.from_rows(poisson(60_000, rate=0.7 * 4, seed=99))
    result = simulate(trace, "lru", workers=3)
    assert result.wait_mean > 3 * expected_wait("M/M/c", 4, 0.7)
