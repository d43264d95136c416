"""Redis storage: the same verbs as `MemoryStorage`, each one atomic Lua script (EVALSHA).

The Python policies are the specification; the scripts in `lua/` are their twins and a
differential property test holds them to the same decisions. See docs/redis.md for the data
model, key schema and the reasoning behind retries. The pieces: `_redis_scripts` assembles the
scripts, `_redis_wire` encodes what crosses to them, `_redis_client` builds the client and sorts
its failures.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from attrs import define, field

from policies import DEFAULT_POLICY, LuaTwin, Policy, from_config
from policies._job import check_job, check_key, check_runtime, check_time, check_weights
from policies._numbers import check_number

from ..errors import ConfigurationError, ScriptError, StorageUnavailable
from ..serializers import Serializer, SerializerType, get_serializer
from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    Clock,
    Dispatch,
    Outcome,
    Task,
    TaskRecord,
    WorkerRegistry,
    check_dispatch_limits,
    check_positive,
    check_record_size,
)
from ._redis_client import Unregistered, client_for, with_retries, with_ssl
from ._redis_scripts import (
    DOMAIN_KEYS,
    RECORD_PREFIX,
    VERBS,
    PolicyCode,
    locate,
    policy_code,
    preamble_numbers,
    script_source,
    twins,
)
from ._redis_wire import (
    dispatch_reply,
    key_base,
    num,
    opt,
    pack_id,
    task_record,
    tasks,
    text,
    word,
)
from ._workers import RedisWorkerRegistry

#: Seconds to wait for one reply, and for one connection attempt, before a call counts as
#: failed (and is retried, then raised as StorageUnavailable).
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0

#: Verbs whose first argument (the task id) is also the op token of the call (_core.lua).
_TASK_VERBS = frozenset({"enqueue", "submit", "finish"})

#: How many calls of unknown outcome are remembered; the oldest are forgotten (their leases
#: then lapse and are reclaimed, as before this was remembered).
_MAX_UNSETTLED = 10_000


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
    check_number(value, "max_retries", ConfigurationError, low=0, integer=True)


def _check_record_size(instance: Any, attribute: Any, value: Any) -> None:
    check_record_size(value)


#: Entries read per XRANGE call when a recording is read back.
_RECORD_PAGE = 1000

#: What a task finished without an `Outcome` is recorded as.
_DONE = Outcome()


def _outcome_args(outcome: Outcome | None) -> tuple[str, str, str]:
    how = outcome or _DONE
    return how.status, opt(how.started), how.worker


def _preamble(chain: tuple[LuaTwin, ...], key_ttl: float | None, record_size: int = 0) -> bytes:
    """The numbers every script reads first (ARGV[1], see _core.lua): key TTL, record size,
    then the policy twins' options."""
    ttl_ms = 0 if key_ttl is None else max(1, round(key_ttl * 1000))
    numbers = [str(ttl_ms), str(record_size), *map(num, preamble_numbers(chain))]
    # One argument: each argument costs the client an encoding step on every call.
    return " ".join(numbers).encode()


@define
class Unsettled:
    """Calls whose outcome a lost reply left unknown, to be sent again as repeats (a repeat
    never changes anything twice; docs/redis.md, "Retries"). Storages on the same Redis and
    prefix may share one, so that a repeat survives building the storage anew: the
    late-binding transport builds one per kombu channel, and Celery makes new channels when
    it reconnects to a lost broker."""

    #: Task-verb calls (verb, domain, task id), oldest first.
    calls: dict[tuple[str, str, str | bytes], None] = field(factory=dict)
    #: Per domain, the op token of a dispatch.
    dispatches: dict[str, bytes] = field(factory=dict)
    #: Shared storages may run in several threads (a producer's channels).
    lock: threading.Lock = field(factory=threading.Lock, eq=False, repr=False)


@define
class RedisStorage:
    """Backlogs, policy state and leases in Redis; every verb is one atomic Lua script.

    `client` is a redis-py `Redis` (build one with `from_url`/`from_settings` to get the retry
    policy and timeouts described in docs/redis.md). `key_ttl` (seconds) forgets an idle key's
    bookkeeping (its LRU rank, tags, estimate, last-used time) after that long without a
    backlog; queued tasks and leases never expire. `now=None` reads `clock` in this process.
    `record_size` > 0 records each task's outcome in a stream per domain that keeps about
    that many (see `records`; docs/recording.md).

    Raises:
        ConfigurationError: the policy has no Lua twin (`policies.LuaTwin`), or its twin
            cannot be read, or a setting is invalid.
    """

    client: Any
    prefix: str = field(default="fairsched:", validator=_check_prefix)
    policy: Policy[Any] = field(default=DEFAULT_POLICY, converter=from_config)
    serializer: Serializer = field(default=Serializer("json"), converter=_serializer)
    key_ttl: float | None = field(default=None, validator=_check_ttl)
    max_retries: int = field(default=3, validator=_check_retries)
    clock: Clock = time.time
    #: First back-off in seconds; doubled per attempt.
    retry_backoff: float = 0.05
    #: Late-binding dispatch: the prefix of the broker queue lists (kombu's `global_keyprefix`,
    #: usually "") on which consumers block; scripts that add work to a domain's backlog push
    #: a wake token onto `<wake_prefix><domain>`. None: no wake tokens (windowed dispatch).
    wake_prefix: str | None = None
    record_size: int = field(default=0, validator=_check_record_size)
    _scripts: dict[str, Any] = field(factory=dict, init=False, repr=False)
    _preamble: bytes = field(default=b"", init=False, repr=False)
    _code: PolicyCode = field(default=(), init=False, repr=False)
    _ready: set[str] = field(factory=set, init=False, repr=False)
    #: Calls whose outcome a lost reply left unknown, sent again as repeats. Storages built
    #: anew on the same Redis and prefix may share one (see `Unsettled`).
    unsettled: Unsettled = field(factory=Unsettled, repr=False)
    #: Weights set through this storage, written back after Redis lost its data.
    _set_here: dict[str, str] = field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        chain = twins(self.policy)
        self._code = policy_code(chain)
        self._preamble = _preamble(chain, self.key_ttl, self.record_size)
        for verb in VERBS:
            self._scripts[verb] = self.client.register_script(script_source(verb, self._code))

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
        client = client_for(
            url,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            client_options=client_options,
        )
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
        policy: Any = DEFAULT_POLICY,
        clock: Clock = time.time,
        client_options: Mapping[str, Any] | None = None,
        wake_prefix: str | None = None,
        record_size: int = 0,
    ) -> RedisStorage:
        """A storage from the settings users know (`redis_prefix`, `redis_serializer`, ...).

        `use_ssl=True` turns a redis:// URL into rediss://; `use_ssl=False` with a rediss://
        URL is a contradiction and raises.

        Raises:
            ConfigurationError: a setting is invalid or contradicts the URL.
        """
        return cls.from_url(
            with_ssl(url, use_ssl),
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            client_options=client_options,
            prefix=prefix,
            serializer=serializer,
            key_ttl=key_ttl,
            max_retries=max_retries,
            policy=policy,
            clock=clock,
            wake_prefix=wake_prefix,
            record_size=record_size,
        )

    # -- plumbing -------------------------------------------------------------------------------

    def _base(self, domain: str) -> str:
        return key_base(self.prefix, domain)

    def _now(self, now: float | None) -> float:
        return check_time(self.clock() if now is None else now)

    def _retry(self, what: str, call: Callable[[bool], Any], repeat: bool = False) -> Any:
        return with_retries(
            what,
            call,
            retries=self.max_retries,
            backoff=self.retry_backoff,
            prefix=self.prefix,
            repeat=repeat,
        )

    def _run(self, verb: str, domain: str, *args: str | bytes) -> Any:
        script = self._scripts[verb]
        keys = [self._base(domain)]
        if self.wake_prefix is not None:
            keys.append(self.wake_prefix + domain)
        head = self._preamble
        # A call of a task verb whose outcome stayed unknown (every attempt failed, one may
        # have run) is sent as a repeat the next time the same call is made, e.g. by a worker
        # retrying a slot release: it then gets what the lost run leased.
        call = (verb, domain, args[0]) if verb in _TASK_VERBS else None
        try:
            reply = self._retry(
                verb,
                lambda repeat: script(keys=keys, args=[head, b"1" if repeat else b"0", *args]),
                repeat=call in self.unsettled.calls,
            )
        except StorageUnavailable:
            if call is not None:
                with self.unsettled.lock:
                    self.unsettled.calls[call] = None
                    while len(self.unsettled.calls) > _MAX_UNSETTLED:
                        del self.unsettled.calls[next(iter(self.unsettled.calls))]
            raise
        except ScriptError as exc:
            # Name the file and line of the error (a policy's twin, most likely), not the
            # line of the assembled script.
            located = locate(verb, self._code, str(exc))
            if located == str(exc):
                raise
            raise ScriptError(located) from exc.__cause__
        if call is not None:
            self.unsettled.calls.pop(call, None)
        return reply

    def _write(self, verb: str, domain: str, *args: str | bytes) -> Any:
        """`_run` for a verb that stores tasks: registers the domain first, and again if its
        registration is gone (Redis restarted empty, FLUSHALL, purge)."""
        self._ensure_domain(domain)
        try:
            return self._run(verb, domain, *args)
        except Unregistered:
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
            pairs += [text(key), text(value)]
        for key, weight in self.policy.weights.items():
            pairs += [key, num(weight)]
        self._run("init", domain, *pairs)
        self._ready.add(domain)

    def _selected(self, domain: str | None) -> list[str]:
        return self.domains() if domain is None else [domain]

    @staticmethod
    def _task_args(task: Task, *numbers: str) -> list[str | bytes]:
        """id, key, payload, then the task's numbers and `numbers` in one argument."""
        job = task.job
        return [
            pack_id(job.id),
            job.key,
            task.payload,
            " ".join((repr(float(job.enqueued_at)), word(job.cost), word(job.deadline), *numbers)),
        ]

    @staticmethod
    def _check_task(task: Task) -> None:
        check_job(task.job)
        check_key(task.domain)
        if not isinstance(task.payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(task.payload).__name__}")

    @staticmethod
    def _limits(window: int | None, lease_timeout: float) -> str:
        check_dispatch_limits(window, lease_timeout)
        return f"{-1 if window is None else window} {num(lease_timeout)}"

    # -- what the Celery layer needs ------------------------------------------------------------

    def workers(self) -> WorkerRegistry:
        """Worker heartbeats in this Redis, under the storage's prefix."""
        return RedisWorkerRegistry(self.client, self.prefix)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def reopen(self) -> None:
        """Drop connections inherited across a fork; the next call opens fresh ones."""
        pool = getattr(self.client, "connection_pool", None)  # RedisCluster has none
        if pool is not None:
            pool.reset()

    # -- verbs ----------------------------------------------------------------------------------

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain (one round trip).

        Raises:
            InvalidJob: a field is invalid, or the id is queued or leased in the domain.
            StorageUnavailable: Redis cannot be reached; nothing was stored.
        """
        self._check_task(task)
        at = self._now(now)
        self._write("enqueue", task.domain, *self._task_args(task, num(at)))

    def dispatch(
        self,
        domain: str = DEFAULT_DOMAIN,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """Withdraw expired tasks, then pick, pop and lease the next task if a slot is free."""
        limits = self._limits(window, lease_timeout)
        at = self._now(now)
        # A token per call, so a repeat after a lost reply gets the task the first run leased
        # instead of leasing another. A call that failed hands its token to the next dispatch
        # in the domain, which then publishes what the lost run may have leased.
        op = self.unsettled.dispatches.pop(domain, None) or os.urandom(9)
        try:
            reply = self._run("dispatch", domain, f"{num(at)} {limits}", op)
        except StorageUnavailable:
            self.unsettled.dispatches[domain] = op
            raise
        return dispatch_reply(domain, reply)

    def submit(
        self,
        task: Task,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`enqueue` then `dispatch` in the task's domain, in one script."""
        self._check_task(task)
        limits = self._limits(window, lease_timeout)
        at = self._now(now)
        reply = self._write("submit", task.domain, *self._task_args(task, num(at), limits))
        return dispatch_reply(task.domain, reply)

    def finish(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        outcome: Outcome | None = None,
    ) -> Dispatch:
        """`complete` then `dispatch` in `domain`, in one script."""
        if runtime is not None:
            check_runtime(runtime)
        limits = self._limits(window, lease_timeout)
        at = self._now(now)
        reply = self._run(
            "finish",
            domain,
            pack_id(task_id),
            f"{word(runtime)} {num(at)} {limits}",
            *_outcome_args(outcome),
        )
        return Dispatch(None) if reply == -1 else dispatch_reply(domain, reply)

    def complete(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        outcome: Outcome | None = None,
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` (seconds) to the policy, and
        record its `outcome` when recording.

        A task whose lease was reclaimed and requeued is withdrawn, since it did run.
        """
        if runtime is not None:
            check_runtime(runtime)
        at = self._now(now)
        found = self._run(
            "complete", domain, pack_id(task_id), opt(runtime), num(at), *_outcome_args(outcome)
        )
        return tasks(domain, found)[0] if found else None

    def revoke(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued (maybe leased)."""
        found = self._run("revoke", domain, pack_id(task_id), num(self._now(now)))
        return tasks(domain, found)[0] if found else None

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog.

        For a dispatched task whose publish failed for a reason that may pass (the broker is
        down): it is dispatched again later instead of holding its slot until the lease
        lapses. Returns the task, or None if it is not leased in `domain`.
        """
        found = self._run("requeue", domain, pack_id(task_id), num(self._now(now)))
        return tasks(domain, found)[0] if found else None

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        return tasks(domain, self._run("expire", domain, num(self._now(now))))

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease ran out to the head of its key's backlog."""
        return tasks(domain, self._run("reclaim", domain, num(self._now(now))))

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain (one script per domain).

        Raises:
            InvalidJob: the key is invalid.
            InvalidWeight: the weight is not in [MIN_WEIGHT, MAX_WEIGHT].
        """
        self.set_weights({key: weight}, now)

    def set_weights(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Set several weights; all are checked before any is applied."""
        checked = check_weights(weights)
        at = num(self._now(now))
        if not checked:
            return
        mapping = {k: num(w) for k, w in checked.items()}
        self._set_here.update(mapping)
        # Global first, then each registered domain: a domain registered concurrently copies
        # the global values (see _ensure_domain), so no domain misses the change.
        self._cmd("set weights", lambda: self.client.hset(self._weights_key(), mapping=mapping))
        for domain in self.domains():
            for key, value in mapping.items():
                self._run("set_weight", domain, key, value, at)

    def get_weight(self, key: str) -> float:
        """The weight of `key` (set with `set_weight`, else the policy's, else 1.0)."""
        value = self._cmd("get weight", lambda: self.client.hget(self._weights_key(), key))
        if value is not None:
            return float(value)
        return float(self.policy.weights.get(key, 1.0))

    # -- monitoring -----------------------------------------------------------------------------

    def domains(self) -> list[str]:
        """The domains registered under this prefix, oldest first."""
        names = self._cmd("list domains", lambda: self.client.zrange(self._domains_key(), 0, -1))
        return [text(n) for n in names]

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        leases = self._base(domain) + DOMAIN_KEYS["LEASES"]
        return int(self._cmd("in_flight", partial(self.client.zcard, leases)))

    def keys(self, domain: str | None = None) -> list[str]:
        """Backlogged keys (in `domain`, or in any), in order of first enqueue per domain."""
        found: dict[str, None] = {}
        for name in self._selected(domain):
            active = self._base(name) + DOMAIN_KEYS["ACTIVE"]
            listed = self._cmd("read keys", partial(self.client.zrange, active, 0, -1))
            found.update(dict.fromkeys(text(k) for k in listed))
        return list(found)

    def queued(self, key: str, limit: int | None = None, domain: str | None = None) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        out: list[Task] = []
        for name in self._selected(domain):
            left = -1 if limit is None else limit - len(out)
            if left == 0:
                break
            out += tasks(name, self._run("tasks_by_key", name, key, str(left)))
        return out

    def last_dispatched(self, domain: str | None = None) -> dict[str, float]:
        """Time of each key's latest dispatch."""
        times: dict[str, float] = {}
        for name in self._selected(domain):
            flat = self._run("last_used", name)
            for i in range(0, len(flat), 2):
                key, at = text(flat[i]), float(flat[i + 1])
                times[key] = max(at, times.get(key, at))
        return times

    def backlog_size(self, key: str, domain: str | None = None) -> int:
        """Number of queued tasks of `key`; one HGET per domain."""
        total = 0
        for name in self._selected(domain):
            record = f"{self._base(name)}{RECORD_PREFIX}{key}"
            n = self._cmd("backlog size", partial(self.client.hget, record, "n"))
            total += int(n or 0)
        return total

    def purge(self, domain: str | None = None) -> int:
        """Drop every queued task and lease (of `domain`, or all); return how many tasks.
        Weights and the recording stay."""
        return sum(int(self._run("purge", name)) for name in self._selected(domain))

    def records(
        self, domain: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[TaskRecord]:
        """The recorded outcomes (of `domain`, or all) that arrived in [`since`, `until`), in
        recording order per domain; read in pages of XRANGE, so a long stream is not one
        reply."""
        out: list[TaskRecord] = []
        low = -math.inf if since is None else since
        high = math.inf if until is None else until
        for name in self._selected(domain):
            stream = self._base(name) + DOMAIN_KEYS["TRACE"]
            start = "-"
            while True:
                page = self._cmd(
                    "read records",
                    partial(self.client.xrange, stream, start, "+", count=_RECORD_PAGE),
                )
                for _, fields in page:
                    record = task_record(name, fields)
                    if low <= record.arrival < high:
                        out.append(record)
                if len(page) < _RECORD_PAGE:
                    break
                start = "(" + text(page[-1][0])
        return out
