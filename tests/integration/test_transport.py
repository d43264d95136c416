"""The late-binding transport (fairsched.transport) against a real Redis, through kombu."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Producer, Queue

from fairsched import RedisStorage
from fairsched.transport import Transport
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


@pytest.mark.parametrize("fair", [True, False], ids=["fair", "plain"])
def test_a_lost_broker_leaves_the_worker_running_and_a_taken_task_is_not_lost(fair):
    # What a Celery worker does when its broker Redis dies while it blocks on BRPOP: collect
    # the connection (its channel's close fails deleting the mailbox on the dead server, and
    # the transport is detached), then close it again. That second close restores the
    # channel's unacked messages, and kombu's restore looked for a client on the detached
    # transport: the AttributeError stopped the worker ("Unrecoverable error").
    with redis_servers({"appendonly": True}) as (server,):
        conn = Connection(
            server.url,
            transport=Transport,
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
