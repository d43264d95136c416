"""Behaviour of the built-in policies, the fair queue and the registry, case by case."""

from __future__ import annotations

import sys
import textwrap

import pytest

from policies import (
    POLICIES,
    DeficitRoundRobin,
    ExpiryAware,
    FairQueue,
    Job,
    PolicyError,
    PureLru,
    UnknownPolicy,
    WeightedLru,
    available,
    from_config,
    option_names,
    parse_spec,
    policy_class,
)


def keys_of(queue: FairQueue, n: int, now: float = 0.0) -> str:
    return "".join(queue.dispatch(now).job.key for _ in range(n))


def fill(queue: FairQueue, spec: dict[str, int], **job) -> None:
    for key, count in spec.items():
        for i in range(count):
            queue.enqueue(Job(f"{key}{i}", key, 0.0, **job), 0.0)


def test_lru_never_served_keys_go_first_in_order_of_first_enqueue():
    queue = FairQueue(PureLru())
    fill(queue, {"b": 2})
    assert keys_of(queue, 1) == "b"
    fill(queue, {"c": 1, "a": 1})
    assert keys_of(queue, 3) == "cab"


def test_weighted_lru_serves_three_to_one():
    queue = FairQueue(WeightedLru(weights={"ui": 3}))
    fill(queue, {"bulk": 40, "ui": 40})
    first = keys_of(queue, 40)
    assert first.count("ui") == 30


def test_weighted_lru_idle_key_earns_no_credit():
    queue = FairQueue(WeightedLru())
    fill(queue, {"a": 30})
    keys_of(queue, 20)  # a alone runs virtual time forward
    fill(queue, {"b": 10})
    # b returns at the current virtual time: it alternates with a, not a burst of 20
    assert keys_of(queue, 6) in ("ababab", "bababa")


def test_weight_change_applies_from_the_next_dispatch():
    queue = FairQueue(WeightedLru())
    fill(queue, {"a": 50, "b": 50})
    assert keys_of(queue, 4) == "abab"
    queue.set_weight("a", 4.0, 0.0)
    assert keys_of(queue, 20).count("a") == 16


def test_drr_weight_change_reschedules_a_backlogged_key():
    queue = FairQueue(DeficitRoundRobin(quantum=1.0))
    fill(queue, {"a": 30, "b": 30}, cost=4.0)
    queue.set_weight("b", 4.0, 0.0)
    assert keys_of(queue, 10).count("b") >= 7


def test_drr_new_key_joins_the_current_round_at_its_end():
    queue = FairQueue(DeficitRoundRobin(quantum=1.0))
    fill(queue, {"a": 5, "b": 5}, cost=1.0)
    assert keys_of(queue, 1) == "a"
    fill(queue, {"c": 5}, cost=1.0)
    assert keys_of(queue, 5) == "bcabc"


def test_drr_requeued_head_is_charged_again_and_order_is_kept():
    queue = FairQueue(DeficitRoundRobin(quantum=2.0))
    fill(queue, {"a": 3, "b": 3}, cost=1.0)
    job = queue.dispatch(0.0).job
    queue.requeue(job, 0.0)
    # a spent one of its two units on the lost run: a0 again, then b's turn, then a1
    assert [queue.dispatch(0.0).job.id for _ in range(3)] == ["a0", "b0", "b1"]


def test_drr_withdrawn_head_reschedules_by_the_new_head_cost():
    queue = FairQueue(DeficitRoundRobin(quantum=1.0))
    queue.enqueue(Job("big", "a", cost=10.0), 0.0)
    queue.enqueue(Job("small", "a", cost=1.0), 0.0)
    fill(queue, {"b": 5}, cost=1.0)
    queue.remove("big", 0.0)
    assert keys_of(queue, 2) == "ab"


def test_expiry_aware_without_deadlines_is_the_inner_policy():
    plain, wrapped = FairQueue(DeficitRoundRobin()), FairQueue(ExpiryAware(DeficitRoundRobin()))
    for queue in (plain, wrapped):
        fill(queue, {"a": 7, "b": 3, "c": 5}, cost=0.7)
    assert keys_of(plain, 15) == keys_of(wrapped, 15)


def test_expiry_aware_serves_urgent_key_first_and_hands_back_expired():
    queue = FairQueue(ExpiryAware(PureLru(), slack=2.0))
    fill(queue, {"bulk": 5})
    queue.enqueue(Job("late", "x", deadline=1.0), 0.0)
    queue.enqueue(Job("soon", "y", deadline=12.0), 0.0)
    pick = queue.dispatch(5.0)
    assert [j.id for j in pick.expired] == ["late"]
    assert pick.job.key == "bulk"  # y is due at 12, outside the slack at 5
    assert queue.dispatch(10.0).job.id == "soon"


def test_expiry_aware_tracks_new_heads_after_dispatch_and_withdrawal():
    queue = FairQueue(ExpiryAware(PureLru(), slack=1.0))
    fill(queue, {"a": 3})
    queue.enqueue(Job("y0", "y"), 0.0)
    queue.enqueue(Job("y1", "y", deadline=3.0), 0.0)
    queue.enqueue(Job("z0", "z", deadline=50.0), 0.0)
    queue.enqueue(Job("z1", "z", deadline=3.5), 0.0)
    queue.remove("z0", 0.0)  # z's head is now due at 3.5
    assert [queue.dispatch(t).job.id for t in (0.0, 0.0, 2.5, 2.5)] == ["a0", "y0", "y1", "z1"]


def test_requeued_job_returns_to_the_head_of_an_empty_key():
    for name in POLICIES:
        queue = FairQueue(from_config(name))
        fill(queue, {"a": 1, "b": 2})
        job = queue.dispatch(0.0).job
        queue.requeue(job, 0.0)
        assert {j.id for j in queue} == {"a0", "b0", "b1"}
        assert queue.jobs("a") == [job]


def test_queue_reading_helpers():
    queue = FairQueue(PureLru())
    fill(queue, {"b": 3, "a": 2})
    queue.remove("b1", 0.0)
    assert queue.keys() == ["b", "a"]
    assert [j.id for j in queue.jobs("b")] == ["b0", "b2"]
    assert [j.id for j in queue.jobs("b", limit=1)] == ["b0"]
    assert queue.size("b") == 2
    assert queue.size("zzz") == 0
    assert len(queue) == 4
    assert [j.id for j in queue] == ["b0", "b2", "a0", "a1"]
    assert queue.remove("nope", 0.0) is None
    queue.dispatch(7.0)
    assert queue.last_used == {"b": 7.0}


def test_withdrawn_jobs_deep_in_a_queue_are_skipped():
    queue = FairQueue(PureLru())
    fill(queue, {"a": 4})
    queue.remove("a1", 0.0)
    queue.remove("a2", 0.0)
    assert [queue.dispatch(0.0).job.id for _ in range(2)] == ["a0", "a3"]
    assert queue.dispatch(0.0).job is None
    assert queue.backlog.withdrawn == set()


def test_dispatch_on_an_empty_queue_returns_nothing():
    for name in POLICIES:
        pick = FairQueue(from_config(name)).dispatch(0.0)
        assert pick.job is None
        assert pick.expired == ()


def test_config_weights_seed_the_queue():
    queue = FairQueue(from_config({"policy": "drr", "weights": {"a": 2}}))
    assert queue.backlog.weight("a") == 2.0
    assert queue.backlog.weight("b") == 1.0
    wrapped = FairQueue(
        from_config(
            {"policy": "expiry_aware", "inner": {"policy": "weighted_lru", "weights": {"a": 5}}}
        )
    )
    assert wrapped.backlog.weight("a") == 5.0


def test_policy_configuration_is_frozen_all_the_way_down():
    policy = from_config({"policy": "drr", "weights": {"a": 2}})
    with pytest.raises(TypeError):
        policy.weights["a"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError):
        policy.quantum = 2  # type: ignore[misc]


def test_from_config_accepts_names_mappings_and_instances():
    assert isinstance(from_config("lru"), PureLru)
    drr = from_config({"policy": "drr", "quantum": 2.5, "alpha": 0.5})
    assert (drr.quantum, drr.alpha) == (2.5, 0.5)
    assert from_config(drr) is drr
    wrapped = from_config({"policy": "expiry_aware", "inner": {"policy": "drr"}, "slack": 4})
    assert isinstance(wrapped.inner, DeficitRoundRobin)
    assert wrapped.slack == 4


def test_parse_spec_reads_the_cli_form():
    assert parse_spec("lru") == {"policy": "lru"}
    assert parse_spec("drr:quantum=2,alpha=0.5") == {"policy": "drr", "quantum": 2, "alpha": 0.5}
    assert parse_spec("expiry_aware:inner=drr,slack=3") == {
        "policy": "expiry_aware",
        "inner": "drr",
        "slack": 3,
    }
    assert isinstance(from_config(parse_spec("expiry_aware:inner=drr")).inner, DeficitRoundRobin)
    with pytest.raises(PolicyError, match="expected k=v"):
        parse_spec("drr:quantum")


def test_option_names_list_the_configurable_fields():
    assert option_names(DeficitRoundRobin) == ["quantum", "alpha", "weights"]
    assert option_names(PureLru) == []

    class Plain:
        def __init__(self, depth: int = 1, *, mode: str = "x") -> None: ...

    assert option_names(Plain) == ["depth", "mode"]


THIRD_PARTY = """
from typing import ClassVar
from policies import PureLru

class Reversed:
    name: ClassVar[str] = "reversed"

    def __init__(self, depth: int = 1) -> None:
        self.depth = depth
        self._lru = PureLru()

    def __getattr__(self, hook):
        return getattr(self._lru, hook)

    def new_state(self, backlog):
        return self._lru.new_state(backlog)

    def pick(self, state, now):
        return self._lru.pick(state, now)
"""


def test_third_party_policy_registers_through_the_entry_point_group(tmp_path, monkeypatch):
    (tmp_path / "thirdparty_policy.py").write_text(textwrap.dedent(THIRD_PARTY))
    dist = tmp_path / "thirdparty_policy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-policy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[fairsched.policies]\nreversed = thirdparty_policy:Reversed\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "reversed" in available()
        policy = from_config({"policy": "reversed", "depth": 3})
        assert policy.depth == 3
        assert policy_class("reversed").__name__ == "Reversed"
        queue = FairQueue(policy)
        fill(queue, {"a": 2, "b": 1})
        assert keys_of(queue, 3) == "aba"
        with pytest.raises(UnknownPolicy, match="reversed"):
            from_config("missing")
    finally:
        sys.modules.pop("thirdparty_policy", None)


def test_an_id_withdrawn_deep_in_a_queue_can_be_queued_again_under_any_key():
    queue = FairQueue(PureLru())
    fill(queue, {"a": 3})
    queue.remove("a1", 0.0)  # stays in a's deque, marked
    queue.enqueue(Job("a1", "a", 1.0), 1.0)
    queue.enqueue(Job("a2x", "b", 1.0), 1.0)
    queue.remove("a2x", 1.0)
    queue.enqueue(Job("a2x", "b", 2.0), 2.0)
    assert [j.id for j in queue.jobs("a")] == ["a0", "a2", "a1"]
    assert [queue.dispatch(3.0).job.id for _ in range(4)] == ["a0", "a2x", "a2", "a1"]
    assert len(queue) == 0


def test_a_reused_id_expires_by_its_own_deadline():
    queue = FairQueue(PureLru())
    queue.enqueue(Job("t", "a", deadline=5.0), 0.0)
    queue.dispatch(1.0)
    queue.enqueue(Job("t", "a", deadline=100.0), 2.0)
    assert queue.expire(6.0) == []
    assert queue.dispatch(7.0).job.deadline == 100.0


def test_a_reused_id_keeps_deadline_order_and_is_not_urgent_by_its_old_deadline():
    queue = FairQueue(PureLru())
    queue.enqueue(Job("t1", "a", deadline=5.0), 0.0)
    queue.dispatch(1.0)
    queue.enqueue(Job("t1", "a", deadline=7.0), 2.0)
    queue.enqueue(Job("u", "b", deadline=6.0), 2.0)
    assert [j.id for j in queue.expire(8.0)] == ["u", "t1"]

    queue = FairQueue(ExpiryAware(PureLru(), slack=1.0))
    queue.enqueue(Job("t1", "a", deadline=5.0), 0.0)
    queue.dispatch(0.0)
    queue.enqueue(Job("x", "b"), 0.0)
    queue.enqueue(Job("t1", "a", deadline=50.0), 0.0)
    assert [queue.dispatch(4.5).job.id for _ in range(2)] == ["x", "t1"]
