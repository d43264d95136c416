"""In-memory storage: the reference backend for tests, the embedded demo and one process."""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
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
    Outcome,
    Task,
    TaskRecord,
    WorkerRegistry,
    check_dispatch_limits,
    check_record_size,
)
from ._workers import MemoryWorkerRegistry

_DONE, _EXPIRED, _REVOKED = Outcome(), Outcome("expired"), Outcome("revoked")


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
    #: When each leased task was dispatched (for the recording).
    dispatched: dict[str, float] = field(factory=dict)
    #: The recording: the latest task outcomes, oldest first (a ring of `record_size`).
    trace: deque[TaskRecord] = field(factory=lambda: deque(maxlen=0))

    def record(
        self, task: Task, outcome: Outcome, now: float, runtime: float | None = None
    ) -> None:
        """Append `task`'s outcome to the recording (a no-op when the ring holds nothing)."""
        if not self.trace.maxlen:
            return
        job = task.job
        self.trace.append(
            TaskRecord(
                id=job.id,
                key=job.key,
                domain=task.domain,
                arrival=job.enqueued_at,
                dispatched=self.dispatched.get(job.id),
                started=outcome.started,
                service=runtime,
                cost=job.cost,
                deadline=job.deadline,
                weight=self.queue.backlog.weight(job.key),
                outcome=outcome.status,
                worker=outcome.worker,
                finished=now,
            )
        )

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
    #: How many task outcomes each domain's recording keeps (0: nothing is recorded).
    record_size: int = field(default=0, validator=lambda _, __, value: check_record_size(value))
    _domains: dict[str, _Domain] = field(factory=dict, init=False)
    _weights: dict[str, float] = field(factory=dict, init=False)
    _registry: MemoryWorkerRegistry = field(factory=MemoryWorkerRegistry, init=False)
    _lock: threading.RLock = field(factory=threading.RLock, init=False)
    _seq: int = field(default=0, init=False)
    #: Each domain's recording, kept apart from its state so that `purge` leaves it.
    _traces: dict[str, deque[TaskRecord]] = field(factory=dict, init=False)

    def _domain(self, name: str) -> _Domain:
        domain = self._domains.get(name)
        if domain is None:
            check_key(name)
            queue = FairQueue(self.policy)
            queue.backlog.weights.update(self._weights)
            domain = self._domains[name] = _Domain(queue)
            domain.trace = self._traces.setdefault(name, deque(maxlen=self.record_size))
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
            expired = tuple(self._withdrawn(domain, state, state.queue.expire(at), at))
            if window is not None and len(state.leases) >= window:
                return Dispatch(None, expired)
            job = state.queue.dispatch(at).job
            if job is None:
                return Dispatch(None, expired)
            task = self._task(domain, state, job)
            deadline = at + lease_timeout
            state.leases[job.id] = (deadline, task)
            state.dispatched[job.id] = at
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
        outcome: Outcome | None = None,
    ) -> Dispatch:
        """`complete` then `dispatch` in `domain`, atomically."""
        check_dispatch_limits(window, lease_timeout)
        if runtime is not None:
            check_runtime(runtime)
        with self._lock:
            at = self._now(now)
            if self.complete(task_id, domain, runtime, at, outcome) is None:
                return Dispatch(None)
            return self.dispatch(domain, at, window, lease_timeout)

    def _withdrawn(self, domain: str, state: _Domain, jobs: list[Job], now: float) -> list[Task]:
        """The tasks of expired `jobs`, recorded as expired."""
        out = [self._task(domain, state, job) for job in jobs]
        for task in out:
            state.record(task, _EXPIRED, now)
        return out

    def complete(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        outcome: Outcome | None = None,
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` to the policy, and record its
        `outcome` when recording.

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
            else:
                job = state.queue.remove(task_id, at)
                if job is None:
                    return None
                task = self._task(domain, state, job)
            state.record(task, outcome or _DONE, at, runtime)
            state.dispatched.pop(task_id, None)
            return task

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            if state is None:
                return []
            return self._withdrawn(domain, state, state.queue.expire(at), at)

    def revoke(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued (maybe leased)."""
        with self._lock:
            at = self._now(now)
            state = self._domains.get(domain)
            job = None if state is None else state.queue.remove(task_id, at)
            if state is None or job is None:
                return None
            task = self._task(domain, state, job)
            state.record(task, _REVOKED, at)
            return task

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
        """Drop every queued task and lease (of `domain`, or all); return how many tasks.
        Weights and the recording stay."""
        with self._lock:
            dropped = 0
            for name, state in self._selected(domain):
                dropped += len(state.queue) + len(state.leases)
                del self._domains[name]
            return dropped

    def records(
        self, domain: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[TaskRecord]:
        """The recorded outcomes (of `domain`, or all) that arrived in [`since`, `until`), in
        recording order per domain."""
        low = -math.inf if since is None else since
        high = math.inf if until is None else until
        with self._lock:
            names = list(self._traces) if domain is None else [domain]
            return [
                record
                for name in names
                for record in self._traces.get(name, ())
                if low <= record.arrival < high
            ]
