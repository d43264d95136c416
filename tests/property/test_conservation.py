"""Laws every policy keeps, checked against a plain FIFO-per-key model under random interleavings.

Conservation: every enqueued job is dispatched exactly once per time it was queued, or comes
back as expired or revoked; nothing is invented, nothing lost. FIFO within a key: a dispatched
job is always the oldest queued job of its key (a requeued job counts as the oldest). Work
conservation: dispatch returns a job whenever an unexpired one is queued. Expiry: no job whose
deadline has passed is ever dispatched, and exactly those jobs are handed back as expired.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from policies import FairQueue, InvalidJob, Job, from_config
from tests.property.strategies import costs, keys, policy_configs, weights

steps = st.floats(min_value=0.0, max_value=3.0, allow_nan=False)
ttls = st.none() | st.floats(min_value=0.0, max_value=20.0, allow_nan=False)


class FairQueueMachine(RuleBasedStateMachine):
    """Drives a FairQueue and a trivially correct model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: FairQueue
        self.model: dict[str, list[Job]] = {}
        self.out: dict[str, Job] = {}  # dispatched and not completed or requeued
        self.times_queued: Counter[str] = Counter()
        self.times_dispatched: Counter[str] = Counter()
        self.now = 0.0
        self.serial = 0
        self.retired: list[str] = []  # ids no longer queued nor out: free to be used again

    @initialize(config=policy_configs())
    def build(self, config: dict[str, Any]) -> None:
        self.queue = FairQueue(from_config(config))

    def _queued(self) -> list[Job]:
        return [job for jobs in self.model.values() for job in jobs]

    def _take_expired(self, returned: tuple[Job, ...] | list[Job]) -> None:
        due = {j.id for j in self._queued() if j.deadline is not None and j.deadline < self.now}
        assert {j.id for j in returned} == due
        assert len(returned) == len(due), "a job came back as expired twice"
        self.retired.extend(sorted(due))
        for key, jobs in self.model.items():
            self.model[key] = [j for j in jobs if j.id not in due]

    @rule(key=keys, cost=st.none() | costs, ttl=ttls, reuse=st.booleans())
    def enqueue(self, key: str, cost: float | None, ttl: float | None, reuse: bool) -> None:
        """Enqueue a job, under a fresh id or (ids are the caller's) one already finished."""
        self.serial += 1
        deadline = None if ttl is None else self.now + ttl
        job_id = self.retired.pop(0) if reuse and self.retired else f"j{self.serial}"
        job = Job(job_id, key, self.now, cost, deadline)
        self.queue.enqueue(job, self.now)
        self.model.setdefault(key, []).append(job)
        self.times_queued[job.id] += 1

    @rule(step=steps)
    def dispatch(self, step: float) -> None:
        self.now += step
        pick = self.queue.dispatch(self.now)
        self._take_expired(pick.expired)
        if not self._queued():
            assert pick.job is None
            return
        job = pick.job
        assert job is not None, "work conservation: a job was eligible but none dispatched"
        assert self.model[job.key][0] == job, "FIFO within a key"
        assert job.deadline is None or job.deadline >= self.now, "expired job dispatched"
        self.model[job.key].pop(0)
        self.out[job.id] = job
        self.times_dispatched[job.id] += 1
        assert self.times_dispatched[job.id] <= self.times_queued[job.id]

    @rule(step=steps)
    def expire(self, step: float) -> None:
        self.now += step
        self._take_expired(self.queue.expire(self.now))

    @precondition(lambda self: self.out)
    @rule(data=st.data(), runtime=st.floats(min_value=0.0, max_value=10.0))
    def complete(self, data: st.DataObject, runtime: float) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.out)))
        self.queue.complete(self.out.pop(job_id), runtime)
        self.retired.append(job_id)

    @precondition(lambda self: self.out)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        job = self.out.pop(data.draw(st.sampled_from(sorted(self.out))))
        self.queue.requeue(job, self.now)
        self.model[job.key].insert(0, job)
        self.times_queued[job.id] += 1

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._queued()))
        assert self.queue.remove(job.id, self.now) == job
        self.model[job.key].remove(job)
        assert self.queue.remove(job.id, self.now) is None
        self.retired.append(job.id)

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data())
    def duplicate_id_is_refused(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._queued()))
        before = self.queue.jobs(job.key)
        try:
            self.queue.enqueue(Job(job.id, job.key, self.now), self.now)
        except InvalidJob:
            pass
        else:
            raise AssertionError("a duplicate id was accepted")
        assert self.queue.jobs(job.key) == before

    @rule(key=keys, weight=weights)
    def set_weight(self, key: str, weight: float) -> None:
        self.queue.set_weight(key, weight, self.now)

    @invariant()
    def backlogs_match_the_model(self) -> None:
        if not hasattr(self, "queue"):
            return
        expected = {k: v for k, v in self.model.items() if v}
        assert set(self.queue.keys()) == set(expected)
        for key, jobs in expected.items():
            assert self.queue.jobs(key) == jobs
            assert self.queue.size(key) == len(jobs)
        assert len(self.queue) == sum(map(len, expected.values()))


TestFairQueueLaws = FairQueueMachine.TestCase
TestFairQueueLaws.settings = settings(
    max_examples=max(settings().max_examples, 200), stateful_step_count=80
)
