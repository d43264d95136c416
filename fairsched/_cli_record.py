"""`fairsched record`: export what a deployment recorded, and calibrate the simulator on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._cli_status import _app_from
from .recording import EXPORTED_OUTCOMES, export, parse_time
from .storage import OUTCOMES


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("record")
def record() -> None:
    """Export a deployment's recorded task outcomes; calibrate the simulator on them.

    Recording is on when `app.conf.fairsched["record_size"]` > 0 (each queue keeps about
    that many outcomes). See docs/recording.md.
    """


@record.command("export")
@click.option("-A", "--app", "app_name", metavar="MODULE[:ATTR]", help="The Celery app.")
@click.option("--queue", help="Only this queue (domain); default: every queue.")
@click.option("--since", callback=_time, help="Tasks that arrived at or after: epoch s, ISO, 2h.")
@click.option("--until", callback=_time, help="Tasks that arrived before: epoch s, ISO, 30m.")
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice(OUTCOMES),
    help=f"Outcomes to export (repeatable). Default: {', '.join(EXPORTED_OUTCOMES)}.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .csv or .jsonl, optionally .gz.",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    app_name: str | None,
    queue: str | None,
    since: float | None,
    until: float | None,
    outcomes: tuple[str, ...],
    output: Path,
) -> None:
    """Write the recorded outcomes as a trace sorted by arrival, with the recording's columns.

    `fairsched simulate FILE` replays the file as it is; `fairsched record calibrate FILE`
    measures the model's overhead and latency from it.
    """
    from .celery import dispatcher_for

    if not output.parent.is_dir():
        raise click.ClickException(f"-o: folder {str(output.parent)!r} does not exist")
    dispatcher = dispatcher_for(_app_from(ctx, app_name))
    storage = dispatcher.storage
    if storage.record_size == 0:
        raise click.ClickException(
            "this app records nothing: set app.conf.fairsched['record_size'] (e.g. 100000) "
            "and restart its workers"
        )
    if queue is not None and queue not in storage.domains():
        known = ", ".join(storage.domains()) or "none yet"
        raise click.ClickException(f"--queue: no queue {queue!r} in the storage (known: {known})")
    try:
        count = export(storage, output, queue, since, until, outcomes or EXPORTED_OUTCOMES)
    except OSError as exc:
        raise click.ClickException(f"-o: cannot write {str(output)!r}: {exc}") from None
    click.echo(f"{count} tasks written to {output}", err=True)


@record.command("calibrate")
@click.argument("recording", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def calibrate_command(recording: Path, as_json: bool) -> None:
    """Measure the simulator's --overhead and --latency (and workers, dispatch mode) from
    RECORDING, a file `fairsched record export` wrote; print them and the command to replay it.
    """
    import simulator

    try:
        found = simulator.calibrate(recording)
    except simulator.TraceError as exc:
        raise click.ClickException(f"bad recording: {exc}") from None
    if as_json:
        click.echo(json.dumps(_plain(found)))
        return
    click.echo(f"tasks with a start time   {found.tasks}")
    click.echo(f"worker processes          {found.workers}")
    click.echo(f"dispatch mode             {found.dispatch}")
    click.echo(
        f"overhead per task         {found.overhead * 1000:.2f} ms "
        f"(median of {found.overhead_samples} back-to-back gaps)"
    )
    click.echo(
        f"submit-to-start latency   {found.latency * 1000:.2f} ms "
        f"(median of {found.latency_samples} tasks that found a process idle)"
    )
    click.echo("replay it with:")
    click.echo(
        f"  fairsched simulate {recording} --workers {found.workers} --dispatch {found.dispatch}"
        f" --overhead {found.overhead:.6f} --latency {found.latency:.6f}"
    )


def _plain(found: Any) -> dict[str, Any]:
    return {
        "tasks": found.tasks,
        "workers": found.workers,
        "dispatch": found.dispatch,
        "overhead": found.overhead,
        "latency": found.latency,
        "overhead_samples": found.overhead_samples,
        "latency_samples": found.latency_samples,
        "simulate_options": found.options(),
    }
