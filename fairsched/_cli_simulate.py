"""`fairsched simulate`: replay a trace (or a generated workload) through several policies.

Output formats carry the Python API's numbers: csv and json use the field names of
`simulator.RunResult` and `simulator.KeyStats`, every time in seconds (no unit suffix, as in the
API). Only the table converts times to a unit chosen per column, named in its header.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from policies import PolicyError, parse_spec

from ._cli_tables import emit_intervals, emit_runs
from ._cli_workload import WORKLOADS, parse_workload

if TYPE_CHECKING:
    import simulator

#: Policies compared when none is named: the FIFO baseline and every built-in.
DEFAULT_POLICIES = ("fifo", "lru", "weighted_lru", "drr", "expiry_aware")

#: Traces larger than this get a progress bar (when stderr is a terminal or --progress).
PROGRESS_BYTES = 1 << 20

#: Without --jobs, runs go to worker processes only when the trace bytes times the runs reach
#: this: a process takes about half a second to start, which is what simulating some 50,000
#: rows costs.
PARALLEL_BYTES = 2 << 20
#: Bytes of a CSV row, to weigh a trace held in memory against PARALLEL_BYTES.
BYTES_PER_ROW = 40


#: Most workers a run may model: the engine keeps a slot per worker, and a typo of a billion
#: would fill memory before the first event.
MAX_WORKERS = 1_000_000
#: Most replicates or seeds per policy, and most worker processes.
MAX_RUNS = 100_000
MAX_JOBS = 1_024

#: Spellings of an unbounded --window.
_UNBOUNDED = ("inf", "+inf", "infinity", "+infinity", "unbounded")


def _window(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    if value.strip().lower() in _UNBOUNDED:
        return math.inf
    try:
        window = int(value)
    except ValueError:
        raise click.BadParameter(f"expected a whole number or 'inf', got {value!r}") from None
    if window < 1:
        raise click.BadParameter(f"must be >= 1, got {window}")
    if window > 2**53:  # beyond exact floats; no trace needs more in flight than 'inf' gives
        raise click.BadParameter("too large; use 'inf' for no limit")
    return float(window)


def _seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # FloatRange lets nan through (every comparison with nan is false).
    if value is not None and math.isnan(value):
        raise click.BadParameter("must be a number of seconds, got nan")
    return value


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


def _check_plot_target(plot: Path) -> None:
    """Refuse a --plot path that cannot be written, before any simulation runs."""
    folder = plot.parent
    if not folder.is_dir():
        raise click.ClickException(f"--plot: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise click.ClickException(f"--plot: folder {str(folder)!r} is not writable")
    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException("--plot needs matplotlib: pip install 'fairsched[sim]'")


def _count_rows(path: Path) -> int | None:
    if path.suffix == ".gz":
        return None
    count = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count - (0 if path.suffix in (".jsonl", ".ndjson") else 1), 0)


# ---- formatting ----------------------------------------------------------------------------


@click.command("simulate")
@click.argument("trace", type=click.Path(path_type=Path), required=False)
@click.option(
    "--workload",
    metavar="NAME[:k=v,...]",
    callback=parse_workload,
    help="Generate the trace instead of reading TRACE: "
    f"{', '.join(WORKLOADS)}, e.g. poisson:n=5000,rate=3.5,keys=20,zipf=1.1 "
    "(options as in the simulator's generators; see docs/simulator.md).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Policy to run (repeatable), e.g. drr:quantum=2; 'fifo' is the plain FIFO baseline. "
    f"Default: {', '.join(DEFAULT_POLICIES)}.",
)
@click.option(
    "--workers", type=click.IntRange(min=1, max=MAX_WORKERS), default=1, show_default=True
)
@click.option(
    "--dispatch",
    type=click.Choice(["late", "window"]),
    default="late",
    show_default=True,
    help="How the runtime hands tasks to Celery. late: late-binding dispatch, the policy "
    "chooses when a worker process is free (window = --workers); window: windowed dispatch "
    "keeps 2 x the workers' concurrency in flight (window = 2 x --workers).",
)
@click.option(
    "--window",
    default=None,
    metavar="W|inf",
    callback=_window,
    help="Tasks in flight at once, overriding --dispatch's (inf: every task goes to the "
    "broker on arrival, the policy never chooses).",
)
@click.option(
    "--overhead",
    type=click.FloatRange(min=0),
    callback=_finite,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Time a worker stays busy after each task (acknowledgement, result, bookkeeping).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    callback=_finite,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Delay before a task dispatched to an idle worker starts (broker round trip).",
)
@click.option(
    "--loop",
    type=click.Choice(["open", "closed"]),
    default="open",
    show_default=True,
    help="open: tasks arrive at the trace's times. closed: a key's task that in the trace came "
    "after its previous one finished arrives its think time after that task finishes in the "
    "simulation, as a client waiting for each result would (the trace is held in memory).",
)
@click.option(
    "--starvation",
    type=click.FloatRange(min=0, min_open=True),
    callback=_seconds,
    default=None,
    metavar="SECONDS",
    help="Count a backlogged key as starved when unserved for longer than this. Default: the "
    "relative rule of --starvation-factor.",
)
@click.option(
    "--starvation-factor",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite,
    default=10.0,
    show_default=True,
    metavar="F",
    help="Without --starvation, a backlogged key counts as starved when unserved for longer "
    "than F x its fair gap (backlogged keys x its mean service / workers).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="csv and json carry the Python API's field names, times in seconds.",
)
@click.option(
    "--per-key",
    is_flag=True,
    help="Also per key: tasks, waits, slowdown, share of service, time to first service, "
    "class (table: a block per policy; csv: a row per policy and key; json: nested).",
)
@click.option(
    "--replicates",
    type=click.IntRange(min=2, max=MAX_RUNS),
    default=None,
    metavar="N",
    help="Run N block-bootstrap resamplings of the trace per policy and print the mean and "
    "a 95% interval of the headline metrics (needs --block).",
)
@click.option(
    "--block",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite,
    default=None,
    metavar="SECONDS",
    help="Length of the time blocks --replicates resamples: well above the longest busy "
    "period, and short enough for 20 or more blocks.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=2, max=MAX_RUNS),
    default=None,
    metavar="N",
    help="With --workload: run the workload for N seeds per policy and print the mean and a "
    "95% confidence interval (Student t) of the headline metrics.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of --workload (the first of --seeds) and of the --replicates draws.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=MAX_JOBS),
    default=None,
    metavar="N",
    help="Worker processes for the runs (at most one per run). Default: one per CPU when the "
    "trace's size times the runs reaches 2 MB, else this process. Results do not depend on it.",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG here.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: auto).")
def simulate(
    trace: Path | None,
    workload: tuple[str, dict[str, Any]] | None,
    policies: tuple[str, ...],
    workers: int,
    dispatch: str,
    window: float | None,
    overhead: float,
    latency: float,
    loop: str,
    starvation: float | None,
    starvation_factor: float,
    fmt: str,
    per_key: bool,
    replicates: int | None,
    block: float | None,
    seeds: int | None,
    seed: int,
    jobs: int | None,
    plot: Path | None,
    progress: bool | None,
) -> None:
    """Replay TRACE (CSV or JSON Lines: key,arrival,service[,deadline,cost]), or a trace
    --workload generates, through each policy.

    Prints one row per policy: waits, mean slowdown, time to first service, fairness
    (Jain's index and contention share), starvation and utilisation; --per-key adds a row
    per key. Time is simulated; nothing is sent to Celery.
    """
    import simulator

    _check_combination(trace, workload, per_key, replicates, block, seeds, plot)
    specs = policies or DEFAULT_POLICIES
    try:
        configs = {spec: (None if spec == "fifo" else parse_spec(spec)) for spec in specs}
        for config in configs.values():
            simulator.as_policy(config)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    options: dict[str, Any] = {
        "workers": workers,
        "window": window,
        "dispatch": dispatch,
        "overhead": overhead,
        "latency": latency,
        "loop": loop,
        "starvation_after": starvation,
        "starvation_factor": starvation_factor,
    }
    source, size = _source(trace, workload, seed, seeds)
    if plot is not None:
        _check_plot_target(plot)
    if replicates is not None:
        assert block is not None
        source = _loaded(source)
        _check_block(source, block)
    runs_per_policy = replicates or seeds or 1
    total = len(configs) * runs_per_policy
    processes = min(jobs or _default_jobs(size, total), total)
    show = progress
    if show is None:
        big = size > PROGRESS_BYTES
        show = sys.stderr.isatty() and (big or runs_per_policy > 1)
    runs: dict[str, list[simulator.RunResult]] = {}
    try:
        if processes == 1 and runs_per_policy == 1:
            results = _serial(source, configs, options, show)
        else:
            bar = _bar("runs", total) if show else None
            try:
                runs = simulator.run_many(
                    source,
                    configs,
                    replicates=replicates,
                    block=block,
                    seeds=seeds,
                    seed=seed,
                    jobs=processes,
                    done=None if bar is None else _advance(bar),
                    **options,
                )
            finally:
                if bar is not None:
                    bar.close()
            results = {label: rs[0] for label, rs in runs.items()}
    except simulator.TraceError as exc:
        raise click.ClickException(f"bad trace: {exc}") from None
    except ValueError as exc:  # PolicyError included: a bad option for this model
        raise click.ClickException(str(exc)) from None
    if replicates is not None:
        what = f"{replicates} block-bootstrap replicates (blocks of {block:g} s), percentile"
        emit_intervals(fmt, runs, "percentile", what)
    elif seeds is not None:
        what = f"{seeds} seeds ({seed} to {seed + seeds - 1}), Student t"
        emit_intervals(fmt, runs, "t", what)
    else:
        emit_runs(fmt, results, per_key)
    if plot is not None:
        try:
            simulator.save_comparison_plot(results, plot)
        except OSError as exc:
            raise click.ClickException(f"--plot: cannot write {str(plot)!r}: {exc}") from None
        click.echo(f"plot written to {plot}", err=True)


def _check_combination(
    trace: Path | None,
    workload: tuple[str, dict[str, Any]] | None,
    per_key: bool,
    replicates: int | None,
    block: float | None,
    seeds: int | None,
    plot: Path | None,
) -> None:
    """Refuse option combinations that mean nothing, as usage errors (status 2)."""
    if trace is not None and workload is not None:
        raise click.UsageError("give a TRACE file or --workload, not both")
    if trace is None and workload is None:
        raise click.UsageError("missing TRACE (a trace file), or generate one with --workload")
    if seeds is not None and workload is None:
        raise click.UsageError("--seeds needs --workload (a trace file has no seed)")
    if replicates is not None and seeds is not None:
        raise click.UsageError(
            "--replicates resamples one trace and --seeds generates several: use one or the other"
        )
    if replicates is not None and block is None:
        raise click.UsageError(
            "--replicates needs --block SECONDS (the length of the time blocks resampled)"
        )
    if block is not None and replicates is None:
        raise click.UsageError("--block only applies to --replicates")
    several = "--replicates" if replicates is not None else "--seeds" if seeds else None
    if several and per_key:
        raise click.UsageError(f"--per-key shows one run per policy; it cannot go with {several}")
    if several and plot is not None:
        raise click.UsageError(f"--plot draws one run per policy; it cannot go with {several}")


def _source(
    trace: Path | None,
    workload: tuple[str, dict[str, Any]] | None,
    seed: int,
    seeds: int | None,
) -> tuple[Any, int]:
    """What the runs replay (the trace path, or the workload function (--seeds) or its trace)
    and about how many bytes of trace each run reads."""
    import simulator

    if workload is None:
        assert trace is not None
        if not trace.is_file():
            raise click.ClickException(f"trace {str(trace)!r}: no such file")
        return trace, trace.stat().st_size
    name, params = workload
    generate = simulator.seeded(getattr(simulator, name), **params)
    try:
        rows = simulator.Trace.from_rows(generate(seed), f"<workload {name}>")
    except (ValueError, TypeError, ArithmeticError) as exc:
        # A generator checks its arguments as it draws the first row; a value it does not
        # check (period=0) fails in its arithmetic.
        why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        raise click.BadParameter(
            f"{name} cannot run with these options: {why}", param_hint="'--workload'"
        ) from None
    if not len(rows):
        raise click.BadParameter(f"{name} generates no task", param_hint="'--workload'")
    return (generate if seeds is not None else rows), BYTES_PER_ROW * len(rows)


def _loaded(source: Any) -> simulator.Trace:
    """The trace in memory (--replicates resamples it)."""
    import simulator

    if not isinstance(source, Path):
        return source  # type: ignore[no-any-return]
    try:
        return simulator.Trace.load(source)
    except simulator.TraceError as exc:
        raise click.ClickException(f"bad trace: {exc}") from None


def _default_jobs(size: int, runs: int) -> int:
    """One process per CPU when the runs are long enough to repay starting processes."""
    if size * runs < PARALLEL_BYTES:
        return 1
    return os.cpu_count() or 1


def _check_block(trace: simulator.Trace, block: float) -> None:
    span = trace.arrivals[-1] - trace.arrivals[0] if len(trace) else 0.0
    if not span > block:
        raise click.BadParameter(
            f"{block:g} s is not shorter than the trace, whose arrivals span {span:g} s; "
            "choose blocks of at most a twentieth of it for steady intervals",
            param_hint="'--block'",
        )


def _serial(
    source: Any, configs: Mapping[str, Any], options: Mapping[str, Any], show: bool
) -> dict[str, simulator.RunResult]:
    """One run per policy in this process, with a progress bar per policy."""
    import simulator

    if isinstance(source, Path):
        total = _count_rows(source) if show else None
        source = simulator.TraceFile(source)
    else:
        total = len(source)
    results: dict[str, simulator.RunResult] = {}
    for label, config in configs.items():
        bar = _bar(label, total) if show else None
        try:
            results[label] = simulator.simulate(
                source,
                config,
                name=label,
                progress=None if bar is None else _update(bar),
                **options,
            )
        finally:
            if bar is not None:
                bar.close()
    return results


def _update(bar: Any) -> Callable[[int], None]:
    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update


def _advance(bar: Any) -> Callable[[int, int], None]:
    def advance(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return advance


def _bar(label: str, total: int | None) -> Any:
    from tqdm import tqdm

    if label == "runs":
        return tqdm(total=total, desc=label, unit="run", leave=False)
    return tqdm(total=total, desc=label, unit="task", unit_scale=True, leave=False)
