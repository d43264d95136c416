"""The `fairsched` command line (also `celery -A proj fairsched ...`)."""

from __future__ import annotations

import click

from policies import available, option_names

from ._cli_demo import demo
from ._cli_record import record
from ._cli_simulate import simulate
from ._cli_status import status


@click.group(name="fairsched")
@click.version_option(package_name="fairsched")
def main() -> None:
    """Weighted fair queuing for Celery: demo, simulate, inspect, record."""


@main.command("policies")
def list_policies() -> None:
    """List the policies configuration can name, with their options."""
    for name, cls in sorted(available().items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        click.echo(f"{name:14} {doc}")
        click.echo(f"{'':14} options: {', '.join(option_names(cls)) or '(none)'}")


main.add_command(demo)
main.add_command(record)
main.add_command(simulate)
main.add_command(status)
