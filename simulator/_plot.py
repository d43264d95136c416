"""Plots of run results (matplotlib, imported on first use with the Agg backend)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._metrics import RunResult


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Time units for axes, largest first: (name, seconds), chosen so that the span shown is at
#: least two of the unit (a trace of three days is drawn in days, a 10 s run in seconds).
TIME_UNITS = (("days", 86_400.0), ("hours", 3_600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3))


def time_unit(span: float) -> tuple[str, float]:
    """The unit to show a span of `span` seconds in: (name, seconds per unit).

    >>> time_unit(3 * 86_400), time_unit(5400), time_unit(0.5)
    (('days', 86400.0), ('min', 60.0), ('ms', 0.001))
    """
    for name, size in TIME_UNITS:
        if span >= 2 * size:
            return name, size
    return TIME_UNITS[-1]


def time_axis(ax: Any, span: float, axis: str = "x", label: str = "time") -> str:
    """Label `ax`'s `axis` (values in seconds) in the unit that suits `span` seconds, so a
    week reads as days and not as 6e5 s; returns the unit's name."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    name, size = time_unit(span)
    target = ax.xaxis if axis == "x" else ax.yaxis
    # Ticks at round numbers of the unit (1, 2 or 5 times a power of ten), about six of them.
    rough = span / size / 6
    power = 10.0 ** math.floor(math.log10(rough)) if rough > 0 else 1.0
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    target.set_major_locator(MultipleLocator(step * size))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value / size:g}"))
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(f"{label} ({name})")
    return name


def plot_wait_cdfs(
    result: RunResult, *, keys: Sequence[str] | None = None, top: int = 8, ax: Any = None
) -> Any:
    """Draw the wait CDF of each key (the `top` busiest when `keys` is None); return the axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    chosen = (
        [result.key(k) for k in keys]
        if keys is not None
        else sorted(result.per_key, key=lambda s: -s.count)[:top]
    )
    for stats in chosen:
        xs, ys = stats.wait_cdf()
        label = stats.key if len(stats.key) <= 16 else stats.key[:12] + "…"
        ax.step(xs, ys, where="post", label=f"{label} (n={stats.count})")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("wait before start (s)")
    ax.set_ylabel("fraction of the key's tasks")
    ax.set_title(f"wait CDF per key: {result.policy}, {result.workers} workers")
    ax.legend(fontsize="small")
    return ax


def plot_fairness(results: Mapping[str, RunResult], *, ax: Any = None) -> Any:
    """Draw Jain's index of backlogged keys' service shares over time, one line per run."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, result in results.items():
        xs = [(p.start + p.end) / 2 for p in result.timeline]
        ax.plot(xs, [p.jain for p in result.timeline], label=label, marker=".", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Jain's index (backlogged keys)")
    ax.set_title("fairness over time")
    ax.legend(fontsize="small")
    return ax


def save_comparison_plot(results: Mapping[str, RunResult], path: str | Path) -> Path:
    """Save fairness over time and the first run's wait CDFs side by side as an image."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    plot_fairness(results, ax=left)
    worst = max(results.values(), key=lambda r: r.wait_p99)
    plot_wait_cdfs(worst, ax=right)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
