"""Celery integration: `@lru_task`, `LRUTask.lru_delay`, `configure`, the worker bootstep.

>>> from celery import Celery
>>> app = Celery("docs", broker="memory://")
>>> @lru_task(app)
... def add(x, y):
...     return x + y
>>> add.name, hasattr(add, "lru_delay")
('fairsched.celery.add', True)
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from attrs import define
from celery import Celery, Task, bootsteps, signals
from celery.result import AsyncResult

from policies import from_config

from ._workers import MemoryWorkerRegistry, RedisWorkerRegistry, WorkerRegistry
from .config import FairschedConfig, hide_secrets
from .dispatch import HEADER_DOMAIN, HEADER_ENQUEUED, HEADER_KEY, HEADER_LEASE, Dispatcher
from .errors import ConfigurationError, PolicyError, StorageUnavailable
from .serializers import Serializer, get_serializer
from .storage import MemoryStorage, Storage

__all__ = [
    "DispatcherStep",
    "LRUTask",
    "configure",
    "dispatcher_for",
    "lru_task",
    "revoke",
    "set_weight",
]

logger = logging.getLogger("fairsched.celery")

F = TypeVar("F", bound=Callable[..., Any])

#: The dispatcher of each configured app. Weak, so a discarded app (tests) is forgotten.
_DISPATCHERS: weakref.WeakKeyDictionary[Any, Dispatcher] = weakref.WeakKeyDictionary()
_CONFIGURE_LOCK = threading.RLock()


# -- wiring -----------------------------------------------------------------------------------


def _build_storage(config: FairschedConfig) -> Storage:
    if config.redis_url is None:
        return MemoryStorage(policy=from_config(config.policy))
    from .storage import RedisStorage

    built: Storage = RedisStorage.from_settings(
        config.redis_url,
        prefix=config.redis_prefix,
        serializer=config.redis_serializer,
        key_ttl=config.redis_key_ttl,
        max_retries=config.redis_max_retries,
        use_ssl=config.redis_use_ssl or None,
        socket_timeout=config.redis_socket_timeout,
        connect_timeout=config.redis_connect_timeout,
        policy=config.policy,
    )
    return built


def _registry_for(storage: Storage, config: FairschedConfig) -> WorkerRegistry:
    if isinstance(storage, MemoryStorage):
        return MemoryWorkerRegistry()
    client = getattr(storage, "client", None)
    if client is None:
        raise ConfigurationError(
            f"{type(storage).__name__} exposes no `client`, which window='auto' needs for "
            "worker heartbeats; set a fixed window (an int) instead"
        )
    prefix = str(getattr(storage, "prefix", config.redis_prefix))
    return RedisWorkerRegistry(client, prefix)


def _serializer_for(storage: Storage, config: FairschedConfig) -> Serializer:
    found = getattr(storage, "serializer", None)
    if isinstance(found, Serializer):
        return found
    if found is not None and hasattr(found, "dumps") and hasattr(found, "loads"):
        return found  # type: ignore[no-any-return]
    return get_serializer(config.redis_serializer)


def configure(
    app: Celery | None = None,
    storage: Storage | None = None,
    policy: Any = None,
    **settings: Any,
) -> Dispatcher:
    """Wire fairsched into `app`: storage, settings, worker bootstep and slot-release signals.

    Settings come from `app.conf.fairsched`, overridden by keyword `settings`. Without a
    `storage`, one is built: Redis when `redis_url` is set, else in memory (one process only).
    Calling it again replaces the app's configuration. Returns the app's dispatcher.

    Raises:
        ConfigurationError: a setting is unknown or invalid, or `policy` disagrees with the
            policy of the `storage` passed.
    """
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    hide_secrets(app.conf)
    config = FairschedConfig.from_celery(app.conf, policy=policy, **settings)
    if storage is None:
        storage = _build_storage(config)
    elif policy is not None:
        own = getattr(storage, "policy", None)
        if own is not None and own != from_config(config.policy):
            raise ConfigurationError(
                f"policy {config.policy_name!r} differs from the storage's own policy "
                f"{getattr(own, 'name', own)!r}; configure the policy on the storage"
            )
    try:
        for key, weight in config.weights.items():
            storage.set_weight(key, weight)
    except PolicyError as exc:
        raise ConfigurationError(f"fairsched setting 'weights': {exc}") from exc
    dispatcher = Dispatcher(
        app=app,
        storage=storage,
        config=config,
        serializer=_serializer_for(storage, config),
        workers=_registry_for(storage, config),
    )
    with _CONFIGURE_LOCK:
        _DISPATCHERS[app] = dispatcher
        _install(app)
    return dispatcher


def dispatcher_for(app: Celery) -> Dispatcher:
    """The dispatcher of `app`, configuring it from `app.conf.fairsched` on first use."""
    found = _DISPATCHERS.get(app)
    if found is not None:
        return found
    with _CONFIGURE_LOCK:
        found = _DISPATCHERS.get(app)
        return found if found is not None else configure(app)


def _install(app: Celery) -> None:
    app.steps["worker"].add(DispatcherStep)
    _connect_signals()


# -- tasks ------------------------------------------------------------------------------------


class LRUTask(Task):  # type: ignore[misc]
    """A Celery task that can also be submitted fairly, under a key.

    `delay` / `apply_async` still send it straight to the broker (no fair scheduling).
    `on_success` / `on_failure` of subclasses run as for any Celery task, with the task's own
    id, args and kwargs.
    """

    def lru_delay(self, key: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Submit `self(*args, **kwargs)` fairly under `key` (short for `lru_apply_async`)."""
        return self.lru_apply_async(key, args, kwargs)

    def lru_apply_async(
        self,
        key: str,
        args: Iterable[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        expires: Any = None,
        cost: float | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Submit this task fairly under `key` and return its own `AsyncResult`.

        The task waits in its key's backlog until the policy picks it and its domain (the
        Celery queue it routes to) has a free slot; then it is published with its own id,
        so `.get()` returns its value. `expires` is seconds, a timedelta or a datetime; a task
        that expires in the backlog never runs and is marked REVOKED. `cost` is the declared
        service cost for cost-aware policies. Other `options` are Celery's `apply_async`
        options (queue, routing_key, headers, priority, link, ...); `countdown` and `eta` are
        refused.

        Raises:
            InvalidJob: bad key, cost or expiry, or a refused option.
            SerializationError: an argument cannot be encoded; nothing was stored.
            StorageError: the storage failed; nothing was stored.
        """
        dispatcher = dispatcher_for(self.app)
        task_id = dispatcher.submit(
            self.name,
            key,
            tuple(args or ()),
            dict(kwargs or {}),
            expires=expires,
            cost=cost,
            options=options,
        )
        return self.AsyncResult(task_id)


def lru_task(app: Celery, *, base: type[Task] | None = None, **options: Any) -> Callable[[F], Any]:
    """Decorator: register a function as a Celery task of `app` that also has `lru_delay`.

    `base` may be any Task subclass; one that is not an `LRUTask` gets it mixed in.
    `options` are `app.task` options (name, bind, acks_late, max_retries, ...).
    """
    if base is None:
        base = LRUTask
    elif not issubclass(base, LRUTask):
        base = type(f"LRU{base.__name__}", (LRUTask, base), {"__module__": base.__module__})
    app.steps["worker"].add(DispatcherStep)
    _connect_signals()
    hide_secrets(app.conf)

    def decorate(fun: F) -> Any:
        return app.task(base=base, **options)(fun)

    return decorate


def set_weight(app: Celery, key: str, weight: float) -> None:
    """Set the weight of `key` at run time; kept in the storage until changed.

    Raises:
        InvalidWeight: the weight is not finite and > 0.
    """
    dispatcher_for(app).storage.set_weight(key, weight)


def revoke(app: Celery, task_id: str, **control_options: Any) -> bool:
    """Revoke a task: withdrawn from its backlog if still queued (and marked REVOKED), else
    revoked through `app.control.revoke` (`control_options`, e.g. terminate=True, go there).

    Returns True if the task was withdrawn from the backlog.
    """
    if dispatcher_for(app).revoke(task_id):
        return True
    app.control.revoke(task_id, **control_options)
    return False


# -- worker side ------------------------------------------------------------------------------


def _header(request: Any, name: str) -> Any:
    if request is None:
        return None
    getter = getattr(request, "get", None)
    value = getter(name) if getter is not None else getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name)
    return value


_started: dict[str, float] = {}
_started_lock = threading.Lock()
_record_lock = threading.Lock()


@define
class _Release:
    """A slot to release: `finish` of `task_id`, retried until `until` while Redis is away."""

    dispatcher: Dispatcher
    task_id: str
    domain: str
    runtime: float | None
    until: float
    attempts: int = 0

    def run(self) -> bool:
        """Try once; True when done (released, or failed for good and logged)."""
        self.attempts += 1
        try:
            self.dispatcher.finish(self.task_id, self.domain, self.runtime)
        except StorageUnavailable as exc:
            if time.time() < self.until:
                if self.attempts == 1:
                    logger.warning(
                        "releasing the slot of task %s failed (%s); retrying until its lease ends",
                        self.task_id,
                        exc,
                    )
                return False
            logger.error(
                "releasing the slot of task %s failed for %d attempts until its lease ended "
                "(%s); the lease lapses and the task may run again",
                self.task_id,
                self.attempts,
                exc,
            )
        except Exception:
            # Not an outage (a bug, a refused call): repeating would fail the same way.
            logger.exception("releasing the slot of task %s failed", self.task_id)
        else:
            if self.attempts > 1:
                logger.warning(
                    "released the slot of task %s after %d attempts", self.task_id, self.attempts
                )
        return True

    def backoff(self) -> float:
        """Seconds before the next attempt: 0.1 s doubling to 2 s, never past the lease."""
        delay = min(RELEASE_BACKOFF_MAX, 0.1 * 2.0 ** min(self.attempts - 1, 10))
        return max(0.0, min(delay, self.until - time.time()))


#: Longest wait between two attempts to release a slot while the storage is unreachable.
RELEASE_BACKOFF_MAX = 2.0


class _Releaser:
    """Releases slots from a background thread, retrying those the storage could not take.

    In a prefork pool child every release goes through it: a child takes its next task only
    when `task_postrun` returns, so releasing there (a Lua round trip, then the broker publish
    of the next task) would add about a millisecond to every task. Other pools release on the
    task's own thread and hand over only a release that failed because the storage was
    unreachable. Such a release is retried with back-off until it succeeds or the task's lease
    ends (then the lease lapses and the task is reclaimed), and each retry is sent as a repeat,
    so a release whose reply was lost still yields the task it leased, which is published.
    A slot is released later, never earlier, so the window holds. On a clean exit of the
    process (`worker_process_shutdown`, worker stop) the queue is drained; if the process is
    killed first, the leases lapse and those tasks run again, as for a kill mid-task.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._queue: queue.SimpleQueue[_Release | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, item: _Release) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # Threads do not survive fork: start one in this process.
                    self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._run, name="fairsched-release", daemon=True
                    )
                    self._thread.start()
                    self._pid = os.getpid()
        self._queue.put(item)

    def _run(self) -> None:
        waiting: list[tuple[float, int, _Release]] = []  # (next attempt, order, release)
        order = 0
        stopping = False
        while True:
            timeout = None if not waiting else max(0.0, waiting[0][0] - time.monotonic())
            if stopping:
                timeout = 0.0
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            else:
                if item is None:
                    stopping = True
                elif not item.run():
                    order += 1
                    heapq.heappush(waiting, (time.monotonic() + item.backoff(), order, item))
                continue
            # Due retries, oldest first; when stopping, one last attempt each.
            while waiting and (stopping or waiting[0][0] <= time.monotonic()):
                _, _, due = heapq.heappop(waiting)
                if not due.run() and not stopping:
                    order += 1
                    heapq.heappush(waiting, (time.monotonic() + due.backoff(), order, due))
            if stopping and not waiting:
                return

    def drain(self, timeout: float = 10.0) -> None:
        """Release every queued slot (one last try for those failing), then stop the thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        self._pid = 0


_releaser = _Releaser()


def _release(app: Any, task_id: str, domain: str, runtime: float | None, lease: Any = None) -> None:
    dispatcher = _DISPATCHERS.get(app) if app is not None else None
    if dispatcher is None:
        found = list(_DISPATCHERS.values())
        if len(found) != 1:
            logger.error("cannot tell which app task %s belongs to; slot not released", task_id)
            return
        dispatcher = found[0]
    try:
        until = float(lease)
    except (TypeError, ValueError):  # a message from before the lease header
        until = time.time() + dispatcher.config.lease_timeout
    item = _Release(dispatcher, task_id, domain, runtime, until)
    if _releaser.enabled or not item.run():
        _releaser.put(item)


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and _header(getattr(task, "request", None), HEADER_KEY) is not None:
        with _started_lock:
            _started[task_id] = time.monotonic()


def _on_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    key = _header(request, HEADER_KEY)
    if not task_id or key is None:
        return
    with _started_lock:
        started = _started.pop(task_id, None)
    runtime = None if started is None else time.monotonic() - started
    app = getattr(task, "app", None)
    domain = str(_header(request, HEADER_DOMAIN))
    _record(app, key, _header(request, HEADER_ENQUEUED), runtime, request)
    # A retry ends here too (state RETRY): it returns its slot, and the retried message runs
    # outside the window; its own postrun then finds no lease and changes nothing.
    _release(app, task_id, domain, runtime, _header(request, HEADER_LEASE))


def _record(app: Any, key: str, enqueued: Any, runtime: float | None, request: Any) -> None:
    dispatcher = _DISPATCHERS.get(app) if app is not None else None
    if dispatcher is None or dispatcher.config.record_workload is None or runtime is None:
        return
    expires = getattr(request, "expires", None)
    deadline = ""
    if expires:
        from datetime import datetime

        try:
            deadline = repr(datetime.fromisoformat(str(expires)).timestamp())
        except ValueError:
            deadline = ""
    line = f"{key},{float(enqueued or 0.0)!r},{runtime!r},{deadline},\n"
    with _record_lock, open(dispatcher.config.record_workload, "a", encoding="utf-8") as out:
        if out.tell() == 0:  # a new file starts with the header the trace reader needs
            out.write("key,arrival,service,deadline,cost\n")
        out.write(line)


def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is None or _header(request, HEADER_KEY) is None:
        return
    with _started_lock:
        _started.pop(request.id, None)
    _release(
        getattr(sender, "app", None),
        request.id,
        str(_header(request, HEADER_DOMAIN)),
        None,
        _header(request, HEADER_LEASE),
    )


def _on_message_dropped(message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    task_id = headers.get("id")
    if task_id and headers.get(HEADER_KEY) is not None:
        _release(None, task_id, str(headers.get(HEADER_DOMAIN)), None, headers.get(HEADER_LEASE))


def _on_process_init(**_: Any) -> None:
    # Only prefork children send this signal: release slots off the task's thread there.
    _releaser.enabled = True
    # Connections inherited from the parent must not be shared with it after fork.
    for dispatcher in list(_DISPATCHERS.values()):
        reopen = getattr(dispatcher.storage, "reopen", None)
        if callable(reopen):
            reopen()
            continue
        pool = getattr(getattr(dispatcher.storage, "client", None), "connection_pool", None)
        if pool is not None and hasattr(pool, "reset"):
            pool.reset()


def _on_process_shutdown(**_: Any) -> None:
    _releaser.drain()


_signals_connected = False


def _connect_signals() -> None:
    global _signals_connected
    if _signals_connected:
        return
    _signals_connected = True
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="fairsched.prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="fairsched.postrun")
    signals.task_revoked.connect(_on_revoked, weak=False, dispatch_uid="fairsched.revoked")
    signals.task_rejected.connect(
        _on_message_dropped, weak=False, dispatch_uid="fairsched.rejected"
    )
    signals.task_unknown.connect(_on_message_dropped, weak=False, dispatch_uid="fairsched.unknown")
    signals.worker_process_init.connect(
        _on_process_init, weak=False, dispatch_uid="fairsched.process_init"
    )
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid="fairsched.process_shutdown"
    )


def _is_multiprocess(pool_cls: Any) -> bool:
    module = getattr(pool_cls, "__module__", "") or ""
    return module.endswith((".prefork", ".processes"))


class DispatcherStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: heartbeats for `window="auto"`, reclaims lapsed leases, refills windows.

    Runs one daemon thread per worker that, every `reclaim_interval` seconds, renews the
    worker's heartbeat (when due) and, for each queue the worker consumes, requeues tasks
    whose lease lapsed and dispatches while the window has room.

    Raises (at worker start):
        ConfigurationError: the storage is in memory and the pool runs tasks in other processes.
    """

    label = "fairsched"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, w: Any, **kwargs: Any) -> None:
        super().__init__(w, **kwargs)
        self.dispatcher = dispatcher_for(w.app)
        if isinstance(self.dispatcher.storage, MemoryStorage) and _is_multiprocess(w.pool_cls):
            raise ConfigurationError(
                "MemoryStorage cannot be shared by the processes of a prefork pool; run the "
                "worker with --pool=threads or --pool=solo, or set redis_url in "
                "app.conf.fairsched (or pass a RedisStorage to fairsched.configure)"
            )
        self.worker_name = f"{w.hostname}:{os.getpid()}"
        self.concurrency = int(getattr(w, "concurrency", 1) or 1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.domains: list[str] = []

    def start(self, w: Any) -> None:
        queues = w.app.amqp.queues.consume_from
        self.domains = sorted(queues) or [str(w.app.conf.task_default_queue)]
        self._stop.clear()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="fairsched-dispatcher", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        config = self.dispatcher.config
        try:
            self.dispatcher.workers.beat(
                self.worker_name, self.domains, self.concurrency, config.heartbeat_ttl
            )
        except Exception:
            logger.warning("fairsched heartbeat failed", exc_info=True)
        for domain in self.domains:
            self.dispatcher.forget_window(domain)

    def _run(self) -> None:
        config = self.dispatcher.config
        next_beat = time.monotonic() + config.heartbeat_interval
        while not self._stop.is_set():
            if time.monotonic() >= next_beat:
                self._beat()
                next_beat = time.monotonic() + config.heartbeat_interval
            for domain in self.domains:
                try:
                    self.dispatcher.fill(domain)
                except Exception:
                    logger.exception("fairsched dispatch round for %r failed", domain)
            self._stop.wait(config.reclaim_interval)

    def stop(self, w: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        _releaser.drain()  # releases of this process still being retried get a last try
        try:
            self.dispatcher.workers.leave(self.worker_name, self.domains)
        except Exception:
            logger.warning("fairsched could not deregister the worker", exc_info=True)

    def terminate(self, w: Any) -> None:
        self.stop(w)
