"""Late-binding dispatch for Redis brokers: a kombu transport whose queues are fair.

A message published with a `fairsched_key` header (what `lru_delay` sends, or any
`apply_async(headers={"fairsched_key": key})`) is not pushed onto the broker's queue list: the
transport's `_put` appends it to its key's backlog in the fairsched storage, kept in the
broker's own Redis, and the same script pushes a wake token onto the queue list. A worker
blocks on the list as for any message (kombu's own BRPOP, in Celery's event loop); when it
pops a token it runs the storage's atomic `dispatch`, which picks the fairest key's next task
and leases it, and delivers that task's stored message, exactly as it was published. So the
policy chooses at the moment a worker process can start a task (Celery's
`worker_disable_prefetch` makes the worker pop only then), never earlier.

What a message keeps: its own id, name, headers, time limits, retries and result; what the
broker's unacked machinery did for it the storage's lease does (a worker killed mid-task: the
lease lapses and a worker's reclaim puts the task back, with a token). Messages without the
header, retries and ETA tasks take kombu's plain path. docs/celery.md ("Dispatch modes") says
why this design and when windowed dispatch is used instead.

Selected by `fairsched.configure` (setting `dispatch`, default "auto") through Celery's
`broker_transport`; the fairsched settings reach it as transport options.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from policies import Job

from .dispatch import HEADER_COST, HEADER_DOMAIN, HEADER_KEY, HEADER_LEASE
from .errors import StorageUnavailable
from .storage import DEFAULT_LEASE_TIMEOUT, RedisStorage, Task, Unsettled
from .storage._redis_scripts import WAKE_TOKEN

__all__ = ["REDIS_TRANSPORT", "TRANSPORT", "RedisTransport", "Transport", "is_wake_token"]

logger = logging.getLogger("fairsched.transport")

#: The value of Celery's `broker_transport` that selects this transport.
TRANSPORT = "fairsched.transport:Transport"
#: The value that selects `RedisTransport` (windowed dispatch on a Redis broker).
REDIS_TRANSPORT = "fairsched.transport:RedisTransport"

#: A wake token as kombu hands it over (it decodes every item it pops from a queue list).
_WAKE = json.loads(WAKE_TOKEN)

#: Property set on the raw message of a fair task when it is delivered: its domain.
_FAIR = "fairsched_domain"

#: Called with the tasks that expired in a backlog when a worker dispatches; set by the
#: Celery layer to mark them REVOKED, as for tasks that expire in a broker queue.
on_expired: Callable[[Sequence[Task]], None] | None = None


#: This process's calls of unknown outcome, per broker URL and fairsched prefix, shared by
#: the storages of all its fair channels.
_UNSETTLED: dict[tuple[str, str], Unsettled] = {}


def is_wake_token(message: Any) -> bool:
    """Whether a popped item is a wake token rather than a message."""
    return bool(message == _WAKE)


def _deadline(expires: Any) -> float | None:
    # Celery's protocol 2 header: an ISO 8601 datetime, or None.
    if not expires:
        return None
    return datetime.fromisoformat(str(expires)).timestamp()


class FairQoS(kombu_redis.QoS):
    """Unacked bookkeeping that leaves fair messages to the storage's leases.

    A fair message is recorded in memory only: its lease in the storage is what brings it
    back if the worker dies. Its slot is released by the worker's `task_postrun` handling
    (with the task's run time), whatever Celery's ack timing (`acks_late`).
    """

    def append(self, message: Any, delivery_tag: Any) -> None:
        if _FAIR in message.properties:
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    def _fair(self, delivery_tag: Any) -> Any:
        message = self._delivered.get(delivery_tag)
        return message if message is not None and _FAIR in message.properties else None

    def ack(self, delivery_tag: Any) -> None:
        if self._fair(delivery_tag) is not None:
            virtual.QoS.ack(self, delivery_tag)
        else:
            super().ack(delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        message = self._fair(delivery_tag)
        if message is None:
            super().reject(delivery_tag, requeue=requeue)
            return
        if requeue:
            self.channel.fair_requeue(message)
        virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client: Any = None) -> Any:
        # Fair messages delivered but never started (a worker shutting down): back to the
        # head of their keys' backlogs now, rather than when their leases lapse.
        for tag in list(self._delivered):
            message = self._fair(tag)
            if message is not None and tag not in self._dirty:
                self.channel.fair_requeue(message)
                self._delivered.pop(tag, None)
        return super().restore_unacked(client)


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, made to survive the loss of its broker.

    After a lost broker connection Celery (5.7) collects the connection, which detaches its
    transport, then closes it again; that close restores the channel's unacknowledged
    messages, and kombu (5.7) builds the client for it from the detached transport's
    connection info: an AttributeError that stops the worker ("Unrecoverable error"). The
    channel keeps the connection parameters it was first given, so that restore connects
    (or fails with a connection error, which Celery handles) as kombu intends.
    """

    def _connparams(self, asynchronous: bool = False) -> Any:
        known: dict[bool, Any] = self.__dict__.setdefault("_fairsched_connparams", {})
        if asynchronous not in known:
            known[asynchronous] = super()._connparams(asynchronous=asynchronous)
        return dict(known[asynchronous])


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with `RedisChannel`: what `fairsched.configure` selects for a
    Redis broker under windowed dispatch (late binding uses `Transport`, which includes it)."""

    Channel = RedisChannel


class FairChannel(RedisChannel):
    """A Redis channel whose `fairsched_key` messages go through the fairsched storage."""

    QoS = FairQoS
    #: Set from the transport options `fairsched_prefix`, `fairsched_policy`,
    #: `fairsched_lease_timeout` and `fairsched_record_size` (see `fairsched.configure`).
    fairsched_prefix = "fairsched:"
    fairsched_policy: Any = None
    fairsched_lease_timeout = DEFAULT_LEASE_TIMEOUT
    fairsched_record_size = 0
    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "fairsched_prefix",
        "fairsched_policy",
        "fairsched_lease_timeout",
        "fairsched_record_size",
    )  # type: ignore[assignment]  # kombu's type is its own tuple's exact length
    _fair_storage: RedisStorage | None = None

    @property
    def fair(self) -> RedisStorage:
        """The storage, on this channel's connection pool (no key prefixing: its keys are
        its own; the wake lists are kombu's queue lists, under `global_keyprefix`)."""
        if self._fair_storage is None:
            import redis

            client = self.connection.client
            broker = client.as_uri() if client is not None else ""
            self._fair_storage = RedisStorage(
                redis.Redis(connection_pool=self.pool),
                prefix=self.fairsched_prefix,
                policy=self.fairsched_policy or "weighted_lru",
                wake_prefix=self.global_keyprefix or "",
                # Its dispatches withdraw expired tasks, which the recording must see.
                record_size=self.fairsched_record_size,
                # A dispatch whose reply the lost broker took is repeated by the next one,
                # on whichever channel Celery made when it reconnected: the repeat delivers
                # the task that dispatch leased, instead of leaving it to its lease.
                unsettled=_UNSETTLED.setdefault((broker, self.fairsched_prefix), Unsettled()),
            )
        return self._fair_storage

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        headers = message.get("headers") or {}
        key = headers.get(HEADER_KEY)
        # Retries and ETA tasks go the plain way: a retry is published while its first run
        # still holds the task's lease, and an ETA task would hold a lease until its ETA.
        if key is None or headers.get("retries") or headers.get("eta"):
            super()._put(queue, message, **kwargs)
            return
        kwargs.pop("_publish_batch", None)  # one script per message, like a plain LPUSH
        cost = headers.get(HEADER_COST)
        job_args = (
            str(headers["id"]),
            str(key),
            time.time(),
            None if cost is None else float(cost),
            _deadline(headers.get("expires")),
        )
        task = Task(Job(*job_args), json.dumps(message).encode(), queue)
        self.fair.enqueue(task)

    def fair_take(self, queue: str) -> dict[str, Any] | None:
        """Lease the next fair task of `queue` now; its raw message, or None."""
        try:
            dispatch = self.fair.dispatch(queue, lease_timeout=self.fairsched_lease_timeout)
        except StorageUnavailable as exc:
            # The broker's Redis went away between the wake token and the dispatch. Celery
            # reconnects on its transport's connection errors; any other error stops the
            # worker. (If the dispatch ran, the next one, on the channel Celery makes when it
            # reconnects, repeats it and so delivers the task it leased.)
            import redis

            raise redis.ConnectionError(str(exc)) from exc
        if dispatch.expired and on_expired is not None:
            on_expired(dispatch.expired)
        task = dispatch.task
        if task is None:
            return None
        raw: dict[str, Any] = json.loads(task.payload)
        properties = raw.setdefault("properties", {})
        properties[_FAIR] = queue
        headers = raw.setdefault("headers", {})
        headers[HEADER_DOMAIN] = queue
        if dispatch.lease_deadline is not None:
            headers[HEADER_LEASE] = dispatch.lease_deadline
        return raw

    def fair_requeue(self, message: Any) -> None:
        """Put a fair message that was delivered but not run back at its key's head."""
        try:
            self.fair.requeue(message.headers["id"], message.properties[_FAIR])
        except Exception:  # its lease lapses and is reclaimed instead
            logger.warning("returning a fair task to its backlog failed", exc_info=True)

    def _get(self, queue: str, timeout: Any = None) -> Any:
        item = super()._get(queue)
        if not is_wake_token(item):
            return item
        raw = self.fair_take(queue)
        if raw is None:
            raise virtual.Empty()
        return raw

    def _size(self, queue: str) -> int:
        return int(super()._size(queue)) + sum(
            self.fair.backlog_size(key, queue) for key in self.fair.keys(queue)
        )


class Transport(kombu_redis.Transport):
    """kombu's Redis transport, with fair queues (late-binding dispatch)."""

    Channel = FairChannel

    def _deliver(self, message: Any, queue: str) -> None:
        if not is_wake_token(message):
            super()._deliver(message, queue)
            return
        channel = next(
            (c for c in self.channels if queue in getattr(c, "_active_queues", ())), None
        )
        if channel is None or channel._closing or not channel.qos.can_consume():
            # Not ours to use now: give the token back for another consumer.
            self._return_token(channel, queue)
            return
        raw = channel.fair_take(queue)
        if raw is not None:
            super()._deliver(raw, queue)

    def _return_token(self, channel: Any, queue: str) -> None:
        if channel is None:
            channel = next(iter(self.channels), None)
        if channel is None:
            return
        with channel.conn_or_acquire() as client:
            client.lpush(queue, WAKE_TOKEN)
