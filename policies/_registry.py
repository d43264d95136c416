"""Policy registry: built-ins, third-party entry points, construction from configuration."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import attrs

from ._drr import DeficitRoundRobin
from ._errors import PolicyError, UnknownOption, UnknownPolicy
from ._expiry import ExpiryAware
from ._lru import PureLru
from ._protocol import Policy
from ._weighted import WeightedLru

#: The built-in policies by configuration name.
POLICIES: Mapping[str, type[Any]] = {
    PureLru.name: PureLru,
    WeightedLru.name: WeightedLru,
    DeficitRoundRobin.name: DeficitRoundRobin,
    ExpiryAware.name: ExpiryAware,
}

#: Entry-point group through which other distributions register policies.
ENTRY_POINT_GROUP = "fairsched.policies"


def available() -> dict[str, type[Any]]:
    """Every nameable policy class: the built-ins, then those registered by entry point."""
    found: dict[str, type[Any]] = dict(POLICIES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def policy_class(name: str) -> type[Any]:
    """The policy class registered under `name`.

    Raises:
        UnknownPolicy: no policy has that name; the message lists those that do.
    """
    if name in POLICIES:
        return POLICIES[name]
    classes = available()
    if name not in classes:
        raise UnknownPolicy(
            f"unknown policy {name!r}; valid policies: {', '.join(sorted(classes))}"
        )
    return classes[name]


def option_names(cls: type[Any]) -> list[str]:
    """The options a policy class takes (its attrs fields, public names)."""
    if "__attrs_attrs__" in vars(cls):  # a plain subclass of an attrs class has its own init
        return [a.alias or a.name for a in attrs.fields(cls) if a.init]
    import inspect

    params = inspect.signature(cls).parameters
    return [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


#: The policy used when none is configured, everywhere (storages, simulator, configuration).
DEFAULT_POLICY = "weighted_lru"


def from_config(config: str | Mapping[str, Any] | Policy[Any]) -> Policy[Any]:
    """Build a policy from a name or a mapping `{"policy": NAME, **options}`.

    >>> from_config({"policy": "drr", "quantum": 2.0}).quantum
    2.0

    Raises:
        UnknownPolicy: the name is not registered.
        UnknownOption: an option is not one the policy takes; the message lists those it does.
        PolicyError: an option's value is invalid; the message names it.
    """
    if hasattr(config, "new_state") and hasattr(config, "pick"):
        return config  # type: ignore[return-value]
    if isinstance(config, str):
        name, options = config, {}
    elif isinstance(config, Mapping):
        if "policy" not in config:
            raise PolicyError(
                f"policy configuration needs a 'policy' name, got keys {sorted(config)}"
            )
        options = dict(config)
        name = options.pop("policy")
        if not isinstance(name, str):
            raise PolicyError(f"policy name must be a str, got {type(name).__name__}")
    else:
        raise PolicyError(f"policy must be a name or a mapping, got {type(config).__name__}")
    cls = policy_class(name)
    valid = option_names(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownOption(
            f"policy {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    inner = options.get("inner")
    if inner is not None and not hasattr(inner, "new_state"):
        options["inner"] = from_config(inner)  # a wrapper's inner policy, by name or mapping
    try:
        policy: Policy[Any] = cls(**options)
    except PolicyError as exc:
        raise type(exc)(f"policy {name!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"policy {name!r}: {exc}") from exc
    return policy


def parse_spec(spec: str) -> dict[str, Any]:
    """Parse `NAME[:k=v,...]` (the CLI's form) into a configuration mapping.

    Values are read as int, then float, else kept as str; `inner=drr` names the inner policy.

    >>> parse_spec("drr:quantum=2.5")
    {'policy': 'drr', 'quantum': 2.5}
    """
    name, _, rest = spec.partition(":")
    config: dict[str, Any] = {"policy": name.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        option, sep, raw = item.partition("=")
        if not sep or not option.strip():
            raise PolicyError(f"bad policy option {item!r} in {spec!r}; expected k=v")
        config[option.strip()] = _scalar(raw.strip())
    return config


def _scalar(raw: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw
