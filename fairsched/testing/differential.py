"""`check_twin`: a policy's Lua twin in Redis decides exactly as its Python self.

A Hypothesis state machine applies one random interleaving of every verb of the `Storage`
protocol (enqueue, submit, dispatch with and without a window, complete and finish with run
times and outcomes, expire, revoke, requeue, reclaim, purge, set_weight, set_weights) to
`MemoryStorage(policy)`, the reference, and `RedisStorage(client, policy=policy)` with the same
explicit times, and requires identical results and identical typed errors from every call, and
identical monitoring and recordings after every step. Inputs include ids reused within and
across domains, weights at both edges of the valid range, bad weights, and `now` going
backwards and non-finite.
"""

from __future__ import annotations

from . import _requires  # noqa: F401  (first: a missing Hypothesis says how to install it)

# isort: split

import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from policies import MAX_WEIGHT, MIN_WEIGHT, Job

from ..errors import FairschedError
from ..storage import OUTCOMES, MemoryStorage, Outcome, RedisStorage, Task
from ._ops import is_factory
from .laws import _OWN_DEFAULTS
from .strategies import KEYS, costs, weights

__all__ = ["check_twin"]

DOMAINS = ["celery", "q2"]
_domains = st.sampled_from(["celery", "celery", "celery", "q2"])
#: Round numbers make exact ties (deficit == cost, equal tags), where off-by-one bugs hide.
_task_costs = st.none() | st.sampled_from([0.0, 0.5, 1.0, 2.0]) | costs

#: Large enough that neither recording trims during a run (Redis trims only approximately).
RECORD_SIZE = 100_000

#: How a finished task ended, as a worker reports it (None: the default, done).
_endings = st.none() | st.builds(
    Outcome,
    st.sampled_from(OUTCOMES),
    st.none() | st.floats(0.0, 100.0),
    st.sampled_from(["", "celery@host:12", "w ith, spaces"]),
)


def _outcome(call: Any) -> Any:
    """The result of `call`, or the type of fairsched error it raised."""
    try:
        return call()
    except FairschedError as exc:
        return type(exc)


class _Twins(RuleBasedStateMachine):
    """Both storages, driven through the same calls; subclassed per check with its policy."""

    client: Any = None
    policies: st.SearchStrategy[Any] = st.just("lru")
    prefix_root = "fairsched-twin:"

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"{self.prefix_root}{uuid.uuid4().hex[:12]}:"
        self.now = 0.0
        self.count = 0
        self.ids: list[str] = []
        #: Each id's domain (an id is unique within its domain; `reuse_id` may queue it again
        #: in any domain).
        self.domain_of: dict[str, str] = {}
        self.memory: MemoryStorage | None = None
        self.redis: RedisStorage | None = None

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        config = data.draw(self.policies, label="policy")
        policy = config() if is_factory(config) else config
        self.memory = MemoryStorage(policy=policy, record_size=RECORD_SIZE)
        self.redis = RedisStorage(
            self.client, prefix=self.prefix, policy=policy, record_size=RECORD_SIZE
        )

    def both(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        mine = _outcome(lambda: getattr(self.memory, verb)(*args, **kwargs))
        theirs = _outcome(lambda: getattr(self.redis, verb)(*args, **kwargs))
        assert theirs == mine, f"{verb}{args}{kwargs}: redis {theirs!r} != memory {mine!r}"
        return mine

    def new_task(self, key: str, domain: str, cost: Any, ttl: Any, at_now: bool) -> Task:
        self.count += 1
        tid = f"t{self.count}"
        self.ids.append(tid)
        deadline = None if ttl is None else self.now + ttl
        self.domain_of[tid] = domain
        enqueued_at = self.now if at_now else self.now - 0.5
        return Task(Job(tid, key, enqueued_at, cost, deadline), tid.encode(), domain)

    @rule(dt=st.sampled_from([0.0, 0.25, 1.0, 1.5, 3.0, 1 / 3]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(dt=st.sampled_from([0.25, 1.0, 5.0]))
    def clock_goes_back(self, dt: float) -> None:
        """A producer or worker whose clock runs behind: later calls carry an earlier `now`."""
        self.now -= dt

    @rule(
        verb=st.sampled_from(["dispatch", "expire", "reclaim"]),
        bad=st.sampled_from([float("nan"), float("inf"), "1.0", None, True]),
    )
    def bad_now(self, verb: str, bad: Any) -> None:
        """A `now` that is not a finite number is the same typed error on both."""
        if bad is None:
            return  # None means "read the clock": different clocks, nothing to compare
        self.both(verb, "celery", now=bad)

    @rule(
        key=st.sampled_from(KEYS),
        domain=_domains,
        cost=_task_costs,
        ttl=st.none() | st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0]),
        at_now=st.booleans(),
    )
    def enqueue(self, key: str, domain: str, cost: Any, ttl: Any, at_now: bool) -> None:
        self.both("enqueue", self.new_task(key, domain, cost, ttl, at_now), now=self.now)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=2, max_size=8), cost=_task_costs)
    def enqueue_burst(self, keys: list[str], cost: Any) -> None:
        for key in keys:
            self.both("enqueue", self.new_task(key, "celery", cost, None, True), now=self.now)

    @precondition(lambda self: self.ids)
    @rule(
        data=st.data(),
        key=st.sampled_from(KEYS),
        domain=_domains,
        cost=_task_costs,
        ttl=st.none() | st.sampled_from([0.5, 2.0, 5.0]),
    )
    def reuse_id(self, data: st.DataObject, key: str, domain: str, cost: Any, ttl: Any) -> None:
        """Queue an id again, in its own domain or another, after it finished or was withdrawn
        (or try to while it is live: refused in its own domain only), with or without a
        deadline, whatever deadline its earlier run had."""
        tid = data.draw(st.sampled_from(self.ids))
        deadline = None if ttl is None else self.now + ttl
        task = Task(Job(tid, key, self.now, cost, deadline), b"again-" + tid.encode(), domain)
        self.both("enqueue", task, now=self.now)

    @rule(
        key=st.sampled_from(KEYS),
        domain=_domains,
        cost=_task_costs,
        ttl=st.none() | st.sampled_from([0.5, 2.0]),
        window=st.none() | st.none() | st.integers(0, 6),
    )
    def submit(self, key: str, domain: str, cost: Any, ttl: Any, window: Any) -> None:
        task = self.new_task(key, domain, cost, ttl, True)
        self.both("submit", task, now=self.now, window=window, lease_timeout=2.0)

    @rule(
        domain=_domains,
        window=st.none() | st.none() | st.integers(0, 6),
        lease=st.sampled_from([1.0, 2.0, 300.0]),
        times=st.integers(1, 6),
    )
    def dispatch(self, domain: str, window: Any, lease: float, times: int) -> None:
        for _ in range(times):
            self.both("dispatch", domain, now=self.now, window=window, lease_timeout=lease)

    def _id_and_domain(self, data: st.DataObject) -> tuple[str, str]:
        """An id, and usually its own domain (sometimes another, where it is unknown)."""
        tid = data.draw(st.sampled_from(self.ids))
        own = self.domain_of[tid]
        return tid, data.draw(st.sampled_from([own, own, own, *DOMAINS]))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), runtime=st.none() | st.floats(0.0, 4.0), how=_endings)
    def complete(self, data: st.DataObject, runtime: Any, how: Outcome | None) -> None:
        tid, domain = self._id_and_domain(data)
        self.both("complete", tid, domain, runtime=runtime, now=self.now, outcome=how)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), runtime=st.none() | st.floats(0.0, 4.0) | st.just(-1.0), how=_endings)
    def finish(self, data: st.DataObject, runtime: Any, how: Outcome | None) -> None:
        tid, domain = self._id_and_domain(data)
        self.both(
            "finish",
            tid,
            domain,
            runtime=runtime,
            now=self.now,
            window=2,
            lease_timeout=2.0,
            outcome=how,
        )

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        self.both("revoke", *self._id_and_domain(data), now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def expire(self, domain: str) -> None:
        self.both("expire", domain, now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def reclaim(self, domain: str) -> None:
        self.both("reclaim", domain, now=self.now)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        self.both("requeue", *self._id_and_domain(data), now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def purge(self, domain: str) -> None:
        """Drop a domain's data; Redis must register it again before the next enqueue."""
        self.both("purge", domain)

    @rule(
        key=st.sampled_from(KEYS),
        weight=weights
        | st.sampled_from([MIN_WEIGHT, MAX_WEIGHT])
        | st.sampled_from([0.0, 5e-324, MAX_WEIGHT * 2, float("nan"), "2"]),
    )
    def set_weight(self, key: str, weight: Any) -> None:
        self.both("set_weight", key, weight, now=self.now)

    @rule(
        mapping=st.dictionaries(
            st.sampled_from(KEYS), weights | st.sampled_from([MIN_WEIGHT, -1.0]), max_size=3
        )
    )
    def set_weights(self, mapping: dict[str, Any]) -> None:
        """Several at once: all applied, or (one bad) none."""
        self.both("set_weights", mapping, now=self.now)

    @invariant()
    def same_monitoring(self) -> None:
        if self.memory is None:
            return
        for domain in DOMAINS:
            self.both("keys", domain)
            self.both("in_flight", domain)
            self.both("last_dispatched", domain)
            # Every task that left was recorded once, with the same fields, in the same order.
            self.both("records", domain)
            for key in self.both("keys", domain):
                self.both("get_weight", key)
                self.both("backlog_size", key, domain)
                self.both("queued", key, None, domain)

    def teardown(self) -> None:
        if self.redis is not None:
            self.redis.purge()
        for name in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(name)


def check_twin(
    policy: Any,
    redis: Any,
    *,
    max_examples: int = 60,
    steps: int = 60,
    prefix: str = "fairsched-twin:",
    hypothesis_settings: settings | None = None,
) -> None:
    """Require `RedisStorage` (the policy's Lua twin) to behave exactly as `MemoryStorage`
    (the Python policy) through random sequences of every storage verb.

    `policy` is a policy object, registry name, `{"policy": ...}` mapping, a function of no
    arguments returning one, or a Hypothesis strategy of any of these (each example draws
    one). `redis` is a redis-py client or a URL. Each example works under its own key prefix,
    `prefix` plus a random part, and deletes its keys afterwards. `steps` is the number of
    calls per example. `hypothesis_settings` is a base for the run's settings (phases,
    database, ...; e.g. `settings(phases=[Phase.generate])` skips the slow shrinking).

    Raises:
        ConfigurationError: the policy has no Lua twin (raised by `RedisStorage`).
        AssertionError: the storages disagreed; the message shows the call, both results
            and the calls that led there, as Hypothesis shrank them.
    """
    client = redis
    if isinstance(redis, str):
        import redis as redis_py

        client = redis_py.Redis.from_url(redis)
    try:
        if not isinstance(policy, st.SearchStrategy):
            built = policy() if is_factory(policy) else policy
            # Registers nothing in Redis; a policy without a twin raises ConfigurationError here.
            RedisStorage(client, prefix=f"{prefix}check:", policy=built)
            policies: st.SearchStrategy[Any] = st.just(policy)
        else:
            policies = policy
        machine = type(
            "TwinCheck",
            (_Twins,),
            {"client": client, "policies": policies, "prefix_root": prefix},
        )
        run_state_machine_as_test(
            machine,
            settings=settings(
                hypothesis_settings,
                max_examples=max_examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                **({} if hypothesis_settings else _OWN_DEFAULTS),
            ),
        )
    except AssertionError as exc:
        notes = "\n".join(getattr(exc, "__notes__", ()))
        raise AssertionError(
            f"RedisStorage and MemoryStorage disagree for {policy!r}: {exc}\n{notes}".rstrip()
        ) from None
    finally:
        if client is not redis:
            client.close()
