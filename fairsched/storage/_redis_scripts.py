"""Assembling the Redis scripts: one per verb, from Lua fragments and the key names.

A script is `_keys` (generated here from `DOMAIN_KEYS`, so Python and Lua name keys from one
table), `_core.lua`, the policy's Lua twins (`policies.LuaTwin`, declared by the policy class:
the built-ins' are in policies/lua/, a third party's in its own package), `_engine.lua` (the
verbs' shared machinery) and the verb's own file, each read once with `importlib.resources`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from policies import LuaTwin, Policy, PolicyError, available, lua_twin

from ..errors import ConfigurationError

#: The Redis keys of one domain, each `<base><name>` (base: `key_base(prefix, domain)`). The
#: scripts see them as `K_<NAME>` locals generated from this table; see docs/redis.md.
DOMAIN_KEYS: Mapping[str, str] = {
    "META": "meta",
    "TASKS": "tasks",
    "ACTIVE": "active",
    "KNOWN": "known",
    "DEADLINES": "deadlines",
    "LEASES": "leases",
    "WEIGHTS": "weights",
    "OPS": "ops",
    "WORKERS": "workers",
    "TRACE": "trace",
}

#: Keys per user key (`<base>q:<key>`, `<base>k:<key>`) and per worker (`<base>worker:<name>`);
#: the scripts build the first two with `kq(key)` and `kk(key)`.
QUEUE_PREFIX, RECORD_PREFIX, WORKER_PREFIX = "q:", "k:", "worker:"

#: What a script pushes onto a domain's wake list (KEYS[2], when the storage has one) to wake a
#: consumer blocked on it: JSON, as kombu decodes every item of a queue list it pops.
WAKE_TOKEN = '{"fairsched_wake": 1}'

#: At most this many tokens wait on a wake list; a consumer woken finds work or drops its token.
MAX_WAKE_TOKENS = 4096

#: One script per atomic operation; each is assembled as core + policy + verb.
VERBS = (
    "enqueue",
    "submit",
    "dispatch",
    "finish",
    "complete",
    "revoke",
    "expire",
    "reclaim",
    "set_weight",
    "init",
    "purge",
    "requeue",
    "tasks_by_key",
    "last_used",
)


def supported_policies() -> list[str]:
    """Names of the registered policies whose class declares a Lua twin (RedisStorage runs
    them; expiry_aware only around an inner policy that has one)."""
    return sorted(name for name, cls in available().items() if hasattr(cls, "lua_twin"))


def twins(policy: Policy[Any]) -> tuple[LuaTwin, ...]:
    """The Lua twins `policy` is assembled from, innermost first, or ConfigurationError."""
    try:
        twin = lua_twin(policy)
    except PolicyError as exc:
        raise ConfigurationError(str(exc)) from exc
    if twin is None:
        name = getattr(policy, "name", type(policy).__name__)
        raise ConfigurationError(
            f"policy {name!r} has no Lua twin, so RedisStorage cannot run it (policies with "
            f"one: {', '.join(supported_policies())}). Give its class a lua_twin() method "
            "(docs/policies.md, 'Lua twins') and check it against the Python with "
            "fairsched.testing.check_twin; or use MemoryStorage"
        )
    return twin.chain()


def twin_source(twin: LuaTwin) -> str:
    """The Lua text of `twin` (read from its package once per process).

    Raises:
        ConfigurationError: the package or the file cannot be found or read.
    """
    if twin.source is not None:
        return twin.source
    assert twin.package is not None and twin.resource is not None
    return _resource(twin.package, twin.resource)


@cache
def _resource(package: str, resource: str) -> str:
    try:
        return resources.files(package).joinpath(resource).read_text("utf-8")
    except (ModuleNotFoundError, OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read the Lua twin {resource!r} of package {package!r}: {exc} (is it "
            "declared as package data?)"
        ) from exc


#: What a script's text depends on, per policy twin: (label, Lua source, option names).
PolicyCode = tuple[tuple[str, str, tuple[str, ...]], ...]


def policy_code(chain: tuple[LuaTwin, ...]) -> PolicyCode:
    """What the scripts' text depends on: each twin's label (where its source is, for error
    messages), source and option names (the values travel in the preamble, so storages that
    differ only in options share scripts)."""
    return tuple((_label(t), twin_source(t), tuple(t.options)) for t in chain)


def _label(twin: LuaTwin) -> str:
    if twin.source is not None:
        return "the Lua twin given as source"
    return f"{twin.package}:{twin.resource}"


def preamble_numbers(chain: tuple[LuaTwin, ...]) -> list[float]:
    """The option values, twin by twin, in the order `script_source` reads them."""
    return [value for twin in chain for value in twin.options.values()]


@cache
def _source(name: str) -> str:
    return (
        resources.files("fairsched.storage")
        .joinpath("lua")
        .joinpath(f"{name}.lua")
        .read_text("utf-8")
    )


#: Numbers of the preamble before the policy's options (key_ttl, record size; see _core.lua).
_FIXED_NUMBERS = 2


@cache
def script_source(verb: str, code: PolicyCode) -> str:
    """The full text of one script: keys, shared core, each policy twin (after a line that
    reads its options into `OPT`), the engine, then the verb."""
    return "\n".join(text for _, text in _parts(verb, code))


def _parts(verb: str, code: PolicyCode) -> list[tuple[str, str]]:
    """The pieces of a script in order, each with a label saying where it comes from."""
    parts = [
        ("_keys (generated)", _keys_prelude()),
        ("fairsched.storage:lua/_core.lua", _source("_core")),
    ]
    index = _FIXED_NUMBERS + 1
    for label, text, names in code:
        reads = ", ".join(f"{n} = tonumber(PREAMBLE[{index + i}])" for i, n in enumerate(names))
        parts.append((f"options of {label} (generated)", f"local OPT = {{{reads}}}"))
        parts.append((label, text))
        index += len(names)
    parts.append(("fairsched.storage:lua/_engine.lua", _source("_engine")))
    parts.append((f"fairsched.storage:lua/{verb}.lua", _source(verb)))
    return parts


_SCRIPT_LINE = re.compile(r"user_script:(\d+):")


def locate(verb: str, code: PolicyCode, message: str) -> str:
    """`message` (an error Redis gave for the `verb` script) with the assembled script's line
    numbers ("user_script:222:") turned into the file and line they come from, so an error in
    a policy's twin names the twin's own file and line."""

    def where(match: re.Match[str]) -> str:
        line = int(match[1])
        for label, text in _parts(verb, code):
            count = text.count("\n") + 1
            if line <= count:
                return f"{label}, line {line}:"
            line -= count
        return match[0]

    return _SCRIPT_LINE.sub(where, message)


def _keys_prelude() -> str:
    lines = [
        "-- _keys (generated from DOMAIN_KEYS in _redis_scripts.py): the domain's keys.",
        "local B = KEYS[1]",
    ]
    lines += [f"local K_{name} = B .. '{suffix}'" for name, suffix in DOMAIN_KEYS.items()]
    lines.append(f"local function kq(key) return B .. '{QUEUE_PREFIX}' .. key end")
    lines.append(f"local WAKE, WAKE_TOKEN, MAX_WAKE = KEYS[2], '{WAKE_TOKEN}', {MAX_WAKE_TOKENS}")
    lines.append(f"local function kk(key) return B .. '{RECORD_PREFIX}' .. key end")
    return "\n".join(lines)


def standalone_script(name: str) -> str:
    """The text of a script that runs on its own, without the core and a policy."""
    return _source(name)
