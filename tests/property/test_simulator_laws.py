"""Laws of the simulator, for any workload: same dispatch as the runtime, conservation."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Row, Simulation, Trace, as_policy, simulate
from tests.unit.test_simulator_differential import reference_run, simulated


@st.composite
def workloads(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(1, 60))
    keys = draw(st.lists(st.sampled_from("abcdef"), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]), min_size=n, max_size=n))
    services = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]), min_size=n, max_size=n))
    with_deadlines = draw(st.booleans())
    slack = draw(st.lists(st.sampled_from([0.5, 2.0, 8.0, None]), min_size=n, max_size=n))
    costs = draw(st.lists(st.sampled_from([None, None, 0.5, 3.0]), min_size=n, max_size=n))
    rows: list[Row] = []
    at = 0.0
    for k, gap, svc, s, c in zip(keys, gaps, services, slack, costs, strict=True):
        at += gap
        due = at + s if with_deadlines and s is not None else None
        rows.append((k, at, svc, due, c))
    return rows


POLICY = st.sampled_from(
    [
        "lru",
        {"policy": "weighted_lru", "weights": {"a": 3.0, "b": 0.5}},
        "drr",
        {"policy": "drr", "quantum": 0.5, "weights": {"c": 2.0}},
        "expiry_aware",
        {"policy": "expiry_aware", "inner": "weighted_lru", "slack": 1.0},
    ]
)
SHAPE = st.sampled_from([(1, 1.0), (2, 2.0), (3, 1.0), (2, math.inf), (2, 4.0)])


@settings(max_examples=150, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE)
def test_dispatch_order_equals_memory_storage(
    rows: list[Row], policy: Any, shape: tuple[int, float]
) -> None:
    workers, window = shape
    assert simulated(rows, policy, workers, window) == reference_run(rows, policy, workers, window)


@settings(max_examples=100, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE)
def test_every_task_is_served_or_expired_exactly_once(
    rows: list[Row], policy: Any, shape: tuple[int, float]
) -> None:
    workers, window = shape
    result = simulate(Trace.from_rows(rows), policy, workers=workers, window=window, record=True)
    assert result.completed + result.expired == result.tasks == len(rows)
    assert sum(k.count + k.expired for k in result.per_key) == len(rows)
    records = result.records or ()
    orders = sorted(r.order for r in records if not r.expired)
    assert orders == list(range(len(orders)))
    for r in records:
        if not r.expired:
            assert r.arrival <= r.dispatched <= r.started < r.finished
            if r.started > r.arrival:
                # Nobody waits while a worker idles and the window has room.
                assert window < math.inf or r.dispatched == r.arrival
    # Work conservation: never more than `workers` tasks run at once.
    events = sorted(
        [(r.started, 1) for r in records if not r.expired]
        + [(r.finished, -1) for r in records if not r.expired]
    )
    busy = 0
    for _, step in events:
        busy += step
        assert busy <= workers


MODEL = st.fixed_dictionaries(
    {
        "overhead": st.sampled_from([0.0, 0.0, 0.1, 0.5]),
        "latency": st.sampled_from([0.0, 0.0, 0.05, 0.25]),
        "dispatch": st.sampled_from(["late", "window"]),
    }
)


def recorded(
    rows: list[Row], policy: Any, shape: tuple[int, float], model: dict[str, Any], loop: str
) -> Any:
    workers, window = shape
    return simulate(
        Trace.from_rows(rows),
        policy,
        workers=workers,
        window=window,
        loop=loop,
        record=True,
        **model,
    )


def paired(rows: list[Row], records: Any) -> dict[str, list[tuple[Row, Any]]]:
    """Per key, (trace row, its record): a key's tasks arrive in trace order in every loop."""
    out: dict[str, list[tuple[Row, Any]]] = {}
    mine = sorted(records, key=lambda r: int(r.id))
    for key in {r[0] for r in rows}:
        out[key] = list(
            zip(
                [r for r in rows if r[0] == key],
                [r for r in mine if r.key == key],
                strict=True,
            )
        )
    return out


@settings(max_examples=100, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE)
def test_the_plain_model_gives_the_same_results_as_a_simulation_without_the_new_settings(
    rows: list[Row], policy: Any, shape: tuple[int, float]
) -> None:
    workers, window = shape
    trace = Trace.from_rows(rows)
    plain = Simulation(as_policy(policy), workers=workers, window=window, timeline_step=2.0)
    expected = plain.run(trace, deadlines=trace.has_deadlines())
    got = simulate(
        trace,
        policy,
        workers=workers,
        window=window,
        dispatch="late",
        overhead=0.0,
        latency=0.0,
        loop="open",
        timeline_step=2.0,
    )
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE, model=MODEL)
def test_reported_percentiles_are_ordered_and_never_above_the_maximum(
    rows: list[Row], policy: Any, shape: tuple[int, float], model: dict[str, Any]
) -> None:
    workers, window = shape
    result = simulate(Trace.from_rows(rows), policy, workers=workers, window=window, **model)
    stats: list[Any] = [k for k in result.per_key if k.count]
    if result.completed:
        stats.append(result)
    for s in stats:
        assert 0 <= s.wait_p50 <= s.wait_p95 <= s.wait_p99 <= s.wait_max


@settings(max_examples=150, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE, model=MODEL, closed=st.booleans())
def test_every_model_serves_each_task_once_and_never_overbooks_a_worker(
    rows: list[Row], policy: Any, shape: tuple[int, float], model: dict[str, Any], closed: bool
) -> None:
    workers, window = shape
    result = recorded(rows, policy, shape, model, "closed" if closed else "open")
    assert result.completed + result.expired == result.tasks == len(rows)
    events = []
    for pairs in paired(rows, result.records).values():
        for (_, _, service, _, _), r in pairs:
            if r.expired:
                continue
            assert r.arrival <= r.dispatched <= r.started
            if model["overhead"] == 0 and window <= workers:
                # Every dispatch finds an idle worker, which starts the task after the latency.
                assert r.started == r.dispatched + model["latency"]
            assert r.finished == r.started + service
            # A worker is busy from the start to the end of the overhead after the finish.
            events += [(r.started, 1), (r.finished + model["overhead"], -1)]
    busy = 0
    for _, step in sorted(events):
        busy += step
        assert busy <= workers


@settings(max_examples=150, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE, model=MODEL)
def test_closed_loop_starts_a_dependent_task_only_after_its_predecessor_ended(
    rows: list[Row], policy: Any, shape: tuple[int, float], model: dict[str, Any]
) -> None:
    result = recorded(rows, policy, shape, model, "closed")
    for pairs in paired(rows, result.records).values():
        assert pairs[0][1].arrival == pairs[0][0][1]  # a key's first task: recorded time
        for (before, prior), (row, rec) in itertools.pairwise(pairs):
            if row[1] >= before[1] + before[2]:
                # Dependent: arrives its think time after the predecessor ended (finished,
                # or expired unserved) in the simulation.
                think = row[1] - (before[1] + before[2])
                assert rec.arrival == pytest.approx(prior.finished + think)
                if not rec.expired:
                    assert rec.started >= prior.finished
            else:
                assert rec.arrival == pytest.approx(prior.arrival + row[1] - before[1])


@settings(max_examples=100, deadline=None)
@given(rows=workloads(), policy=POLICY, shape=SHAPE)
def test_a_fixed_starvation_threshold_counts_as_the_former_rule(
    rows: list[Row], policy: Any, shape: tuple[int, float]
) -> None:
    # Times in these workloads are multiples of 0.25 s: 2.6 s never ties with a gap.
    workers, window = shape
    result = simulate(
        Trace.from_rows(rows),
        policy,
        workers=workers,
        window=window,
        starvation_after=2.6,
        record=True,
    )
    assert result.starvation_threshold == 2.6
    # The former rule, recounted from the records: a key's unserved stretch begins when it
    # becomes backlogged, at each start and at each expiry; a start ending one longer than the
    # threshold is an episode.
    for key in {r[0] for r in rows}:
        events = []
        for r in result.records or ():
            if r.key == key:
                events.append((r.arrival, 0))
                events.append((r.finished if r.expired else r.started, 1 if r.expired else 2))
        waiting, since, episodes = 0, 0.0, 0
        for at, kind in sorted(events):
            if kind == 0:
                if not waiting:
                    since = at
                waiting += 1
                continue
            if kind == 2 and at - since > 2.6:
                episodes += 1
            since = at
            waiting -= 1
        assert result.key(key).starvation_episodes == episodes
