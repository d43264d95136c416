"""In-memory storage: the reference backend for tests, the embedded demo and one process."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Mapping
from typing import Any

from attrs import define, field

from policies import DEFAULT_POLICY, FairQueue, InvalidJob, Job, Policy, from_config
from policies._job import check_job, check_key, check_runtime, check_time, check_weights

from ..serializers import Serializer, get_serializer
from ._base import (
    DEFAULT_DOMAIN,
    DEFAULT_LEASE_TIMEOUT,
    Clock,
    Dispatch,
    Task,
    WorkerRegistry,
    check_dispatch_limits,
)
from ._workers import MemoryWorkerRegistry


def _serializer(value: Any) -> Serializer:
    return value if isinstance(value, Serializer) else get_serializer(value)


@define
class _Domain:
    """One domain's fair queue, the payloads of its queued tasks and its leases."""

    queue: FairQueue
    payloads: dict[str, bytes] = field(factory=dict)
    leases: dict[str, tuple[float, Task]] = field(factory=dict)
    #: (lease deadline, seq, task id); entries of completed leases are skipped lazily.
    lease_heap: list[tuple[float, int, str]] = field(factory=list)

    def holds(self, task_id: str) -> bool:
        """Whether `task_id` is queued or leased here."""
        return task_id in self.leases or task_id in self.queue.backlog.jobs


@define
class MemoryStorage:
    """Runs the Python policy under a lock; thread-safe, not shared between processes.

    >>> storage = MemoryStorage(policy="lru")
    >>> storage.enqueue(Task(Job("t1", "bulk"), b"{}"), now=0.0)
    >>> storage.dispatch(now=1.0).task.id
    't1'
    """

    policy: Policy[Any] = field(default=DEFAULT_POLICY, converter=from_config)
    serializer: Serializer = field(default=Serializer("json"), converter=_serializer)
    clock: Clock = time.time
    _domains: dict[str, _Domain] = field(factory=dict, init=False)
    _weights: dict[str, float] = field(factory=dict, init=False)
    _registry: MemoryWorkerRegistry = field(factory=MemoryWorkerRegistry, init=False)
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
        return check_time(self.clock() if now is None else now)

    def _task(self, domain: str, state: _Domain, job: Job) -> Task:
        return Task(job, state.payloads.pop(job.id), domain)

    # -- what the Celery layer needs ------------------------------------------------------------

    def workers(self) -> WorkerRegistry:
        """Heartbeats kept in this process (its workers share the process with producers)."""
        return self._registry

    def reopen(self) -> None:
        """Nothing to reopen: the storage lives in this process."""

    def close(self) -> None:
        """Nothing to close."""

    # -- verbs --------------------------------------------------------------------------------

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain.

        Raises:
            InvalidJob: a field of the job is invalid, or the id is queued or leased in the
                task's domain.
        """
        check_job(task.job)
        check_key(task.domain)
        if not isinstance(task.payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(task.payload).__name__}")
        with self._lock:
            at = self._now(now)
            state = self._domain(task.domain)
            if state.holds(task.id):
                raise InvalidJob("task id is already queued or leased in its domain")
            state.queue.enqueue(task.job, at)
            state.payloads[task.id] = task.payload

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
            at = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return Dispatch(None)
            expired = tuple(self._withdrawn(domain, state, state.queue.expire(at)))
            if window is not None and len(state.leases) >= window:
                return Dispatch(None, expired)
            job = state.queue.dispatch(at).job
            if job is None:
                return Dispatch(None, expired)
            task = self._task(domain, state, job)
            deadline = at + lease_timeout
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
            at = self._now(now)
            self.enqueue(task, at)
            return self.dispatch(task.domain, at, window, lease_timeout)

    def finish(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`complete` then `dispatch` in `domain`, atomically."""
        check_dispatch_limits(window, lease_timeout)
        if runtime is not None:
            check_runtime(runtime)
        with self._lock:
            at = self._now(now)
            if self.complete(task_id, domain, runtime, at) is None:
                return Dispatch(None)
            return self.dispatch(domain, at, window, lease_timeout)

    def _withdrawn(self, domain: str, state: _Domain, jobs: list[Job]) -> list[Task]:
        return [self._task(domain, state, job) for job in jobs]

    def complete(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` to the policy.

        A task whose lease was reclaimed and requeued is withdrawn, since it did run.
        """
        if runtime is not None:
            check_runtime(runtime)
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return None
            lease = state.leases.pop(task_id, None)
            if lease is not None:
                task = lease[1]
                if runtime is not None:
                    state.queue.complete(task.job, runtime)
                return task
            job = state.queue.remove(task_id, at)
            return None if job is None else self._task(domain, state, job)

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return []
            return self._withdrawn(domain, state, state.queue.expire(at))

    def revoke(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued (maybe leased)."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            job = None if state is None else state.queue.remove(task_id, at)
            if state is None or job is None:
                return None
            return self._task(domain, state, job)

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease ran out to the head of its key's backlog."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return []
            reclaimed: list[Task] = []
            heap = state.lease_heap
            while heap and heap[0][0] < at:
                deadline, _, task_id = heapq.heappop(heap)
                lease = state.leases.get(task_id)
                if lease is None or lease[0] != deadline:
                    continue  # completed, or leased again since
                del state.leases[task_id]
                reclaimed.append(lease[1])
            # Latest first, so that tasks of one key end up at its head in their old order.
            for task in reversed(reclaimed):
                state.queue.requeue(task.job, at)
                state.payloads[task.id] = task.payload
            return reclaimed

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            lease = None if state is None else state.leases.pop(task_id, None)
            if state is None or lease is None:
                return None
            task = lease[1]
            state.queue.requeue(task.job, at)
            state.payloads[task.id] = task.payload
            return task

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain.

        Raises:
            InvalidJob: the key is invalid.
            InvalidWeight: the weight is not in [MIN_WEIGHT, MAX_WEIGHT].
        """
        self.set_weights({key: weight}, now)

    def set_weights(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Set several weights; all are checked before any is applied."""
        checked = check_weights(weights)
        with self._lock:
            at = self._now(now)
            self._weights.update(checked)
            for state in self._domains.values():
                state.queue.set_weights(checked, at)

    def get_weight(self, key: str) -> float:
        """The weight of `key` (set here, else the policy's configured weight, else 1.0)."""
        with self._lock:
            if key in self._weights:
                return self._weights[key]
            return float(self.policy.weights.get(key, 1.0))

    # -- monitoring ---------------------------------------------------------------------------

    def _selected(self, domain: str | None) -> list[tuple[str, _Domain]]:
        if domain is None:
            return list(self._domains.items())
        state = self._domains.get(domain)
        return [] if state is None else [(domain, state)]

    def domains(self) -> list[str]:
        """The domains that hold or held tasks, in order of creation."""
        with self._lock:
            return list(self._domains)

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        with self._lock:
            state = self._domains.get(domain)
            return 0 if state is None else len(state.leases)

    def keys(self, domain: str | None = None) -> list[str]:
        """Backlogged keys (in `domain`, or in any), in order of first enqueue per domain."""
        with self._lock:
            found: dict[str, None] = {}
            for _, state in self._selected(domain):
                found.update(dict.fromkeys(state.queue.keys()))
            return list(found)

    def queued(self, key: str, limit: int | None = None, domain: str | None = None) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        with self._lock:
            out: list[Task] = []
            for name, state in self._selected(domain):
                left = None if limit is None else limit - len(out)
                jobs = state.queue.jobs(key, left)
                out.extend(Task(job, state.payloads[job.id], name) for job in jobs)
            return out

    def last_dispatched(self, domain: str | None = None) -> dict[str, float]:
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
                del self._domains[name]
            return dropped
