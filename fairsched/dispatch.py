"""The dispatcher: turns what the storage dispatches into broker publishes.

Every path that can free or fill a slot (a submit, a finished task, the workers' timer) calls
a storage verb that leases at most one task atomically, then publishes that task with its own
id. Tasks that expired in the backlog come back from the same verbs; they are never published,
and their result is marked REVOKED as Celery does for a task that expires in its queue.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from attrs import define, field

from policies import Job

from ._options import check_options, deadline_of
from .config import FairschedConfig
from .errors import PublishRefused, SerializationError, StorageError
from .serializers import Serializer, get_serializer
from .storage import Clock, Dispatch, Outcome, Storage, Task, WorkerRegistry

__all__ = [
    "HEADER_COST",
    "HEADER_DOMAIN",
    "HEADER_ENQUEUED",
    "HEADER_KEY",
    "HEADER_LEASE",
    "Dispatcher",
    "deadline_of",
]

logger = logging.getLogger("fairsched.dispatch")

#: How a task that can never be published is recorded.
_REFUSED = Outcome("failed")

#: Message headers that mark a task as dispatched by fairsched (read by the worker signals).
HEADER_KEY = "fairsched_key"
HEADER_DOMAIN = "fairsched_domain"
HEADER_ENQUEUED = "fairsched_enqueued"
#: The declared cost of a task (late-binding dispatch carries it in the message).
HEADER_COST = "fairsched_cost"
#: When the task's slot is reclaimed unless released first (seconds since the epoch): how
#: long a worker keeps retrying a release that fails while the storage is unreachable.
HEADER_LEASE = "fairsched_lease"

#: Payload format version, so a future change can still read queued tasks.
PAYLOAD_VERSION = 1


@define
class Dispatcher:
    """Submits tasks through the storage and publishes what it dispatches; one per app.

    Thread-safe: all shared state is in the storage (atomic verbs) except the counters and the
    window cache, which take a lock.
    """

    app: Any
    storage: Storage
    config: FairschedConfig
    clock: Clock = time.time
    #: Late-binding dispatch (fairsched.transport): submits publish through the fair transport,
    #: which stores the message; workers lease tasks as they pop them; nothing is published on
    #: release. False: windowed dispatch.
    late: bool = False
    #: The storage's registry of live workers (heartbeats), for `window="auto"`.
    workers: WorkerRegistry = field(init=False)
    #: The storage's payload serializer.
    serializer: Serializer = field(init=False)
    #: Counters: submitted, dispatched, published, publish_failed, publish_refused, expired,
    #: revoked, reclaimed, finished. Kept when `metrics_enabled`.
    stats: collections.Counter[str] = field(factory=collections.Counter, init=False)
    _windows: dict[str, tuple[float, int]] = field(factory=dict, init=False)
    _lock: threading.Lock = field(factory=threading.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        self.workers = self.storage.workers()
        self.serializer = self.storage.serializer

    # -- sizing -------------------------------------------------------------------------------

    def window(self, domain: str) -> int:
        """How many tasks of `domain` may be in flight now.

        A fixed window is returned as configured. "auto" is `window_factor` times the live
        workers' concurrency (at least 1), or `idle_window` when none is live; the figure is
        cached for up to a second so a submit costs no extra round trip.
        """
        fixed = self.config.window
        if fixed != "auto":
            return int(fixed)
        now = time.monotonic()
        cached = self._windows.get(domain)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            total = self.workers.concurrency(domain)
        except Exception:  # the heartbeat store is down: keep the last figure, else minimal
            logger.warning("cannot read worker heartbeats for %r", domain, exc_info=True)
            return cached[1] if cached else self.config.idle_window
        if total <= 0:
            size = self.config.idle_window
        else:
            size = max(1, math.ceil(total * self.config.window_factor))
        with self._lock:
            self._windows[domain] = (now + min(1.0, self.config.heartbeat_interval / 2), size)
        return size

    def forget_window(self, domain: str) -> None:
        """Drop the cached window of `domain` (a worker joined or left this process)."""
        with self._lock:
            self._windows.pop(domain, None)

    def _count(self, name: str, n: int = 1) -> None:
        if self.config.metrics_enabled and n:
            with self._lock:
                self.stats[name] += n

    # -- submitting ---------------------------------------------------------------------------

    def domain_of(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Any
    ) -> str:
        """The domain (Celery queue name) that task `name` with these options routes to."""
        routed = self.app.amqp.router.route(dict(options), name, args, kwargs)
        queue = routed.get("queue")
        if queue is None:
            return str(self.app.conf.task_default_queue)
        return str(getattr(queue, "name", queue))

    def submit(
        self,
        name: str,
        key: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        expires: Any = None,
        cost: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Store task `name` under `key`, dispatch if its domain has room, return its id.

        Raises:
            InvalidJob: bad key, cost or expiry, or a refused option (countdown, eta).
            SerializationError: an argument or option cannot be encoded; nothing was stored.
            StorageError: the storage failed; nothing was stored.
        """
        options = check_options(options or {})
        args = list(args or ())
        kwargs = dict(kwargs or {})
        task_id = str(options.pop("task_id", None) or uuid.uuid4())
        now = self.clock()
        deadline = deadline_of(expires, now, bool(self.app.conf.enable_utc))
        domain = self.domain_of(name, args, kwargs, options)
        if self.late:
            self._publish_late(name, key, args, kwargs, options, task_id, now, deadline, cost)
            return task_id
        payload = self.serializer.dumps(
            {
                "v": PAYLOAD_VERSION,
                "task": name,
                "args": args,
                "kwargs": kwargs,
                "options": options,
                "expires": deadline,
            }
        )
        self._check_message_encoding(options, args, kwargs)
        task = Task(Job(task_id, key, now, cost, deadline), payload, domain)
        dispatch = self.storage.submit(
            task, now, window=self.window(domain), lease_timeout=self.config.lease_timeout
        )
        self._count("submitted")
        self.publish(dispatch)
        return task_id

    def _publish_late(
        self,
        name: str,
        key: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        task_id: str,
        now: float,
        deadline: float | None,
        cost: float | None,
    ) -> None:
        """Publish through the fair transport, which stores the message in its key's backlog
        (one script, one round trip) and wakes a worker."""
        from kombu.exceptions import EncodeError

        headers = dict(options.pop("headers", None) or {})
        headers[HEADER_KEY] = key
        headers[HEADER_ENQUEUED] = now
        if cost is not None:
            headers[HEADER_COST] = cost
        if deadline is not None:
            options["expires"] = datetime.fromtimestamp(deadline, timezone.utc)
        try:
            self.app.send_task(
                name, args=args, kwargs=kwargs, task_id=task_id, headers=headers, **options
            )
        except EncodeError as exc:
            raise SerializationError(f"cannot encode the task's message: {exc}") from exc
        self._count("submitted")

    def _check_message_encoding(
        self, options: Mapping[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """Raise `SerializationError` if Celery's message serializer cannot encode the
        arguments the storage's serializer just did (when the two differ): such a task could
        never be published."""
        name = options.get("serializer") or self.app.conf.task_serializer
        if name in (self.serializer.name, "pickle"):
            return  # proven by the payload just encoded; pickle encodes what the others do
        get_serializer(name).dumps([args, kwargs])

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, dispatch: Dispatch) -> bool:
        """Publish the dispatched task (if any) and retire the expired ones.

        A publish that fails for a reason that may pass (the broker is unreachable) returns
        the task to the head of its backlog, so it is dispatched again once the broker is
        back instead of holding its slot until the lease lapses. A publish that can never
        succeed (Celery or the broker refuses the message) ends the task in state FAILURE with
        the reason, frees its slot, and publishes the task dispatched in its place.
        Returns whether a task was published.
        """
        while True:
            if dispatch.expired:
                self.retire_expired(dispatch.expired)
            task = dispatch.task
            if task is None:
                return False
            self._count("dispatched")
            try:
                self._send(task, dispatch.lease_deadline)
            except Exception as exc:
                if not self._may_pass(exc):
                    dispatch = self._refuse(task, exc)
                    continue
                self._count("publish_failed")
                self._requeue(task, exc)
                return False
            self._count("published")
            return True

    def _may_pass(self, exc: Exception) -> bool:
        """Whether a failed publish may succeed later: the broker connection failed, rather
        than Celery or the broker refusing this message."""
        from kombu.exceptions import OperationalError

        if isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
            return True
        try:
            with self.app.connection_for_write() as connection:  # not connected: no I/O
                recoverable = (
                    *connection.recoverable_connection_errors,
                    *connection.recoverable_channel_errors,
                )
        except Exception:  # the transport cannot even be loaded: not a passing outage
            return False
        return isinstance(exc, recoverable)

    def _requeue(self, task: Task, exc: Exception) -> None:
        try:
            self.storage.requeue(task.id, task.domain)
        except Exception:
            logger.warning(
                "publishing task %s (key %r) failed (%s) and returning it to its backlog failed "
                "too; it stays leased and runs after its lease times out",
                task.id,
                task.key,
                exc,
                exc_info=True,
            )
            return
        logger.warning(
            "publishing task %s (key %r) failed (%s); it is back at the head of its backlog and "
            "is dispatched again when the broker is reachable",
            task.id,
            task.key,
            exc,
        )

    def _refuse(self, task: Task, exc: Exception) -> Dispatch:
        """End a task that can never be published: FAILURE with the reason, slot freed.

        Returns the dispatch made in its place (the window's slot goes to the next task).
        """
        self._count("publish_refused")
        reason = PublishRefused(
            f"task {task.id} (key {task.key!r}) can never be published: {type(exc).__name__}: {exc}"
        )
        logger.error("%s; marked FAILURE", reason, exc_info=exc)
        backend = self.app.backend
        if type(backend).__name__ != "DisabledBackend":
            try:
                backend.mark_as_failure(task.id, reason)
            except Exception:
                logger.warning("cannot store FAILURE for task %s", task.id, exc_info=True)
        try:
            return self.storage.finish(
                task.id,
                task.domain,
                None,
                window=self.window(task.domain),
                lease_timeout=self.config.lease_timeout,
                outcome=_REFUSED,
            )
        except StorageError:
            # The task is FAILURE already; its slot comes back when the lease lapses (and a
            # reclaimed copy is refused again the same way).
            logger.warning("freeing the slot of refused task %s failed", task.id, exc_info=True)
            return Dispatch(None)

    def _send(self, task: Task, lease_deadline: float | None) -> None:
        body = self.serializer.loads(task.payload)
        options = dict(body.get("options") or {})
        headers = dict(options.pop("headers", None) or {})
        headers[HEADER_KEY] = task.key
        headers[HEADER_DOMAIN] = task.domain
        headers[HEADER_ENQUEUED] = task.job.enqueued_at
        if lease_deadline is not None:
            headers[HEADER_LEASE] = lease_deadline
        deadline = body.get("expires")
        if deadline is not None:
            # Passed on so a worker that receives it late drops it (Celery's own expiry).
            options["expires"] = datetime.fromtimestamp(deadline, timezone.utc)
        self.app.send_task(
            body["task"],
            args=body.get("args") or [],
            kwargs=body.get("kwargs") or {},
            task_id=task.id,
            headers=headers,
            **options,
        )

    def retire_expired(self, tasks: Sequence[Task]) -> None:
        """Mark tasks that expired in the backlog REVOKED in the result backend and count them."""
        self._count("expired", len(tasks))
        for task in tasks:
            logger.info("task %s (key %r) expired before dispatch", task.id, task.key)
            self._mark_revoked(task.id, "expired")

    def _mark_revoked(self, task_id: str, reason: str) -> None:
        backend = self.app.backend
        if type(backend).__name__ == "DisabledBackend":
            return
        try:
            backend.mark_as_revoked(task_id, reason)
        except Exception:
            logger.warning("cannot store REVOKED for task %s", task_id, exc_info=True)

    # -- slots --------------------------------------------------------------------------------

    def finish(
        self,
        task_id: str,
        domain: str,
        runtime: float | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """Release the slot of a finished task and publish the task dispatched in its place
        (late binding: only release it; a worker with a free process takes the next).
        `outcome` says how it ended, for the recording."""
        if self.late:
            self.storage.complete(task_id, domain, runtime, outcome=outcome)
            self._count("finished")
            return
        dispatch = self.storage.finish(
            task_id,
            domain,
            runtime,
            window=self.window(domain),
            lease_timeout=self.config.lease_timeout,
            outcome=outcome,
        )
        self._count("finished")
        self.publish(dispatch)

    def reclaim(self, domain: str) -> int:
        """Requeue the lapsed leases of `domain` (late binding: with a wake token each)."""
        reclaimed = self.storage.reclaim(domain)
        if reclaimed:
            self._count("reclaimed", len(reclaimed))
            logger.warning(
                "reclaimed %d lapsed lease(s) in %r; those tasks run again", len(reclaimed), domain
            )
        return len(reclaimed)

    def fill(self, domain: str) -> int:
        """Requeue lapsed leases of `domain`, then (windowed dispatch) dispatch until its
        window is full. Returns how many tasks were published."""
        self.reclaim(domain)
        if self.late:
            return 0  # workers take tasks as they pop wake tokens
        published = 0
        window = self.window(domain)
        while True:
            dispatch = self.storage.dispatch(
                domain, window=window, lease_timeout=self.config.lease_timeout
            )
            if dispatch.task is None:
                self.publish(dispatch)  # retires what expired
                return published
            if not self.publish(dispatch):
                # Not published: the broker is down (the task went back to its backlog), so
                # dispatching more now would only repeat the failure.
                return published
            published += 1

    def revoke(self, task_id: str, domain: str | None = None) -> bool:
        """Withdraw a queued task and mark it REVOKED; False if it was not in a backlog.

        With its `domain` (queue) it is one storage call; without, each domain the storage
        knows is asked in turn (the caller of `fairsched.revoke` may not know the queue).
        """
        domains = [domain] if domain is not None else self.storage.domains()
        task = next(
            (found for d in domains if (found := self.storage.revoke(task_id, d)) is not None),
            None,
        )
        if task is None:
            return False
        self._count("revoked")
        self._mark_revoked(task_id, "revoked")
        return True
