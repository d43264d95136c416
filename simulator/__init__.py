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

from ._analysis import (
    CLASSES,
    HEAVY_ABOVE,
    LIGHT_BELOW,
    ClassStats,
    by_class,
    confidence,
    intervals,
    intervals_frame,
    key_classes,
    replicate,
    run_many,
    seeded,
    seeds,
    t_quantile,
)
from ._api import PolicyLike, TraceLike, compare, simulate
from ._engine import FINISH, FREE, START, WINDOW_FACTOR, ClosedLoop, SimJob, Simulation, as_policy
from ._metrics import FairnessPoint, KeyStats, Record, RunResult, Shares, jain
from ._plot import (
    plot_fairness,
    plot_wait_cdfs,
    save_comparison_plot,
    time_axis,
    time_unit,
)
from ._recording import (
    RECORDING_COLUMNS,
    Calibration,
    RecordedTask,
    calibrate,
    load_recording,
    write_recording,
)
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
    "CLASSES",
    "COLUMNS",
    "FINISH",
    "FREE",
    "HEAVY_ABOVE",
    "LIGHT_BELOW",
    "MAX_KEY_BYTES",
    "MAX_LINE_BYTES",
    "RECORDING_COLUMNS",
    "SERVICE_KINDS",
    "START",
    "WINDOW_FACTOR",
    "Calibration",
    "ClassStats",
    "ClosedLoop",
    "FairnessPoint",
    "KeyStats",
    "PolicyLike",
    "Record",
    "RecordedTask",
    "Row",
    "RunResult",
    "Shares",
    "SimJob",
    "Simulation",
    "Trace",
    "TraceError",
    "TraceFile",
    "TraceLike",
    "as_policy",
    "by_class",
    "calibrate",
    "compare",
    "confidence",
    "diurnal",
    "flood",
    "intervals",
    "intervals_frame",
    "jain",
    "key_classes",
    "load_recording",
    "merge",
    "plot_fairness",
    "plot_wait_cdfs",
    "poisson",
    "replicate",
    "run_many",
    "save_comparison_plot",
    "seeded",
    "seeds",
    "service_sampler",
    "simulate",
    "sybil",
    "t_quantile",
    "time_axis",
    "time_unit",
    "write_recording",
    "write_trace",
]
