"""What only the Redis storage has: scripts, key layout, connections, TTLs and serializers."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from fairsched import (
    ConfigurationError,
    InvalidJob,
    Job,
    RedisStorage,
    ScriptError,
    SerializationError,
    StorageUnavailable,
    Task,
)
from fairsched.serializers import PickleWarning, SerializerType
from fairsched.storage._redis_scripts import policy_code, script_source, twins
from tests import servers
from tests.integration.lost_replies import Outage

pytestmark = pytest.mark.redis


@pytest.fixture
def storage(redis_client: Any, redis_prefix: str) -> RedisStorage:
    return RedisStorage(redis_client, prefix=redis_prefix)


def task(tid: str, key: str, payload: bytes = b"{}", domain: str = "celery", **job: Any) -> Task:
    return Task(Job(tid, key, **job), payload, domain)


def stored_keys(client: Any, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{prefix}*", count=1000))


def calls_during(client: Any, action: Any) -> dict[str, int]:
    """Commands clients sent while `action` ran (MONITOR; commands run by scripts excluded)."""
    marker = f"end-{uuid.uuid4().hex}"
    seen: dict[str, int] = {}
    with client.monitor() as monitor:
        client.ping()  # the monitor is live once it has seen this
        for event in monitor.listen():
            if event["command"] == "PING":
                break
        action()
        client.echo(marker)
        for event in monitor.listen():
            if event["command"] == f"ECHO {marker}":
                break
            if event["client_type"] != "lua":
                name = event["command"].split(" ", 1)[0].upper()
                seen[name] = seen.get(name, 0) + 1
    return seen


def test_policy_without_a_lua_twin_is_refused_at_construction(redis_client, redis_prefix):
    class Custom:
        name = "mine"

        def new_state(self, backlog):
            return None

        def pick(self, state, now):
            return None

    with pytest.raises(ConfigurationError, match=r"'mine' has no Lua twin") as refused:
        RedisStorage(redis_client, prefix=redis_prefix, policy=Custom())
    # What runs on Redis, and how to make this one run: the twin hook and the testing kit.
    assert all(n in str(refused.value) for n in ("drr", "expiry_aware", "lru", "weighted_lru"))
    assert "lua_twin()" in str(refused.value) and "fairsched.testing.check_twin" in str(
        refused.value
    )
    assert stored_keys(redis_client, redis_prefix) == []


def test_enqueue_and_dispatch_are_one_script_call_each(storage, redis_client):
    storage.enqueue(task("warm", "a"), now=0.0)  # registers the domain once per process
    storage.dispatch(now=0.0)
    storage.submit(task("warm2", "a"), now=0.0)  # scripts load on first use (NOSCRIPT)
    enqueue = calls_during(redis_client, lambda: storage.enqueue(task("t1", "a"), now=1.0))
    dispatch = calls_during(redis_client, lambda: storage.dispatch(now=1.0))
    submit = calls_during(redis_client, lambda: storage.submit(task("t2", "b"), now=1.0))
    assert enqueue == {"EVALSHA": 1}
    assert dispatch == {"EVALSHA": 1}
    assert submit == {"EVALSHA": 1}


def test_scripts_are_reloaded_after_script_flush(storage, redis_client):
    storage.enqueue(task("t1", "a"), now=0.0)
    redis_client.script_flush()
    storage.enqueue(task("t2", "a"), now=0.0)
    assert [t.id for t in (storage.dispatch(now=1.0).task, storage.dispatch(now=1.0).task)] == [
        "t1",
        "t2",
    ]


def test_all_keys_of_a_domain_share_one_cluster_slot(storage, redis_client, redis_prefix):
    odd = "q{with}braces"
    for i, key in enumerate(["a", "b{x}", "tenant 7", "ключ"]):
        storage.enqueue(task(f"t{i}", key, deadline=100.0), now=0.0)
        storage.enqueue(task(f"u{i}", key, domain=odd), now=0.0)
    storage.dispatch(now=1.0)
    storage.set_weight("a", 2.0)
    slots: dict[str, set[int]] = {"celery": set(), odd: set()}
    for name in stored_keys(redis_client, redis_prefix):
        text = name.decode()
        if text in (f"{redis_prefix}domains", f"{redis_prefix}weights"):
            continue
        domain = odd if "%7B" in text else "celery"
        slots[domain].add(key_slot(name))
    assert len(slots["celery"]) == 1
    assert len(slots[odd]) == 1
    assert storage.backlog_size("b{x}", domain=odd) == 1


def test_user_strings_are_data_never_script_text(storage, redis_client, redis_prefix):
    redis_client.set(f"{redis_prefix}canary", b"alive")
    evil = "x') redis.call('FLUSHDB') --"
    storage.enqueue(task(evil, evil, b"]]--", domain=evil), now=0.0)
    got = storage.dispatch(evil, now=1.0).task
    assert got is not None and (got.id, got.key, got.payload) == (evil, evil, b"]]--")
    assert redis_client.get(f"{redis_prefix}canary") == b"alive"
    code = policy_code(twins(storage.policy))
    for verb in ("enqueue", "dispatch", "finish"):
        assert evil not in script_source(verb, code)


def test_duplicate_id_is_refused_before_anything_is_written(storage, redis_client, redis_prefix):
    storage.enqueue(task("t1", "a", b"first"), now=0.0)
    before = {k: redis_client.dump(k) for k in stored_keys(redis_client, redis_prefix)}
    with pytest.raises(InvalidJob, match="already queued or leased"):
        storage.enqueue(task("t1", "b", b"second"), now=1.0)
    after = {k: redis_client.dump(k) for k in stored_keys(redis_client, redis_prefix)}
    assert after == before


def test_unreachable_redis_raises_storage_unavailable_after_retries():
    port = servers.free_port()  # nobody listens here
    storage = RedisStorage.from_url(
        f"redis://127.0.0.1:{port}/0", max_retries=2, client_options={"socket_connect_timeout": 1}
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        storage.enqueue(task("t1", "a"), now=0.0)
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert time.monotonic() - started >= 0.05 + 0.1  # two back-offs: 50 ms, then 100 ms
    with pytest.raises(StorageUnavailable):
        storage.dispatch(now=0.0)
    with pytest.raises(StorageUnavailable):
        storage.keys()


def test_server_going_away_mid_run_is_an_error_not_a_fallback(redis_client):
    with servers.private_redis() as url:
        storage = RedisStorage.from_url(url, max_retries=1, prefix="gone:")
        storage.enqueue(task("t1", "a"), now=0.0)
    with pytest.raises(StorageUnavailable):
        storage.enqueue(task("t2", "a"), now=0.0)
    assert redis_client.keys("gone:*") == []  # and nothing went to another server


def test_acl_user_from_the_url_works_and_a_wrong_password_is_refused(redis_url, redis_client):
    user, password = f"fs-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    prefix = f"acl-{user}:"
    redis_client.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=[f"{prefix}*"],
        commands=["+@all"],
    )
    host_port = redis_url.split("://", 1)[1]
    try:
        storage = RedisStorage.from_url(f"redis://{user}:{password}@{host_port}", prefix=prefix)
        storage.enqueue(task("t1", "a"), now=0.0)
        assert storage.dispatch(now=1.0).task.id == "t1"
        assert storage.purge() == 1
        outsider = RedisStorage.from_url(f"redis://{user}:{password}@{host_port}", prefix="x:")
        with pytest.raises(ConfigurationError, match="permission"):
            outsider.enqueue(task("t1", "a"), now=0.0)
        wrong = RedisStorage.from_url(f"redis://{user}:nope@{host_port}", prefix=prefix)
        with pytest.raises(ConfigurationError, match="credentials"):
            wrong.enqueue(task("t2", "a"), now=0.0)
    finally:
        redis_client.acl_deluser(user)
        for name in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(name)


def test_settings_users_know_reach_the_client():
    storage = RedisStorage.from_settings(
        "redis://alice:s3cret@example.invalid:6380/2",
        prefix="app:",
        serializer="msgpack",
        key_ttl=60,
        max_retries=5,
        use_ssl=True,
        policy={"policy": "drr", "quantum": 2.0},
    )
    kwargs = storage.client.connection_pool.connection_kwargs
    assert storage.client.connection_pool.connection_class is redis.SSLConnection
    assert (kwargs["username"], kwargs["password"]) == ("alice", "s3cret")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("example.invalid", 6380, 2)
    assert (storage.prefix, storage.serializer.name, storage.key_ttl) == ("app:", "msgpack", 60)
    assert storage.max_retries == 5 and storage.policy.quantum == 2.0


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("rediss://h:6379/0", {"use_ssl": False}),
        ("http://h:6379/0", {}),
        ("redis://h/0", {"prefix": "bad{tag}:"}),
        ("redis://h/0", {"key_ttl": 0}),
        ("redis://h/0", {"max_retries": -1}),
        ("redis://h/0", {"serializer": "nonsense"}),
    ],
)
def test_bad_settings_raise_configuration_error(url, options):
    with pytest.raises(ConfigurationError):
        RedisStorage.from_settings(url, **options)


@contextmanager
def private_tls_redis(workdir: Path) -> Iterator[tuple[str, str]]:
    """A redis-server speaking only TLS, with a self-signed certificate; yields (url, ca)."""
    binary, openssl = servers.redis_server_binary(), shutil.which("openssl")
    if binary is None or openssl is None:
        servers.unavailable("TLS test needs redis-server and openssl")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = servers.free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not servers.port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                servers.unavailable(f"redis-server without TLS support (exit {proc.poll()})")
            time.sleep(0.02)
        yield f"rediss://127.0.0.1:{port}/0", str(cert)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_tls_connection_with_a_private_certificate(tmp_path):
    with private_tls_redis(tmp_path) as (url, ca):
        storage = RedisStorage.from_settings(
            url, use_ssl=True, client_options={"ssl_ca_certs": ca}, prefix="tls:"
        )
        storage.enqueue(task("t1", "a", b"secret"), now=0.0)
        assert storage.dispatch(now=1.0).task.payload == b"secret"
        plain = RedisStorage.from_url(url, client_options={"ssl_ca_certs": "/nonexistent"})
        with pytest.raises(StorageUnavailable):
            plain.enqueue(task("t2", "a"), now=0.0)


@pytest.mark.parametrize("name", [SerializerType.JSON, "msgpack"])
def test_payload_bytes_from_the_serializer_round_trip(redis_client, redis_prefix, name):
    storage = RedisStorage(redis_client, prefix=redis_prefix, serializer=name)
    body = {"task": "proj.add", "args": [1, "zwei", None], "kwargs": {"x": 1.5}}
    storage.enqueue(task("t1", "a", storage.serializer.dumps(body)), now=0.0)
    assert storage.serializer.loads(storage.dispatch(now=1.0).task.payload) == body


def test_json_refuses_what_it_cannot_encode_and_pickle_warns(redis_client, redis_prefix):
    storage = RedisStorage(redis_client, prefix=redis_prefix)
    assert storage.serializer.name == "json"
    with pytest.raises(SerializationError):
        storage.serializer.dumps({"when": object()})
    with pytest.warns(PickleWarning):
        pickled = RedisStorage(redis_client, prefix=redis_prefix, serializer="pickle")
    assert pickled.serializer.loads(pickled.serializer.dumps({1, 2})) == {1, 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RedisStorage(redis_client, prefix=redis_prefix, serializer="msgpack")


def test_key_ttl_forgets_idle_keys_but_never_backlogs_or_leases(redis_client, redis_prefix):
    storage = RedisStorage(redis_client, prefix=redis_prefix, key_ttl=0.3)
    storage.enqueue(task("a1", "idle"), now=0.0)
    storage.enqueue(task("b1", "busy"), now=0.0)
    storage.enqueue(task("b2", "busy"), now=0.0)
    storage.enqueue(task("b3", "busy"), now=0.0)
    assert storage.dispatch(now=1.0).task.id == "a1"  # "idle" is now idle, its task leased
    assert storage.dispatch(now=1.0).task.id == "b1"
    assert set(storage.last_dispatched()) == {"idle", "busy"}
    time.sleep(0.6)
    assert set(storage.last_dispatched()) == {"busy"}
    assert storage.backlog_size("busy") == 2
    assert [t.id for t in storage.queued("busy")] == ["b2", "b3"]
    assert storage.in_flight() == 2
    assert storage.complete("a1", "celery", runtime=1.0, now=2.0).id == "a1"
    assert storage.reclaim(now=1000.0)[0].id == "b1"
    assert [storage.dispatch(now=1001.0).task.id for _ in range(3)] == ["b1", "b2", "b3"]


def test_backlog_size_is_one_read_whatever_the_backlog(storage, redis_client):
    for i in range(300):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    calls = calls_during(redis_client, lambda: storage.backlog_size("a", domain="celery"))
    assert calls == {"HGET": 1}
    assert storage.backlog_size("a") == 300


def test_monitoring_skips_withdrawn_tasks_lazily_left_in_the_list(storage):
    for i in range(10):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    for i in range(1, 9):
        storage.revoke(f"t{i}", "celery", now=0.0)
    assert [t.id for t in storage.queued("a")] == ["t0", "t9"]
    assert [t.id for t in storage.queued("a", limit=1)] == ["t0"]
    assert storage.backlog_size("a") == 2
    assert [storage.dispatch(now=1.0).task.id for _ in range(2)] == ["t0", "t9"]
    assert storage.keys() == []


class Flaky:
    """Stands in for one script: fails `failures` times with `error`, then runs the real one."""

    def __init__(self, real: Any, error: Exception, failures: int) -> None:
        self.real, self.error, self.failures, self.calls = real, error, failures, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real(*args, **kwargs)


class LostReply:
    """Stands in for one script: its first call runs the real script, then loses the reply."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        reply = self.real(*args, **kwargs)
        if self.calls == 1:
            raise redis.ConnectionError("Connection closed by server.")
        return reply


class Overtaken:
    """Stands in for one script whose first call is delayed (a stalled server) until after
    the client's repeat ran: the repeat runs first, then the original, whose reply is lost."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls, self.first = real, 0, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.first = (args, kwargs)
            raise redis.TimeoutError("Timeout reading from socket")
        reply = self.real(*args, **kwargs)
        first_args, first_kwargs = self.first
        self.real(*first_args, **first_kwargs)  # the original runs late; nobody reads it
        return reply


def test_a_dispatch_whose_reply_was_lost_is_repeated_and_leases_the_same_task(storage):
    storage.enqueue(task("t1", "a"), now=0.0)
    storage.enqueue(task("t2", "a"), now=0.0)
    storage._scripts["dispatch"] = lost = LostReply(storage._scripts["dispatch"])
    assert storage.dispatch(now=1.0).task.id == "t1"
    assert lost.calls == 2
    assert storage.in_flight() == 1  # the repeat returned the first run's task, not t2
    assert storage.dispatch(now=1.0).task.id == "t2"


def test_a_delayed_dispatch_overtaken_by_its_repeat_leases_nothing_more(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage._scripts["dispatch"] = Overtaken(storage._scripts["dispatch"])
    assert storage.dispatch(now=1.0).task.id == "t0"
    assert storage.in_flight() == 1
    assert storage.backlog_size("a") == 2


def test_a_submit_whose_reply_was_lost_stores_once_and_returns_its_dispatch(storage):
    storage._scripts["submit"] = LostReply(storage._scripts["submit"])
    dispatch = storage.submit(task("t1", "a"), now=0.0, window=1)
    assert dispatch.task is not None and dispatch.task.id == "t1"
    assert storage.in_flight() == 1 and storage.backlog_size("a") == 0
    with pytest.raises(InvalidJob):  # a real duplicate is still refused
        storage.submit(task("t1", "a"), now=0.0, window=1)


def test_a_submit_that_leased_nothing_repeats_as_an_empty_dispatch(storage):
    storage.submit(task("t0", "a"), now=0.0, window=1)
    storage._scripts["submit"] = LostReply(storage._scripts["submit"])
    assert storage.submit(task("t1", "a"), now=0.0, window=1).task is None
    assert storage.backlog_size("a") == 1


def test_a_finish_whose_reply_was_lost_returns_the_task_it_leased(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage.dispatch(now=1.0, window=1)
    storage._scripts["finish"] = LostReply(storage._scripts["finish"])
    dispatch = storage.finish("t0", "celery", 0.5, now=2.0, window=1)
    assert dispatch.task is not None and dispatch.task.id == "t1"
    assert storage.in_flight() == 1 and storage.backlog_size("a") == 1
    # The op entry ends with the lease: a later finish of t0 (a redelivered message) is a no-op.
    storage._scripts["finish"] = storage._scripts["finish"].real
    assert storage.finish("t1", "celery", 0.5, now=3.0, window=1).task.id == "t2"
    assert storage.finish("t0", "celery", 0.5, now=4.0, window=1).task is None
    assert storage.in_flight() == 1


def test_an_enqueue_whose_reply_was_lost_is_not_a_duplicate(storage):
    storage._scripts["enqueue"] = LostReply(storage._scripts["enqueue"])
    storage.enqueue(task("t1", "a"), now=0.0)
    assert storage.backlog_size("a") == 1


def test_a_finish_that_failed_is_repeated_as_such_the_next_time(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage.dispatch(now=1.0, window=1)
    storage._scripts["finish"] = outage = Outage(storage._scripts["finish"])
    with pytest.raises(StorageUnavailable):
        storage.finish("t0", "celery", 0.5, now=2.0, window=1)
    assert outage.calls == storage.max_retries + 1
    outage.over = True
    # The worker retries the release later: it gets the task the lost run leased.
    assert storage.finish("t0", "celery", 0.5, now=3.0, window=1).task.id == "t1"
    assert storage.in_flight() == 1 and storage.backlog_size("a") == 1


def test_a_dispatch_that_failed_hands_its_lease_to_the_next_dispatch(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage._scripts["dispatch"] = outage = Outage(storage._scripts["dispatch"])
    with pytest.raises(StorageUnavailable):
        storage.dispatch(now=1.0)
    outage.over = True
    assert storage.dispatch(now=1.0).task.id == "t0"  # not stranded until its lease lapses
    assert storage.in_flight() == 1
    assert storage.dispatch(now=1.0).task.id == "t1"


def test_a_storage_built_anew_repeats_what_one_sharing_its_unsettled_calls_left(storage):
    # The late-binding transport builds a storage per kombu channel, and Celery makes new
    # channels when it reconnects: the lease a lost dispatch made must not wait to lapse.
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage._scripts["dispatch"] = Outage(storage._scripts["dispatch"])
    with pytest.raises(StorageUnavailable):
        storage.dispatch(now=1.0)
    anew = RedisStorage(storage.client, prefix=storage.prefix, unsettled=storage.unsettled)
    assert anew.dispatch(now=1.0).task.id == "t0"
    assert anew.in_flight() == 1


def test_op_entries_end_with_their_leases(storage, redis_client):
    for i in range(4):
        storage.submit(task(f"t{i}", "a"), now=0.0, window=2)
    ops = storage._base("celery") + "ops"
    assert redis_client.hlen(ops) == 2
    storage.finish("t0", "celery", 0.1, now=1.0, window=2)
    storage.complete("t1", "celery", 0.1, now=1.0)
    storage.reclaim(now=10_000.0)
    assert redis_client.hlen(ops) == 0


def test_a_failed_connect_is_retried_with_backoff_then_succeeds(storage):
    storage.enqueue(task("t1", "a"), now=0.0)
    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    storage._scripts["dispatch"] = flaky = Flaky(storage._scripts["dispatch"], refused, 2)
    assert storage.dispatch(now=1.0).task.id == "t1"
    assert flaky.calls == 3


def test_reads_are_retried_after_a_lost_reply(storage):
    storage.enqueue(task("t1", "a"), now=0.0)
    lost = redis.TimeoutError("Timeout reading from socket")
    storage._scripts["tasks_by_key"] = flaky = Flaky(storage._scripts["tasks_by_key"], lost, 1)
    assert [t.id for t in storage.queued("a")] == ["t1"]
    assert flaky.calls == 2


def test_a_lua_error_is_a_script_error(storage):
    storage.enqueue(task("t1", "a"), now=0.0)
    storage.client.hset(storage._base("celery") + "tasks", "t1", b"not msgpack")
    with pytest.raises(ScriptError) as caught:
        storage.dispatch(now=1.0)
    assert isinstance(caught.value.__cause__, redis.ResponseError)
