"""The Celery integration with an in-process worker (threads pool, in-memory broker).

Each test runs against MemoryStorage and against RedisStorage on a real Redis server.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.worker import WorkController

import fairsched
from fairsched import ConfigurationError, InvalidJob, LRUTask, MemoryStorage, SerializationError
from fairsched._embedded import embedded_worker
from fairsched.celery import dispatcher_for

STORAGES = ["memory", "redis"]


def make_app(**settings: Any) -> Celery:
    """An app on the in-memory broker with its own queue (the broker is process-global)."""
    app = Celery(f"t{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://")
    app.conf.broker_transport_options = {"polling_interval": 0.005}
    app.conf.task_default_queue = f"q-{uuid.uuid4().hex[:8]}"
    app.conf.fairsched = settings
    return app


def make_storage(kind: str, request: pytest.FixtureRequest, policy: Any = "weighted_lru") -> Any:
    if kind == "memory":
        return MemoryStorage(policy=policy)
    from fairsched.storage import RedisStorage

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    storage = RedisStorage.from_url(url, prefix=prefix, policy=policy)
    request.addfinalizer(storage.close)
    return storage


@pytest.fixture(params=STORAGES)
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Probe:
    """Records, per task id, when the task started and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.runs: list[str] = []
        self.running = 0
        self.peak = 0

    def enter(self, task_id: str) -> None:
        with self.lock:
            self.started.setdefault(task_id, time.time())
            self.runs.append(task_id)
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


@pytest.fixture
def probe() -> Probe:
    return Probe()


def build(
    kind: str,
    request: pytest.FixtureRequest,
    probe: Probe,
    policy: Any = "weighted_lru",
    **settings: Any,
) -> tuple[Celery, dict[str, Any]]:
    app = make_app(**settings)
    storage = make_storage(kind, request, policy)
    fairsched.configure(app=app, storage=storage)

    @fairsched.lru_task(app, bind=True, name="sleep", shared=False)
    def sleep(self: Any, seconds: float, value: Any = None) -> Any:
        probe.enter(self.request.id)
        try:
            time.sleep(seconds)
        finally:
            probe.leave()
        return value

    @fairsched.lru_task(app, name="boom", shared=False)
    def boom() -> None:
        raise ValueError("boom")

    @fairsched.lru_task(app, bind=True, name="flaky", max_retries=3, shared=False)
    def flaky(self: Any, fails: int) -> int:
        probe.enter(self.request.id + f":{self.request.retries}")
        probe.leave()
        if self.request.retries < fails:
            raise self.retry(countdown=0.01)
        return self.request.retries

    return app, {"sleep": sleep, "boom": boom, "flaky": flaky}


@pytest.fixture
def worker_of() -> Iterator[Any]:
    stack: list[Any] = []

    def start(app: Celery, concurrency: int = 2) -> WorkController:
        ctx = embedded_worker(app, pool="threads", concurrency=concurrency)
        worker = ctx.__enter__()
        stack.append(ctx)
        return worker

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# -- results ----------------------------------------------------------------------------------


def test_lru_delay_returns_the_tasks_own_result(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=2)
    worker_of(app)
    result = tasks["sleep"].lru_delay("alice", 0.0, value={"answer": 42})
    assert result.get(timeout=10) == {"answer": 42}
    assert result.state == "SUCCESS"
    assert result.id in probe.started  # the id the caller holds is the id that ran
    failed = tasks["boom"].lru_apply_async("alice")
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=10)
    assert failed.state == "FAILURE"
    queue = app.conf.task_default_queue
    assert wait_for(lambda: dispatcher_for(app).storage.in_flight(queue) == 0)


def test_plain_delay_still_works_and_bypasses_fairsched(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=1)
    worker_of(app)
    assert tasks["sleep"].delay(0.0, value=7).get(timeout=10) == 7
    assert dispatcher_for(app).stats["submitted"] == 0


# -- windows and fairness ---------------------------------------------------------------------


def test_window_caps_tasks_in_flight(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=2)
    worker_of(app, concurrency=4)
    results = [tasks["sleep"].lru_delay("bulk", 0.05) for _ in range(12)]
    for result in results:
        result.get(timeout=20)
    assert probe.peak == 2  # four threads, but never more than the window at once
    assert dispatcher_for(app).storage.in_flight(app.conf.task_default_queue) == 0


def test_interactive_key_is_not_stuck_behind_a_flood(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=2)
    worker_of(app, concurrency=2)
    flood = [tasks["sleep"].lru_delay("bulk", 0.02) for _ in range(100)]
    time.sleep(0.1)
    submitted = time.time()
    interactive = tasks["sleep"].lru_delay("ui", 0.0)
    interactive.get(timeout=20)
    started = probe.started[interactive.id]
    wait = started - submitted
    bulk_before = sum(1 for r in flood if probe.started.get(r.id, float("inf")) < started)
    assert wait < 0.5, f"interactive task waited {wait:.3f} s"
    assert bulk_before < 50  # it overtook most of the flood
    for result in flood:
        result.get(timeout=30)


def test_auto_window_follows_live_workers(storage_kind, request, probe, worker_of):
    app, _ = build(storage_kind, request, probe, window_factor=2.0, heartbeat_interval=0.5)
    dispatcher = dispatcher_for(app)
    queue = app.conf.task_default_queue
    assert dispatcher.window(queue) == 1  # no live worker: idle_window
    worker_of(app, concurrency=3)
    dispatcher.forget_window(queue)
    assert dispatcher.window(queue) == 6


# -- slots are released whatever the outcome --------------------------------------------------


def test_retries_return_their_slot_and_leak_none(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=1)
    worker_of(app)
    results = [tasks["flaky"].lru_delay(f"k{i % 2}", 2) for i in range(4)]
    assert [r.get(timeout=20) for r in results] == [2, 2, 2, 2]
    assert len(probe.runs) == 12  # each ran three times, and every retry was executed
    queue = app.conf.task_default_queue
    assert wait_for(lambda: dispatcher_for(app).storage.in_flight(queue) == 0)
    # The window of one is intact: a new task still runs.
    assert tasks["sleep"].lru_delay("k0", 0.0, value="after").get(timeout=10) == "after"


def test_worker_side_expiry_releases_the_slot(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=2)
    queue = app.conf.task_default_queue
    doomed = tasks["sleep"].lru_apply_async("b", (0.0,), expires=0.2)
    assert dispatcher_for(app).storage.in_flight(queue) == 1  # published at once
    time.sleep(0.4)  # it expires in the broker; the worker that receives it drops it
    worker_of(app, concurrency=1)
    assert wait_for(lambda: doomed.state == "REVOKED")
    assert doomed.id not in probe.started
    assert wait_for(lambda: dispatcher_for(app).storage.in_flight(queue) == 0)


# -- expiry and revoke in the backlog ---------------------------------------------------------


def test_task_expiring_in_the_backlog_never_runs_and_is_revoked(
    storage_kind, request, probe, worker_of
):
    app, tasks = build(storage_kind, request, probe, window=1)
    worker_of(app, concurrency=1)
    blocker = tasks["sleep"].lru_delay("a", 0.4)
    doomed = tasks["sleep"].lru_apply_async("b", (0.0,), expires=0.1)
    later = tasks["sleep"].lru_delay("b", 0.0, value="ok")
    assert later.get(timeout=10) == "ok"
    blocker.get(timeout=10)
    assert doomed.state == "REVOKED"
    assert doomed.id not in probe.started
    assert dispatcher_for(app).stats["expired"] == 1


def test_revoke_removes_a_backlogged_task(storage_kind, request, probe, worker_of):
    app, tasks = build(storage_kind, request, probe, window=1)
    worker_of(app, concurrency=1)
    blocker = tasks["sleep"].lru_delay("a", 0.3)
    victim = tasks["sleep"].lru_delay("b", 0.0)
    assert fairsched.revoke(app, victim.id) is True
    blocker.get(timeout=10)
    assert tasks["sleep"].lru_delay("b", 0.0, value=1).get(timeout=10) == 1
    assert victim.state == "REVOKED"
    assert victim.id not in probe.started


# -- refused input ----------------------------------------------------------------------------


def test_unencodable_argument_raises_before_anything_is_stored(storage_kind, request, probe):
    app, tasks = build(storage_kind, request, probe, window=1)
    with pytest.raises(SerializationError):
        tasks["sleep"].lru_delay("alice", 0.0, value=object())
    assert dispatcher_for(app).storage.backlog_size("alice") == 0
    assert dispatcher_for(app).storage.in_flight(app.conf.task_default_queue) == 0


@pytest.mark.parametrize("option", [{"countdown": 5}, {"eta": "2030-01-01T00:00:00"}])
def test_countdown_and_eta_are_refused_not_ignored(storage_kind, request, probe, option):
    app, tasks = build(storage_kind, request, probe, window=1)
    with pytest.raises(InvalidJob, match=next(iter(option))):
        tasks["sleep"].lru_apply_async("alice", (0.0,), **option)
    assert dispatcher_for(app).storage.backlog_size("alice") == 0


def test_bad_key_is_refused(storage_kind, request, probe):
    _, tasks = build(storage_kind, request, probe, window=1)
    with pytest.raises(InvalidJob):
        tasks["sleep"].lru_delay("", 0.0)


# -- leases -----------------------------------------------------------------------------------


def test_failed_publish_returns_the_task_to_its_backlog_until_the_broker_is_back(
    storage_kind, request, probe, worker_of
):
    storage = make_storage(storage_kind, request)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    settings = {"window": 1, "lease_timeout": 300, "reclaim_interval": 0.1}
    # The producer's broker is unreachable: its publish fails after the slot was taken.
    broken = Celery("broken", broker="redis://127.0.0.1:1/0", backend="cache+memory://")
    broken.conf.update(
        task_default_queue=queue,
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        task_publish_retry=False,
        fairsched=settings,
    )
    fairsched.configure(app=broken, storage=storage)

    @fairsched.lru_task(broken, name="sleep", shared=False)
    def sleep_broken(seconds: float, value: Any = None) -> Any:
        return value

    result = sleep_broken.lru_delay("alice", 0.0, value="survived")
    assert dispatcher_for(broken).stats["publish_failed"] == 1
    # Back at the head of its backlog, not holding the slot for the 300 s lease.
    assert storage.in_flight(queue) == 0
    assert [t.id for t in storage.queued("alice")] == [result.id]
    app, _ = build(storage_kind, request, probe, **settings)
    app.conf.task_default_queue = queue
    fairsched.configure(app=app, storage=storage)
    started = time.monotonic()
    worker_of(app)
    # The worker's timer dispatches it again and publishes it through a good broker.
    assert app.AsyncResult(result.id).get(timeout=10) == "survived"
    assert time.monotonic() - started < 5
    assert dispatcher_for(app).stats["reclaimed"] == 0


# -- tasks that can never be published --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"expires": time.time() * 1000}, InvalidJob, "past the year 9999"),
        ({"serializer": "jsn"}, InvalidJob, "serializer='jsn' is not a registered"),
        ({"compression": "zipp"}, InvalidJob, "compression='zipp'"),
        ({"queue": 5}, InvalidJob, "queue= must be a queue name"),
        ({"priority": 300}, InvalidJob, "priority= must be between 0 and 255"),
        ({"routing_key": 7}, InvalidJob, "routing_key= must be a str"),
        ({"time_limit": float("nan")}, InvalidJob, "time_limit= must be finite"),
        ({"headers": ["x"]}, InvalidJob, "headers= must be a mapping"),
        ({"args": [b"raw bytes"], "serializer": "json"}, SerializationError, "json"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_task_that_could_never_be_published_is_refused_at_submit(
    storage_kind, request, options, error, match
):
    app = make_app(window=1, redis_serializer="msgpack")
    storage = make_storage(storage_kind, request)
    fairsched.configure(app=app, storage=storage)

    @fairsched.lru_task(app, name="echo", shared=False)
    def echo(*args: Any) -> Any:
        return args

    options = dict(options)
    args = options.pop("args", ["ok"])
    with pytest.raises(error, match=match):
        echo.lru_apply_async("alice", args, **options)
    assert storage.keys() == []  # nothing stored
    assert storage.in_flight(app.conf.task_default_queue) == 0


class RefusingCelery(Celery):  # type: ignore[misc]
    """A Celery app whose broker refuses messages of one task name for good (as a broker or
    kombu does for an oversized or unroutable message): the error is not a connection error."""

    refused = "poison"

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == self.refused:
            from kombu.exceptions import ContentDisallowed

            raise ContentDisallowed("refused by the broker for good")
        return super().send_task(name, *args, **kwargs)


def test_a_task_refused_at_publish_fails_and_frees_its_slot(storage_kind, request, worker_of):
    app = RefusingCelery(f"t{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://")
    app.conf.broker_transport_options = {"polling_interval": 0.005}
    app.conf.task_default_queue = queue = f"q-{uuid.uuid4().hex[:8]}"
    app.conf.fairsched = {"window": 1, "reclaim_interval": 0.1}
    storage = make_storage(storage_kind, request)
    fairsched.configure(app=app, storage=storage)

    @fairsched.lru_task(app, name="poison", shared=False)
    def poison() -> None:
        raise AssertionError("never runs")

    @fairsched.lru_task(app, name="fine", shared=False)
    def fine(x: int) -> int:
        return x

    bad = [poison.lru_delay("alice") for _ in range(3)]
    good = [fine.lru_delay("bob", i) for i in range(5)]
    worker_of(app)
    # With window 1, a poison task holding its slot would block everything behind it.
    assert [r.get(timeout=10) for r in good] == list(range(5))
    for result in bad:
        with pytest.raises(fairsched.PublishRefused, match="ContentDisallowed"):
            result.get(timeout=10)
        assert result.state == "FAILURE"
    assert dispatcher_for(app).stats["publish_refused"] == 3
    assert storage.in_flight(queue) == 0


# -- LRUTask hooks ----------------------------------------------------------------------------


def test_lru_task_hooks_get_the_tasks_own_id_args_and_kwargs(storage_kind, request, worker_of):
    app = make_app(window=1)
    fairsched.configure(app=app, storage=make_storage(storage_kind, request))
    seen: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []

    class Hooked(LRUTask):
        def on_success(self, retval, task_id, args, kwargs):
            seen.append(("success", task_id, tuple(args), dict(kwargs)))
            super().on_success(retval, task_id, args, kwargs)

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            seen.append(("failure", task_id, tuple(args), dict(kwargs)))
            super().on_failure(exc, task_id, args, kwargs, einfo)

    @fairsched.lru_task(app, base=Hooked, name="hooked", shared=False)
    def hooked(x: int, fail: bool = False) -> int:
        if fail:
            raise RuntimeError("no")
        return x

    worker_of(app)
    ok = hooked.lru_delay("k", 1, fail=False)
    bad = hooked.lru_delay("k", 2, fail=True)
    assert ok.get(timeout=10) == 1
    with pytest.raises(RuntimeError):
        bad.get(timeout=10)
    assert ("success", ok.id, (1,), {"fail": False}) in seen
    assert ("failure", bad.id, (2,), {"fail": True}) in seen


# -- configuration at worker start ------------------------------------------------------------


def test_memory_storage_with_prefork_pool_is_refused_at_worker_start():
    app = make_app()
    fairsched.configure(app=app, storage=MemoryStorage())
    with pytest.raises(ConfigurationError, match="prefork"):
        WorkController(app=app, pool="prefork", concurrency=2, without_mingle=True)


def test_configure_rejects_a_policy_that_contradicts_the_storage():
    app = make_app()
    with pytest.raises(ConfigurationError, match="policy"):
        fairsched.configure(app=app, storage=MemoryStorage(policy="lru"), policy="drr")


def test_configure_applies_weights_to_the_storage(storage_kind, request):
    app = make_app(weights={"gold": 3})
    storage = make_storage(storage_kind, request)
    fairsched.configure(app=app, storage=storage)
    assert storage.get_weight("gold") == 3.0
    fairsched.set_weight(app, "gold", 5)
    assert storage.get_weight("gold") == 5.0


def test_recording_keeps_one_outcome_per_task_with_its_times_and_worker(probe, worker_of):
    app, tasks = build("memory", None, probe, window=2)  # type: ignore[arg-type]
    storage = MemoryStorage(policy="weighted_lru", record_size=100)
    fairsched.configure(app=app, storage=storage, record_size=100)
    worker_of(app)
    results = [tasks["sleep"].lru_delay(key, 0.01) for key in ("a", "b", "a")]
    ids = [r.id for r in results]
    for result in results:
        result.get(timeout=10)
    assert wait_for(lambda: len(storage.records()) == 3)
    records = {r.id: r for r in storage.records()}
    assert set(records) == set(ids)
    for record in records.values():
        assert record.outcome == "done"
        assert record.service is not None and record.service >= 0.01
        assert record.arrival <= record.dispatched <= record.started <= record.finished
        assert record.worker.endswith(f":{os.getpid()}")  # an in-process worker
    assert [records[i].key for i in ids] == ["a", "b", "a"]


def test_a_record_size_the_storage_passed_cannot_honour_is_refused():
    app = make_app()
    with pytest.raises(ConfigurationError, match="record_size"):
        fairsched.configure(app=app, storage=MemoryStorage(), record_size=10)
