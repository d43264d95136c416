"""RedisStorage makes the same decisions as MemoryStorage, the reference, for every policy.

A Hypothesis state machine applies one random interleaving of enqueue / submit / dispatch
(with and without a window) / complete / finish (with run times, feeding DRR's estimate) /
expire / revoke / reclaim / set_weight to both storages with the same explicit times, and
requires identical results from every call and identical monitoring after every step.

FAIRSCHED_DIFF_EXAMPLES sets the examples per policy (default 60).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
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

from fairsched import FairschedError, Job, MemoryStorage, RedisStorage, Task
from policies import MAX_WEIGHT, MIN_WEIGHT
from tests.property.strategies import KEYS, costs, quanta, weights

pytestmark = pytest.mark.redis

EXAMPLES = int(os.environ.get("FAIRSCHED_DIFF_EXAMPLES", "60"))
DOMAINS = ["celery", "q2"]
domains = st.sampled_from(["celery", "celery", "celery", "q2"])
#: Round numbers make exact ties (deficit == cost, equal tags), where off-by-one bugs hide.
task_costs = st.none() | st.sampled_from([0.5, 1.0, 2.0]) | costs

weight_maps = st.dictionaries(st.sampled_from(KEYS), weights, max_size=3)
INNER: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "lru": st.just({"policy": "lru"}),
    "weighted_lru": st.builds(lambda w: {"policy": "weighted_lru", "weights": w}, weight_maps),
    "drr": st.builds(
        lambda q, a, w: {"policy": "drr", "quantum": q, "alpha": a, "weights": w},
        st.sampled_from([1.0, 0.5]) | quanta,
        st.sampled_from([0.2, 0.5, 1.0]),
        weight_maps,
    ),
}
POLICIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    **INNER,
    **{
        f"expiry_aware+{name}": st.builds(
            lambda i, s: {"policy": "expiry_aware", "inner": i, "slack": s},
            inner,
            st.sampled_from([0.0, 0.5, 2.0]),
        )
        for name, inner in INNER.items()
    },
}


def outcome(call: Any) -> Any:
    """The result of `call`, or the type of fairsched error it raised."""
    try:
        return call()
    except FairschedError as exc:
        return type(exc)


class Differential(RuleBasedStateMachine):
    client: Any = None
    config: st.SearchStrategy[dict[str, Any]] = st.just({"policy": "lru"})

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"fairsched-diff:{uuid.uuid4().hex[:12]}:"
        self.now = 0.0
        self.count = 0
        self.ids: list[str] = []
        #: Ids of tasks in domain celery: the ones `reuse_id` may queue again (RedisStorage
        #: checks duplicate ids per domain, MemoryStorage globally).
        self.celery_ids: list[str] = []
        self.memory: MemoryStorage | None = None
        self.redis: RedisStorage | None = None

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        config = data.draw(self.config, label="policy")
        self.memory = MemoryStorage(policy=config)
        self.redis = RedisStorage(self.client, prefix=self.prefix, policy=config)

    def both(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        mine = outcome(lambda: getattr(self.memory, verb)(*args, **kwargs))
        theirs = outcome(lambda: getattr(self.redis, verb)(*args, **kwargs))
        assert theirs == mine, f"{verb}{args}{kwargs}: redis {theirs!r} != memory {mine!r}"
        return mine

    def new_task(self, key: str, domain: str, cost: Any, ttl: Any, at_now: bool) -> Task:
        self.count += 1
        tid = f"t{self.count}"
        self.ids.append(tid)
        deadline = None if ttl is None else self.now + ttl
        if domain == "celery":
            self.celery_ids.append(tid)
        enqueued_at = self.now if at_now else self.now - 0.5
        return Task(Job(tid, key, enqueued_at, cost, deadline), tid.encode(), domain)

    @rule(dt=st.sampled_from([0.0, 0.25, 1.0, 1.5, 3.0, 1 / 3]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(
        key=st.sampled_from(KEYS),
        domain=domains,
        cost=task_costs,
        ttl=st.none() | st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0]),
        at_now=st.booleans(),
    )
    def enqueue(self, key: str, domain: str, cost: Any, ttl: Any, at_now: bool) -> None:
        self.both("enqueue", self.new_task(key, domain, cost, ttl, at_now), now=self.now)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=2, max_size=8), cost=task_costs)
    def enqueue_burst(self, keys: list[str], cost: Any) -> None:
        for key in keys:
            self.both("enqueue", self.new_task(key, "celery", cost, None, True), now=self.now)

    @precondition(lambda self: self.celery_ids)
    @rule(
        data=st.data(),
        key=st.sampled_from(KEYS),
        cost=task_costs,
        ttl=st.none() | st.sampled_from([0.5, 2.0, 5.0]),
    )
    def reuse_id(self, data: st.DataObject, key: str, cost: Any, ttl: Any) -> None:
        """Queue an id again after it finished or was withdrawn (or try to while it is live),
        with or without a deadline, whatever deadline its earlier run had."""
        tid = data.draw(st.sampled_from(self.celery_ids))
        deadline = None if ttl is None else self.now + ttl
        task = Task(Job(tid, key, self.now, cost, deadline), b"again-" + tid.encode(), "celery")
        self.both("enqueue", task, now=self.now)

    @rule(
        key=st.sampled_from(KEYS),
        domain=domains,
        cost=task_costs,
        ttl=st.none() | st.sampled_from([0.5, 2.0]),
        window=st.none() | st.none() | st.integers(0, 6),
    )
    def submit(self, key: str, domain: str, cost: Any, ttl: Any, window: Any) -> None:
        task = self.new_task(key, domain, cost, ttl, True)
        self.both("submit", task, now=self.now, window=window, lease_timeout=2.0)

    @rule(
        domain=domains,
        window=st.none() | st.none() | st.integers(0, 6),
        lease=st.sampled_from([1.0, 2.0, 300.0]),
        times=st.integers(1, 6),
    )
    def dispatch(self, domain: str, window: Any, lease: float, times: int) -> None:
        for _ in range(times):
            self.both("dispatch", domain, now=self.now, window=window, lease_timeout=lease)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), runtime=st.none() | st.floats(0.0, 4.0))
    def complete(self, data: st.DataObject, runtime: Any) -> None:
        tid = data.draw(st.sampled_from(self.ids))
        self.both("complete", tid, runtime=runtime, now=self.now)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), runtime=st.none() | st.floats(0.0, 4.0))
    def finish(self, data: st.DataObject, runtime: Any) -> None:
        tid = data.draw(st.sampled_from(self.ids))
        self.both("finish", tid, runtime=runtime, now=self.now, window=2, lease_timeout=2.0)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        self.both("revoke", data.draw(st.sampled_from(self.ids)), now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def expire(self, domain: str) -> None:
        self.both("expire", domain, now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def reclaim(self, domain: str) -> None:
        self.both("reclaim", domain, now=self.now)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), domain=domains)
    def requeue(self, data: st.DataObject, domain: str) -> None:
        self.both("requeue", data.draw(st.sampled_from(self.ids)), domain, now=self.now)

    @rule(domain=st.sampled_from(DOMAINS))
    def purge(self, domain: str) -> None:
        """Drop a domain's data; Redis must register it again before the next enqueue."""
        self.both("purge", domain)

    @rule(key=st.sampled_from(KEYS), weight=weights | st.sampled_from([MIN_WEIGHT, MAX_WEIGHT]))
    def set_weight(self, key: str, weight: float) -> None:
        self.both("set_weight", key, weight, now=self.now)

    @invariant()
    def same_monitoring(self) -> None:
        if self.memory is None:
            return
        for domain in DOMAINS:
            self.both("get_all_lru_keys", domain)
            self.both("in_flight", domain)
            self.both("get_last_used_times", domain)
            for key in self.both("get_all_lru_keys", domain):
                self.both("backlog_size", key, domain)
                self.both("get_tasks_by_lru_key", key, None, domain)

    def teardown(self) -> None:
        if self.redis is not None:
            self.redis.purge()
        for name in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(name)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_redis_storage_decides_like_memory_storage(policy: str, redis_client: Any) -> None:
    machine = type(
        f"Differential_{policy}",
        (Differential,),
        {"client": redis_client, "config": POLICIES[policy]},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
