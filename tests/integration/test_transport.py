"""The late-binding transport (fairsched.transport) against a real Redis, through kombu."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Producer, Queue

from fairsched import RedisStorage, StorageUnavailable, Task
from fairsched.transport import RedisTransport, Transport
from policies import Job
from tests.integration.lost_replies import Outage
from tests.reliability.harness import redis_servers

pytestmark = pytest.mark.redis


@pytest.fixture
def broker(redis_url: str, redis_prefix: str) -> Iterator[tuple[Connection, Queue]]:
    """A kombu connection with the fair transport, and a queue of this test's own."""
    conn = Connection(
        redis_url, transport=Transport, transport_options={"fairsched_prefix": redis_prefix}
    )
    queue = Queue(f"{redis_prefix}q", Exchange(f"{redis_prefix}x"), routing_key="q")
    queue(conn.default_channel).declare()
    yield conn, queue
    conn.release()


def publish(conn: Connection, queue: Queue, task_id: str, key: str | None) -> None:
    """Publish a task message; with a key it takes the fair path, without the plain one."""
    headers = {"id": task_id} if key is None else {"id": task_id, "fairsched_key": key}
    Producer(conn.default_channel, exchange=queue.exchange, routing_key="q").publish(
        {"n": task_id}, headers=headers
    )


def test_a_fair_message_is_leased_when_taken_and_the_rest_wait_in_backlogs(
    broker, redis_client, redis_prefix
):
    conn, queue = broker
    for i, key in enumerate(["a", "a", "b"]):
        publish(conn, queue, f"t{i}", key)
    storage = RedisStorage(redis_client, prefix=redis_prefix)
    assert storage.backlog_size("a", queue.name) == 2
    # Nothing sits on the broker's list but wake tokens: one per task.
    assert redis_client.llen(queue.name) == 3
    message = conn.default_channel.basic_get(queue.name, no_ack=False)
    assert message.headers["id"] == "t0"
    assert message.headers["fairsched_key"] == "a"
    assert storage.backlog_size("a", queue.name) == 1
    message.ack()


def drain_until_idle(conn: Connection) -> None:
    """Handle events (the first are the mailbox's subscription) until none comes for 0.2 s:
    the consumer then waits with a BRPOP in flight, as an idle worker does."""
    for _ in range(10):
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            return
    raise AssertionError("events kept coming from an empty queue")


@pytest.mark.parametrize(
    ("transport", "fair"),
    [
        pytest.param(Transport, True, id="late-fair"),
        pytest.param(Transport, False, id="late-plain"),
        pytest.param(RedisTransport, False, id="windowed"),
    ],
)
def test_a_lost_broker_leaves_the_worker_running_and_a_taken_task_is_not_lost(transport, fair):
    # What a Celery worker does when its broker Redis dies while it blocks on BRPOP: collect
    # the connection (its channel's close fails deleting the mailbox on the dead server, and
    # the transport is detached), then close it again. That second close restores the
    # channel's unacked messages, and kombu's restore looked for a client on the detached
    # transport: the AttributeError stopped the worker ("Unrecoverable error").
    with redis_servers({"appendonly": True}) as (server,):
        conn = Connection(
            server.url,
            transport=transport,
            transport_options={"fairsched_prefix": "fs:", "fairsched_lease_timeout": 1.0},
        )
        channel = conn.default_channel
        queue = Queue("q", Exchange("x"), routing_key="q")
        queue(channel).declare()
        publish(conn, queue, "t0", "a" if fair else None)
        taken = channel.basic_get("q", no_ack=False)  # delivered, not yet acknowledged
        assert taken is not None and taken.headers["id"] == "t0"
        channel.basic_consume("q", False, lambda message: None, "tasks")
        # Celery's remote-control mailbox: a fanout queue, deleted when its channel closes.
        mailbox = Queue("mailbox", Exchange("control", type="fanout"), auto_delete=True)
        mailbox(channel).declare()
        channel.basic_consume("mailbox", True, lambda message: None, "mailbox")
        drain_until_idle(conn)
        assert channel._in_poll
        server.kill()
        conn.collect(socket_timeout=1)
        conn.close()  # raised AttributeError
        server.start()
        client = server.client()
        if fair:
            # Back when its lease lapses (returning it at once needed the server).
            storage = RedisStorage(client, prefix="fs:")
            time.sleep(1.1)
            assert [task.job.id for task in storage.reclaim("q")] == ["t0"]
            assert storage.backlog_size("a", "q") == 1
        else:
            # In kombu's unacked index, which its visibility timeout restores.
            assert client.hexists("unacked", taken.delivery_tag)


def test_reclaim_puts_back_a_wake_token_a_lost_worker_took(redis_client, redis_prefix):
    # A worker that popped the last wake token and then lost its broker (or died) before
    # dispatching took the token with it; the backlog would wait for the next enqueue.
    storage = RedisStorage(redis_client, prefix=redis_prefix, wake_prefix=redis_prefix)
    wake = f"{redis_prefix}q"
    storage.enqueue(Task(Job("t0", "a", 0.0), b"{}", "q"))
    assert redis_client.llen(wake) == 1
    redis_client.delete(wake)  # popped by a worker that never dispatched
    storage.reclaim("q")
    assert redis_client.llen(wake) == 1
    storage.reclaim("q")  # one waiting token is enough: a woken worker leaves one behind
    assert redis_client.llen(wake) == 1
    assert storage.dispatch("q").task is not None
    redis_client.delete(wake)
    storage.reclaim("q")  # nothing waits: no token
    assert redis_client.llen(wake) == 0


def test_a_dispatch_the_broker_lost_is_a_connection_error_celery_recovers_from():
    # Celery reconnects after its transport's connection errors and stops the worker after
    # any other error, such as fairsched's StorageUnavailable.
    with redis_servers({}) as (server,):
        conn = Connection(server.url, transport=Transport)
        queue = Queue("q", Exchange("x"), routing_key="q")
        queue(conn.default_channel).declare()
        publish(conn, queue, "t0", "a")
        server.kill()
        with pytest.raises(conn.connection_errors) as raised:
            conn.default_channel.fair_take("q")
        assert isinstance(raised.value.__cause__, StorageUnavailable)
        conn.release()


def test_a_dispatch_the_broker_lost_is_delivered_by_the_channel_made_on_reconnect(
    redis_url, redis_prefix
):
    options = {"fairsched_prefix": redis_prefix}
    first = Connection(redis_url, transport=Transport, transport_options=options)
    queue = Queue(f"{redis_prefix}q", Exchange(f"{redis_prefix}x"), routing_key="q")
    queue(first.default_channel).declare()
    for i in range(2):
        publish(first, queue, f"t{i}", "a")
    channel = first.default_channel
    # The dispatch runs and leases t0, and its reply is lost with the broker.
    channel.fair._scripts["dispatch"] = Outage(channel.fair._scripts["dispatch"])
    with pytest.raises(first.connection_errors):
        channel.fair_take(queue.name)
    first.release()
    second = Connection(redis_url, transport=Transport, transport_options=options)
    try:
        assert second.default_channel.fair_take(queue.name)["headers"]["id"] == "t0"
        assert second.default_channel.fair_take(queue.name)["headers"]["id"] == "t1"
    finally:
        second.release()
