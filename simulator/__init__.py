"""Discrete-event simulator for fairsched policies (imports `policies` only).

Replays a trace (`key,arrival,service[,deadline,cost]`) through the same policy objects the
runtime uses, on c workers behind a dispatch window, and measures waits, fairness and
starvation per key.

>>> from simulator import Trace, flood, simulate
>>> trace = Trace.from_rows(flood(200, light_keys=4, light_rate=0.5, duration=100, seed=3))
>>> fifo = simulate(trace, None, workers=2)
>>> drr = simulate(trace, "drr", workers=2)
>>> drr.key("user0").wait_mean < fifo.key("user0").wait_mean
True
"""

from ._api import PolicyLike, TraceLike, compare, simulate
from ._engine import FINISH, SimJob, Simulation, as_policy
from ._metrics import FairnessPoint, KeyStats, Record, RunResult, jain
from ._plot import plot_fairness, plot_wait_cdfs, save_comparison_plot
from ._trace import (
    COLUMNS,
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    Row,
    Trace,
    TraceError,
    TraceFile,
    write_trace,
)
from ._workloads import SERVICE_KINDS, diurnal, flood, merge, poisson, service_sampler, sybil

__all__ = [
    "COLUMNS",
    "FINISH",
    "MAX_KEY_BYTES",
    "MAX_LINE_BYTES",
    "SERVICE_KINDS",
    "FairnessPoint",
    "KeyStats",
    "PolicyLike",
    "Record",
    "Row",
    "RunResult",
    "SimJob",
    "Simulation",
    "Trace",
    "TraceError",
    "TraceFile",
    "TraceLike",
    "as_policy",
    "compare",
    "diurnal",
    "flood",
    "jain",
    "merge",
    "plot_fairness",
    "plot_wait_cdfs",
    "poisson",
    "save_comparison_plot",
    "service_sampler",
    "simulate",
    "sybil",
    "write_trace",
]
