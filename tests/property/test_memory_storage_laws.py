"""MemoryStorage keeps every task in exactly one place through leases, windows and reclaim.

Each task is always exactly one of: queued, leased, done, expired or revoked. A domain never
has more leased tasks than its window. A reclaimed task goes back to the head of its key and
is dispatched again (at-least-once); a finished task is never dispatched again. And through
the storage verbs, every policy keeps `fairsched.testing`'s universal laws, as in a bare
`FairQueue`.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fairsched import Job, MemoryStorage, Task
from fairsched.storage import Dispatch
from fairsched.testing import UNIVERSAL_LAWS, Op, check, run
from fairsched.testing.strategies import costs, keys, operations, policy_configs

DOMAINS = ["celery", "bulk"]
LEASE = 5.0


class MemoryStorageMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.storage: MemoryStorage
        self.window = 1
        self.now = 0.0
        self.serial = 0
        self.queued: dict[tuple[str, str], list[str]] = {}  # (domain, key) -> ids in order
        self.leased: dict[str, tuple[str, float]] = {}  # id -> (domain, lease deadline)
        self.tasks: dict[str, Task] = {}
        self.place: dict[str, str] = {}

    @initialize(config=policy_configs(), window=st.integers(1, 4))
    def build(self, config: dict[str, Any], window: int) -> None:
        self.storage = MemoryStorage(config, clock=lambda: self.now)
        self.window = window

    def _accept(self, dispatch: Dispatch, domain: str) -> None:
        for task in dispatch.expired:
            assert self.place[task.id] == "queued"
            assert task.job.deadline is not None and task.job.deadline < self.now
            self.queued[(domain, task.key)].remove(task.id)
            self.place[task.id] = "expired"
        for (d, _), ids in self.queued.items():
            for task_id in ids:
                deadline = self.tasks[task_id].job.deadline
                if d == domain:
                    assert deadline is None or deadline >= self.now, "expired task left queued"
        task = dispatch.task
        waiting = any(ids for (d, _), ids in self.queued.items() if d == domain)
        if task is None:
            assert not waiting or self.storage.in_flight(domain) >= self.window
            return
        assert task.domain == domain
        assert self.queued[(domain, task.key)][0] == task.id, "FIFO within a key"
        assert task == self.tasks[task.id], "payload or record changed in storage"
        self.queued[(domain, task.key)].pop(0)
        self.leased[task.id] = (domain, self.now + LEASE)
        self.place[task.id] = "leased"

    @rule(
        domain=st.sampled_from(DOMAINS),
        key=keys,
        cost=st.none() | costs,
        ttl=st.none() | st.floats(0, 10),
        payload=st.binary(max_size=8),
        submit=st.booleans(),
    )
    def enqueue(self, domain, key, cost, ttl, payload, submit) -> None:
        self.serial += 1
        deadline = None if ttl is None else self.now + ttl
        task = Task(Job(f"t{self.serial}", key, self.now, cost, deadline), payload, domain)
        self.tasks[task.id] = task
        self.queued.setdefault((domain, key), []).append(task.id)
        self.place[task.id] = "queued"
        if submit:
            self._accept(self.storage.submit(task, window=self.window, lease_timeout=LEASE), domain)
        else:
            self.storage.enqueue(task)

    @rule(domain=st.sampled_from(DOMAINS), step=st.floats(0, 2))
    def dispatch(self, domain: str, step: float) -> None:
        self.now += step
        self._accept(self.storage.dispatch(domain, window=self.window, lease_timeout=LEASE), domain)

    @precondition(lambda self: self.leased)
    @rule(data=st.data(), runtime=st.floats(0, 3), chain=st.booleans())
    def finish(self, data: st.DataObject, runtime: float, chain: bool) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.leased)))
        domain, _ = self.leased.pop(task_id)
        self.place[task_id] = "done"
        if chain:
            self._accept(
                self.storage.finish(
                    task_id, domain, runtime, window=self.window, lease_timeout=LEASE
                ),
                domain,
            )
        else:
            assert self.storage.complete(task_id, domain, runtime) == self.tasks[task_id]

    @rule(domain=st.sampled_from(DOMAINS), step=st.floats(0, 8))
    def reclaim(self, domain: str, step: float) -> None:
        self.now += step
        back = self.storage.reclaim(domain)
        due = sorted(i for i, (d, at) in self.leased.items() if d == domain and at < self.now)
        assert sorted(t.id for t in back) == due
        for task in reversed(back):  # each goes to the head of its key, in turn
            del self.leased[task.id]
            self.queued[(domain, task.key)].insert(0, task.id)
            self.place[task.id] = "queued"

    @precondition(lambda self: any(self.queued.values()))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        ids = sorted(i for ids in self.queued.values() for i in ids)
        task_id = data.draw(st.sampled_from(ids))
        task = self.tasks[task_id]
        assert self.storage.revoke(task_id, task.domain) == task
        self.queued[(task.domain, task.key)].remove(task_id)
        self.place[task_id] = "revoked"

    @rule()
    def finished_tasks_are_unknown_to_storage(self) -> None:
        for task_id, place in self.place.items():
            if place in ("done", "expired", "revoked"):
                domain = self.tasks[task_id].domain
                assert self.storage.revoke(task_id, domain) is None
                assert self.storage.complete(task_id, domain) is None

    @invariant()
    def every_task_is_in_exactly_one_place(self) -> None:
        if not hasattr(self, "storage"):
            return
        for domain in DOMAINS:
            assert self.storage.in_flight(domain) <= self.window
            leased = sum(1 for d, _ in self.leased.values() if d == domain)
            assert self.storage.in_flight(domain) == leased
        for (domain, key), ids in self.queued.items():
            stored = self.storage.queued(key, domain=domain)
            assert [t.id for t in stored] == ids
            assert self.storage.backlog_size(key, domain) == len(ids)
        backlogged = {k for (_, k), ids in self.queued.items() if ids}
        assert set(self.storage.keys()) == backlogged


TestMemoryStorageLaws = MemoryStorageMachine.TestCase
TestMemoryStorageLaws.settings = settings(
    max_examples=max(settings().max_examples, 200), stateful_step_count=60
)


@given(config=policy_configs(), ops=operations())
def test_memory_storage_keeps_the_universal_laws(config: dict[str, Any], ops: list[Op]) -> None:
    """Conservation (with the in-flight count), FIFO, work conservation, expiry and
    determinism, through enqueue, dispatch, complete, requeue, revoke, expire, set_weight."""
    check(run(lambda: MemoryStorage(config, clock=lambda: 0.0), ops), UNIVERSAL_LAWS)
