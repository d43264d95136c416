"""The storage interface every backend implements, and the records it passes around."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from attrs import frozen

from policies import Job

from ..errors import ConfigurationError

#: The domain (Celery queue) tasks fall in when none is named: Celery's default queue.
DEFAULT_DOMAIN = "celery"

#: Seconds a dispatched task may stay unfinished before its slot is reclaimed.
DEFAULT_LEASE_TIMEOUT = 300.0

Clock = Callable[[], float]


def check_positive(name: str, value: object) -> float:
    """`value` as a float, or `ConfigurationError` naming `name` unless it is a finite
    number > 0 (bools are not numbers here)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def check_dispatch_limits(window: object, lease_timeout: object) -> None:
    """Raise `ConfigurationError` unless `window` is None or an int >= 0 and `lease_timeout`
    is a finite number of seconds > 0."""
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 0
    ):
        raise ConfigurationError(f"window must be None or an int >= 0, got {window!r}")
    check_positive("lease_timeout", lease_timeout)


@frozen
class Task:
    """A queued task: the record policies see, its serialized payload, and its domain."""

    job: Job
    payload: bytes = b""
    domain: str = DEFAULT_DOMAIN

    @property
    def id(self) -> str:
        """The task id (the Celery task id once dispatched)."""
        return self.job.id

    @property
    def key(self) -> str:
        """The key the task was submitted under."""
        return self.job.key


@frozen
class Dispatch:
    """The result of one dispatch: the leased task (or None) and the tasks that expired first.

    `lease_deadline` is when the task's slot is reclaimed unless it is completed first.
    """

    task: Task | None
    expired: tuple[Task, ...] = ()
    lease_deadline: float | None = None


class Storage(Protocol):
    """Per-key backlogs, the policy's state and in-flight leases, changed by atomic verbs.

    Times are seconds; `now=None` reads the storage's clock. Every verb is atomic: concurrent
    callers never see a half-done step, and a task is dispatched at most once per lease.
    """

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain."""
        ...

    def dispatch(
        self,
        domain: str = DEFAULT_DOMAIN,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """Withdraw expired tasks, then pick, pop and lease the next task if a slot is free.

        `window` caps the domain's leased tasks (None: no cap); a full window yields no task.
        """
        ...

    def submit(
        self,
        task: Task,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`enqueue` then `dispatch` in the task's domain, as one atomic step (one round trip).

        The task dispatched, if any, is whichever the policy picks, not necessarily `task`.
        """
        ...

    def finish(
        self,
        task_id: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> Dispatch:
        """`complete` then `dispatch` in the finished task's domain, as one atomic step."""
        ...

    def complete(
        self, task_id: str, runtime: float | None = None, now: float | None = None
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` (seconds) to the policy.

        A task whose lease was already reclaimed and requeued is withdrawn from the backlog,
        since it did run. Returns the task, or None if the id was neither leased nor queued.
        """
        ...

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed."""
        ...

    def revoke(self, task_id: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog; None if it is not queued."""
        ...

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease has run out to the head of its key's backlog."""
        ...

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog
        (its publish failed for a reason that may pass). None if it is not leased in `domain`.
        """
        ...

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        ...

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain; kept until changed."""
        ...

    def get_weight(self, key: str) -> float:
        """The weight of `key` (1.0 unless set)."""
        ...

    def get_all_lru_keys(self, domain: str | None = None) -> list[str]:
        """Keys with a backlog (in `domain`, or in any), in order of first enqueue."""
        ...

    def get_tasks_by_lru_key(
        self, key: str, limit: int | None = None, domain: str | None = None
    ) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        ...

    def get_last_used_times(self, domain: str | None = None) -> dict[str, float]:
        """Time of each key's latest dispatch."""
        ...

    def backlog_size(self, key: str, domain: str | None = None) -> int:
        """Number of queued tasks of `key`; O(1) per domain."""
        ...

    def purge(self, domain: str | None = None) -> int:
        """Drop every queued task and lease (of `domain`, or all); return how many tasks."""
        ...
