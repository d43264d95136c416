"""One behavioural contract, run on every storage backend: memory and real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from fairsched import InvalidJob, InvalidWeight, Job, MemoryStorage, RedisStorage, Task
from fairsched.storage import Outcome, Storage

BACKENDS = ["memory", "redis"]


def make(request: pytest.FixtureRequest, policy: Any = "lru") -> Storage:
    if request.param == "memory":
        return MemoryStorage(policy=policy)
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return RedisStorage(client, prefix=prefix, policy=policy)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> Storage:
    return make(request)


@pytest.fixture(params=BACKENDS)
def drr_storage(request: pytest.FixtureRequest) -> Storage:
    return make(request, {"policy": "drr", "quantum": 1.0})


@pytest.fixture(params=BACKENDS)
def expiry_storage(request: pytest.FixtureRequest) -> Storage:
    return make(request, {"policy": "expiry_aware", "inner": "lru", "slack": 1.0})


def task(tid: str, key: str, payload: bytes = b"{}", domain: str = "celery", **job: Any) -> Task:
    return Task(Job(tid, key, **job), payload, domain)


def ids(storage: Storage, n: int, now: float = 10.0, **kw: Any) -> list[str | None]:
    out = []
    for _ in range(n):
        got = storage.dispatch(now=now, **kw).task
        out.append(None if got is None else got.id)
    return out


def snapshot(storage: Storage) -> tuple[Any, ...]:
    return (
        storage.keys(),
        {k: storage.queued(k) for k in "abc"},
        storage.last_dispatched(),
        storage.in_flight(),
    )


def test_dispatch_is_fifo_within_a_key_and_alternates_between_keys(storage):
    for i, key in enumerate("aaab"):
        storage.enqueue(task(f"t{i}", key, b"p%d" % i), now=float(i))
    first = storage.dispatch(now=5.0)
    assert first.task == task("t0", "a", b"p0")
    assert first.lease_deadline == 5.0 + 300.0
    assert ids(storage, 4) == ["t3", "t1", "t2", None]


def test_dispatch_on_an_empty_or_unknown_domain_gives_nothing(storage):
    assert storage.dispatch(now=1.0).task is None
    assert storage.dispatch("nowhere", now=1.0).task is None


def test_enqueued_task_keeps_its_payload_and_job_fields_exactly(storage):
    sent = task("t1", "k", b"\x00\xffbinary", enqueued_at=0.1, cost=1 / 3, deadline=1e9 + 0.7)
    storage.enqueue(sent, now=0.2)
    assert storage.queued("k") == [sent]
    assert storage.dispatch(now=0.3).task == sent


def test_full_window_yields_no_task_until_one_completes(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    assert ids(storage, 3, window=2) == ["t0", "t1", None]
    assert storage.in_flight() == 2
    assert storage.complete("t0", "celery", runtime=0.5, now=11.0).id == "t0"
    assert storage.in_flight() == 1
    assert ids(storage, 1, window=2) == ["t2"]


def test_window_zero_dispatches_nothing(storage):
    storage.enqueue(task("t0", "a"), now=0.0)
    assert storage.dispatch(now=1.0, window=0).task is None
    assert storage.backlog_size("a") == 1


def test_reclaim_requeues_timed_out_leases_at_the_head_in_their_old_order(storage):
    for i in range(4):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage.dispatch(now=1.0, lease_timeout=5.0)
    storage.dispatch(now=1.0, lease_timeout=5.0)
    assert storage.reclaim(now=6.0) == []  # deadline 6.0 is not before 6.0
    reclaimed = storage.reclaim(now=6.5)
    assert [t.id for t in reclaimed] == ["t0", "t1"]
    assert storage.in_flight() == 0
    assert [t.id for t in storage.queued("a")] == ["t0", "t1", "t2", "t3"]
    assert ids(storage, 4) == ["t0", "t1", "t2", "t3"]


def test_completed_lease_is_not_reclaimed(storage):
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.dispatch(now=1.0, lease_timeout=1.0)
    storage.complete("t0", "celery", now=1.5)
    assert storage.reclaim(now=10.0) == []


def test_completing_a_reclaimed_task_withdraws_it(storage):
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.dispatch(now=1.0, lease_timeout=1.0)
    storage.reclaim(now=3.0)
    assert storage.backlog_size("a") == 1
    assert storage.complete("t0", "celery", runtime=1.0, now=3.5).id == "t0"
    assert storage.backlog_size("a") == 0
    assert storage.keys() == []


def test_complete_of_an_unknown_id_returns_none(storage):
    assert storage.complete("nope", "celery", runtime=1.0, now=1.0) is None
    assert storage.finish("nope", "celery", runtime=1.0, now=1.0).task is None


def test_finish_completes_and_dispatches_the_next_task_atomically(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage.dispatch(now=1.0, window=1)
    result = storage.finish("t0", "celery", runtime=0.2, now=2.0, window=1)
    assert result.task is not None and result.task.id == "t1"
    assert storage.in_flight() == 1


def test_submit_enqueues_and_dispatches_in_one_step(storage):
    result = storage.submit(task("t0", "a"), now=1.0, window=1)
    assert result.task is not None and result.task.id == "t0"
    result = storage.submit(task("t1", "a"), now=1.0, window=1)
    assert result.task is None
    assert storage.backlog_size("a") == 1


def test_revoke_withdraws_a_queued_task_but_not_a_leased_one(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    assert storage.revoke("t1", "celery", now=1.0).id == "t1"
    assert storage.revoke("t1", "celery", now=1.0) is None
    assert storage.backlog_size("a") == 2
    storage.dispatch(now=2.0)
    assert storage.revoke("t0", "celery", now=2.0) is None  # leased
    assert ids(storage, 2) == ["t2", None]


def test_revoked_id_may_be_enqueued_again(storage):
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.enqueue(task("t1", "a"), now=0.0)
    storage.revoke("t1", "celery", now=1.0)
    storage.enqueue(task("t1", "a", b"again"), now=1.0)
    assert [t.payload for t in storage.queued("a")] == [b"{}", b"again"]
    assert ids(storage, 3) == ["t0", "t1", None]


def test_revoked_id_reused_under_another_key_is_neither_lost_nor_revived(storage):
    storage.enqueue(task("x", "b"), now=0.0)
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.enqueue(task("t1", "a", b"old"), now=0.0)
    storage.revoke("t1", "celery", now=1.0)
    storage.enqueue(task("t1", "b", b"new"), now=1.0)
    served = [storage.dispatch(now=2.0).task for _ in range(4)]
    assert [(t.id, t.key, t.payload) for t in served if t] == [
        ("x", "b", b"{}"),
        ("t0", "a", b"{}"),
        ("t1", "b", b"new"),
    ]


def test_expire_withdraws_only_tasks_whose_deadline_passed(storage):
    storage.enqueue(task("late", "a", deadline=5.0), now=0.0)
    storage.enqueue(task("edge", "a", deadline=6.0), now=0.0)
    storage.enqueue(task("ok", "b", deadline=100.0), now=0.0)
    assert [t.id for t in storage.expire(now=6.0)] == ["late"]
    assert storage.expire(now=6.0) == []
    assert storage.backlog_size("a") == 1


def test_reused_id_expires_by_its_own_deadline(storage):
    storage.enqueue(task("t1", "a", b"first", deadline=5.0), now=0.0)
    storage.dispatch(now=1.0)
    storage.complete("t1", "celery", now=2.0)
    storage.enqueue(task("t1", "a", b"second", deadline=100.0), now=3.0)
    assert storage.expire(now=6.0) == []
    assert storage.backlog_size("a") == 1


def test_dispatch_hands_back_expired_tasks_first(storage):
    storage.enqueue(task("x", "a", b"px", deadline=2.0), now=0.0)
    storage.enqueue(task("y", "a", deadline=50.0), now=0.0)
    result = storage.dispatch(now=3.0)
    assert [t.id for t in result.expired] == ["x"]
    assert result.expired[0].payload == b"px"
    assert result.task is not None and result.task.id == "y"


def test_dispatch_with_full_window_still_expires(storage):
    storage.enqueue(task("x", "a"), now=0.0)
    storage.enqueue(task("y", "a", deadline=2.0), now=0.0)
    storage.dispatch(now=1.0, window=1)
    result = storage.dispatch(now=3.0, window=1)
    assert result.task is None
    assert [t.id for t in result.expired] == ["y"]


def test_expiry_aware_serves_an_urgent_head_first(expiry_storage):
    expiry_storage.enqueue(task("calm", "a"), now=0.0)
    expiry_storage.enqueue(task("urgent", "b", deadline=10.5), now=0.0)
    assert ids(expiry_storage, 2, now=10.0) == ["urgent", "calm"]


def test_weights_are_kept_and_steer_drr(drr_storage):
    drr_storage.set_weight("a", 3.0, now=0.0)
    assert drr_storage.get_weight("a") == 3.0
    assert drr_storage.get_weight("b") == 1.0
    for i in range(8):
        drr_storage.enqueue(task(f"a{i}", "a", cost=1.0), now=0.0)
        drr_storage.enqueue(task(f"b{i}", "b", cost=1.0), now=0.0)
    served = [t[0] for t in ids(drr_storage, 8)]
    assert served.count("a") == 6 and served.count("b") == 2


def test_set_weights_checks_all_before_applying_any(storage):
    with pytest.raises(InvalidWeight):
        storage.set_weights({"a": 2.0, "b": -1.0}, now=0.0)
    assert storage.get_weight("a") == 1.0
    storage.set_weights({"a": 2.0, "b": 0.5}, now=0.0)
    assert (storage.get_weight("a"), storage.get_weight("b")) == (2.0, 0.5)


def test_monitoring_reports_backlogged_keys_tasks_and_last_use(storage):
    for i, key in enumerate("bab"):
        storage.enqueue(task(f"t{i}", key), now=0.0)
    assert storage.keys() == ["b", "a"]
    assert [t.id for t in storage.queued("b")] == ["t0", "t2"]
    assert [t.id for t in storage.queued("b", limit=1)] == ["t0"]
    assert storage.queued("zzz") == []
    assert (storage.backlog_size("b"), storage.backlog_size("zzz")) == (2, 0)
    storage.dispatch(now=7.25)
    assert storage.last_dispatched() == {"b": 7.25}
    assert storage.keys(domain="other") == []


def test_domains_are_independent(storage):
    storage.enqueue(task("t0", "a", domain="one"), now=0.0)
    storage.enqueue(task("t1", "a", domain="two"), now=0.0)
    assert storage.backlog_size("a") == 2
    assert storage.backlog_size("a", domain="one") == 1
    assert storage.dispatch("two", now=1.0).task.id == "t1"
    assert storage.dispatch("two", now=1.0).task is None
    assert storage.complete("t1", "two", now=2.0).domain == "two"
    assert storage.complete("t0", "two", now=2.0) is None  # ids belong to their domain
    assert storage.purge("one") == 1
    assert storage.backlog_size("a") == 0


def test_purge_drops_queued_and_leased_tasks(storage):
    for i in range(3):
        storage.enqueue(task(f"t{i}", "a"), now=0.0)
    storage.dispatch(now=1.0)
    assert storage.purge() == 3
    assert storage.in_flight() == 0
    assert storage.keys() == []
    assert storage.dispatch(now=2.0).task is None
    storage.enqueue(task("t0", "a"), now=3.0)  # the id is free again
    assert ids(storage, 1) == ["t0"]


@pytest.mark.parametrize(
    "bad",
    [
        task("", "a"),
        task("t9", ""),
        task("t9", "a", cost=-1.0),
        task("t9", "a", deadline=float("nan")),
        task("t9", "a", enqueued_at=float("inf")),
        task("t9", "a", domain=""),
        Task(Job("t9", "a"), "not bytes"),  # type: ignore[arg-type]
        task("t0", "a"),  # duplicate of a queued id
    ],
)
def test_bad_input_raises_and_stores_nothing(storage, bad):
    storage.enqueue(task("t0", "a"), now=0.0)
    before = snapshot(storage)
    with pytest.raises((InvalidJob, TypeError)):
        storage.enqueue(bad, now=1.0)
    with pytest.raises((InvalidJob, TypeError)):
        storage.submit(bad, now=1.0)
    assert snapshot(storage) == before


def test_bad_weight_and_runtime_raise(storage):
    with pytest.raises(InvalidWeight):
        storage.set_weight("a", 0.0)
    with pytest.raises(InvalidJob):
        storage.set_weight("", 1.0)
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.dispatch(now=1.0)
    with pytest.raises(InvalidJob):
        storage.complete("t0", "celery", runtime=-1.0, now=2.0)
    assert storage.in_flight() == 1


def test_duplicate_id_of_a_leased_task_is_refused(storage):
    storage.enqueue(task("t0", "a"), now=0.0)
    storage.dispatch(now=1.0)
    with pytest.raises(InvalidJob):
        storage.enqueue(task("t0", "b"), now=2.0)
    assert storage.keys() == []


@pytest.fixture(params=BACKENDS)
def recording(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage(policy="lru", record_size=1000)
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return RedisStorage(client, prefix=prefix, policy="lru", record_size=1000)


def test_every_way_a_task_leaves_is_recorded_once_with_its_times(recording):
    s = recording
    s.set_weight("a", 2.0, now=0.0)
    s.enqueue(task("ok", "a"), now=1.0)
    s.enqueue(task("boom", "b"), now=1.0)
    s.enqueue(task("late", "c", deadline=2.0), now=1.0)
    s.enqueue(task("gone", "d", cost=4.0), now=1.5)
    assert s.dispatch(now=3.0, lease_timeout=5.0).task.id == "ok"  # "late" expires here
    assert s.dispatch(now=3.0, lease_timeout=5.0).task.id == "boom"
    s.revoke("gone", "celery", now=3.5)
    s.finish("ok", "celery", 0.25, now=4.0, outcome=Outcome("done", 3.5, "w:1"))
    assert s.finish("ok", "celery", 0.25, now=4.5).task is None  # nothing to finish twice
    s.complete("boom", "celery", 0.5, now=4.0, outcome=Outcome("failed", 3.25, "w:2"))
    got = [(r.id, r.outcome, r.dispatched, r.started, r.service, r.finished) for r in s.records()]
    assert got == [
        ("late", "expired", None, None, None, 3.0),
        ("gone", "revoked", None, None, None, 3.5),
        ("ok", "done", 3.0, 3.5, 0.25, 4.0),
        ("boom", "failed", 3.0, 3.25, 0.5, 4.0),
    ]
    by_id = {r.id: r for r in s.records()}
    assert by_id["ok"].weight == 2.0 and by_id["boom"].weight == 1.0
    assert by_id["ok"].worker == "w:1" and by_id["gone"].cost == 4.0
    assert by_id["late"].deadline == 2.0 and by_id["late"].domain == "celery"


def test_a_reclaimed_task_is_recorded_when_it_finally_ends_not_when_it_is_requeued(recording):
    s = recording
    s.enqueue(task("t", "a"), now=0.0)
    s.dispatch(now=1.0, lease_timeout=1.0)
    assert [t.id for t in s.reclaim(now=3.0)] == ["t"]
    s.enqueue(task("u", "b"), now=3.0)
    s.requeue(s.dispatch(now=4.0).task.id, "celery", now=4.0)
    assert s.records() == []
    s.dispatch(now=5.0)  # "t" again, from the head of its key
    s.complete("t", "celery", 1.0, now=6.0)
    (record,) = s.records()
    assert (record.id, record.dispatched, record.outcome) == ("t", 5.0, "done")


def test_records_select_by_arrival_and_by_domain(recording):
    s = recording
    for i, at in enumerate([1.0, 2.0, 3.0]):
        s.enqueue(task(f"t{i}", "a", domain="q1" if i else "q2", enqueued_at=at), now=at)
        s.revoke(f"t{i}", "q1" if i else "q2", now=at)
    assert [r.id for r in s.records(since=2.0)] == ["t1", "t2"]
    assert [r.id for r in s.records(until=2.0)] == ["t0"]
    assert [r.id for r in s.records("q1", since=1.0, until=3.0)] == ["t1"]


def test_the_recording_keeps_about_record_size_outcomes_the_latest_ones(request, redis_prefix):
    size = 5
    for storage in (
        MemoryStorage(record_size=size),
        RedisStorage(
            request.getfixturevalue("redis_client"), prefix=redis_prefix, record_size=size
        ),
    ):
        for i in range(300):
            storage.enqueue(task(f"t{i}", "a"), now=float(i))
            storage.revoke(f"t{i}", "celery", now=float(i))
        kept = [r.id for r in storage.records()]
        assert kept[-size:] == [f"t{i}" for i in range(295, 300)]
        # Redis trims whole stream nodes (MAXLEN ~): never fewer, never many more than asked.
        assert size <= len(kept) <= size + 100


def test_outcomes_are_checked():
    with pytest.raises(ValueError, match="outcome must be one of"):
        Outcome("finished")
    with pytest.raises(ValueError, match="started"):
        Outcome("done", float("nan"))


def test_recording_off_records_nothing(storage):
    storage.enqueue(task("t", "a"), now=0.0)
    storage.revoke("t", "celery", now=0.0)
    assert storage.records() == []
