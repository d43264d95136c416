"""Wiring an app: its configuration, storage and dispatcher, and the worker step that runs
for it (heartbeats, lease reclaim, window refill)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from celery import Celery, bootsteps

from policies import PolicyError, from_config, option_names, policy_class

from .. import transport
from .._urls import redact_url
from ..config import FairschedConfig, hide_secrets
from ..dispatch import Dispatcher
from ..errors import ConfigurationError
from ..storage import MemoryStorage, RedisStorage, Storage
from ._dispatchers import CONFIGURE_LOCK, DISPATCHERS
from ._release import releaser
from ._signals import connect_signals

logger = logging.getLogger("fairsched.celery")


def _build_storage(
    config: FairschedConfig, late_on: str | None = None, key_prefix: str = ""
) -> Storage:
    """The storage the settings describe; with `late_on` (the broker URL), a Redis storage in
    the broker's Redis that wakes consumers blocked on its queue lists (late-binding
    dispatch), whose keys kombu prefixes with `key_prefix` (its `global_keyprefix`)."""
    url = late_on or config.redis_url
    if url is None:
        return MemoryStorage(
            policy=config.policy,
            serializer=config.redis_serializer,
            record_size=config.record_size,
        )

    built: Storage = RedisStorage.from_settings(
        url,
        prefix=config.redis_prefix,
        serializer=config.redis_serializer,
        key_ttl=config.redis_key_ttl,
        max_retries=config.redis_max_retries,
        use_ssl=config.redis_use_ssl or None,
        socket_timeout=config.redis_socket_timeout,
        connect_timeout=config.redis_connect_timeout,
        policy=config.policy,
        wake_prefix=None if late_on is None else key_prefix,
        record_size=config.record_size,
    )
    return built


def _redis_location(url: str) -> tuple[str, int, str] | None:
    """(host, port, database) of a redis:// or rediss:// URL, or None for another scheme."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return None
    database = parts.path.strip("/") or "0"
    return (parts.hostname or "localhost", parts.port or 6379, database)


def _late_binding(app: Celery, config: FairschedConfig, storage_given: bool) -> str | None:
    """The broker URL when tasks are dispatched late (fairsched.transport), else None.

    "auto" chooses late binding for a Redis broker when the storage can live in the broker's
    Redis: no storage passed in and `redis_url` unset or naming the broker's server and
    database.
    """
    broker = str(app.conf.broker_url or "")
    location = _redis_location(broker)
    if config.dispatch == "window":
        return None
    if config.dispatch == "late":
        if location is None:
            raise ConfigurationError(
                "fairsched setting 'dispatch': 'late' needs a Redis broker (redis:// or "
                f"rediss://), got {redact_url(broker)!r}; use 'window' or 'auto'"
            )
        if storage_given:
            raise ConfigurationError(
                "fairsched setting 'dispatch': 'late' keeps the backlogs in the broker's "
                "Redis; leave `storage` out (fairsched builds it) or use 'window'"
            )
        return broker
    same = config.redis_url is None or _redis_location(config.redis_url) == location
    return broker if location is not None and not storage_given and same else None


def _use_fair_transport(app: Celery, config: FairschedConfig, dispatcher: Dispatcher) -> None:
    """Route the app's broker connections through fairsched.transport, with the settings it
    needs as transport options, and make workers pop a task only for a free process."""
    policy = config.policy
    spec = dict(policy) if isinstance(policy, Mapping) else {"policy": policy}
    if config.weights and "weights" in option_names(policy_class(spec["policy"])):
        # Configured weights as the policy's own: the storage restores them after an empty
        # restart (see RedisStorage._ensure_domain).
        spec["weights"] = {**dict(spec.get("weights") or {}), **config.weights}
    options = dict(app.conf.broker_transport_options or {})
    options.update(
        fairsched_prefix=config.redis_prefix,
        fairsched_policy=spec,
        fairsched_lease_timeout=config.lease_timeout,
        fairsched_record_size=config.record_size,
    )
    app.conf.broker_transport = transport.TRANSPORT
    app.conf.broker_transport_options = options
    if "worker_disable_prefetch" in app.conf:  # Celery >= 5.6
        app.conf.worker_disable_prefetch = True
    transport.on_expired = dispatcher.retire_expired


def _use_redis_transport(app: Celery) -> None:
    """Windowed dispatch on a Redis broker: kombu's Redis transport with the fix that keeps a
    worker alive when its broker is lost (`fairsched.transport.RedisChannel`), unless the app
    names a transport of its own."""
    if _redis_location(str(app.conf.broker_url or "")) is None:
        return
    if app.conf.broker_transport in (None, transport.TRANSPORT, transport.REDIS_TRANSPORT):
        app.conf.broker_transport = transport.REDIS_TRANSPORT


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
    late_on = _late_binding(app, config, storage_given=storage is not None)
    if storage is None:
        key_prefix = (app.conf.broker_transport_options or {}).get("global_keyprefix", "")
        storage = _build_storage(config, late_on, key_prefix)
    elif policy is not None and storage.policy != from_config(config.policy):
        raise ConfigurationError(
            f"policy {config.policy_name!r} differs from the storage's own policy "
            f"{storage.policy.name!r}; configure the policy on the storage"
        )
    elif config.record_size and storage.record_size != config.record_size:
        # Silently not recording what the settings ask for would be found out too late.
        raise ConfigurationError(
            f"fairsched setting 'record_size' is {config.record_size}, but the storage passed "
            f"to configure was built with record_size={storage.record_size}; pass record_size "
            "to the storage's constructor"
        )
    try:
        storage.set_weights(config.weights)
    except PolicyError as exc:
        raise ConfigurationError(f"fairsched setting 'weights': {exc}") from exc
    dispatcher = Dispatcher(app=app, storage=storage, config=config, late=late_on is not None)
    if late_on is not None:
        _use_fair_transport(app, config, dispatcher)
    else:
        _use_redis_transport(app)
    with CONFIGURE_LOCK:
        DISPATCHERS[app] = dispatcher
        install(app)
    return dispatcher


def dispatcher_for(app: Celery) -> Dispatcher:
    """The dispatcher of `app`, configuring it from `app.conf.fairsched` on first use."""
    found = DISPATCHERS.get(app)
    if found is not None:
        return found
    with CONFIGURE_LOCK:
        found = DISPATCHERS.get(app)
        return found if found is not None else configure(app)


def install(app: Celery) -> None:
    """Add the worker step to `app` and connect the slot-release signal handlers."""
    app.steps["worker"].add(DispatcherStep)
    connect_signals()
    hide_secrets(app.conf)


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
        releaser.drain()  # releases of this process still being retried get a last try
        try:
            self.dispatcher.workers.leave(self.worker_name, self.domains)
        except Exception:
            logger.warning("fairsched could not deregister the worker", exc_info=True)

    def terminate(self, w: Any) -> None:
        self.stop(w)
