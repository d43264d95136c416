"""What `fairsched simulate` prints: the summary and per-key tables, csv and json, intervals.

csv and json carry the Python API's numbers: the field names of `simulator.RunResult` and
`simulator.KeyStats`, every time in seconds (no unit suffix, as in the API). Only the table
converts times to a unit chosen per column, named in its header.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import simulator

#: Level of the confidence intervals of --replicates and --seeds.
LEVEL = 0.95

#: Column kinds: "time" columns get a unit per column (TIME_UNITS); the others a format spec.
TIME = "time"
PERCENT = "percent"

#: The wait and slowdown columns both tables show (fields of the same names in both).
WAIT_COLUMNS = (
    ("wait_mean", "wait mean", TIME),
    ("wait_p50", "p50", TIME),
    ("wait_p95", "p95", TIME),
    ("wait_p99", "p99", TIME),
    ("wait_max", "max", TIME),
    ("slowdown_mean", "slowdown", ".1f"),
)

#: The summary table: (RunResult field, header, kind or format spec).
COLUMNS = (
    ("completed", "done", "d"),
    ("expired", "expired", "d"),
    *WAIT_COLUMNS,
    ("first_service_mean", "1st svc", TIME),
    ("jain_share", "jain(share)", ".3f"),
    ("contention_share", "contention", ".3f"),
    ("starvation_episodes", "starved", "d"),
    ("starved_tasks_fraction", "starved tasks", PERCENT),
    ("utilisation", "util", ".3f"),
)

#: The per-key table: (KeyStats field, header, kind or format spec); "class" is the key class.
KEY_COLUMNS = (
    ("class", "class", "s"),
    ("count", "tasks", "d"),
    ("expired", "expired", "d"),
    *WAIT_COLUMNS,
    ("share", "share", PERCENT),
    ("first_service", "1st svc", TIME),
)

#: Headline metrics of --replicates and --seeds: (RunResult field, header, kind).
HEADLINE = (
    ("wait_mean", "wait mean", TIME),
    ("wait_p95", "p95", TIME),
    ("contention_share", "contention", ".3f"),
    ("starved_tasks_fraction", "starved tasks", PERCENT),
)

#: Units of a time column: (name, seconds per unit, used while the column's largest value is
#: below this many seconds). Waits on real traces run from microseconds to hours.
TIME_UNITS = (
    ("ms", 1e-3, 10.0),
    ("s", 1.0, 10_000.0),
    ("h", 3_600.0, 240 * 3_600.0),
    ("d", 86_400.0, math.inf),
)

#: Keys longer than this are shortened in the table (csv and json carry them whole).
KEY_WIDTH = 24


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any, spec: str) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if spec == PERCENT:
        return format(100 * value, ".2f")
    return format(value, spec)


def time_unit(values: Iterable[Any]) -> tuple[str, float, int]:
    """The unit for a column of times (seconds): (name, seconds per unit, decimals).

    The unit is the first of `TIME_UNITS` whose limit the column's largest finite value is
    under; decimals give about four significant digits to that value (one to three).
    """
    finite = [abs(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    largest = max(finite, default=0.0)
    name, scale, _ = next(u for u in TIME_UNITS if largest < u[2])
    if largest <= 0:
        return name, scale, 1
    digits = math.floor(math.log10(largest / scale)) + 1
    return name, scale, min(max(4 - digits, 1), 3)


def _column(title: str, kind: str, values: Sequence[Any]) -> tuple[str, list[str]]:
    """A column's header and cells; a time column in its unit, named in the header."""
    if kind == TIME:
        unit, scale, decimals = time_unit(values)
        cells = [
            _cell(v / scale if isinstance(v, (int, float)) else v, f".{decimals}f") for v in values
        ]
        return f"{title} ({unit})", cells
    if kind == PERCENT:
        return f"{title} (%)", [_cell(v, PERCENT) for v in values]
    return title, [_cell(v, kind) for v in values]


def _interval_column(
    title: str, kind: str, triples: Sequence[tuple[float, float, float]]
) -> tuple[str, list[str]]:
    """A column of `mean [low, high]` cells, all three in the column's unit."""
    flat = [v for triple in triples for v in triple]
    if kind == TIME:
        unit, scale, decimals = time_unit(flat)
        spec, title = f".{decimals}f", f"{title} ({unit})"
    elif kind == PERCENT:
        scale, spec, title = 0.01, ".1f", f"{title} (%)"
    else:
        scale, spec = 1.0, kind
    cells = []
    for mean, low, high in triples:
        mean_s, low_s, high_s = (_cell(v / scale, spec) for v in (mean, low, high))
        cells.append(mean_s if low_s == "-" else f"{mean_s} [{low_s}, {high_s}]")
    return title, cells


def _render(columns: Sequence[tuple[str, list[str]]], left: int = 1) -> str:
    """A plain-text table; the first `left` columns are left-aligned, the rest right-aligned."""
    rows = [[title for title, _ in columns]]
    rows += [list(cells) for cells in zip(*(cells for _, cells in columns), strict=True)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    # JSON has no inf or nan.
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _short_keys(keys: Sequence[str]) -> list[str]:
    """Keys cut to KEY_WIDTH characters for the table, unless that would make two equal."""
    if all(len(k) <= KEY_WIDTH for k in keys):
        return list(keys)
    short = [k if len(k) <= KEY_WIDTH else k[: KEY_WIDTH - 1] + "…" for k in keys]
    return short if len(set(short)) == len(set(keys)) else list(keys)


def _key_rows(result: simulator.RunResult) -> list[dict[str, Any]]:
    """One dict per key: the scalar fields of KeyStats and the key's class."""
    import attrs

    import simulator

    classes = simulator.key_classes(result)
    rows = []
    for stats in result.per_key:
        row = attrs.asdict(stats, filter=lambda a, _: a.name != "wait_histogram")
        row["class"] = classes[stats.key]
        rows.append(row)
    return rows


def _summary_table(results: Mapping[str, simulator.RunResult]) -> str:
    summaries = [r.summary() for r in results.values()]
    columns = [("policy", list(results))]
    columns += [_column(title, kind, [s[name] for s in summaries]) for name, title, kind in COLUMNS]
    return _render(columns)


def _key_tables(results: Mapping[str, simulator.RunResult]) -> str:
    """One block per policy; each time column has one unit across every block."""
    rows = {label: _key_rows(result) for label, result in results.items()}
    units = {
        name: time_unit(row[name] for block in rows.values() for row in block)
        for name, _, kind in KEY_COLUMNS
        if kind == TIME
    }
    blocks = []
    for label, block in rows.items():
        columns = [("key", _short_keys([row["key"] for row in block]))]
        for name, title, kind in KEY_COLUMNS:
            values = [row[name] for row in block]
            if kind == TIME:
                unit, scale, decimals = units[name]
                columns.append(
                    (
                        f"{title} ({unit})",
                        [_cell(_scaled(v, scale), f".{decimals}f") for v in values],
                    )
                )
            else:
                columns.append(_column(title, kind, values))
        blocks.append(f"{label}: per key\n{_render(columns, left=2)}")
    return "\n\n".join(blocks)


def _scaled(value: Any, scale: float) -> Any:
    return value / scale if isinstance(value, (int, float)) else value


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def emit_runs(fmt: str, results: Mapping[str, simulator.RunResult], per_key: bool) -> None:
    if fmt == "table":
        click.echo(_summary_table(results))
        if per_key:
            click.echo()
            click.echo(_key_tables(results))
    elif fmt == "csv" and per_key:
        keyed = [(label, row) for label, result in results.items() for row in _key_rows(result)]
        names = list(keyed[0][1]) if keyed else ["key", "class"]
        names = ["key", "class", *(n for n in names if n not in ("key", "class"))]
        body = ([label, *(row[n] for n in names)] for label, row in keyed)
        click.echo(_csv(["label", *names], body), nl=False)
    elif fmt == "csv":
        summaries = {label: result.summary() for label, result in results.items()}
        names = list(next(iter(summaries.values())))
        body = ([label, *(s[n] for n in names)] for label, s in summaries.items())
        click.echo(_csv(["label", *names], body), nl=False)
    else:
        payload = []
        for label, result in results.items():
            entry = {"label": label, **{k: _plain(v) for k, v in result.summary().items()}}
            if per_key:
                entry["per_key"] = [
                    {k: _plain(v) for k, v in row.items()} for row in _key_rows(result)
                ]
            payload.append(entry)
        click.echo(json.dumps(payload, indent=2))


def emit_intervals(
    fmt: str, runs: Mapping[str, list[simulator.RunResult]], method: str, what: str
) -> None:
    import simulator

    spans = {label: simulator.intervals(rs, LEVEL, method=method) for label, rs in runs.items()}
    if fmt == "table":
        columns = [("policy", list(runs)), ("runs", [str(len(rs)) for rs in runs.values()])]
        columns += [
            _interval_column(title, kind, [spans[label][name] for label in runs])
            for name, title, kind in HEADLINE
        ]
        click.echo(f"mean [{LEVEL:.0%} confidence interval] over {what}")
        click.echo(_render(columns))
        return
    if fmt == "csv":
        names = list(next(iter(spans.values())))
        header = ["label", "runs", "method", "level"]
        header += [f"{n}{suffix}" for n in names for suffix in ("", "_low", "_high")]
        body = (
            [label, len(runs[label]), method, LEVEL, *(v for n in names for v in span[n])]
            for label, span in spans.items()
        )
        click.echo(_csv(header, body), nl=False)
        return
    payload = [
        {
            "label": label,
            "runs": len(runs[label]),
            "method": method,
            "level": LEVEL,
            "metrics": {
                name: dict(zip(("mean", "low", "high"), map(_plain, triple), strict=True))
                for name, triple in span.items()
            },
        }
        for label, span in spans.items()
    ]
    click.echo(json.dumps(payload, indent=2))


# ---- the command ---------------------------------------------------------------------------
