"""In-memory storage: the reference backend for tests, the embedded demo and one process."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Mapping
from typing import Any

from attrs import define, field

from policies import (
    FairQueue,
    InvalidJob,
    Job,
    Policy,
    check_job,
    check_key,
    check_runtime,
    check_weight,
    check_weights,
    from_config,
)

from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    Clock,
    Dispatch,
    Task,
    check_dispatch_limits,
)


@define
class _Domain:
    """One domain's fair queue, the payloads of its queued tasks and its leases."""

    queue: FairQueue
    payloads: dict[str, bytes] = field(factory=dict)
    leases: dict[str, tuple[float, Task]] = field(factory=dict)
    #: (lease deadline, seq, task id); entries of completed leases are skipped lazily.
    lease_heap: list[tuple[float, int, str]] = field(factory=list)


@define
class MemoryStorage:
    """Runs the Python policy under a lock; thread-safe, not shared between processes.

    >>> storage = MemoryStorage(policy="lru")
    >>> storage.enqueue(Task(Job("t1", "bulk"), b"{}"), now=0.0)
    >>> storage.dispatch(now=1.0).task.id
    't1'
    """

    policy: Policy[Any] = field(default="lru", converter=from_config)
    clock: Clock = time.time
    _domains: dict[str, _Domain] = field(factory=dict, init=False)
    _weights: dict[str, float] = field(factory=dict, init=False)
    #: Which domain holds each queued or leased task id.
    _where: dict[str, str] = field(factory=dict, init=False)
    _lock: threading.RLock = field(factory=threading.RLock, init=False)
    _seq: int = field(default=0, init=False)

    def _domain(self, name: str) -> _Domain:
        domain = self._domains.get(name)
        if domain is None:
            check_key(name)
            queue = FairQueue(self.policy)
            queue.backlog.weights.update(self._weights)
            domain = self._domains[name] = _Domain(queue)
        return domain

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _task(self, domain: str, state: _Domain, job: Job) -> Task:
        return Task(job, state.payloads.pop(job.id), domain)

    # -- verbs --------------------------------------------------------------------------------

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain.

        Raises:
            InvalidJob: a field of the job is invalid, or the id is already queued or leased.
        """
        check_job(task.job)
        check_key(task.domain)
        if not isinstance(task.payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(task.payload).__name__}")
        with self._lock:
            if task.id in self._where:
                raise InvalidJob(f"task id {task.id!r} is already queued or leased")
            state = self._domain(task.domain)
            state.queue.enqueue(task.job, self._now(now))
            state.payloads[task.id] = task.payload
            self._where[task.id] = task.domain

    def dispatch(
        self,
        domain: str = DEFAULT_DOMAIN,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """Withdraw expired tasks, then pick, pop and lease the next task if a slot is free.

        Raises:
            ConfigurationError: `window` is not None or an int >= 0, or `lease_timeout` is not
                a finite number > 0.
        """
        check_dispatch_limits(window, lease_timeout)
        with self._lock:
            now = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return Dispatch(None)
            expired = tuple(self._withdrawn(domain, state, state.queue.expire(now)))
            if window is not None and len(state.leases) >= window:
                return Dispatch(None, expired)
            job = state.queue.dispatch(now).job
            if job is None:
                return Dispatch(None, expired)
            task = self._task(domain, state, job)
            deadline = now + lease_timeout
            state.leases[job.id] = (deadline, task)
            self._seq += 1
            heapq.heappush(state.lease_heap, (deadline, self._seq, job.id))
            return Dispatch(task, expired, deadline)

    def submit(
        self,
        task: Task,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`enqueue` then `dispatch` in the task's domain, atomically."""
        check_dispatch_limits(window, lease_timeout)  # before anything is stored
        with self._lock:
            now = self._now(now)
            self.enqueue(task, now)
            return self.dispatch(task.domain, now, window, lease_timeout)

    def finish(
        self,
        task_id: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`complete` then `dispatch` in the finished task's domain, atomically."""
        check_dispatch_limits(window, lease_timeout)
        if runtime is not None:
            check_runtime(runtime)
        with self._lock:
            now = self._now(now)
            domain = self._where.get(task_id)
            self.complete(task_id, runtime, now)
            if domain is None:
                return Dispatch(None)
            return self.dispatch(domain, now, window, lease_timeout)

    def _withdrawn(self, domain: str, state: _Domain, jobs: list[Job]) -> list[Task]:
        for job in jobs:
            del self._where[job.id]
        return [self._task(domain, state, job) for job in jobs]

    def complete(
        self, task_id: str, runtime: float | None = None, now: float | None = None
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` to the policy.

        A task whose lease was reclaimed and requeued is withdrawn, since it did run.
        """
        with self._lock:
            domain = self._where.get(task_id)
            if domain is None:
                return None
            state = self._domains[domain]
            lease = state.leases.get(task_id)
            if lease is not None:
                task = lease[1]
                if runtime is not None:
                    state.queue.complete(task.job, runtime)
                del state.leases[task_id], self._where[task_id]
                return task
            job = state.queue.remove(task_id, self._now(now))
            assert job is not None, "an id in _where is either leased or queued"
            del self._where[task_id]
            return self._task(domain, state, job)

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        with self._lock:
            state = self._domains.get(domain)
            if state is None:
                return []
            return self._withdrawn(domain, state, state.queue.expire(self._now(now)))

    def revoke(self, task_id: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued (maybe leased)."""
        with self._lock:
            domain = self._where.get(task_id)
            if domain is None:
                return None
            state = self._domains[domain]
            job = state.queue.remove(task_id, self._now(now))
            if job is None:
                return None
            return self._withdrawn(domain, state, [job])[0]

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease ran out to the head of its key's backlog."""
        with self._lock:
            now = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return []
            reclaimed: list[Task] = []
            heap = state.lease_heap
            while heap and heap[0][0] < now:
                deadline, _, task_id = heapq.heappop(heap)
                lease = state.leases.get(task_id)
                if lease is None or lease[0] != deadline:
                    continue  # completed, or leased again since
                del state.leases[task_id]
                reclaimed.append(lease[1])
            # Latest first, so that tasks of one key end up at its head in their old order.
            for task in reversed(reclaimed):
                state.queue.requeue(task.job, now)
                state.payloads[task.id] = task.payload
            return reclaimed

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog."""
        with self._lock:
            state = self._domains.get(domain)
            lease = None if state is None else state.leases.pop(task_id, None)
            if state is None or lease is None:
                return None
            task = lease[1]
            state.queue.requeue(task.job, self._now(now))
            state.payloads[task.id] = task.payload
            return task

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        with self._lock:
            state = self._domains.get(domain)
            return 0 if state is None else len(state.leases)

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain.

        Raises:
            InvalidJob: the key is invalid.
            InvalidWeight: the weight is not finite and > 0.
        """
        check_key(key)
        value = check_weight(weight, key)
        with self._lock:
            now = self._now(now)
            self._weights[key] = value
            for state in self._domains.values():
                state.queue.set_weight(key, value, now)

    def set_weights(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Set several weights; all are checked before any is applied."""
        checked = check_weights(weights)
        for key, value in checked.items():
            self.set_weight(key, value, now)

    def get_weight(self, key: str) -> float:
        """The weight of `key` (the policy's configured weight, else 1.0)."""
        with self._lock:
            if key in self._weights:
                return self._weights[key]
            return float(getattr(self.policy, "weights", {}).get(key, 1.0))

    # -- monitoring ---------------------------------------------------------------------------

    def _selected(self, domain: str | None) -> list[tuple[str, _Domain]]:
        if domain is None:
            return list(self._domains.items())
        state = self._domains.get(domain)
        return [] if state is None else [(domain, state)]

    def get_all_lru_keys(self, domain: str | None = None) -> list[str]:
        """Keys with a backlog (in `domain`, or in any), in order of first enqueue per domain."""
        with self._lock:
            keys: dict[str, None] = {}
            for _, state in self._selected(domain):
                keys.update(dict.fromkeys(state.queue.keys()))
            return list(keys)

    def get_tasks_by_lru_key(
        self, key: str, limit: int | None = None, domain: str | None = None
    ) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        with self._lock:
            out: list[Task] = []
            for name, state in self._selected(domain):
                left = None if limit is None else limit - len(out)
                jobs = state.queue.jobs(key, left)
                out.extend(Task(job, state.payloads[job.id], name) for job in jobs)
            return out

    def get_last_used_times(self, domain: str | None = None) -> dict[str, float]:
        """Time of each key's latest dispatch."""
        with self._lock:
            times: dict[str, float] = {}
            for _, state in self._selected(domain):
                for key, at in state.queue.last_used.items():
                    times[key] = max(at, times.get(key, at))
            return times

    def backlog_size(self, key: str, domain: str | None = None) -> int:
        """Number of queued tasks of `key`."""
        with self._lock:
            return sum(state.queue.size(key) for _, state in self._selected(domain))

    def purge(self, domain: str | None = None) -> int:
        """Drop every queued task and lease (of `domain`, or all); return how many tasks."""
        with self._lock:
            dropped = 0
            for name, state in self._selected(domain):
                dropped += len(state.queue) + len(state.leases)
                for task_id in [*state.payloads, *state.leases]:
                    self._where.pop(task_id, None)
                del self._domains[name]
            return dropped
