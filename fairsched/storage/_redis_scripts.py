"""Assembling the Redis scripts: one per verb, from Lua fragments and the key names.

A script is `_keys` (generated here from `DOMAIN_KEYS`, so Python and Lua name keys from one
table), `_core.lua`, the policy's fragments, `_engine.lua` (the verbs' shared machinery) and
the verb's own file, each loaded once with `importlib.resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from policies import DeficitRoundRobin, ExpiryAware, Policy, PureLru, WeightedLru

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
    "LRU": "lru",
    "WLRU": "wlru",
    "DRR": "drr",
    "HEADS": "heads",
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

#: Policies with a Lua twin, by the fragment that implements them.
LUA_POLICIES: Mapping[type[Any], str] = {
    PureLru: "lru",
    WeightedLru: "weighted_lru",
    DeficitRoundRobin: "drr",
}

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
    """Names of the policies `RedisStorage` runs (expiry_aware wraps any of the others)."""
    return [*LUA_POLICIES.values(), "expiry_aware"]


def fragments(policy: Policy[Any]) -> tuple[str, ...]:
    """The Lua policy fragments for `policy`, inner first, or raise ConfigurationError."""
    if type(policy) is ExpiryAware:
        inner = policy.inner
        if type(inner) in LUA_POLICIES:
            return (LUA_POLICIES[type(inner)], "expiry_aware")
        name = getattr(inner, "name", type(inner).__name__)
    elif type(policy) in LUA_POLICIES:
        return (LUA_POLICIES[type(policy)],)
    else:
        name = getattr(policy, "name", type(policy).__name__)
    raise ConfigurationError(
        f"policy {name!r} has no Lua twin, so RedisStorage cannot run it; supported: "
        f"{', '.join(supported_policies())} (expiry_aware wrapping one of the others). "
        "Use MemoryStorage, or write the Lua twin (see docs/redis.md)"
    )


@cache
def _source(name: str) -> str:
    return (
        resources.files("fairsched.storage")
        .joinpath("lua")
        .joinpath(f"{name}.lua")
        .read_text("utf-8")
    )


@cache
def script_source(verb: str, fragments: tuple[str, ...]) -> str:
    """The full text of one script: shared core, policy fragments, then the verb."""
    parts = ["_core", *(f"_policy_{f}" for f in fragments), "_engine", verb]
    return "\n".join([_keys_prelude(), *(_source(p) for p in parts)])


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
