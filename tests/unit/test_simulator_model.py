"""The model's parameters: dispatch mode, per-task overhead, latency, closed-loop replay.

Each case is a tiny trace worked by hand; `records` give every task's arrival, dispatch,
start and finish.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from simulator import (
    WINDOW_FACTOR,
    ClosedLoop,
    Record,
    Row,
    Trace,
    compare,
    flood,
    poisson,
    simulate,
)


def run(rows: list[Row], policy: Any = "lru", **options: Any) -> dict[str, list[Record]]:
    """Records per key, in arrival order."""
    result = simulate(Trace.from_rows(rows), policy, record=True, **options)
    by_key: dict[str, list[Record]] = {}
    for record in sorted(result.records or (), key=lambda r: int(r.id)):
        by_key.setdefault(record.key, []).append(record)
    return by_key


def row(key: str, at: float, service: float, deadline: float | None = None) -> Row:
    return (key, at, service, deadline, None)


# ---- dispatch ---------------------------------------------------------------------------------


def test_late_dispatch_keeps_one_task_in_flight_per_worker_by_default() -> None:
    trace = Trace.from_rows(poisson(50, rate=1.0, seed=1))
    assert simulate(trace, "lru", workers=3).window == 3
    assert simulate(trace, "lru", workers=3, dispatch="late").dispatch == "late"


def test_windowed_dispatch_defaults_to_the_runtime_window_factor() -> None:
    assert WINDOW_FACTOR == 2.0
    trace = Trace.from_rows(poisson(50, rate=1.0, seed=1))
    result = simulate(trace, "lru", workers=3, dispatch="window")
    assert result.window == 6
    assert result.dispatch == "window"
    # An explicit window wins over the mode's default.
    assert simulate(trace, "lru", workers=3, dispatch="window", window=4).window == 4


def test_windowed_dispatch_lets_a_burst_reach_the_broker_ahead_of_a_later_key() -> None:
    # 1 worker, window 2: at t=0 a1 starts and a2 goes to the broker; b (t=0.5) must wait
    # for a2, where late dispatch would have let LRU choose b at t=1.
    rows = [row("a", 0.0, 1.0), row("a", 0.0, 1.0), row("b", 0.5, 1.0)]
    late = run(rows, workers=1)
    windowed = run(rows, workers=1, dispatch="window")
    assert late["b"][0].started == 1.0
    assert windowed["b"][0].started == 2.0
    assert windowed["a"][1].dispatched == 0.0


def test_an_unknown_dispatch_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"dispatch.*'eager'"):
        simulate([row("a", 0.0, 1.0)], "lru", dispatch="eager")


# ---- overhead ---------------------------------------------------------------------------------


def test_overhead_delays_the_next_task_on_the_same_worker() -> None:
    records = run([row("a", 0.0, 1.0), row("a", 0.0, 1.0)], workers=1, overhead=0.5)
    first, second = records["a"]
    assert (first.started, first.finished) == (0.0, 1.0)
    # The window slot is released at the finish (1.0): the task is dispatched then, and waits
    # in the broker until the worker ends its overhead at 1.5.
    assert second.dispatched == 1.0
    assert (second.started, second.finished) == (1.5, 2.5)


def test_overhead_does_not_delay_a_task_sent_to_an_idle_worker() -> None:
    records = run([row("a", 0.0, 1.0), row("b", 0.2, 1.0)], workers=2, overhead=0.5)
    assert records["b"][0].started == 0.2


def test_overhead_counts_the_completion_at_the_end_of_service() -> None:
    # Makespan runs to the last finish, not to the end of the last overhead; utilisation counts
    # service only.
    result = simulate(
        Trace.from_rows([row("a", 0.0, 1.0), row("a", 0.0, 1.0)]), "lru", overhead=0.5
    )
    assert result.makespan == 2.5
    assert result.utilisation == pytest.approx(2.0 / 2.5)
    assert result.overhead == 0.5
    assert result.key("a").wait_mean == pytest.approx(0.75)


# ---- latency ----------------------------------------------------------------------------------


def test_latency_delays_the_start_of_a_task_on_an_idle_system() -> None:
    records = run([row("a", 0.0, 1.0)], latency=0.2)
    (only,) = records["a"]
    assert (only.dispatched, only.started, only.finished) == (0.0, 0.2, 1.2)


def test_latency_reserves_the_worker_meanwhile() -> None:
    # a is dispatched at 0 to the only worker, which is reserved until a starts at 0.2; b
    # (t=0.1) cannot have it, and is dispatched at a's finish (1.2), starting 0.2 later.
    records = run([row("a", 0.0, 1.0), row("b", 0.1, 1.0)], workers=1, latency=0.2)
    assert records["b"][0].dispatched == 1.2
    assert records["b"][0].started == pytest.approx(1.4)


def test_a_task_taken_from_the_broker_by_a_freed_worker_pays_no_latency() -> None:
    # Window 2 on 1 worker: b waits in the broker and starts the instant a's worker frees.
    records = run([row("a", 0.0, 1.0), row("b", 0.0, 1.0)], workers=1, window=2, latency=0.2)
    assert records["a"][0].started == 0.2
    assert records["b"][0].dispatched == 0.0
    assert records["b"][0].started == 1.2


def test_overhead_covers_the_hand_off_so_latency_is_not_added_after_it() -> None:
    records = run([row("a", 0.0, 1.0), row("a", 0.0, 1.0)], workers=1, overhead=0.5, latency=0.2)
    first, second = records["a"]
    assert first.started == 0.2
    assert second.started == pytest.approx(1.7)  # 0.2 + 1 + 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [("overhead", -0.1), ("overhead", math.nan), ("latency", math.inf), ("latency", -1.0)],
)
def test_overhead_and_latency_must_be_finite_and_not_negative(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"{name}.*{value!r}"):
        simulate([row("a", 0.0, 1.0)], "lru", **{name: value})


# ---- closed loop ------------------------------------------------------------------------------


def test_closed_loop_replays_a_user_who_waits_for_each_result() -> None:
    # In the trace u's second request came 0.5 s after its first one ended (0 + 1): it is
    # dependent. Behind the hog, u's first request ends at 11, so the second arrives at 11.5.
    rows = [row("hog", 0.0, 10.0), row("u", 0.0, 1.0), row("u", 1.5, 1.0)]
    opened = run(rows, None, workers=1)
    closed = run(rows, None, workers=1, loop="closed")
    assert [r.arrival for r in opened["u"]] == [0.0, 1.5]
    assert [r.arrival for r in closed["u"]] == [0.0, 11.5]
    assert closed["u"][1].started == 11.5


def test_closed_loop_keeps_a_flood_a_flood() -> None:
    # Requests sent before the previous one ended keep their offsets: arrivals unchanged.
    rows = [row("hog", 0.0, 10.0)] + [row("f", 0.0, 1.0)] * 3 + [row("f", 0.5, 1.0)]
    closed = run(rows, None, workers=1, loop="closed")
    assert [r.arrival for r in closed["f"]] == [0.0, 0.0, 0.0, 0.5]


def test_closed_loop_keeps_offsets_from_the_previous_simulated_arrival() -> None:
    # u2 is dependent (think 1 s after u1's end at 1); u3 came 0.5 s after u2, before u2
    # could end, so it follows u2's simulated arrival by 0.5 s.
    rows = [row("hog", 0.0, 5.0), row("u", 0.0, 1.0), row("u", 2.0, 1.0), row("u", 2.5, 1.0)]
    closed = run(rows, None, workers=1, loop="closed")
    # u1 runs 5..6; u2 arrives 7; u3 arrives 7.5.
    assert [r.arrival for r in closed["u"]] == [0.0, 7.0, 7.5]


def test_closed_loop_first_tasks_keep_their_recorded_times() -> None:
    rows = [row("a", 0.0, 3.0), row("b", 0.5, 1.0), row("a", 3.0, 1.0), row("c", 4.0, 1.0)]
    closed = run(rows, "lru", workers=1, loop="closed")
    assert closed["b"][0].arrival == 0.5
    assert closed["c"][0].arrival == 4.0
    # a2 (dependent, think 0) arrives when a1 ends, at 3.
    assert closed["a"][1].arrival == 3.0


def test_closed_loop_moves_deadlines_with_arrivals_and_releases_after_an_expiry() -> None:
    # u1 expires behind the hog (deadline 2 < hog's end 10): u2, dependent with think 0.5,
    # arrives 0.5 s after the expiry, and its deadline keeps its 3 s of slack.
    rows = [row("hog", 0.0, 10.0), row("u", 0.0, 1.0, 2.0), row("u", 1.5, 1.0, 4.5)]
    result = simulate(Trace.from_rows(rows), "lru", workers=1, loop="closed", record=True)
    u1, u2 = sorted((r for r in result.records or () if r.key == "u"), key=lambda r: int(r.id))
    assert u1.expired and u1.finished == 10.0
    assert u2.arrival == 10.5
    assert not u2.expired and u2.started == 10.5
    assert result.expired == 1


def test_closed_loop_arrivals_come_in_time_order_with_ties_in_trace_order() -> None:
    trace = Trace.from_rows(
        [row("a", 0.0, 1.0), row("b", 0.0, 1.0), row("a", 1.0, 1.0), row("b", 1.0, 1.0)]
    )
    loop = ClosedLoop(trace)
    first, second = next(loop), next(loop)
    assert (first[0], second[0]) == ("a", "b")
    # Both successors are dependent (think 0) and wait for their predecessors' ends.
    with pytest.raises(StopIteration):
        next(loop)


def test_closed_loop_reads_a_trace_file(tmp_path: Any) -> None:
    from simulator import write_trace

    path = tmp_path / "t.csv"
    write_trace(path, [row("hog", 0.0, 10.0), row("u", 0.0, 1.0), row("u", 1.5, 1.0)])
    result = simulate(path, None, workers=1, loop="closed")
    assert result.loop == "closed"
    assert result.makespan == 12.5


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"loop.*'half'"):
        simulate([row("a", 0.0, 1.0)], "lru", loop="half")


# ---- defaults and pass-through ---------------------------------------------------------------


def test_defaults_are_the_plain_model() -> None:
    trace = Trace.from_rows(flood(100, light_keys=3, seed=4))
    explicit = simulate(
        trace, "drr", workers=2, dispatch="late", overhead=0.0, latency=0.0, loop="open"
    )
    assert explicit == simulate(trace, "drr", workers=2)
    assert (explicit.dispatch, explicit.overhead, explicit.latency, explicit.loop) == (
        "late",
        0.0,
        0.0,
        "open",
    )


def test_compare_passes_the_model_parameters_to_every_run() -> None:
    trace = Trace.from_rows(poisson(200, rate=0.8, keys=3, seed=5))
    frame = compare(trace, ["lru", "drr"], overhead=0.01, latency=0.002, dispatch="window")
    assert (frame["overhead"] == 0.01).all()
    assert (frame["latency"] == 0.002).all()
    assert (frame["window"] == 2).all()
    assert frame.attrs["results"]["drr"] == simulate(
        trace, "drr", overhead=0.01, latency=0.002, dispatch="window", name="drr"
    )


def test_closed_loop_without_delays_replays_the_trace_exactly() -> None:
    # With a worker for every task nothing waits, so every task ends as the trace says and
    # the closed loop reproduces the recorded arrivals to the bit.
    trace = Trace.from_rows(poisson(300, rate=2.0, keys=4, service="lognormal", seed=6))
    opened = simulate(trace, "drr", workers=300, record=True)
    closed = simulate(trace, "drr", workers=300, record=True, loop="closed")
    assert closed.wait_max == 0.0
    assert sorted(r.arrival for r in closed.records or ()) == list(trace.arrivals)
    assert closed.mean_in_system == opened.mean_in_system


def test_the_window_factor_is_the_runtimes_default() -> None:
    import attrs

    from fairsched import FairschedConfig

    assert attrs.fields(FairschedConfig).window_factor.default == WINDOW_FACTOR
