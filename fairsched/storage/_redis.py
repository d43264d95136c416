"""Redis storage: the same verbs as `MemoryStorage`, each one atomic Lua script (EVALSHA).

The Python policies are the specification; the scripts in `lua/` are their twins and a
differential property test holds them to the same decisions. See docs/redis.md for the data
model, key schema and the reasoning behind retries.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from attrs import define, field

from policies import (
    DeficitRoundRobin,
    ExpiryAware,
    InvalidJob,
    Job,
    Policy,
    PureLru,
    WeightedLru,
    check_job,
    check_key,
    check_runtime,
    check_weights,
    from_config,
)

from .._urls import redact_url
from ..errors import ConfigurationError, ScriptError, StorageUnavailable
from ..serializers import Serializer, SerializerType, get_serializer
from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    Clock,
    Dispatch,
    Task,
    check_dispatch_limits,
    check_positive,
)

#: Seconds to wait for one reply, and for one connection attempt, before a call counts as
#: failed (and is retried, then raised as StorageUnavailable).
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0

#: Policies with a Lua twin, by the fragment that implements them.
_LUA_POLICIES: Mapping[type[Any], str] = {
    PureLru: "lru",
    WeightedLru: "weighted_lru",
    DeficitRoundRobin: "drr",
}

#: One script per atomic operation; each is assembled as core + policy + verb.
_VERBS = (
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

#: Error codes of Redis replies that mean "not now" (memory full, a replica, loading, cluster
#: or primary down, a busy script, persistence failing), not "this call is wrong". Redis 6.2
#: wraps the code of an error raised inside a script in its message ("... -OOM command not
#: allowed ..."), so the code is looked for in the text as well as in redis-py's classes.
_UNAVAILABLE = re.compile(
    r"(?:^|[\s-])(OOM|READONLY|LOADING|CLUSTERDOWN|MASTERDOWN|BUSY|TRYAGAIN|NOREPLICAS|MISCONF)\b"
)

#: Verbs whose first argument (the task id) is also the op token of the call (_core.lua).
_TASK_VERBS = frozenset({"enqueue", "submit", "finish"})

#: How many calls of unknown outcome are remembered; the oldest are forgotten (their leases
#: then lapse and are reclaimed, as before this was remembered).
_MAX_UNSETTLED = 10_000

#: redis-py's classes for some of those replies, by name (not all exist in every version).
_UNAVAILABLE_CLASSES = (
    ("OutOfMemoryError", "OOM"),
    ("ReadOnlyError", "READONLY"),
    ("ClusterDownError", "CLUSTERDOWN"),
    ("TryAgainError", "TRYAGAIN"),
    ("MasterDownError", "MASTERDOWN"),
)

#: Error replies of our own scripts (see _core.lua and the verb headers).
_DUPLICATE = "DUPLICATE"
_NOINIT = "NOINIT"


class _Unregistered(Exception):
    """A script found its domain unregistered (internal: the storage registers it again)."""


def supported_policies() -> list[str]:
    """Names of the policies `RedisStorage` runs (expiry_aware wraps any of the others)."""
    return [*_LUA_POLICIES.values(), "expiry_aware"]


def _fragments(policy: Policy[Any]) -> tuple[str, ...]:
    """The Lua policy fragments for `policy`, inner first, or raise ConfigurationError."""
    if type(policy) is ExpiryAware:
        inner = policy.inner
        if type(inner) in _LUA_POLICIES:
            return (_LUA_POLICIES[type(inner)], "expiry_aware")
        name = getattr(inner, "name", type(inner).__name__)
    elif type(policy) in _LUA_POLICIES:
        return (_LUA_POLICIES[type(policy)],)
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
    parts = ["_core", *(f"_policy_{f}" for f in fragments), "_insert", verb]
    return "\n".join(_source(p) for p in parts)


def _num(value: float) -> str:
    # repr round-trips a double exactly; Lua's tonumber reads it back bit for bit.
    return repr(float(value))


def _opt(value: float | None) -> str:
    return "" if value is None else _num(value)


def _word(value: float | None) -> str:
    # An optional number among several in one argument ('-': none).
    return "-" if value is None else repr(float(value))


def _text(value: bytes) -> str:
    return value.decode("utf-8")


_UUID_DASHED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_UUID_HEX = re.compile(r"[0-9a-f]{32}\Z")
_TAG_DASHED, _TAG_HEX, _TAG_RAW = b"\x01", b"\x02", b"\x00"


def _pack_id(task_id: str) -> bytes:
    """A task id as stored in Redis: a canonical lowercase uuid (what Celery makes), dashed or
    hex, as a tag byte and its 16 bytes; any other id as its UTF-8, behind a tag byte only if
    it starts with one, so the mapping stays one-to-one.

    An id is stored three times per queued task (hash field, list entry, lease/deadline
    member), so 17 bytes instead of 32 or 36 save memory on every backlogged task.
    """
    if len(task_id) == 36 and _UUID_DASHED.match(task_id):
        return _TAG_DASHED + bytes.fromhex(task_id.replace("-", ""))
    if len(task_id) == 32 and _UUID_HEX.match(task_id):
        return _TAG_HEX + bytes.fromhex(task_id)
    raw = task_id.encode("utf-8")
    return _TAG_RAW + raw if raw[:1] in (_TAG_DASHED, _TAG_HEX, _TAG_RAW) else raw


def _unpack_id(stored: bytes) -> str:
    """The task id from its stored form (the inverse of `_pack_id`)."""
    tag = stored[:1]
    if tag == _TAG_DASHED:
        h = stored[1:].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if tag == _TAG_HEX:
        return stored[1:].hex()
    if tag == _TAG_RAW:
        return stored[1:].decode("utf-8")
    return stored.decode("utf-8")


def _tasks(domain: str, flat: Sequence[Any], start: int = 0) -> list[Task]:
    """Tasks from a script reply: 6 fields each (id, key, enqueued_at, cost, deadline, payload)."""
    out = []
    for i in range(start, len(flat), 6):
        tid, key, enq, cost, deadline, payload = flat[i : i + 6]
        job = Job(
            _unpack_id(tid),
            _text(key),
            float(enq),
            float(cost) if cost else None,
            float(deadline) if deadline else None,
        )
        out.append(Task(job, bytes(payload), domain))
    return out


def _unpack(reply: bytes) -> list[bytes]:
    """The fields of a packed reply: their byte lengths, a newline, then the fields."""
    head, _, data = reply.partition(b"\n")
    fields = []
    start = 0
    for size in map(int, head.split()):
        end = start + size
        fields.append(data[start:end])
        start = end
    return fields


def _dispatch(domain: str, reply: bytes) -> Dispatch:
    """A dispatch from its packed reply: lease deadline or '', [task], expired tasks."""
    fields = _unpack(reply)
    if fields[0]:
        task = _tasks(domain, fields[1:7])[0]
        return Dispatch(task, tuple(_tasks(domain, fields, 7)), float(fields[0]))
    return Dispatch(None, tuple(_tasks(domain, fields, 1)))


def _hash_tag(domain: str) -> str:
    # Percent-encode the braces so a domain cannot end the hash tag early, and '%' so the
    # encoding stays one-to-one (two domains never share key names).
    return domain.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def key_base(prefix: str, domain: str) -> str:
    """The start of every Redis key of `domain`: `<prefix>{<domain>}:`, one hash tag."""
    return f"{prefix}{{{_hash_tag(domain)}}}:"


def standalone_script(name: str) -> str:
    """The text of a script that runs on its own, without the core and a policy."""
    return _source(name)


def _policy(value: Any) -> Policy[Any]:
    return from_config(value)


def _serializer(value: Any) -> Serializer:
    return value if isinstance(value, Serializer) else get_serializer(value)


def _check_prefix(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"prefix must be a str, got {type(value).__name__}")
    if "{" in value or "}" in value:
        raise ConfigurationError(
            f"prefix {value!r} must not contain '{{' or '}}': the domain is the hash tag"
        )


def _check_ttl(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_positive("key_ttl", value)


def _check_retries(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"max_retries must be an int >= 0, got {value!r}")


@define
class RedisStorage:
    """Backlogs, policy state and leases in Redis; every verb is one atomic Lua script.

    `client` is a redis-py `Redis` (build one with `from_url`/`from_settings` to get the retry
    policy described in docs/redis.md). `key_ttl` (seconds) forgets an idle key's bookkeeping
    (its LRU rank, tags, estimate, last-used time) after that long without a backlog; queued
    tasks and leases never expire. `now=None` reads `clock` in this process.

    Raises:
        ConfigurationError: the policy has no Lua twin, or a setting is invalid.
    """

    client: Any
    prefix: str = field(default="fairsched:", validator=_check_prefix)
    policy: Policy[Any] = field(default="lru", converter=_policy)
    serializer: Serializer = field(default=Serializer("json"), converter=_serializer)
    key_ttl: float | None = field(default=None, validator=_check_ttl)
    max_retries: int = field(default=3, validator=_check_retries)
    clock: Clock = time.time
    #: First back-off in seconds; doubled per attempt.
    retry_backoff: float = 0.05
    _scripts: dict[str, Any] = field(factory=dict, init=False, repr=False)
    _preamble: list[bytes] = field(factory=list, init=False, repr=False)
    _ready: set[str] = field(factory=set, init=False, repr=False)
    _known_domains: list[str] = field(factory=list, init=False, repr=False)
    #: Task-verb calls whose outcome is unknown (see _run), oldest first.
    _unsettled: dict[tuple[str, str, str | bytes], None] = field(
        factory=dict, init=False, repr=False
    )
    #: Per domain, the op token of a dispatch whose outcome is unknown.
    _unsettled_dispatch: dict[str, bytes] = field(factory=dict, init=False, repr=False)
    #: Weights set through this storage, written back after Redis lost its data.
    _set_here: dict[str, str] = field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        fragments = _fragments(self.policy)
        inner = self.policy.inner if isinstance(self.policy, ExpiryAware) else self.policy
        quantum = getattr(inner, "quantum", 1.0)
        alpha = getattr(inner, "alpha", 0.2)
        slack = getattr(self.policy, "slack", 0.0)
        ttl_ms = 0 if self.key_ttl is None else max(1, round(self.key_ttl * 1000))
        # One argument: each argument costs the client an encoding step on every call.
        self._preamble = [f"{_num(quantum)} {_num(alpha)} {_num(slack)} {ttl_ms}".encode()]
        for verb in _VERBS:
            self._scripts[verb] = self.client.register_script(script_source(verb, fragments))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        client_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RedisStorage:
        """A storage on a new client for `url` (redis://, rediss:// for TLS, user:password@).

        `socket_timeout` bounds the wait for one reply and `connect_timeout` one connection
        attempt (seconds), so a hung Redis surfaces as `StorageUnavailable` within about
        `(max_retries + 1) * socket_timeout`. The client's own command retries are switched
        off: this storage repeats calls itself, in a way that never runs a change twice
        (docs/redis.md). `client_options` go to redis-py (e.g. `ssl_ca_certs`); `options` to
        the constructor.

        Raises:
            ConfigurationError: the URL scheme is not redis, rediss or unix, or a timeout is
                not a finite number > 0. The message never shows the URL's password.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            scheme = urlsplit(url).scheme
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"Redis URL must start with redis://, rediss:// or unix://, got {redact_url(url)!r}"
            )
        kwargs: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),
            "socket_timeout": check_positive("socket_timeout", socket_timeout),
            "socket_connect_timeout": check_positive("connect_timeout", connect_timeout),
        }
        kwargs.update(client_options or {})
        try:
            client = redis.Redis.from_url(url, **kwargs)
        except ValueError as exc:  # redis-py names the URL in some of these
            message = str(exc).replace(url, redact_url(url))
            raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {message}") from None
        return cls(client, **options)

    @classmethod
    def from_settings(
        cls,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "fairsched:",
        serializer: str | SerializerType = SerializerType.JSON,
        key_ttl: float | None = None,
        max_retries: int = 3,
        use_ssl: bool | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        policy: Any = "lru",
        clock: Clock = time.time,
        client_options: Mapping[str, Any] | None = None,
    ) -> RedisStorage:
        """A storage from the settings users know (`redis_prefix`, `redis_serializer`, ...).

        `use_ssl=True` turns a redis:// URL into rediss://; `use_ssl=False` with a rediss://
        URL is a contradiction and raises.

        Raises:
            ConfigurationError: a setting is invalid or contradicts the URL.
        """
        parts = urlsplit(url)
        if use_ssl is True and parts.scheme == "redis":
            url = urlunsplit(parts._replace(scheme="rediss"))
        elif use_ssl is False and parts.scheme == "rediss":
            raise ConfigurationError(
                f"redis_use_ssl is False but the URL {redact_url(url)!r} uses rediss://"
            )
        return cls.from_url(
            url,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            client_options=client_options,
            prefix=prefix,
            serializer=serializer,
            key_ttl=key_ttl,
            max_retries=max_retries,
            policy=policy,
            clock=clock,
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _base(self, domain: str) -> str:
        return key_base(self.prefix, domain)

    def _now(self, now: float | None) -> float:
        value = self.clock() if now is None else now
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidJob(f"now must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidJob(f"now must be finite, got {value!r}")
        return float(value)

    def _retry(self, what: str, call: Callable[[bool], Any], repeat: bool = False) -> Any:
        """Run `call(repeat)`, retrying failures that may pass, with exponential back-off.

        Every call may be repeated: reads and settings are idempotent, and every script takes
        a replay flag (`repeat`) so a repeated state change returns what its first run did
        instead of doing it twice (see `ops` in _core.lua). A connection failure, a timeout
        and a "not now" reply (out of memory, read-only replica, loading, ...) are retried up
        to `max_retries` times, then raise `StorageUnavailable` with Redis's own words.
        """
        import redis

        attempt = 0
        while True:
            try:
                return call(repeat)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                error = self._classify(what, exc)
                if not isinstance(error, StorageUnavailable) or attempt >= self.max_retries:
                    raise error from exc
                # A request that never reached Redis cannot have run, but telling that apart
                # from a lost reply depends on the driver's wording; repeating is always safe.
                repeat = True
                time.sleep(self.retry_backoff * 2**attempt)
                attempt += 1

    def _classify(self, what: str, exc: Exception) -> Exception:
        """The fairsched error for a driver error raised during `what`."""
        import redis

        text = str(exc)
        if isinstance(exc, redis.AuthenticationError):
            return ConfigurationError(f"Redis refused the credentials during {what}: {text}")
        if isinstance(exc, redis.exceptions.NoPermissionError) or text.startswith("NOPERM"):
            return ConfigurationError(
                f"the Redis user lacks permission for {what} under prefix {self.prefix!r}: {text}"
            )
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return StorageUnavailable(f"Redis unavailable during {what}: {text}")
        if text.startswith(_DUPLICATE):
            return InvalidJob("task id is already queued or leased in its domain")
        if text.startswith(_NOINIT):
            return _Unregistered(text)
        for name, code in _UNAVAILABLE_CLASSES:
            # redis-py strips the code from the message of the errors it has a class for;
            # which classes exist depends on its version.
            cls = getattr(redis.exceptions, name, None)
            if cls is not None and isinstance(exc, cls):
                return StorageUnavailable(f"Redis refused {what} ({code}): {text}")
        found = _UNAVAILABLE.search(text)
        if found:
            return StorageUnavailable(f"Redis refused {what} ({found.group(1)}): {text}")
        return ScriptError(f"{what} failed in Redis: {text}")

    def _run(self, verb: str, domain: str, *args: str | bytes) -> Any:
        script = self._scripts[verb]
        keys = [self._base(domain)]
        head = self._preamble[0]
        # A call of a task verb whose outcome stayed unknown (every attempt failed, one may
        # have run) is sent as a repeat the next time the same call is made, e.g. by a worker
        # retrying a slot release: it then gets what the lost run leased.
        call = (verb, domain, args[0]) if verb in _TASK_VERBS else None
        try:
            reply = self._retry(
                verb,
                lambda repeat: script(keys=keys, args=[head, b"1" if repeat else b"0", *args]),
                repeat=call in self._unsettled,
            )
        except StorageUnavailable:
            if call is not None:
                self._unsettled[call] = None
                while len(self._unsettled) > _MAX_UNSETTLED:
                    del self._unsettled[next(iter(self._unsettled))]
            raise
        if call is not None:
            self._unsettled.pop(call, None)
        return reply

    def _write(self, verb: str, domain: str, *args: str | bytes) -> Any:
        """`_run` for a verb that stores tasks: registers the domain first, and again if its
        registration is gone (Redis restarted empty, FLUSHALL, purge)."""
        self._ensure_domain(domain)
        try:
            return self._run(verb, domain, *args)
        except _Unregistered:
            self._ready.discard(domain)
            self._ensure_domain(domain)
            return self._run(verb, domain, *args)

    def _cmd(self, what: str, call: Callable[[], Any]) -> Any:
        return self._retry(what, lambda repeat: call())

    def _domains_key(self) -> str:
        return f"{self.prefix}domains"

    def _weights_key(self) -> str:
        return f"{self.prefix}weights"

    def _ensure_domain(self, domain: str) -> None:
        """Register `domain` and copy the weights into it, once per process and domain (and
        again when a script finds the registration gone).

        After an empty restart the global weights are gone too; the weights set through this
        storage (configuration, run-time changes made here) are written back unless another
        process already did, so configured weights survive the loss of Redis's data.
        """
        if domain in self._ready:
            return
        check_key(domain)
        # Order matters for a concurrent set_weight: register, then read, then copy (NX).
        self._cmd(
            "register domain",
            lambda: self.client.zadd(self._domains_key(), {domain: self.clock()}, nx=True),
        )
        if self._set_here:
            mine = dict(self._set_here)

            def restore() -> None:
                pipe = self.client.pipeline(transaction=False)
                for key, value in mine.items():
                    pipe.hsetnx(self._weights_key(), key, value)
                pipe.execute()

            self._cmd("restore weights", restore)
        stored = self._cmd("read weights", lambda: self.client.hgetall(self._weights_key()))
        pairs: list[str] = []
        for key, value in stored.items():
            pairs += [_text(key), _text(value)]
        for key, weight in getattr(self.policy, "weights", {}).items():
            pairs += [key, _num(weight)]
        self._run("init", domain, *pairs)
        self._ready.add(domain)

    def _domains(self, refresh: bool = True) -> list[str]:
        if refresh or not self._known_domains:
            names = self._cmd(
                "list domains", lambda: self.client.zrange(self._domains_key(), 0, -1)
            )
            self._known_domains = [_text(n) for n in names]
        return self._known_domains

    def _selected(self, domain: str | None) -> list[str]:
        return self._domains() if domain is None else [domain]

    def _find(self, verb: str, task_id: str, *args: str | bytes) -> tuple[str, Any] | None:
        """Run `verb` domain by domain until one holds `task_id` (ids carry no domain).

        The cached domain list is tried first; it is re-read only when the id is not found.
        """
        stored = _pack_id(task_id)
        tried: set[str] = set()
        for refresh in (False, True):
            for domain in self._domains(refresh):
                if domain in tried:
                    continue
                tried.add(domain)
                reply = self._run(verb, domain, stored, *args)
                if reply and reply != -1:
                    return domain, reply
        return None

    @staticmethod
    def _task_args(task: Task, *numbers: str) -> list[str | bytes]:
        """id, key, payload, then the task's numbers and `numbers` in one argument."""
        job = task.job
        return [
            _pack_id(job.id),
            job.key,
            task.payload,
            " ".join(
                (repr(float(job.enqueued_at)), _word(job.cost), _word(job.deadline), *numbers)
            ),
        ]

    @staticmethod
    def _check_task(task: Task) -> None:
        check_job(task.job)
        check_key(task.domain)
        if not isinstance(task.payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(task.payload).__name__}")

    # -- verbs ----------------------------------------------------------------------------------

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain (one round trip).

        Raises:
            InvalidJob: a field is invalid, or the id is queued or leased in the domain.
            StorageUnavailable: Redis cannot be reached; nothing was stored.
        """
        self._check_task(task)
        at = self._now(now)
        self._write("enqueue", task.domain, *self._task_args(task, _num(at)))

    def dispatch(
        self,
        domain: str = DEFAULT_DOMAIN,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """Withdraw expired tasks, then pick, pop and lease the next task if a slot is free."""
        check_dispatch_limits(window, lease_timeout)
        at = self._now(now)
        numbers = f"{_num(at)} {-1 if window is None else window} {_num(lease_timeout)}"
        # A token per call, so a repeat after a lost reply gets the task the first run leased
        # instead of leasing another. A call that failed hands its token to the next dispatch
        # in the domain, which then publishes what the lost run may have leased.
        op = self._unsettled_dispatch.pop(domain, None) or os.urandom(9)
        try:
            reply = self._run("dispatch", domain, numbers, op)
        except StorageUnavailable:
            self._unsettled_dispatch[domain] = op
            raise
        return _dispatch(domain, reply)

    def submit(
        self,
        task: Task,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`enqueue` then `dispatch` in the task's domain, in one script."""
        self._check_task(task)
        check_dispatch_limits(window, lease_timeout)
        at = self._now(now)
        reply = self._write(
            "submit",
            task.domain,
            *self._task_args(
                task, _num(at), str(-1 if window is None else window), _num(lease_timeout)
            ),
        )
        return _dispatch(task.domain, reply)

    def finish(
        self,
        task_id: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`complete` then `dispatch` in the finished task's domain, in one script."""
        if runtime is not None:
            check_runtime(runtime)
        check_dispatch_limits(window, lease_timeout)
        at = self._now(now)
        found = self._find(
            "finish",
            task_id,
            f"{_word(runtime)} {_num(at)} {-1 if window is None else window} {_num(lease_timeout)}",
        )
        if found is None:
            return Dispatch(None)
        return _dispatch(*found)

    def complete(
        self, task_id: str, runtime: float | None = None, now: float | None = None
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` (seconds) to the policy.

        A task whose lease was reclaimed and requeued is withdrawn, since it did run.
        """
        if runtime is not None:
            check_runtime(runtime)
        found = self._find("complete", task_id, _opt(runtime), _num(self._now(now)))
        return None if found is None else _tasks(*found)[0]

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        return _tasks(domain, self._run("expire", domain, _num(self._now(now))))

    def revoke(self, task_id: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued (maybe leased)."""
        found = self._find("revoke", task_id, _num(self._now(now)))
        return None if found is None else _tasks(*found)[0]

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease ran out to the head of its key's backlog."""
        return _tasks(domain, self._run("reclaim", domain, _num(self._now(now))))

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog.

        For a dispatched task whose publish failed for a reason that may pass (the broker is
        down): it is dispatched again later instead of holding its slot until the lease
        lapses. Returns the task, or None if it is not leased in `domain`.
        """
        found = self._run("requeue", domain, _pack_id(task_id), _num(self._now(now)))
        return _tasks(domain, found)[0] if found else None

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        return int(self._cmd("in_flight", lambda: self.client.zcard(self._base(domain) + "leases")))

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain (one script per domain).

        Raises:
            InvalidJob: the key is invalid.
            InvalidWeight: the weight is not finite and > 0.
        """
        self.set_weights({key: weight}, now)

    def set_weights(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Set several weights; all are checked before any is applied."""
        checked = check_weights(weights)
        if not checked:
            return
        at = _num(self._now(now))
        mapping = {k: _num(w) for k, w in checked.items()}
        self._set_here.update(mapping)
        # Global first, then each registered domain: a domain registered concurrently copies
        # the global values (see _ensure_domain), so no domain misses the change.
        self._cmd("set weights", lambda: self.client.hset(self._weights_key(), mapping=mapping))
        for domain in self._domains():
            for key, value in mapping.items():
                self._run("set_weight", domain, key, value, at)

    def get_weight(self, key: str) -> float:
        """The weight of `key` (set with `set_weight`, else the policy's, else 1.0)."""
        value = self._cmd("get weight", lambda: self.client.hget(self._weights_key(), key))
        if value is not None:
            return float(value)
        return float(getattr(self.policy, "weights", {}).get(key, 1.0))

    # -- monitoring -----------------------------------------------------------------------------

    def get_all_lru_keys(self, domain: str | None = None) -> list[str]:
        """Keys with a backlog (in `domain`, or in any), in order of first enqueue per domain."""
        keys: dict[str, None] = {}
        for name in self._selected(domain):
            active = self._base(name) + "active"
            found = self._cmd("read keys", partial(self.client.zrange, active, 0, -1))
            keys.update(dict.fromkeys(_text(k) for k in found))
        return list(keys)

    def get_tasks_by_lru_key(
        self, key: str, limit: int | None = None, domain: str | None = None
    ) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        out: list[Task] = []
        for name in self._selected(domain):
            left = -1 if limit is None else limit - len(out)
            if left == 0:
                break
            out += _tasks(name, self._run("tasks_by_key", name, key, str(left)))
        return out

    def get_last_used_times(self, domain: str | None = None) -> dict[str, float]:
        """Time of each key's latest dispatch."""
        times: dict[str, float] = {}
        for name in self._selected(domain):
            flat = self._run("last_used", name)
            for i in range(0, len(flat), 2):
                key, at = _text(flat[i]), float(flat[i + 1])
                times[key] = max(at, times.get(key, at))
        return times

    def backlog_size(self, key: str, domain: str | None = None) -> int:
        """Number of queued tasks of `key`; one HGET per domain."""
        total = 0
        for name in self._selected(domain):
            record = f"{self._base(name)}k:{key}"
            n = self._cmd("backlog size", partial(self.client.hget, record, "n"))
            total += int(n or 0)
        return total

    def purge(self, domain: str | None = None) -> int:
        """Drop every queued task and lease (of `domain`, or all); return how many tasks."""
        return sum(int(self._run("purge", name)) for name in self._selected(domain))

    def domains(self) -> list[str]:
        """The domains registered under this prefix, oldest first."""
        return list(self._domains())

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def reopen(self) -> None:
        """Drop connections inherited across a fork; the next call opens fresh ones."""
        pool = getattr(self.client, "connection_pool", None)
        if pool is not None:
            pool.reset()
