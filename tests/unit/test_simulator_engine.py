"""The event engine: hand-worked runs, the simultaneity rule, windows, metrics, Little's law."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from policies import PolicyError
from simulator import Trace, TraceError, flood, jain, poisson, simulate, sybil
from simulator._metrics import quantiles

DATA = Path(__file__).resolve().parents[1] / "data"


def starts(result: object) -> list[tuple[str, float, float]]:
    records = result.records  # type: ignore[attr-defined]
    served = sorted((r for r in records if r.order >= 0), key=lambda r: r.order)
    return [(r.key, r.arrival, r.started) for r in served]


def test_lru_on_the_sample_trace_matches_a_hand_worked_schedule() -> None:
    result = simulate(DATA / "simulator_sample.csv", "lru", workers=1, record=True)
    # Worked by hand: never-served keys first (by first arrival), then least recently served.
    assert starts(result) == [
        ("alice", 0.0, 0.0),
        ("bulk", 0.0, 2.0),
        ("bob", 1.0, 3.0),
        ("carol", 3.0, 3.5),
        ("alice", 1.0, 5.0),
        ("bulk", 0.0, 6.0),
        ("bob", 3.0, 7.0),
        ("bulk", 0.0, 7.25),
        ("bulk", 0.5, 8.25),
        ("bulk", 2.0, 9.25),
    ]
    assert result.makespan == 12.25
    assert result.completed == result.tasks == 10
    assert result.utilisation == pytest.approx(12.25 / 12.25)
    bulk = result.key("bulk")
    assert bulk.count == 5
    assert bulk.wait_max == pytest.approx(7.75)
    assert bulk.wait_mean == pytest.approx((2 + 6 + 7.25 + 7.75 + 7.25) / 5)


def test_completions_go_before_arrivals_at_the_same_instant() -> None:
    # y1 runs 0..1 while y2 waits. At t=1 y1 finishes and z arrives. Completion first means
    # the dispatch at t=1 sees only y backlogged, so y2 goes before z; had z arrived first,
    # weighted LRU would give the fresh key z (tag 0 < y's tag 1) the slot.
    rows = [("y", 0.0, 1.0, None, None), ("y", 0.0, 1.0, None, None), ("z", 1.0, 1.0, None, None)]
    result = simulate(Trace.from_rows(rows), "weighted_lru", workers=1, record=True)
    assert starts(result) == [("y", 0.0, 0.0), ("y", 0.0, 1.0), ("z", 1.0, 2.0)]


def test_window_infinity_serves_in_arrival_order_whatever_the_policy() -> None:
    trace = Trace.from_rows(flood(100, light_keys=3, light_rate=0.8, duration=60, seed=1))
    fifo = simulate(trace, None, workers=2, record=True)
    forwarded = simulate(trace, "drr", workers=2, window=math.inf, record=True)
    assert starts(forwarded) == starts(fifo)
    assert forwarded.window == math.inf


def test_fair_window_protects_light_keys_from_a_flood() -> None:
    trace = Trace.from_rows(flood(300, light_keys=4, light_rate=0.5, duration=200, seed=2))
    fifo = simulate(trace, None, workers=2)
    for policy in ("lru", "weighted_lru", "drr", "expiry_aware"):
        fair = simulate(trace, policy, workers=2)
        light = [k for k in fair.per_key if k.key != "flood"]
        # Light keys wait a few service times at most instead of behind 300 tasks.
        assert max(k.wait_mean for k in light) < 5.0, policy
        assert max(k.wait_mean for k in fifo.per_key if k.key != "flood") > 20.0
        assert fair.starvation_episodes < fifo.starvation_episodes
        assert fair.jain_share > fifo.jain_share


def test_small_window_idles_workers() -> None:
    trace = Trace.from_rows(poisson(2000, rate=1.8, seed=3))
    full = simulate(trace, "lru", workers=2, window=2)
    half = simulate(trace, "lru", workers=2, window=1)
    assert half.utilisation < 0.999 * full.utilisation or half.wait_mean > 2 * full.wait_mean
    assert half.wait_mean > full.wait_mean


def test_same_trace_same_result_and_results_compare_equal() -> None:
    trace = Trace.from_rows(sybil(3000, 1.8, seed=9))
    assert simulate(trace, "drr", workers=2) == simulate(trace, "drr", workers=2)
    assert simulate(trace, "drr", workers=2) != simulate(trace, "lru", workers=2)


def test_streamed_file_and_memory_trace_give_the_same_result(tmp_path: Path) -> None:
    from simulator import write_trace

    path = tmp_path / "t.csv"
    write_trace(path, poisson(3000, rate=0.9, keys=7, zipf=1.1, seed=4))
    step = {"timeline_step": 50.0}
    assert simulate(path, "drr", **step) == simulate(Trace.load(path), "drr", **step)


@pytest.mark.parametrize("policy", [None, "lru", "weighted_lru", "drr", "expiry_aware"])
@pytest.mark.parametrize(("workers", "window"), [(1, 1), (4, 4), (3, math.inf)])
def test_littles_law_holds_on_multi_key_runs(
    policy: str | None, workers: int, window: float
) -> None:
    trace = Trace.from_rows(
        poisson(20_000, rate=0.85 * workers, keys=20, zipf=1.0, service="lognormal", seed=5)
    )
    result = simulate(trace, policy, workers=workers, window=window, record=True)
    assert result.records is not None
    # L from the engine's time integral of tasks in system; lambda and W from task records.
    sojourn = sum(r.finished - r.arrival for r in result.records)
    lam = result.tasks / result.makespan
    assert result.mean_in_system == pytest.approx(lam * sojourn / result.tasks, rel=1e-9)
    # And W itself matches the per-key wait means plus service.
    mean_service = sum(trace.services) / len(trace)
    assert sojourn / result.tasks == pytest.approx(result.wait_mean + mean_service, rel=1e-9)


def test_deadlines_expire_unserved_tasks_and_count_late_finishes() -> None:
    rows = [
        ("a", 0.0, 5.0, None, None),
        ("b", 0.0, 1.0, 2.0, None),  # waits until 5 > 2: expires unserved
        ("c", 0.0, 1.0, 6.0, None),  # starts at 5 (deadline 6 not passed), finishes at 6
        ("d", 0.0, 2.0, 6.0, None),  # starts at 6 (deadline 6 is not before 6), finishes 8: late
    ]
    result = simulate(Trace.from_rows(rows), "lru", workers=1, record=True)
    assert result.expired == 1
    assert result.key("b").expired == 1
    assert result.missed == 1
    assert result.key("d").missed == 1
    assert result.completed == 3
    assert [r.key for r in sorted(result.records or (), key=lambda r: r.order) if r.order >= 0] == [
        "a",
        "c",
        "d",
    ]


def test_starvation_episode_is_a_backlogged_key_unserved_past_the_threshold() -> None:
    rows = [("hog", 0.0, 100.0, None, None), ("meek", 1.0, 1.0, None, None)]
    result = simulate(Trace.from_rows(rows), "lru", workers=1, starvation_after=50.0)
    assert result.key("meek").starvation_episodes == 1
    assert result.key("meek").longest_gap == pytest.approx(99.0)
    assert result.key("hog").starvation_episodes == 0
    assert simulate(Trace.from_rows(rows), "lru", starvation_after=100.0).starvation_episodes == 0


def test_percentiles_are_within_the_sketch_error() -> None:
    trace = Trace.from_rows(poisson(20_000, rate=0.8, seed=8))
    result = simulate(trace, "lru", record=True)
    waits = sorted(r.started - r.arrival for r in result.records or ())
    for q, got in ((0.5, result.wait_p50), (0.95, result.wait_p95), (0.99, result.wait_p99)):
        exact = waits[max(1, math.ceil(q * len(waits))) - 1]
        assert got == pytest.approx(exact, rel=0.006, abs=1e-12)
    assert result.wait_max == pytest.approx(waits[-1])


def test_quantiles_count_zero_waits_exactly() -> None:
    assert quantiles(3, {}, (0.5, 1.0)) == [0.0, 0.0]
    assert quantiles(1, {0: 1}, (0.5, 1.0))[0] == 0.0


def test_jain_index_bounds() -> None:
    assert jain([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert math.isnan(jain([]))


def test_bad_settings_are_rejected_before_running() -> None:
    trace = Trace.from_rows(poisson(10, rate=1.0))
    with pytest.raises(ValueError, match="workers"):
        simulate(trace, "lru", workers=0)
    with pytest.raises(ValueError, match="window"):
        simulate(trace, "lru", workers=2, window=0)
    with pytest.raises(PolicyError):
        simulate(trace, "nope")
    with pytest.raises(TraceError):
        simulate([("a", 1.0, 1.0, None, None), ("a", 0.0, 1.0, None, None)], "lru")


def test_timeline_covers_the_run_and_stays_bounded() -> None:
    trace = Trace.from_rows(poisson(50_000, rate=0.95, keys=5, seed=6))
    result = simulate(trace, "drr", timeline_step=0.01)
    assert 50 <= len(result.timeline) <= 257
    assert result.timeline[0].start == pytest.approx(trace.arrivals[0])
    assert result.timeline[-1].end >= trace.arrivals[-1]
    # Jain's index and the contention share are defined where 2 or more keys were backlogged
    # for the whole interval (nan elsewhere); the timeline still covers every busy interval.
    contended = [p for p in result.timeline if p.contended >= 2]
    assert contended
    assert all(0 < p.jain <= 1 + 1e-12 and 0 <= p.contention_share <= 1 for p in contended)
    assert all(math.isnan(p.jain) for p in result.timeline if p.contended < 2)
    assert all(p.contended <= p.backlogged for p in result.timeline)
