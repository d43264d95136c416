"""Per-key backlogs and the fair queue that drives a policy over them.

`FairQueue` owns one `Backlog` (the per-key FIFOs every policy reads) and one policy state and
keeps both in step, so FIFO order, conservation and expiry hold the same way for every policy;
a policy only says which key goes next.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from attrs import define, field, frozen

from ._backlog import Backlog
from ._errors import InvalidJob
from ._job import Job, check_job, check_key, check_runtime, check_weight, check_weights
from ._protocol import Policy


@frozen
class Pick:
    """What one dispatch produced: the job to run (or None) and the jobs that expired first."""

    job: Job | None
    expired: tuple[Job, ...] = ()


@define
class FairQueue:
    """A fair queue of job records: FIFO within a key, the policy choosing between keys.

    Not thread-safe; callers that share one (the in-memory storage) hold a lock. Every method
    validates its input before changing anything, so a rejected call leaves the queue as it was.
    """

    policy: Policy[Any]
    backlog: Backlog = field(factory=Backlog)
    state: Any = field(default=None)
    #: Time of the latest dispatch per key, for monitoring (`get_last_used_times`).
    last_used: dict[str, float] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        for key, weight in self.policy.weights.items():
            self.backlog.weights[check_key(key)] = check_weight(weight, key)
        if self.state is None:
            self.state = self.policy.new_state(self.backlog)

    # -- enqueue side -------------------------------------------------------------------------

    def enqueue(self, job: Job, now: float) -> None:
        """Append `job` to the tail of its key's backlog.

        Raises:
            InvalidJob: a field is invalid or a live job already has this id.
        """
        self._insert(job, now, front=False)

    def requeue(self, job: Job, now: float) -> None:
        """Put `job` back at the head of its key's backlog (a reclaimed lease).

        Raises:
            InvalidJob: a field is invalid or a live job already has this id.
        """
        self._insert(job, now, front=True)

    def _insert(self, job: Job, now: float, front: bool) -> None:
        check_job(job)
        if job.id in self.backlog.jobs:
            raise InvalidJob(f"job id {job.id!r} is already queued")
        backlog = self.backlog
        key = job.key
        if key not in backlog.first_seen:
            backlog.first_seen[key] = len(backlog.first_seen)
        backlog.jobs[job.id] = job
        if job.deadline is not None:
            heapq.heappush(backlog.deadlines, (job.deadline, backlog.next_seq(), job))
        queue = backlog.queues.get(key)
        if queue is None:
            backlog.queues[key] = deque((job,))
            backlog.sizes[key] = 1
            self.policy.on_activate(self.state, key, now)
            return
        backlog.sizes[key] += 1
        if front:
            queue.appendleft(job)
            self.policy.on_head_change(self.state, key, now)
        else:
            queue.append(job)

    # -- dispatch side ------------------------------------------------------------------------

    def dispatch(self, now: float) -> Pick:
        """Pop the job the policy serves next, after withdrawing every job expired at `now`."""
        backlog = self.backlog
        expired: tuple[Job, ...] = ()
        if backlog.deadlines and backlog.deadlines[0][0] < now:
            expired = tuple(self.expire(now))
        key = self.policy.pick(self.state, now)
        if key is None:
            return Pick(None, expired)
        queue = backlog.queues[key]
        job = queue.popleft()
        del backlog.jobs[job.id]
        self.last_used[key] = now
        if self._drop_withdrawn_head(key, queue):
            backlog.sizes[key] -= 1
        self.policy.on_dispatch(self.state, key, job, now)
        return Pick(job, expired)

    def expire(self, now: float) -> list[Job]:
        """Withdraw and return every queued job whose deadline is before `now`."""
        backlog = self.backlog
        heap = backlog.deadlines
        expired: list[Job] = []
        while heap and heap[0][0] < now:
            _, _, job = heapq.heappop(heap)
            # A dispatched or revoked job leaves its entry behind: only a job still queued counts.
            if backlog.jobs.get(job.id) is job:
                self._withdraw(job, now)
                expired.append(job)
        return expired

    def remove(self, job_id: str, now: float) -> Job | None:
        """Withdraw the queued job `job_id` (a revoke); None if it is not queued."""
        job = self.backlog.jobs.get(job_id)
        if job is not None:
            self._withdraw(job, now)
        return job

    def _withdraw(self, job: Job, now: float) -> None:
        backlog = self.backlog
        key = job.key
        queue = backlog.queues[key]
        del backlog.jobs[job.id]
        if queue[0] is not job:
            # Deep in the queue: leave it there, marked, so withdrawal costs O(1).
            backlog.withdrawn.add(id(job))
            backlog.sizes[key] -= 1
            return
        queue.popleft()
        if self._drop_withdrawn_head(key, queue):
            backlog.sizes[key] -= 1
            self.policy.on_head_change(self.state, key, now)
        else:
            self.policy.on_deactivate(self.state, key, now)

    def _drop_withdrawn_head(self, key: str, queue: deque[Job]) -> bool:
        """Restore the live-head invariant after a pop; False (and forget the key) if empty."""
        withdrawn = self.backlog.withdrawn
        while withdrawn and queue and id(queue[0]) in withdrawn:
            withdrawn.discard(id(queue.popleft()))
        if queue:
            return True
        del self.backlog.queues[key]
        del self.backlog.sizes[key]
        return False

    # -- feedback and settings ----------------------------------------------------------------

    def complete(self, job: Job, runtime: float) -> None:
        """Tell the policy that a dispatched `job` ran for `runtime` seconds.

        Raises:
            InvalidJob: `runtime` is negative or not finite.
        """
        self.policy.on_complete(self.state, job, check_runtime(runtime))

    def set_weight(self, key: str, weight: float, now: float) -> None:
        """Set the weight of `key`; it applies from the key's next dispatch.

        Raises:
            InvalidJob: the key is invalid.
            InvalidWeight: the weight is not finite and > 0.
        """
        check_key(key)
        value = check_weight(weight, key)
        self.backlog.weights[key] = value
        if key in self.backlog.queues:
            self.policy.on_weight_change(self.state, key, now)

    def set_weights(self, weights: Mapping[str, float], now: float) -> None:
        """Set several weights at once; all are checked before any is applied."""
        checked = check_weights(weights)
        for key, value in checked.items():
            self.set_weight(key, value, now)

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.backlog.jobs)

    def keys(self) -> list[str]:
        """Backlogged keys, in order of first enqueue."""
        first_seen = self.backlog.first_seen
        return sorted(self.backlog.queues, key=first_seen.__getitem__)

    def size(self, key: str) -> int:
        """Number of jobs waiting under `key`; O(1)."""
        return self.backlog.sizes.get(key, 0)

    def jobs(self, key: str, limit: int | None = None) -> list[Job]:
        """The live jobs of `key` in dispatch order, at most `limit` of them."""
        queue = self.backlog.queues.get(key, ())
        withdrawn = self.backlog.withdrawn
        out: list[Job] = []
        for job in queue:
            if limit is not None and len(out) >= limit:
                break
            if id(job) not in withdrawn:
                out.append(job)
        return out

    def __iter__(self) -> Iterator[Job]:
        for key in self.keys():
            yield from self.jobs(key)
