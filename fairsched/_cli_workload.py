"""`fairsched simulate --workload NAME[:k=v,...]`: a generated workload, checked against the
generator's own signature before anything runs."""

from __future__ import annotations

import inspect
import math
from typing import Any

import click

#: Generators --workload names (functions of `simulator`).
WORKLOADS = ("poisson", "flood", "sybil", "diurnal")


def parse_workload(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, dict[str, Any]] | None:
    """Parse NAME[:k=v,...] against the generator's signature."""
    if value is None:
        return None
    import simulator

    name, _, rest = value.partition(":")
    name = name.strip()
    if name not in WORKLOADS:
        raise click.BadParameter(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")
    signature = inspect.signature(getattr(simulator, name))
    accepted = {p.name: p for p in signature.parameters.values() if p.name != "seed"}
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        option, sep, raw = item.partition("=")
        option = option.strip()
        if not sep or not option:
            raise click.BadParameter(f"bad workload option {item!r}; expected k=v")
        if option == "seed":
            raise click.BadParameter("set the seed with --seed (or --seeds N for several)")
        if option not in accepted:
            raise click.BadParameter(
                f"{name} takes no option {option!r}; valid: {', '.join(accepted)}"
            )
        params[option] = _workload_value(option, str(accepted[option].annotation), raw.strip())
    missing = [
        p
        for p, spec in accepted.items()
        if spec.default is inspect.Parameter.empty and p not in params
    ]
    if missing:
        raise click.BadParameter(
            f"{name} needs {', '.join(m + '=' for m in missing)} (e.g. "
            f"{name}:{','.join(m + '=...' for m in missing)})"
        )
    return name, params


def _workload_value(option: str, annotation: str, raw: str) -> Any:
    kinds = {part.strip() for part in annotation.split("|")}
    if "None" in kinds and raw.lower() == "none":
        return None
    if "int" in kinds:
        try:
            whole = int(raw)
        except ValueError:
            raise click.BadParameter(f"{option} must be a whole number, got {raw!r}") from None
        if option.endswith("keys") and whole < 1:
            raise click.BadParameter(f"{option} must be >= 1, got {whole}")
        return whole
    if "float" in kinds:
        try:
            number = float(raw)
        except ValueError:
            raise click.BadParameter(f"{option} must be a number, got {raw!r}") from None
        if not math.isfinite(number):
            raise click.BadParameter(f"{option} must be a finite number, got {raw!r}")
        return number
    return raw
