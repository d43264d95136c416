"""The bounded wait histogram: relative error under SKETCH_ERROR, floor and cap, bounded size."""

from __future__ import annotations

import math
import random

import pytest

from simulator import Trace, poisson, simulate
from simulator._metrics import (
    MAX_BIN,
    MIN_BIN,
    SKETCH_ERROR,
    WAIT_CAP,
    WAIT_FLOOR,
    KeyAccumulator,
    bin_value,
    quantiles,
)


def test_sketch_error_is_under_half_a_percent() -> None:
    assert SKETCH_ERROR < 0.005


def test_every_wait_between_floor_and_cap_is_reported_within_the_sketch_error() -> None:
    rng = random.Random(11)
    acc = KeyAccumulator()
    waits = [math.exp(rng.uniform(math.log(WAIT_FLOOR), math.log(WAIT_CAP))) for _ in range(3000)]
    for wait in waits:
        single = KeyAccumulator()
        single.count_wait(wait)
        ((index, count),) = single.histogram().items()
        assert count == 1
        assert abs(bin_value(index) - wait) <= SKETCH_ERROR * wait * (1 + 1e-12)
        acc.count_wait(wait)
    waits.sort()
    for q in (0.01, 0.5, 0.9, 0.99, 1.0):
        exact = waits[max(1, math.ceil(q * len(waits))) - 1]
        (got,) = quantiles(0, acc.histogram(), (q,))
        assert got == pytest.approx(exact, rel=SKETCH_ERROR * (1 + 1e-9))


def test_tiny_and_huge_waits_share_the_end_bins_so_size_is_bounded() -> None:
    acc = KeyAccumulator()
    for wait in (1e-300, 1e-12, 1e-9, WAIT_FLOOR, 1e9, 1e30, 1e300):
        acc.count_wait(wait)
    bins = acc.histogram()
    assert set(bins) == {MIN_BIN, MAX_BIN}
    assert bins[MIN_BIN] == 4
    assert bins[MAX_BIN] == 3
    assert bin_value(MIN_BIN) <= WAIT_FLOOR * (1 + SKETCH_ERROR)
    assert len(acc.bins) <= MAX_BIN - MIN_BIN + 1
    # Below the floor the error is absolute: under WAIT_FLOOR.
    assert abs(bin_value(MIN_BIN) - 1e-12) < WAIT_FLOOR


def test_histogram_array_covers_only_the_bins_a_key_used() -> None:
    trace = Trace.from_rows(poisson(20_000, rate=0.9, keys=3, seed=2))
    result = simulate(trace, "drr")
    for stats in result.per_key:
        counted = sum(count for _, count in stats.wait_histogram)
        assert counted == stats.count
