"""Laws of the simulator, for any workload: same dispatch as the runtime, conservation."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Row, Trace, simulate
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
