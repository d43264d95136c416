"""The storage interface every backend implements, and the records it passes around."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from attrs import frozen

from policies import Job, Policy
from policies._numbers import check_number

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..serializers import Serializer

#: The domain (Celery queue) tasks fall in when none is named: Celery's default queue.
DEFAULT_DOMAIN = "celery"

#: Seconds a dispatched task may stay unfinished before its slot is reclaimed.
DEFAULT_LEASE_TIMEOUT = 300.0

Clock = Callable[[], float]


def check_positive(name: str, value: object) -> float:
    """`value` as a float, or `ConfigurationError` naming `name` unless it is a finite
    number > 0 (bools are not numbers here)."""
    return check_number(value, name, ConfigurationError, low=0, low_open=True)


def check_dispatch_limits(window: object, lease_timeout: object) -> None:
    """Raise `ConfigurationError` unless `window` is None or an int >= 0 and `lease_timeout`
    is a finite number of seconds > 0."""
    if window is not None:
        check_number(window, "window", ConfigurationError, low=0, integer=True)
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


#: How a task can leave its domain, as recorded: it ran (done, failed, or failed and was
#: retried as a new message), or it was withdrawn before it ran (expired, revoked).
OUTCOMES = ("done", "failed", "retried", "expired", "revoked")

#: Most task outcomes a domain's recording may keep (`record_size`).
MAX_RECORD_SIZE = 10_000_000


def check_record_size(value: object) -> int:
    """`value` as an int in [0, MAX_RECORD_SIZE] (0: recording off), or ConfigurationError."""
    return int(
        check_number(
            value, "record_size", ConfigurationError, low=0, high=MAX_RECORD_SIZE, integer=True
        )
    )


@frozen
class Outcome:
    """How a leased task ended, as the worker that ran it saw it (for the recording).

    `status` is one of OUTCOMES; `started` is the wall-clock time (s) it started on the
    worker, None if unknown; `worker` names the process that ran it (host and pid).
    """

    status: str = "done"
    started: float | None = None
    worker: str = ""

    def __attrs_post_init__(self) -> None:
        if self.status not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {self.status!r}")
        if self.started is not None:
            check_number(self.started, "started", ValueError)
        if not isinstance(self.worker, str):
            raise TypeError(f"worker must be a str, got {type(self.worker).__name__}")


@frozen
class TaskRecord:
    """One task's outcome as a domain recorded it when the task left (see `Storage.records`).

    Times are wall-clock seconds: `arrival` (submitted), `dispatched` (last leased; None if it
    never was), `started` (on the worker, None if unknown), `finished` (when recorded);
    `service` is the run time the worker measured (None for a task that never ran). `weight`
    is the key's weight when the task left.
    """

    id: str
    key: str
    domain: str
    arrival: float
    dispatched: float | None
    started: float | None
    service: float | None
    cost: float | None
    deadline: float | None
    weight: float
    outcome: str
    worker: str
    finished: float


@frozen
class Dispatch:
    """The result of one dispatch: the leased task (or None) and the tasks that expired first.

    `lease_deadline` is when the task's slot is reclaimed unless it is completed first.
    """

    task: Task | None
    expired: tuple[Task, ...] = ()
    lease_deadline: float | None = None


class WorkerRegistry(Protocol):
    """Live workers and their concurrency, per domain."""

    def beat(self, worker: str, domains: Iterable[str], concurrency: int, ttl: float) -> None:
        """Record that `worker` is alive for `ttl` seconds, serving `domains`."""
        ...

    def leave(self, worker: str, domains: Iterable[str]) -> None:
        """Forget `worker` at once (a clean shutdown)."""
        ...

    def concurrency(self, domain: str) -> int:
        """Total concurrency of the live workers serving `domain` (0 if none)."""
        ...


class Storage(Protocol):
    """Per-key backlogs, the policy's state and in-flight leases, changed by atomic verbs.

    Times are seconds; `now=None` reads the storage's clock. Every verb is atomic: concurrent
    callers never see a half-done step, and a task is dispatched at most once per lease. Every
    verb that names a task also names its domain, so it is one atomic call, never a search;
    an id is unique within its domain. The same inputs give the same results and the same
    errors on every backend (`tests/property/test_redis_differential.py` holds them to it).
    """

    @property
    def policy(self) -> Policy[Any]:
        """The policy this storage runs."""
        ...

    @property
    def serializer(self) -> Serializer:
        """How task payloads are encoded before they are stored."""
        ...

    @property
    def record_size(self) -> int:
        """How many task outcomes each domain's recording keeps (0: recording is off)."""
        ...

    def workers(self) -> WorkerRegistry:
        """The registry of live workers per domain (heartbeats), for `window="auto"`."""
        ...

    def reopen(self) -> None:
        """Drop connections inherited across a fork; the next call opens fresh ones."""
        ...

    def close(self) -> None:
        """Release connections (the storage's data stays where it is)."""
        ...

    # -- verbs ----------------------------------------------------------------------------------

    def enqueue(self, task: Task, now: float | None = None) -> None:
        """Append `task` to its key's backlog in its domain.

        Raises:
            InvalidJob: a field is invalid, or the id is queued or leased in the domain.
        """
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
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        window: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        outcome: Outcome | None = None,
    ) -> Dispatch:
        """`complete` then `dispatch` in `domain`, as one atomic step."""
        ...

    def complete(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        now: float | None = None,
        outcome: Outcome | None = None,
    ) -> Task | None:
        """Release the lease of `task_id`, feeding `runtime` (seconds) to the policy, and
        record its `outcome` (default: done, start and worker unknown) when recording.

        A task whose lease was already reclaimed and requeued is withdrawn from the backlog,
        since it did run. Returns the task, or None if the id was neither leased nor queued.
        """
        ...

    def revoke(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """Withdraw `task_id` from its backlog (recorded as revoked); None if it is not
        queued (maybe leased)."""
        ...

    def requeue(self, task_id: str, domain: str, now: float | None = None) -> Task | None:
        """End the lease of `task_id` now and return it to the head of its key's backlog
        (its publish failed for a reason that may pass). None if it is not leased in `domain`.
        """
        ...

    def expire(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Withdraw and return the queued tasks of `domain` whose deadline has passed
        (recorded as expired, as are those `dispatch` withdraws)."""
        ...

    def reclaim(self, domain: str = DEFAULT_DOMAIN, now: float | None = None) -> list[Task]:
        """Return every task whose lease has run out to the head of its key's backlog."""
        ...

    def set_weight(self, key: str, weight: float, now: float | None = None) -> None:
        """Set the weight of `key` in every domain; kept until changed."""
        ...

    def set_weights(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Set several weights; all are checked before any is applied."""
        ...

    def get_weight(self, key: str) -> float:
        """The weight of `key` (set here, else the policy's, else 1.0)."""
        ...

    # -- monitoring -----------------------------------------------------------------------------

    def domains(self) -> list[str]:
        """The domains that hold or held tasks."""
        ...

    def in_flight(self, domain: str = DEFAULT_DOMAIN) -> int:
        """Number of leased (dispatched, unfinished) tasks in `domain`."""
        ...

    def keys(self, domain: str | None = None) -> list[str]:
        """Backlogged keys (in `domain`, or in any), in order of first enqueue per domain."""
        ...

    def queued(self, key: str, limit: int | None = None, domain: str | None = None) -> list[Task]:
        """The queued tasks of `key` in dispatch order, at most `limit`."""
        ...

    def last_dispatched(self, domain: str | None = None) -> dict[str, float]:
        """Time of each key's latest dispatch."""
        ...

    def backlog_size(self, key: str, domain: str | None = None) -> int:
        """Number of queued tasks of `key`; O(1) per domain."""
        ...

    def purge(self, domain: str | None = None) -> int:
        """Drop every queued task and lease (of `domain`, or all); return how many tasks.
        Weights and the recording stay."""
        ...

    def records(
        self, domain: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[TaskRecord]:
        """The recorded task outcomes (of `domain`, or all) whose arrival lies in
        [`since`, `until`), in the order they were recorded per domain. Empty unless the
        storage was built with `record_size` > 0; each domain keeps about its last
        `record_size` outcomes."""
        ...
