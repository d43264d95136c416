"""The metrics on hand-worked runs: first service, shares, bounded slowdown, starvation
relative to demand, contention share and Jain's index per interval, percentile consistency."""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import pytest

from simulator import FairnessPoint, Row, RunResult, Shares, Trace, poisson, simulate


def row(key: str, at: float, service: float) -> Row:
    return (key, at, service, None, None)


def run(rows: list[Row], policy: Any = None, **options: Any) -> RunResult:
    return simulate(Trace.from_rows(rows), policy, **options)


# ---- first service and shares -----------------------------------------------------------------


def test_first_service_is_the_time_from_a_keys_first_arrival_to_its_first_start() -> None:
    # FIFO, 1 worker: a runs 0..2; b arrives at 0.5 and starts at 2.
    result = run([row("a", 0.0, 2.0), row("b", 0.5, 1.0), row("b", 0.6, 1.0)])
    assert result.key("a").first_service == 0.0
    assert result.key("b").first_service == 1.5
    assert result.first_service_mean == 0.75
    assert result.first_service_max == 1.5


def test_first_service_is_nan_for_a_key_that_never_started() -> None:
    rows = [("a", 0.0, 5.0, None, None), ("b", 0.0, 1.0, 1.0, None)]  # b expires at 5
    result = run(rows, "lru")
    assert math.isnan(result.key("b").first_service)
    assert result.first_service_mean == 0.0  # over the keys that started


def test_share_is_each_keys_fraction_of_the_service_delivered() -> None:
    result = run([row("a", 0.0, 2.0), row("b", 0.0, 1.0), row("a", 1.0, 1.0)])
    assert result.key("a").share == pytest.approx(3 / 4)
    assert result.key("b").share == pytest.approx(1 / 4)


# ---- bounded slowdown --------------------------------------------------------------------------


def test_bounded_slowdown_floors_the_denominator_at_tau() -> None:
    # FIFO, 1 worker: a runs 0..0.5; b (1 ms) waits 0.5 s; c (1 ms, arrived 0.4995) waits
    # 1.5 ms.
    result = run([row("a", 0.0, 0.5), row("b", 0.0, 0.001), row("c", 0.4995, 0.001)])
    assert result.slowdown_tau == 0.01
    assert result.key("a").bounded_slowdown == 1.0
    # b: (0.5 + 0.001) / max(0.001, 0.01) = 50.1, where the plain slowdown is 501.
    assert result.key("b").bounded_slowdown == pytest.approx(50.1)
    assert result.key("b").slowdown_mean == pytest.approx(501.0)
    # c: (0.0015 + 0.001) / 0.01 = 0.25, raised to 1; its plain slowdown is 2.5.
    assert result.key("c").bounded_slowdown == pytest.approx(1.0)
    assert result.key("c").slowdown_mean == pytest.approx(2.5)
    assert result.bounded_slowdown_mean == pytest.approx((1 + 50.1 + 1) / 3)


def test_bounded_slowdown_equals_slowdown_when_every_task_is_longer_than_tau() -> None:
    trace = Trace.from_rows(poisson(2000, rate=1.9, keys=4, service="det", seed=2))
    result = simulate(trace, "lru", workers=2)
    assert result.bounded_slowdown_mean == pytest.approx(result.slowdown_mean, rel=1e-12)
    assert result.bounded_slowdown_mean > 1.5
    # A larger tau caps the slowdown of short tasks: a wait of w adds w / tau.
    capped = simulate(trace, "lru", workers=2, slowdown_tau=1000.0)
    assert capped.bounded_slowdown_mean == pytest.approx(1.0)
    assert max(k.bounded_slowdown for k in capped.per_key) == pytest.approx(1.0, rel=1e-12)


def test_slowdown_tau_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slowdown_tau"):
        run([row("a", 0.0, 1.0)], slowdown_tau=0.0)


# ---- starvation relative to demand -------------------------------------------------------------


def flood_then_light(tasks: int) -> list[Row]:
    return [row("flood", 0.0, 1.0)] * tasks + [row("light", 0.5, 1.0)]


def test_relative_starvation_counts_a_stretch_past_ten_fair_gaps() -> None:
    # FIFO, 1 worker. light becomes backlogged at 0.5 with flood: 2 keys backlogged, mean
    # service of the tasks started so far 1 s, so its fair gap is 2 x 1 / 1 = 2 s and it may
    # wait 20 s. Behind 30 flood tasks it waits 29.5 s: one episode.
    result = run(flood_then_light(30))
    assert result.key("light").starvation_episodes == 1
    assert result.key("light").longest_gap == 29.5
    assert result.key("flood").starvation_episodes == 0
    assert result.starvation_episodes == 1
    assert result.starved_tasks_fraction == pytest.approx(1 / 31)
    assert math.isnan(result.starvation_threshold)
    assert result.starvation_factor == 10.0


def test_relative_starvation_spares_a_wait_within_ten_fair_gaps() -> None:
    # Behind 20 flood tasks light waits 19.5 s < 20 s.
    assert run(flood_then_light(20)).starvation_episodes == 0
    # A smaller factor is stricter: 5 fair gaps = 10 s.
    assert run(flood_then_light(20), starvation_factor=5.0).starvation_episodes == 1


def test_relative_starvation_scales_with_workers() -> None:
    # 2 workers: flood takes both, light's fair gap is 2 x 1 / 2 = 1 s, limit 10 s; it waits
    # for 30 / 2 - 0.5 = 14.5 s.
    result = run(flood_then_light(30), workers=2)
    assert result.key("light").starvation_episodes == 1
    assert result.key("light").longest_gap == 14.5


def test_a_fair_policy_does_not_starve_the_light_key() -> None:
    result = run(flood_then_light(30), "lru")
    assert result.starvation_episodes == 0
    assert result.starved_tasks_fraction == 0.0


def test_an_absolute_threshold_keeps_the_former_rule() -> None:
    result = run(flood_then_light(30), starvation_after=25.0)
    assert result.starvation_threshold == 25.0
    assert math.isnan(result.starvation_factor)
    assert result.key("light").starvation_episodes == 1
    assert run(flood_then_light(30), starvation_after=30.0).starvation_episodes == 0


@pytest.mark.parametrize(
    "options",
    [{"starvation_factor": 0.0}, {"starvation_factor": math.inf}, {"starvation_after": 0}],
)
def test_starvation_settings_are_checked(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="starvation"):
        run([row("a", 0.0, 1.0)], **options)


# ---- contention share and Jain's index per interval ------------------------------------------


def two_floods() -> list[Row]:
    # a dumps 25 one-second tasks at 0, then b 15; 1 worker, 10 s intervals.
    return [row("a", 0.0, 1.0)] * 25 + [row("b", 0.0, 1.0)] * 15


def point(result: RunResult, start: float) -> FairnessPoint:
    (found,) = [p for p in result.timeline if p.start == start]
    return found


def test_fifo_deprives_a_key_backlogged_for_the_whole_interval() -> None:
    result = run(two_floods(), timeline_step=10.0)
    # [0, 10): nobody was backlogged before it began, so nobody counts as contended.
    first = point(result, 0.0)
    assert first.contended == 0
    assert math.isnan(first.contention_share) and math.isnan(first.jain)
    # [10, 20): both backlogged throughout; a got all 10 s, b none.
    second = point(result, 10.0)
    assert second.contended == 2
    assert second.received == {"a": 1.0, "b": 0.0}
    assert second.entitled == {"a": 0.5, "b": 0.5}
    assert second.contention_share == 0.0
    assert second.jain == pytest.approx(0.5)  # ratios 2 and 0
    # [20, 30): a's backlog empties at 24, so only b counts: fewer than 2, no value.
    assert point(result, 20.0).contended == 1
    assert result.contention_share == 0.0
    assert result.contention_share_min == 0.0
    assert result.jain_share == pytest.approx(0.5)


def test_a_fair_policy_gives_both_keys_their_entitlement() -> None:
    result = run(two_floods(), "lru", timeline_step=10.0)
    second = point(result, 10.0)
    assert second.contended == 2
    assert second.received == {"a": 0.5, "b": 0.5}
    assert second.contention_share == 1.0
    assert second.jain == 1.0
    assert result.contention_share == 1.0
    assert result.jain_share == 1.0


def test_entitlement_follows_the_weights() -> None:
    policy = {"policy": "weighted_lru", "weights": {"a": 3.0}}
    rows = [row("a", 0.0, 1.0)] * 40 + [row("b", 0.0, 1.0)] * 40
    result = run(rows, policy, timeline_step=8.0)
    contended = [p for p in result.timeline if p.contended == 2]
    assert contended
    for p in contended:
        assert p.entitled == {"a": 0.75, "b": 0.25}
        assert p.received == pytest.approx({"a": 0.75, "b": 0.25})
        assert p.contention_share == pytest.approx(1.0)
    assert contended[0].weights == {"a": 3.0}


def test_service_is_split_between_the_intervals_a_task_runs_in() -> None:
    result = run([row("a", 0.0, 25.0)], timeline_step=10.0)
    assert [p.service["a"] for p in result.timeline] == [10.0, 10.0, 5.0]
    assert [p.backlogged for p in result.timeline] == [1, 1, 1]


def test_a_key_backlogged_for_part_of_an_interval_is_not_counted_as_deprived() -> None:
    # b arrives at 15, in the middle of [10, 20), and is served at 35 (FIFO behind a and c).
    rows = [row("a", 0.0, 1.0)] * 30 + [row("c", 0.0, 1.0)] * 5 + [row("b", 15.0, 1.0)]
    result = run(rows, timeline_step=10.0)
    second = point(result, 10.0)
    assert "b" in second.keys
    assert second.received["b"] == 0.0
    # Contended: a (served) and c (backlogged since 0); b joined late and does not count.
    assert second.contended == 2
    assert second.contention_share == 0.0  # c got nothing


def test_shares_is_a_read_only_picklable_mapping() -> None:
    shares = Shares({"a": 0.5})
    assert dict(shares) == {"a": 0.5}
    assert pickle.loads(pickle.dumps(shares)) == shares
    assert copy.deepcopy(shares) == shares
    assert hash(shares) == hash(Shares({"a": 0.5}))
    with pytest.raises(TypeError):
        shares["a"] = 1.0  # type: ignore[index]


def test_results_with_undefined_values_still_compare_equal_and_copy() -> None:
    result = run(two_floods(), timeline_step=10.0)
    assert math.isnan(result.starvation_threshold)
    assert result == run(two_floods(), timeline_step=10.0)
    assert copy.deepcopy(result) == result
    assert pickle.loads(pickle.dumps(result)) == result


# ---- percentiles ------------------------------------------------------------------------------


def test_percentiles_never_exceed_the_exact_maximum() -> None:
    # b waits 0.5 us: the lowest histogram bin reports about 1 us, clamped to the max.
    result = run([row("a", 0.0, 1.0), row("b", 1.0 - 5e-7, 1.0)], workers=1)
    b = result.key("b")
    assert b.wait_max == pytest.approx(5e-7)
    assert b.wait_p50 == b.wait_p95 == b.wait_p99 == b.wait_max
    assert result.wait_p99 <= result.wait_max


def test_percentiles_are_ordered_and_clamped_for_a_wait_just_above_a_bin_value() -> None:
    # A wait of 1.004 s lies in the bin reported as 1.00497 s.
    result = run([row("a", 0.0, 1.004), row("b", 0.0, 1.0)], workers=1)
    b = result.key("b")
    assert b.wait_max == pytest.approx(1.004)
    assert b.wait_p99 == b.wait_max
    assert result.wait_p50 <= result.wait_p95 <= result.wait_p99 <= result.wait_max


def test_fairness_figures_do_not_depend_on_string_hashing() -> None:
    # Parallel runs happen in spawned processes, each with its own hash seed: set iteration
    # order must never reach a sum.
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from simulator import Trace, poisson, simulate\n"
        "t = Trace.from_rows(poisson(3000, rate=1.9, keys=30, zipf=1.0, seed=5))\n"
        "p = {'policy': 'weighted_lru', 'weights': {'k1': 3.0, 'k2': 0.5}}\n"
        "r = simulate(t, p, workers=2, timeline_step=20.0)\n"
        "print([(q.jain, q.contention_share, dict(q.received)) for q in r.timeline])\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
