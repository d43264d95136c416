"""Bad input raises a typed error naming what was wrong, and changes nothing."""

from __future__ import annotations

import math

import pytest

from fairsched import (
    FairschedError,
    InvalidJob,
    InvalidWeight,
    Job,
    MemoryStorage,
    PolicyError,
    Task,
    UnknownOption,
    UnknownPolicy,
)
from policies import MAX_KEY_BYTES, FairQueue, from_config
from tests.property.strategies import BUILT_IN

# 5e-324 and 1e300 are finite and > 0 but outside [MIN_WEIGHT, MAX_WEIGHT]: 1/w overflows.
BAD_WEIGHTS = [0, -1, -0.5, math.nan, math.inf, -math.inf, "2", None, True, 5e-324, 9e-7, 1e300]
BAD_KEYS = ["", 7, None, b"bytes", "k" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1)]


def snapshot(queue: FairQueue) -> tuple:
    backlog = queue.backlog
    return (
        {k: list(v) for k, v in backlog.queues.items()},
        dict(backlog.weights),
        dict(backlog.first_seen),
        len(queue),
    )


@pytest.fixture(params=sorted(BUILT_IN))
def queue(request) -> FairQueue:
    q = FairQueue(from_config(BUILT_IN[request.param]))
    q.enqueue(Job("ok", "a", 0.0), 0.0)
    return q


@pytest.mark.parametrize("weight", BAD_WEIGHTS, ids=repr)
def test_bad_weight_is_refused_and_nothing_changes(queue, weight):
    before = snapshot(queue)
    with pytest.raises(InvalidWeight, match="weight for key 'a'"):
        queue.set_weight("a", weight, 0.0)
    assert snapshot(queue) == before


def test_set_weights_checks_all_before_applying_any(queue):
    before = snapshot(queue)
    with pytest.raises(InvalidWeight, match="'b'"):
        queue.set_weights({"a": 2.0, "b": -1.0}, 0.0)
    assert snapshot(queue) == before


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:20])
def test_bad_key_is_refused_and_nothing_is_stored(queue, key):
    before = snapshot(queue)
    with pytest.raises(InvalidJob, match="key"):
        queue.enqueue(Job("new", key, 0.0), 0.0)
    with pytest.raises(InvalidJob, match="key"):
        queue.set_weight(key, 1.0, 0.0)
    assert snapshot(queue) == before


def test_key_of_exactly_the_limit_is_accepted():
    queue = FairQueue(from_config("lru"))
    queue.enqueue(Job("j", "k" * MAX_KEY_BYTES, 0.0), 0.0)
    assert queue.size("k" * MAX_KEY_BYTES) == 1


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("cost", -0.1, "cost must be finite and >= 0"),
        ("cost", math.nan, "cost must be finite"),
        ("cost", "1", "cost must be a number"),
        ("deadline", math.inf, "deadline must be finite"),
        ("enqueued_at", None, "enqueued_at must be a number"),
        ("id", "", "job id"),
        ("id", 3, "job id"),
    ],
)
def test_bad_job_field_is_refused_naming_the_field(queue, field, value, match):
    fields = {"id": "new", "key": "b", "enqueued_at": 0.0, field: value}
    before = snapshot(queue)
    with pytest.raises(InvalidJob, match=match):
        queue.enqueue(Job(**fields), 0.0)
    assert snapshot(queue) == before


def test_bad_runtime_is_refused(queue):
    job = queue.dispatch(0.0).job
    for runtime in (-1.0, math.nan, math.inf, "1"):
        with pytest.raises(InvalidJob, match="runtime"):
            queue.complete(job, runtime)


def test_duplicate_id_is_refused_by_requeue_too(queue):
    with pytest.raises(InvalidJob, match="already queued"):
        queue.requeue(Job("ok", "a", 0.0), 0.0)


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ({"policy": "fifo"}, UnknownPolicy, "valid policies: drr, expiry_aware, lru"),
        ("nope", UnknownPolicy, "unknown policy 'nope'"),
        ({"policy": "drr", "quantm": 1}, UnknownOption, "valid options: quantum, alpha, weights"),
        ({"policy": "lru", "weights": {}}, UnknownOption, r"valid options: \(none\)"),
        ({"policy": "drr", "quantum": 0}, PolicyError, "quantum must be finite and > 0"),
        ({"policy": "drr", "quantum": math.nan}, PolicyError, "quantum"),
        ({"policy": "drr", "alpha": 1.5}, PolicyError, r"alpha must be in \(0, 1\]"),
        ({"policy": "drr", "weights": {"a": 0}}, InvalidWeight, "weight for key 'a'"),
        ({"policy": "drr", "weights": [("a", 1)]}, PolicyError, "weights must be a mapping"),
        ({"policy": "weighted_lru", "weights": {"": 1}}, InvalidJob, "key must not be empty"),
        ({"policy": "expiry_aware", "slack": -1}, PolicyError, "slack must be finite and >= 0"),
        ({"policy": "expiry_aware", "inner": "nope"}, UnknownPolicy, "nope"),
        ({"quantum": 1}, PolicyError, "needs a 'policy' name"),
        ({"policy": 3}, PolicyError, "policy name must be a str"),
        (3.5, PolicyError, "policy must be a name or a mapping"),
    ],
)
def test_bad_policy_configuration_is_a_typed_error_listing_what_is_valid(config, error, match):
    with pytest.raises(error, match=match):
        from_config(config)


def test_every_error_shares_one_root():
    for error in (InvalidJob, InvalidWeight, UnknownPolicy, UnknownOption, PolicyError):
        assert issubclass(error, FairschedError)
        assert issubclass(error, ValueError)
    assert issubclass(UnknownPolicy, LookupError)


def test_memory_storage_refuses_bad_input_and_stores_nothing():
    storage = MemoryStorage("lru")
    storage.enqueue(Task(Job("t1", "a"), b"x"), now=0.0)
    with pytest.raises(InvalidJob, match="already queued"):
        storage.enqueue(Task(Job("t1", "b"), b"y"), now=0.0)
    with pytest.raises(InvalidJob, match="key must not be empty"):
        storage.enqueue(Task(Job("t2", ""), b"y"), now=0.0)
    with pytest.raises(InvalidJob, match="cost must be finite and >= 0"):
        storage.submit(Task(Job("t3", "b", cost=-1.0), b"y"), now=0.0)
    with pytest.raises(InvalidJob, match="key"):
        storage.enqueue(Task(Job("t4", "b"), b"y", domain=""), now=0.0)
    with pytest.raises(TypeError, match="payload must be bytes"):
        storage.enqueue(Task(Job("t5", "b"), "text"), now=0.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidWeight):
        storage.set_weight("a", 0)
    with pytest.raises(InvalidWeight):
        storage.set_weights({"a": 2, "b": math.nan})
    assert storage.keys() == ["a"]
    assert [t.id for t in storage.queued("a")] == ["t1"]
    assert storage.get_weight("a") == 1.0
    assert storage.backlog_size("b") == 0
