"""`fairsched simulate`: replay a trace through several policies and compare them."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from policies import PolicyError, parse_spec

#: Policies compared when none is named: the FIFO baseline and every built-in.
DEFAULT_POLICIES = ("fifo", "lru", "weighted_lru", "drr", "expiry_aware")

#: Traces larger than this get a progress bar (when stderr is a terminal or --progress).
PROGRESS_BYTES = 1 << 20

COLUMNS = (
    ("completed", "done", "d"),
    ("expired", "expired", "d"),
    ("wait_mean", "wait mean", ".3f"),
    ("wait_p50", "p50", ".3f"),
    ("wait_p95", "p95", ".3f"),
    ("wait_p99", "p99", ".3f"),
    ("wait_max", "max", ".3f"),
    ("slowdown_mean", "slowdown", ".1f"),
    ("jain_slowdown", "jain(sd)", ".3f"),
    ("jain_share", "jain(share)", ".3f"),
    ("max_min_slowdown", "max/min sd", ".1f"),
    ("starvation_episodes", "starved", "d"),
    ("utilisation", "util", ".3f"),
)


#: Most workers a run may model: the engine keeps a slot per worker, and a typo of a billion
#: would fill memory before the first event.
MAX_WORKERS = 1_000_000

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


def _seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    # FloatRange lets nan through (every comparison with nan is false).
    if math.isnan(value):
        raise click.BadParameter("must be a number of seconds, got nan")
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


def _cell(value: Any, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def _plain(value: Any) -> Any:
    # JSON has no inf or nan.
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    return value


def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    header = ["policy", *(title for _, title, _ in COLUMNS)]
    body = [
        [label, *(_cell(summary[name], spec) for name, _, spec in COLUMNS)]
        for label, summary in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command("simulate")
@click.argument("trace", type=click.Path(path_type=Path))
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
    "--window",
    default=None,
    metavar="W|inf",
    callback=_window,
    help="Tasks in flight at once (default: --workers, as fairsched runs; inf = all to broker).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG here.")
@click.option(
    "--starvation",
    type=click.FloatRange(min=0, min_open=True),
    callback=_seconds,
    default=60.0,
    show_default=True,
    help="Seconds a backlogged key may go unserved before it counts as starved.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: auto).")
def simulate(
    trace: Path,
    policies: tuple[str, ...],
    workers: int,
    window: float | None,
    fmt: str,
    plot: Path | None,
    starvation: float,
    progress: bool | None,
) -> None:
    """Replay TRACE (CSV or JSON Lines: key,arrival,service[,deadline,cost]) per policy.

    Prints one row per policy: waits (s), mean slowdown, Jain's fairness indexes, starvation
    episodes and utilisation. Time is simulated; nothing is sent to Celery.
    """
    import simulator

    specs = policies or DEFAULT_POLICIES
    try:
        configs = {spec: (None if spec == "fifo" else parse_spec(spec)) for spec in specs}
        built = {label: simulator.as_policy(config) for label, config in configs.items()}
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    source = simulator.TraceFile(trace)
    if not trace.is_file():
        raise click.ClickException(f"trace {str(trace)!r}: no such file")
    if plot is not None:
        _check_plot_target(plot)
    show = progress
    if show is None:
        show = trace.stat().st_size > PROGRESS_BYTES and sys.stderr.isatty()
    total = _count_rows(trace) if show else None
    results: dict[str, simulator.RunResult] = {}
    for label, policy in built.items():
        bar = _bar(label, total) if show else None
        try:
            results[label] = simulator.simulate(
                source,
                policy,
                workers=workers,
                window=window,
                starvation_after=starvation,
                name=label,
                progress=None if bar is None else _advance(bar),
            )
        except simulator.TraceError as exc:
            raise click.ClickException(f"bad trace: {exc}") from None
        finally:
            if bar is not None:
                bar.close()
    rows = [(label, result.summary()) for label, result in results.items()]
    if fmt == "table":
        click.echo(_table(rows))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = list(rows[0][1])
        writer.writerow(["label", *names])
        for label, summary in rows:
            writer.writerow([label, *(summary[n] for n in names)])
        click.echo(out.getvalue(), nl=False)
    else:
        payload = [{"label": label, **{k: _plain(v) for k, v in s.items()}} for label, s in rows]
        click.echo(json.dumps(payload, indent=2))
    if plot is not None:
        try:
            simulator.save_comparison_plot(results, plot)
        except OSError as exc:
            raise click.ClickException(f"--plot: cannot write {str(plot)!r}: {exc}") from None
        click.echo(f"plot written to {plot}", err=True)


def _advance(bar: Any) -> Callable[[int], None]:
    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update


def _bar(label: str, total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="task", unit_scale=True, leave=False)
