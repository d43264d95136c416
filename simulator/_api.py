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
    starvation_after: float = 60.0,
    timeline_step: float | None = None,
    record: bool = False,
    progress: Progress | None = None,
    name: str = "",
) -> RunResult:
    """Replay `trace` through `policy` on `workers` workers and return what was measured.

    `window` is the number of tasks in flight at once (default: `workers`, as fairsched
    runs; `math.inf` forwards every task to the broker at once). A path is streamed, so a
    10-million-row file runs in flat memory.

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
        starvation_after=starvation_after,
        timeline_step=timeline_step if timeline_step is not None else _default_step(source),
        record=record,
        progress=progress,
        name=name,
    )
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
    **options: Any,
) -> pd.DataFrame:
    """Run each policy on the same trace; one row per policy (index: its name).

    `policies` maps a label to a policy (object, name, spec mapping or None for FIFO); a
    plain list of names labels each by its name. Columns are the scalar fields of
    `RunResult`; the results themselves are in `frame.attrs["results"]`. Needs pandas.
    """
    import pandas as pd

    source = _source(trace)
    if not isinstance(source, (Trace, TraceFile)):
        source = Trace.from_rows(source)  # replayed once per policy
    named = dict(policies) if isinstance(policies, Mapping) else {p: p for p in policies}
    results: dict[str, RunResult] = {}
    for label, policy in named.items():
        results[label] = simulate(
            source, policy, workers=workers, window=window, name=label, **options
        )
    frame = pd.DataFrame([r.summary() for r in results.values()], index=list(results))
    frame.index.name = "label"
    frame.attrs["results"] = results
    return frame
