"""`fairsched status`: the backlogs, weights and dispatch slots of a Celery app's fair queues.

Run it as `celery -A proj fairsched status` (Celery passes the app) or as
`fairsched status -A proj.celery:app`. It reads the app's storage, so with the in-memory
storage it can only show the state of its own process: use Redis to inspect a deployment.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click


def _app_from(ctx: click.Context, app_name: str | None) -> Any:
    if app_name:
        from celery.app.utils import find_app

        return find_app(app_name)
    found = getattr(ctx.find_root().obj, "app", None)  # Celery's CLI context, under `celery -A`
    if found is None:
        raise click.UsageError("name the app: -A module[:attribute], or run `celery -A proj ...`")
    return found


@click.command("status")
@click.option("-A", "--app", "app_name", metavar="MODULE[:ATTR]", help="The Celery app.")
@click.option("--limit", default=20, show_default=True, help="Keys to list, largest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def status(ctx: click.Context, app_name: str | None, limit: int, as_json: bool) -> None:
    """Show backlogged keys (size, weight, last dispatch) and each queue's slots in use."""
    from .celery import dispatcher_for

    app = _app_from(ctx, app_name)
    dispatcher = dispatcher_for(app)
    storage = dispatcher.storage
    queues = {str(app.conf.task_default_queue)}
    queues.update(str(q.name) for q in (app.conf.task_queues or ()))
    last = storage.last_dispatched()
    keys: list[dict[str, Any]] = [
        {
            "key": key,
            "backlog": storage.backlog_size(key),
            "weight": storage.get_weight(key),
            "last_dispatch": last.get(key),
        }
        for key in storage.keys()
    ]
    keys.sort(key=lambda row: (-row["backlog"], row["key"]))
    # Late binding has no window: a worker takes a task when it has a free process.
    domains = [
        {
            "queue": q,
            "in_flight": storage.in_flight(q),
            "window": None if dispatcher.late else dispatcher.window(q),
        }
        for q in sorted(queues)
    ]
    if as_json:
        click.echo(json.dumps({"queues": domains, "keys": keys[:limit], "total_keys": len(keys)}))
        return
    mode = "late binding" if dispatcher.late else "windowed"
    click.echo(
        f"storage: {type(storage).__name__}, policy: {dispatcher.config.policy}, dispatch: {mode}"
    )
    for d in domains:
        of = "" if d["window"] is None else f" of a window of {d['window']}"
        click.echo(f"queue {d['queue']}: {d['in_flight']} in flight{of}")
    click.echo(f"{len(keys)} backlogged keys" + (f", the {limit} largest:" if keys else ""))
    if keys:
        click.echo(f"  {'key':32} {'backlog':>8} {'weight':>7}  last dispatch")
        for row in keys[:limit]:
            at = row["last_dispatch"]
            when = "never" if at is None else datetime.fromtimestamp(at).isoformat(" ", "seconds")
            click.echo(f"  {row['key'][:32]:32} {row['backlog']:>8} {row['weight']:>7g}  {when}")
