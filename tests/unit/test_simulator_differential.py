"""The simulator dispatches exactly as the runtime's MemoryStorage does, policy for policy.

`reference_run` is a deliberately plain event loop around `fairsched.MemoryStorage` (which runs
`policies.FairQueue`): arrivals call `submit`, completions call `finish`, the window is the
storage's own, and the broker is a FIFO in front of the workers. It shares no code with the
simulator's engine, so agreement on dispatch order and start times is evidence for both the
fast path (policy hooks called directly) and the deadline path (FairQueue).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest

from fairsched import MemoryStorage, Task
from policies import Job
from simulator import Row, Trace, flood, poisson, simulate, sybil


def reference_run(
    rows: Sequence[Row], policy: Any, workers: int, window: float
) -> tuple[list[str], dict[str, float], set[str]]:
    """Dispatch order (ids), start time per id, and expired ids, via MemoryStorage."""
    storage = MemoryStorage(policy=policy, clock=lambda: 0.0)
    limit = None if math.isinf(window) else int(window)
    service: dict[str, float] = {}
    # (time, 0 = completion / 1 = arrival, seq, id): completions first at the same instant.
    events: list[tuple[float, int, int, str]] = []
    for i, (_, at, svc, _, _) in enumerate(rows, 1):
        service[str(i)] = svc
        heapq.heappush(events, (at, 1, i, str(i)))
    jobs = {str(i): row for i, row in enumerate(rows, 1)}
    order: list[str] = []
    started: dict[str, float] = {}
    expired: set[str] = set()
    broker: deque[str] = deque()
    idle = workers
    seq = len(rows)
    while events:
        now, kind, _, task_id = heapq.heappop(events)
        if kind == 0:
            idle += 1
            result = storage.finish(task_id, "celery", service[task_id], now=now, window=limit)
        else:
            key, at, _, due, cost = jobs[task_id]
            job = Job(task_id, key, at, cost, due)
            result = storage.submit(Task(job, b""), now=now, window=limit)
        expired.update(t.id for t in result.expired)
        if result.task is not None:
            order.append(result.task.id)
            broker.append(result.task.id)
        while idle and broker:
            idle -= 1
            started_id = broker.popleft()
            started[started_id] = now
            seq += 1
            heapq.heappush(events, (now + service[started_id], 0, seq, started_id))
    return order, started, expired


def simulated(
    rows: Sequence[Row], policy: Any, workers: int, window: float
) -> tuple[list[str], dict[str, float], set[str]]:
    result = simulate(Trace.from_rows(rows), policy, workers=workers, window=window, record=True)
    assert result.records is not None
    served = sorted((r for r in result.records if r.order >= 0), key=lambda r: r.order)
    return (
        [r.id for r in served],
        {r.id: r.started for r in result.records if not r.expired},
        {r.id for r in result.records if r.expired},
    )


POLICIES = [
    "lru",
    {"policy": "weighted_lru", "weights": {"k0": 3, "user1": 2, "sybil0": 0.5}},
    "drr",
    {"policy": "drr", "quantum": 0.5, "weights": {"k1": 2.0}},
    "expiry_aware",
    {"policy": "expiry_aware", "inner": "drr", "slack": 2.0},
]


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize(("workers", "window"), [(1, 1), (3, 3), (3, 2), (2, math.inf), (2, 5)])
def test_simulator_dispatches_like_memory_storage(policy: Any, workers: int, window: float) -> None:
    rows = list(poisson(400, rate=workers * 0.95, keys=6, zipf=1.0, seed=11))
    rows += [(k, a + 1e3, s, d, c) for k, a, s, d, c in flood(60, light_keys=3, seed=2)]
    rows += [(k, a + 2e3, s, d, c) for k, a, s, d, c in sybil(200, workers * 1.2, seed=4)]
    assert simulated(rows, policy, workers, window) == reference_run(rows, policy, workers, window)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_deadline_path_expires_and_dispatches_like_memory_storage(policy: Any) -> None:
    rows = list(poisson(500, rate=2.2, keys=5, zipf=0.8, deadline_slack=2.5, seed=3))
    # Declared costs on some rows, so DRR charges them instead of its estimate.
    rows = [(k, a, s, d, (s if i % 4 == 0 else None)) for i, (k, a, s, d, _) in enumerate(rows)]
    order, started, expired = simulated(rows, policy, 2, 2)
    assert expired, "the workload must overload the workers enough to expire tasks"
    assert (order, started, expired) == reference_run(rows, policy, 2, 2)


def test_simultaneous_arrivals_and_costs_follow_the_runtime() -> None:
    # Many ties: integer arrival times, equal service times.
    rows = [(f"k{i % 4}", float(i // 5), 1.0, None, float(i % 3)) for i in range(120)]
    for policy in ("lru", "weighted_lru", "drr", "expiry_aware"):
        assert simulated(rows, policy, 2, 2) == reference_run(rows, policy, 2, 2)
