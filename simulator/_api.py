"""The public entry points: `simulate` one policy, `compare` several on one trace."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policies import DEFAULT_POLICY, Policy

from ._engine import Progress, Simulation, as_policy
from ._metrics import RunResult
from ._trace import Row, Trace, TraceFile

if TYPE_CHECKING:
    import pandas as pd

#: Anything `simulate` replays: a path (streamed), a `TraceFile`, a `Trace`, or rows.
TraceLike = str | Path | TraceFile | Trace | Iterable[Row]
#: A policy object, a registry name or spec mapping, or None / "fifo" for the FIFO baseline.
PolicyLike = Policy[Any] | str | Mapping[str, Any] | None


def _source(trace: TraceLike) -> TraceFile | Trace | Iterable[Row]:
    if isinstance(trace, (str, Path)):
        return TraceFile(trace)
    return trace


def _default_step(source: Any) -> float:
    # A trace in memory knows its span: aim at about 100 fairness intervals.
    if isinstance(source, Trace) and len(source) > 1:
        span = source.arrivals[-1] - source.arrivals[0]
        if span > 0:
            return span / 100
    return 1.0


def simulate(
    trace: TraceLike,
    policy: PolicyLike = DEFAULT_POLICY,
    *,
    workers: int = 1,
    window: float | None = None,
    dispatch: str = "late",
    overhead: float = 0.0,
    latency: float = 0.0,
    loop: str = "open",
    starvation_after: float | None = None,
    starvation_factor: float = 10.0,
    slowdown_tau: float = 0.01,
    timeline_step: float | None = None,
    record: bool = False,
    progress: Progress | None = None,
    name: str = "",
) -> RunResult:
    """Replay `trace` through `policy` on `workers` workers and return what was measured.

    The model (docs/simulator.md, "Model"): `window` is the number of tasks in flight at once;
    by default `workers` for `dispatch="late"` (the runtime's default with a Redis broker: the
    policy chooses when a worker process is free) and `WINDOW_FACTOR` (2) x `workers` for
    `dispatch="window"` (windowed dispatch); `math.inf` forwards every task to the broker at
    once. `overhead` is the seconds a worker spends per task beyond its service time (hand-off,
    ack, result, slot release); `latency` the seconds from dispatch to start of a task sent to
    an idle worker. `loop="closed"` replays a key's task that in the trace followed its
    previous task's end as following that task's simulated end (same think time); it holds
    the trace in memory.

    Metrics (docs/simulator.md, "Metrics"): a backlogged key unserved for longer than
    `starvation_factor` x its fair gap counts a starvation episode, or longer than
    `starvation_after` seconds when that is given (the former fixed rule). `slowdown_tau` is
    the floor of the bounded slowdown's denominator, 10 ms by default: Celery tasks are short,
    and the batch-scheduling convention of 10 s would make every task's bounded slowdown 1.
    A path is streamed (with `loop="open"`), so a 10-million-row file runs in flat memory.

    >>> from simulator import Trace, poisson, simulate
    >>> trace = Trace.from_rows(poisson(1000, rate=0.5, keys=3, seed=1))
    >>> result = simulate(trace, "drr", workers=1)
    >>> result.completed, result == simulate(trace, "drr", workers=1)
    (1000, True)

    Raises:
        TraceError: a row of the trace is malformed (file, line and field are named).
        PolicyError: the policy name, options or weights are invalid.
    """
    source = _source(trace)
    sim = Simulation(
        as_policy(policy),
        workers=workers,
        window=math.nan if window is None else float(window),
        dispatch=dispatch,
        overhead=overhead,
        latency=latency,
        loop=loop,
        starvation_after=starvation_after,
        starvation_factor=starvation_factor,
        slowdown_tau=slowdown_tau,
        timeline_step=timeline_step if timeline_step is not None else _default_step(source),
        record=record,
        progress=progress,
        name=name,
    )
    if sim.loop == "closed" and isinstance(source, TraceFile):
        # The closed loop looks ahead within each key: it holds the trace in memory.
        source = Trace.from_rows(source, str(source.path))
        if timeline_step is None:
            sim.timeline_step = _default_step(source)
    has_deadlines = getattr(source, "has_deadlines", None)
    if has_deadlines is None:
        # Plain rows: keep them in memory to learn whether any carries a deadline.
        source = Trace.from_rows(source)
        has_deadlines = source.has_deadlines
    return sim.run(source, deadlines=has_deadlines())


def compare(
    trace: TraceLike,
    policies: Mapping[str, PolicyLike] | Iterable[str],
    *,
    workers: int = 1,
    window: float | None = None,
    dispatch: str = "late",
    overhead: float = 0.0,
    latency: float = 0.0,
    loop: str = "open",
    **options: Any,
) -> pd.DataFrame:
    """Run each policy on the same trace; one row per policy (index: its name).

    `policies` maps a label to a policy (object, name, spec mapping or None for FIFO); a
    plain list of names labels each by its name. The model (`workers`, `window`, `dispatch`,
    `overhead`, `latency`, `loop`) and any other option of `simulate` apply to every run.
    Columns are the scalar fields of `RunResult`; the results themselves are in
    `frame.attrs["results"]`. Needs pandas.
    """
    import pandas as pd

    source = _source(trace)
    if not isinstance(source, (Trace, TraceFile)):
        source = Trace.from_rows(source)  # replayed once per policy
    named = dict(policies) if isinstance(policies, Mapping) else {p: p for p in policies}
    results: dict[str, RunResult] = {}
    for label, policy in named.items():
        results[label] = simulate(
            source,
            policy,
            workers=workers,
            window=window,
            dispatch=dispatch,
            overhead=overhead,
            latency=latency,
            loop=loop,
            name=label,
            **options,
        )
    frame = pd.DataFrame([r.summary() for r in results.values()], index=list(results))
    frame.index.name = "label"
    frame.attrs["results"] = results
    return frame
