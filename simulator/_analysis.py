"""Analyses over runs: key classes by demand, replicates with confidence intervals, parallel runs.

Key classes. A key's demand share is its service over all keys' service; its entitled share is
its weight over all keys' weights (1/n for n keys of equal weight). A key is *light* when its
demand is under `LIGHT_BELOW` (0.5) times its entitlement, *heavy* when over `HEAVY_ABOVE` (2)
times, *medium* otherwise. The classes depend on the workload only, never on the policy, the
workers or the window, so every row of a comparison groups the same keys.

Replicates. `replicate` resamples a recorded trace by a block bootstrap over time: the trace is
cut into consecutive blocks of `block` seconds, blocks are drawn with replacement and laid end
to end (arrivals and deadlines shifted), and each resampled trace is simulated. `seeds` runs a
generated workload once per seed. `confidence` turns the values of one metric over those runs
into (mean, low, high): the percentile interval for bootstrap replicates, the Student t interval
of the mean for independent seeds.

Parallel runs go to a `concurrent.futures.ProcessPoolExecutor` whose processes are spawned, so
everything a run needs is pickled to it: policy specs (names or mappings, not policy objects),
a trace, options, and for `seeds` a module-level workload function or a `functools.partial` of
one (`seeded` builds one). Every draw is made in the calling process from `random.Random(seed)`,
so the same seed gives the same results, serial or parallel.

>>> from simulator import Trace, by_class, confidence, poisson, replicate, simulate
>>> trace = Trace.from_rows(poisson(2000, rate=0.8, keys=6, zipf=1.2, seed=4))
>>> result = simulate(trace, "drr", workers=1)
>>> classes = by_class(result)
>>> [(c.name, c.keys) for c in classes.values()]
[('light', 2), ('medium', 3), ('heavy', 1)]
>>> classes["light"].wait_mean < classes["heavy"].wait_mean
True
>>> runs = replicate(trace, "drr", replicates=20, block=250.0, workers=1)
>>> mean, low, high = confidence([r.wait_mean for r in runs])
>>> low <= mean <= high
True
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import pickle
import random
import statistics
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from policies import DEFAULT_POLICY

from ._api import PolicyLike, TraceLike, simulate
from ._engine import as_policy
from ._metrics import KeyStats, RunResult, bin_index, quantiles
from ._trace import Row, Trace, TraceError, TraceFile

if TYPE_CHECKING:
    import pandas as pd

#: Key classes, from the least demanding to the most.
CLASSES = ("light", "medium", "heavy")
#: A key whose demand share is below this multiple of its entitled share is light.
LIGHT_BELOW = 0.5
#: A key whose demand share is above this multiple of its entitled share is heavy.
HEAVY_ABOVE = 2.0

#: Confidence interval methods: "percentile" (of bootstrap replicates), "t" (of a mean).
METHODS = ("percentile", "t")
#: RunResult fields that restate the configuration; `intervals` skips them.
CONFIG_FIELDS = frozenset(
    {
        "workers",
        "window",
        "overhead",
        "latency",
        "slowdown_tau",
        "starvation_threshold",
        "starvation_factor",
    }
)

#: Start method of the worker processes: spawn, so a run sees only what was pickled to it (no
#: state inherited through fork) and behaves the same on every platform.
START_METHOD = "spawn"
#: Chunks handed to each process: the trace is pickled once per chunk, and several chunks per
#: process keep the processes busy when runs take unequal time.
CHUNKS_PER_PROCESS = 4

#: A workload: seed -> trace rows.
Workload = Callable[[int], Iterable[Row]]


# ---- key classes -------------------------------------------------------------------------


def key_classes(
    source: RunResult | TraceLike,
    *,
    weights: Mapping[str, float] | None = None,
    light_below: float = LIGHT_BELOW,
    heavy_above: float = HEAVY_ABOVE,
) -> dict[str, str]:
    """Classify each key as "light", "medium" or "heavy" by its demand; {key: class}, by key.

    A key's demand share is its service (seconds) over the service of all keys; its entitled
    share is its weight over the weights of all keys (1/n with n keys of equal weight). The
    key is light when demand < `light_below` x entitlement, heavy when demand > `heavy_above`
    x entitlement, medium otherwise. From a `RunResult` the service is what was served and the
    weights are the policy's (`weights` overrides them); from a trace the service is the
    offered service and weights default to 1. A trace path is read once.

    >>> rows = [("a", 0.0, 8.0, None, None), ("b", 1.0, 3.0, None, None)]
    >>> key_classes([*rows, ("c", 2.0, 0.5, None, None)])
    {'a': 'heavy', 'b': 'medium', 'c': 'light'}
    """
    if not 0 < light_below <= heavy_above:
        raise ValueError(f"need 0 < light_below <= heavy_above, got {light_below}, {heavy_above}")
    demand: dict[str, float] = {}
    weight: dict[str, float] = {}
    if isinstance(source, RunResult):
        for stats in source.per_key:
            demand[stats.key] = stats.service
            weight[stats.key] = stats.weight
    else:
        rows = TraceFile(source) if isinstance(source, (str, Path)) else source
        for key, _, service, _, _ in rows:
            demand[key] = demand.get(key, 0.0) + service
    if weights is not None:
        for key, value in weights.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"weight of {key!r} must be a finite number > 0, got {value!r}")
            if key in demand:
                weight[key] = float(value)
    total = math.fsum(demand.values())
    total_weight = math.fsum(weight.get(k, 1.0) for k in demand)
    classes: dict[str, str] = {}
    for key in sorted(demand):
        entitled = weight.get(key, 1.0) / total_weight
        ratio = demand[key] / total / entitled if total > 0 else 0.0
        classes[key] = (
            "light" if ratio < light_below else "heavy" if ratio > heavy_above else "medium"
        )
    return classes


@frozen
class ClassStats:
    """What the tasks of one key class saw in a run. Times in seconds.

    Waits and slowdowns are over tasks (a key with more tasks counts more); percentiles come
    from the keys' merged wait histograms, capped at `wait_max`. `share` is the class's
    fraction of all service; `first_service_mean` is the mean over its keys of the time from a
    key's first arrival to its first start. The statistics of an empty class are NaN (its share
    is 0).
    """

    name: str
    keys: int
    tasks: int
    expired: int
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_p99: float
    wait_max: float
    slowdown_mean: float
    share: float
    first_service_mean: float


def by_class(result: RunResult, classes: Mapping[str, str] | None = None) -> dict[str, ClassStats]:
    """Per-class statistics of a run, for "light", "medium" and "heavy" in that order.

    `classes` maps key -> class (default: `key_classes(result)`); a key it does not name is
    left out. Use the same mapping for every run of a comparison to group the same keys.
    """
    classes = key_classes(result) if classes is None else classes
    unknown = set(classes.values()) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown class {sorted(unknown)[0]!r}; valid: {', '.join(CLASSES)}")
    members: dict[str, list[KeyStats]] = {name: [] for name in CLASSES}
    for stats in result.per_key:
        name = classes.get(stats.key)
        if name is not None:
            members[name].append(stats)
    total_service = math.fsum(s.service for s in result.per_key)
    return {name: _class_stats(name, keys, total_service) for name, keys in members.items()}


def _class_stats(name: str, keys: list[KeyStats], total_service: float) -> ClassStats:
    tasks = sum(k.count for k in keys)
    zero = 0
    bins: dict[int, int] = {}
    for stats in keys:
        for value, count in stats.wait_histogram:
            if value == 0.0:
                zero += count
            elif count:
                index = bin_index(value)
                bins[index] = bins.get(index, 0) + count
    wait_max = max((k.wait_max for k in keys if k.count), default=math.nan)
    # A bin's value may lie above the exact maximum (by up to SKETCH_ERROR): cap it there.
    p50, p95, p99 = quantiles(zero, bins, (0.5, 0.95, 0.99), wait_max)
    first = [k.first_service for k in keys if math.isfinite(k.first_service)]
    service = math.fsum(k.service for k in keys)
    return ClassStats(
        name=name,
        keys=len(keys),
        tasks=tasks,
        expired=sum(k.expired for k in keys),
        wait_mean=_weighted(keys, "wait_mean") if tasks else math.nan,
        wait_p50=p50 if tasks else math.nan,
        wait_p95=p95 if tasks else math.nan,
        wait_p99=p99 if tasks else math.nan,
        wait_max=wait_max,
        slowdown_mean=_weighted(keys, "slowdown_mean") if tasks else math.nan,
        share=service / total_service if total_service > 0 else math.nan,
        first_service_mean=math.fsum(first) / len(first) if first else math.nan,
    )


def _weighted(keys: list[KeyStats], name: str) -> float:
    # Per-key means weighted by the key's tasks: the mean over the class's tasks.
    pairs = [(getattr(k, name), k.count) for k in keys if k.count]
    return math.fsum(v * n for v, n in pairs) / sum(n for _, n in pairs)


# ---- confidence intervals ----------------------------------------------------------------


def confidence(
    values: Iterable[float], level: float = 0.95, *, method: str = "percentile"
) -> tuple[float, float, float]:
    """(mean, low, high) of `values`, NaN values left out.

    `method="percentile"` (for bootstrap replicates): low and high are the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the values (linear interpolation between order statistics),
    an interval for the metric itself; its width does not shrink as replicates are added, it
    shrinks as the trace gets longer. `method="t"` (for independent runs, one per seed): the
    Student t interval of the mean, mean +- t(level, n - 1) x stdev / sqrt(n), which shrinks as
    runs are added. With fewer than two values low and high are NaN.

    >>> [round(v, 4) for v in confidence([1.0, 2.0, 3.0, 4.0], method="t")]
    [2.5, 0.4457, 4.5543]
    >>> confidence([1.0, 2.0, 3.0, 4.0, 5.0], level=0.5)
    (3.0, 2.0, 4.0)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, math.nan, math.nan
    if method == "percentile":
        return mean, _quantile(xs, (1 - level) / 2), _quantile(xs, (1 + level) / 2)
    half = t_quantile((1 + level) / 2, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return mean, mean - half, mean + half


def intervals(
    results: Sequence[RunResult], level: float = 0.95, *, method: str = "percentile"
) -> dict[str, tuple[float, float, float]]:
    """`confidence` of every numeric scalar field of `results` (not those restating the
    configuration, `CONFIG_FIELDS`): {field: (mean, low, high)}, in field order."""
    if not results:
        return {}
    names = [
        name
        for name, value in results[0].summary().items()
        if name not in CONFIG_FIELDS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]
    return {
        name: confidence((getattr(r, name) for r in results), level, method=method)
        for name in names
    }


def intervals_frame(
    runs: Mapping[str, Sequence[RunResult]], level: float = 0.95, *, method: str = "percentile"
) -> pd.DataFrame:
    """`intervals` of each label's runs (as `run_many` returns them) as a frame: one row per
    label (index), columns `runs`, then `<field>`, `<field>_low`, `<field>_high` per metric.
    The runs themselves are in `frame.attrs["runs"]`. Needs pandas."""
    import pandas as pd

    rows = {}
    for label, results in runs.items():
        row: dict[str, float] = {"runs": len(results)}
        for name, (mean, low, high) in intervals(results, level, method=method).items():
            row[name], row[f"{name}_low"], row[f"{name}_high"] = mean, low, high
        rows[label] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "label"
    frame.attrs.update(runs=dict(runs), level=level, method=method)
    return frame


def _quantile(xs: list[float], q: float) -> float:
    # Linear interpolation between order statistics (Hyndman and Fan's type 7).
    position = q * (len(xs) - 1)
    low = math.floor(position)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (position - low) * (xs[high] - xs[low])


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t distribution with `df` degrees of freedom.

    >>> round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 9), 3)
    (12.706, 2.262)
    """
    if not (0 < p < 1 and df > 0):
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p!r}, df={df!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    high = 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    low = 0.0
    for _ in range(200):  # bisection: the CDF is monotone, so this converges to a float
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _t_cdf(t: float, df: float) -> float:
    # P(T <= t) for t >= 0: 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t^2).
    return 1.0 - 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        # The continued fraction converges fast only below this point; use the symmetry.
        return 1.0 - _incomplete_beta(1 - x, b, a)
    log_front = (
        a * math.log(x)
        + b * math.log1p(-x)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    tiny = 1e-300
    # Modified Lentz evaluation of 1 / (1 + d1 / (1 + d2 / (1 + ...))).
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


# ---- replicates, seeds and parallel runs -------------------------------------------------


@frozen
class _Blocks:
    """A trace cut into consecutive time blocks: the row each starts at, its start and length."""

    trace: Trace
    first_row: tuple[int, ...]
    start: tuple[float, ...]
    length: tuple[float, ...]

    @classmethod
    def cut(cls, trace: Trace, block: float) -> _Blocks:
        if not (isinstance(block, (int, float)) and math.isfinite(block) and block > 0):
            raise ValueError(f"block must be a finite number of seconds > 0, got {block!r}")
        arrivals = trace.arrivals
        if len(arrivals) == 0:
            raise ValueError("cannot resample an empty trace")
        origin, last = arrivals[0], arrivals[-1]
        span = last - origin
        count = max(math.ceil(span / block), 1)
        if count < 2:
            raise ValueError(
                f"block of {block:g} s leaves the whole trace (arrivals over {span:g} s) in "
                "one block; choose a block shorter than that (20 or more blocks give steadier "
                "intervals)"
            )
        start = tuple(origin + b * block for b in range(count))
        first_row = tuple(0 if b == 0 else bisect_left(arrivals, start[b]) for b in range(count))
        # The last block ends at the last arrival, so a replicate is as long as the trace.
        length = tuple(block if b < count - 1 else last - start[b] for b in range(count))
        return cls(trace, first_row, start, length)

    def draw(self, rng: random.Random) -> tuple[int, ...]:
        """Block indices of one replicate: as many blocks as the trace has, with replacement."""
        count = len(self.start)
        return tuple(rng.randrange(count) for _ in range(count))


@frozen
class _Resampled:
    """One bootstrap replicate: the blocks `picks` of `blocks.trace`, laid end to end."""

    blocks: _Blocks
    picks: tuple[int, ...]

    def build(self) -> Trace:
        blocks = self.blocks
        source = blocks.trace
        ends = (*blocks.first_row[1:], len(source))
        out = Trace()
        keys, arrivals, services = out.keys, out.arrivals, out.services
        deadlines: list[float | None] | None = [] if source.deadlines is not None else None
        costs: list[float | None] | None = [] if source.costs is not None else None
        at = blocks.start[0]
        previous = -math.inf
        for b in self.picks:
            lo, hi, shift = blocks.first_row[b], ends[b], at - blocks.start[b]
            keys.extend(source.keys[lo:hi])
            services.extend(source.services[lo:hi])
            for arrival in source.arrivals[lo:hi]:
                # Rounding may put a row a hair before the previous block's last one; arrivals
                # must never go backwards.
                previous = max((arrival - blocks.start[b]) + at, previous)
                arrivals.append(previous)
            if deadlines is not None and source.deadlines is not None:
                deadlines.extend(None if d is None else d + shift for d in source.deadlines[lo:hi])
            if costs is not None and source.costs is not None:
                costs.extend(source.costs[lo:hi])
            at += blocks.length[b]
        if deadlines is not None and any(d is not None for d in deadlines):
            out.deadlines = deadlines
        if costs is not None and any(c is not None for c in costs):
            out.costs = costs
        return out


@frozen
class _Generated:
    """The trace a workload function generates for one seed."""

    workload: Workload
    seed: int

    def build(self) -> Trace:
        return Trace.from_rows(self.workload(self.seed), f"<workload seed {self.seed}>")


@frozen
class _Run:
    """One simulation to run, in this process or a worker: everything in it is picklable."""

    label: str
    policy: PolicyLike
    source: TraceFile | Trace | _Resampled | _Generated
    options: Mapping[str, Any]

    def go(self) -> RunResult:
        source = self.source
        if isinstance(source, (_Resampled, _Generated)):
            source = source.build()
        return simulate(source, self.policy, name=self.label, **self.options)


@frozen
class _TraceFailure:
    """A `TraceError` raised in a worker, carried back whole (its own pickling drops fields)."""

    message: str
    path: str
    line: int
    column: str

    def error(self) -> TraceError:
        error = TraceError.__new__(TraceError)
        BaseException.__init__(error, self.message)
        error.path, error.line, error.column = self.path, self.line, self.column
        return error


def _execute(chunk: Sequence[_Run]) -> list[RunResult] | _TraceFailure:
    """Run a chunk in a worker process."""
    try:
        return [run.go() for run in chunk]
    except TraceError as exc:
        return _TraceFailure(str(exc), exc.path, exc.line, exc.column)


def seeded(generator: Callable[..., Iterable[Row]], /, **params: Any) -> Workload:
    """A workload function `seed -> generator(**params, seed=seed)`, picklable when
    `generator` is a module-level function (every generator of `simulator` is).

    >>> from simulator import poisson, seeded
    >>> workload = seeded(poisson, n=3, rate=1.0)
    >>> list(workload(7)) == list(poisson(3, rate=1.0, seed=7))
    True
    """
    return functools.partial(_with_seed, generator, dict(params))


def _with_seed(
    generator: Callable[..., Iterable[Row]], params: Mapping[str, Any], seed: int
) -> Iterable[Row]:
    return generator(**params, seed=seed)


def run_many(
    trace: TraceLike | Workload,
    policies: Mapping[str, PolicyLike] | Iterable[str],
    *,
    replicates: int | None = None,
    block: float | None = None,
    seeds: int | None = None,
    seed: int = 0,
    jobs: int | None = None,
    done: Callable[[int, int], None] | None = None,
    **simulate_options: Any,
) -> dict[str, list[RunResult]]:
    """Run every policy on the same trace(s); {label: [RunResult, ...]}, in `policies` order.

    - Neither `replicates` nor `seeds`: one run per policy on `trace`.
    - `replicates=N, block=B`: N block-bootstrap replicates of `trace` (blocks of B seconds,
      drawn with `random.Random(seed)`); every policy runs on the same N replicates.
    - `seeds=N`: `trace` is a workload function `seed -> rows`; each policy runs on the
      workloads of seeds `seed`, `seed + 1`, ..., `seed + N - 1`.

    `policies` maps a label to a policy spec (name, mapping, or None for FIFO), or is a list of
    names. `jobs` is the number of worker processes (None or 1: this process); runs then go to
    spawned processes, so specs, options and the workload function must pickle. `done(n, total)`
    is called in this process after each batch of runs. The other options go to `simulate`.

    Raises:
        TraceError: a row of the trace is malformed.
        PolicyError: a policy name, option or weight is invalid.
    """
    if "name" in simulate_options:
        raise TypeError("run_many names each run by its label in policies; pass no name=")
    named = dict(policies) if isinstance(policies, Mapping) else {p: p for p in policies}
    for policy in named.values():
        as_policy(policy)  # an invalid spec fails here, before any run
    workers = _jobs(jobs)
    sources = _sources(trace, replicates, block, seeds, seed)
    runs = [
        _Run(label, policy, source, dict(simulate_options))
        for label, policy in named.items()
        for source in sources
    ]
    if workers > 1 and len(runs) > 1:
        _check_picklable(named, simulate_options, trace if seeds is not None else None)
        flat = _parallel(runs, min(workers, len(runs)), done)
    else:
        flat = []
        for run in runs:
            flat.append(run.go())
            if done is not None:
                done(len(flat), len(runs))
    out: dict[str, list[RunResult]] = {label: [] for label in named}
    for run, result in zip(runs, flat, strict=True):
        out[run.label].append(result)
    return out


def replicate(
    trace: TraceLike,
    policy: PolicyLike = DEFAULT_POLICY,
    *,
    replicates: int,
    block: float,
    seed: int = 0,
    jobs: int | None = None,
    **simulate_options: Any,
) -> list[RunResult]:
    """Simulate `replicates` block-bootstrap resamplings of `trace` (blocks of `block` s).

    The trace is cut into consecutive blocks of `block` seconds from its first arrival (the
    last block ends at the last arrival); each replicate draws as many blocks, with
    replacement, from `random.Random(seed)` and lays them end to end, shifting arrivals and
    deadlines, so a replicate is about as long as the trace. Choose blocks well above the
    longest busy period (queues are cut at block edges) and short enough for 20 or more
    blocks. A path is read into memory once. Use `confidence(..., method="percentile")` on
    the results.

    Raises:
        ValueError: `block` is not a positive number or leaves fewer than two blocks.
        TraceError: a row of the trace is malformed.
    """
    name = simulate_options.pop("name", "")
    runs = run_many(
        trace,
        {name: policy},
        replicates=replicates,
        block=block,
        seed=seed,
        jobs=jobs,
        **simulate_options,
    )
    return runs[name]


def seeds(
    workload: Workload,
    policy: PolicyLike,
    n: int,
    *,
    seed: int = 0,
    jobs: int | None = None,
    **simulate_options: Any,
) -> list[RunResult]:
    """Simulate `workload(s)` for the `n` seeds s = seed, ..., seed + n - 1.

    `workload` maps a seed to trace rows, e.g. `seeded(poisson, n=10_000, rate=0.9)`. Use
    `confidence(..., method="t")` on the results.
    """
    name = simulate_options.pop("name", "")
    runs = run_many(workload, {name: policy}, seeds=n, seed=seed, jobs=jobs, **simulate_options)
    return runs[name]


def _jobs(jobs: int | None) -> int:
    if jobs is None:
        return 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (or None), got {jobs!r}")
    return jobs


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _sources(
    trace: Any, replicates: int | None, block: float | None, seeds: int | None, seed: int
) -> list[Any]:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if replicates is not None and seeds is not None:
        raise ValueError("give replicates (resample one trace) or seeds (generate), not both")
    if (replicates is None) != (block is None):
        raise ValueError("replicates and block go together")
    if seeds is not None:
        if not callable(trace):
            raise TypeError("with seeds, trace must be a workload function: seed -> rows")
        return [_Generated(trace, s) for s in range(seed, seed + _count(seeds, "seeds"))]
    if callable(trace):
        raise TypeError("a workload function needs seeds=N")
    if replicates is not None:
        count = _count(replicates, "replicates")
        if isinstance(trace, (str, Path, TraceFile)):
            trace = Trace.load(trace.path if isinstance(trace, TraceFile) else trace)
        elif not isinstance(trace, Trace):
            trace = Trace.from_rows(trace)
        blocks = _Blocks.cut(trace, float(block))  # type: ignore[arg-type]
        rng = random.Random(seed)
        return [_Resampled(blocks, blocks.draw(rng)) for _ in range(count)]
    if isinstance(trace, (str, Path)):
        return [TraceFile(trace)]
    if not isinstance(trace, (Trace, TraceFile)):
        return [Trace.from_rows(trace)]  # replayed once per policy
    return [trace]


def _check_picklable(
    policies: Mapping[str, PolicyLike], options: Mapping[str, Any], workload: Any
) -> None:
    for what, value in (("policy", policies), ("option", options), ("workload", workload)):
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"jobs > 1 sends each run to another process, but a {what} cannot be pickled "
                f"({exc}); pass policy specs (names or mappings) rather than policy objects, a "
                "module-level workload function or a functools.partial of one (see seeded), "
                "or run with jobs=1"
            ) from None


def _parallel(
    runs: list[_Run], workers: int, done: Callable[[int, int], None] | None
) -> list[RunResult]:
    size = max(1, math.ceil(len(runs) / (workers * CHUNKS_PER_PROCESS)))
    chunks = [runs[i : i + size] for i in range(0, len(runs), size)]
    results: list[list[RunResult] | None] = [None] * len(chunks)
    context = multiprocessing.get_context(START_METHOD)
    finished = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict[Future[Any], int] = {
            pool.submit(_execute, chunk): i for i, chunk in enumerate(chunks)
        }
        try:
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    index = pending.pop(future)
                    out = future.result()
                    if isinstance(out, _TraceFailure):
                        raise out.error()
                    results[index] = out
                    finished += len(out)
                    if done is not None:
                        done(finished, len(runs))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [result for chunk in results if chunk is not None for result in chunk]
