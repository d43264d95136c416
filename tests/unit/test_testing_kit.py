"""fairsched.testing: each law catches what it states, keeps quiet otherwise, and says where.

The broken policy of docs/testing.md is here, with the laws it breaks and those it keeps; each
universal law is shown a queue or policy broken in just its own way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any, ClassVar

import pytest
from attrs import frozen
from hypothesis import Phase, given, settings

from fairsched import MemoryStorage, UnknownPolicy
from fairsched.testing import (
    UNIVERSAL_LAWS,
    Law,
    Op,
    Trace,
    bounded_wait,
    check,
    check_policy,
    conservation,
    cost_fairness,
    determinism,
    fifo_within_key,
    max_dispatches_between_services,
    no_expired_dispatch,
    run,
    weighted_share,
    work_conservation,
)
from fairsched.testing.strategies import (
    arrivals,
    floods,
    operations,
    operations_for,
    policy_configs,
    sybils,
)
from policies import Backlog, DefaultHooks, FairQueue, Job, PureLru, from_config
from policies._lru import LruState


@frozen
class LargestBacklog(DefaultHooks):
    """Serve the key with the most jobs queued (ties: the key seen first). Starves light keys."""

    name: ClassVar[str] = "largest_backlog"

    def new_state(self, backlog: Backlog) -> Backlog:
        return backlog

    def on_activate(self, state: Backlog, key: str, now: float) -> None:
        pass

    def pick(self, state: Backlog, now: float) -> str | None:
        if not state.queues:
            return None
        return max(state.queues, key=lambda k: (state.sizes[k], -state.first_seen[k]))

    def on_dispatch(self, state: Backlog, key: str, job: Job, now: float) -> None:
        pass


# -- the worked example of docs/testing.md -------------------------------------------------------


def test_largest_backlog_first_is_caught_starving_a_light_key() -> None:
    with pytest.raises(AssertionError) as caught:
        check_policy(LargestBacklog(), laws=[fifo_within_key, bounded_wait(4)])
    message = str(caught.value)
    assert message.startswith("policy LargestBacklog() breaks bounded_wait(4): key ")
    assert "without being served" in message
    assert "fifo_within_key" not in message
    assert "ops = [" in message and "drain" in message  # the steps, and the ops as code


#: Search without shrinking, where only the law named matters (shrinking takes most of the time).
UNSHRUNK = settings(phases=[Phase.generate])


def test_largest_backlog_first_breaks_weighted_share_and_cost_fairness() -> None:
    for law in (weighted_share(2), cost_fairness(2.0)):
        with pytest.raises(AssertionError, match=f"breaks {re.escape(law.name)}"):
            check_policy(LargestBacklog(), laws=[law], hypothesis_settings=UNSHRUNK)


def test_largest_backlog_first_keeps_the_universal_laws() -> None:
    check_policy(LargestBacklog(), UNIVERSAL_LAWS, max_examples=50)


def test_largest_backlog_first_is_caught_on_a_flood_workload_too() -> None:
    with pytest.raises(AssertionError, match=r"bounded_wait\(8\)"):
        check_policy(
            LargestBacklog(),
            [bounded_wait(8)],
            ops=operations_for(floods()),
            hypothesis_settings=UNSHRUNK,
        )


# -- each universal law catches its own kind of bug ----------------------------------------------


class LifoQueue(FairQueue):
    """Puts every new job at the head of its key: last in, first out."""

    def enqueue(self, job: Job, now: float) -> None:
        self.requeue(job, now)


class ForgetfulQueue(FairQueue):
    """Drops a requeued job instead of putting it back."""

    def requeue(self, job: Job, now: float) -> None:
        pass


class DeadlineBlindQueue(FairQueue):
    """Never withdraws an expired job, so it may be dispatched late."""

    def expire(self, now: float) -> list[Job]:
        return []


class SkipsB(PureLru):
    """Leaves key b waiting when LRU would serve it."""

    def pick(self, state: LruState, now: float) -> str | None:
        key = super().pick(state, now)
        return None if key == "b" else key


class Flip:
    """Which way `Flippant` breaks ties; flipped by every new state (a leak across runs)."""

    first = True


class Flippant(PureLru):
    """LRU order, or its reverse, alternating from one fresh state to the next."""

    def new_state(self, backlog: Backlog) -> LruState:
        Flip.first = not Flip.first
        return super().new_state(backlog)

    def pick(self, state: LruState, now: float) -> str | None:
        keys = sorted(state.backlog.queues)
        return (keys[0] if Flip.first else keys[-1]) if keys else None


def lru_in(queue_class: type[FairQueue]) -> Any:
    return lambda: queue_class(from_config("lru"))


@pytest.mark.parametrize(
    ("target", "law"),
    [
        (lru_in(LifoQueue), fifo_within_key),
        (lru_in(LifoQueue), conservation),
        (lru_in(ForgetfulQueue), conservation),
        (lru_in(DeadlineBlindQueue), no_expired_dispatch),
        (SkipsB, work_conservation),
        (Flippant, determinism),
    ],
    ids=["lifo-fifo", "lifo-conservation", "forgetful", "deadline-blind", "idle", "flippant"],
)
def test_each_universal_law_catches_its_bug(target: Any, law: Law) -> None:
    with pytest.raises(AssertionError, match=rf"breaks {law.name}: step \d+"):
        check_policy(target, [law], max_examples=300, hypothesis_settings=UNSHRUNK)


@pytest.mark.parametrize(
    "target",
    [lru_in(LifoQueue), lru_in(ForgetfulQueue), lru_in(DeadlineBlindQueue), SkipsB, Flippant],
    ids=["lifo", "forgetful", "deadline-blind", "idle", "flippant"],
)
def test_a_law_stays_quiet_about_bugs_it_does_not_state(target: Any) -> None:
    """Each broken target keeps the laws its bug does not touch."""
    kept = {
        "LifoQueue": [work_conservation, no_expired_dispatch, determinism],
        "ForgetfulQueue": [determinism],
        "DeadlineBlindQueue": [fifo_within_key, conservation, work_conservation, determinism],
        "SkipsB": [fifo_within_key, conservation, no_expired_dispatch, determinism],
        "Flippant": [fifo_within_key, conservation, work_conservation, no_expired_dispatch],
    }
    built = target()
    name = type(built).__name__ if isinstance(built, FairQueue) else target.__name__
    check_policy(target, kept[name], max_examples=50)


# -- laws on hand-written traces ----------------------------------------------------------------


def enqueue(task: str, key: str, at: float = 0.0, **fields: Any) -> Op:
    return Op("enqueue", at=at, task=task, key=key, **fields)


def test_bounded_wait_counts_the_dispatches_a_backlogged_key_sits_through() -> None:
    ops = [*(enqueue(f"a{i}", "a") for i in range(3)), enqueue("b1", "b"), Op("drain")]
    trace = run(LargestBacklog(), ops)
    assert [job.id for job in trace.dispatched()] == ["a0", "a1", "a2", "b1"]
    assert bounded_wait(4)(trace) is None
    assert bounded_wait(3)(trace) == (
        "key b stayed backlogged through 3 dispatches without being served (steps 4, 5, 6)"
    )
    assert max_dispatches_between_services(3).name == "bounded_wait(3)"
    with pytest.raises(ValueError, match="n >= 1"):
        bounded_wait(0)


def test_weighted_share_bound_takes_the_weights() -> None:
    ops = [
        Op("set_weight", key="a", weight=2.0),
        *(enqueue(f"{k}{i}", k) for i in range(4) for k in "ab"),
        Op("drain"),
    ]
    trace = run("weighted_lru", ops)  # a a b a a b ...: a is two dispatches ahead at most
    assert weighted_share(lambda wi, wj: 1 / wi + 1 / wj)(trace) is None
    assert "spread of" in (weighted_share(0.4)(trace) or "")


def test_cost_fairness_counts_cost_not_dispatches() -> None:
    ops = [
        *(enqueue(f"big{i}", "big", cost=4.0) for i in range(3)),
        *(enqueue(f"small{i}", "small", cost=1.0) for i in range(12)),
        Op("drain"),
    ]
    trace = run({"policy": "drr", "quantum": 1.0}, ops)
    assert cost_fairness(2 * 1.0 + 4.0 / 1 + 4.0 / 1)(trace) is None
    assert weighted_share(2)(trace) is not None  # by count, small is far ahead


def test_no_expired_dispatch_names_the_late_job() -> None:
    ops = [enqueue("t1", "a", deadline=1.0), Op("dispatch", at=2.0)]
    trace = run(lru_in(DeadlineBlindQueue), ops)
    assert no_expired_dispatch(trace) == "step 1: dispatched t1 at 2, after its deadline"
    assert no_expired_dispatch(run("lru", ops)) is None


def test_a_run_that_raises_is_reported_with_its_steps() -> None:
    class Wrong(PureLru):
        def pick(self, state: LruState, now: float) -> str | None:
            return "nobody"

    trace = run(Wrong(), [enqueue("t1", "a"), Op("dispatch")])
    assert trace.error == "step 1 (dispatch): KeyError: 'nobody'"
    with pytest.raises(AssertionError, match=r"raised at step 1 \(dispatch\): KeyError"):
        check(trace)


def test_a_law_of_your_own() -> None:
    def never_b(trace: Trace) -> str | None:
        served = [job.id for job in trace.dispatched() if job.key == "b"]
        return f"served b: {served}" if served else None

    law = Law("never_b", never_b, "Key b is never served.")
    assert repr(law) == "never_b"
    with pytest.raises(AssertionError, match=r"breaks never_b: served b: \['t"):
        check_policy("lru", [law], max_examples=50, hypothesis_settings=UNSHRUNK)


def test_determinism_needs_a_target_it_can_rebuild() -> None:
    trace = run(FairQueue(from_config("lru")), [enqueue("t1", "a")])
    assert trace.replay is None
    assert "cannot replay" in (determinism(trace) or "")


# -- the runner --------------------------------------------------------------------------------


def test_ops_mean_the_same_on_a_fair_queue_and_on_a_storage() -> None:
    ops = [
        enqueue("t1", "a", cost=2.0),
        enqueue("t2", "a", deadline=0.5),
        enqueue("t3", "b"),
        Op("dispatch", at=1.0),
        Op("requeue", at=1.0),
        Op("revoke", at=1.0, task="t3"),
        Op("set_weight", at=1.0, key="a", weight=2.0),
        Op("drain", at=2.0),
        Op("complete", at=3.0, runtime=0.5),
    ]
    in_queue = run("drr", ops)
    in_storage = run(lambda: MemoryStorage("drr"), ops)
    check(in_queue)
    check(in_storage)
    decisions = [(s.op, s.job, s.expired, s.refused) for s in in_queue.steps]
    assert decisions == [(s.op, s.job, s.expired, s.refused) for s in in_storage.steps]
    assert [s.in_flight for s in in_storage.steps][-2:] == [1, 0]  # t1 ran, then completed


def test_the_trace_reads_step_by_step() -> None:
    trace = run("lru", [enqueue("t1", "a", cost=2.0), enqueue("t2", "a"), Op("drain")])
    assert str(trace).splitlines() == [
        " step      at  call                               result",
        "    0       0  enqueue t1 key=a cost=2",
        "    1       0  enqueue t2 key=a",
        "    2       0  drain: dispatch                    -> t1 (key a)",
        "    3       0  drain: dispatch                    -> t2 (key a)",
        "    4       0  drain: dispatch                    -> nothing",
    ]


def test_an_op_names_what_its_verb_needs() -> None:
    with pytest.raises(ValueError, match="needs task, key"):
        Op("enqueue")
    with pytest.raises(ValueError, match="verb"):
        Op("shuffle")
    op = Op("complete", at=1.0, runtime=0.5)
    assert repr(op) == "Op('complete', at=1.0, runtime=0.5)"
    assert eval(repr(op)) == op


def test_check_policy_takes_names_mappings_factories_and_strategies() -> None:
    check_policy("weighted_lru", max_examples=10)
    check_policy({"policy": "drr", "quantum": 2.0}, max_examples=10)
    check_policy(PureLru, max_examples=10)
    check_policy(policy_configs(), max_examples=10)
    check_policy(lambda: MemoryStorage("lru"), max_examples=10)
    with pytest.raises(UnknownPolicy):
        check_policy("no_such_policy")
    with pytest.raises(TypeError, match="fresh target"):
        check_policy(MemoryStorage("lru"))


@given(jobs=arrivals())
def test_arrivals_arrive_in_order_with_fresh_ids(jobs: list[Job]) -> None:
    times = [job.enqueued_at for job in jobs]
    assert times == sorted(times)
    assert len({job.id for job in jobs}) == len(jobs)


@given(jobs=sybils())
def test_sybils_spread_one_tenant_over_many_keys(jobs: list[Job]) -> None:
    fake = {job.key for job in jobs if job.key.startswith("sybil")}
    assert len(fake) >= 2 and any(job.key.startswith("honest") for job in jobs)


@given(ops=operations(withdrawals=False, weights=None, drain=False))
def test_operations_without_withdrawals_only_enqueue_dispatch_complete_expire(
    ops: list[Op],
) -> None:
    assert {op.verb for op in ops} <= {"enqueue", "dispatch", "complete", "expire"}
    assert len({op.task for op in ops if op.verb == "enqueue"}) == sum(
        op.verb == "enqueue" for op in ops
    )


# -- installation -----------------------------------------------------------------------------


def test_without_hypothesis_the_kit_says_how_to_install_it_and_the_plugin_still_loads() -> None:
    script = """
import sys
sys.modules["hypothesis"] = None  # as if it were not installed
import fairsched.testing.plugin  # the pytest plugin loads in every pytest run: it must work
for name in ("from fairsched.testing import check_policy", "import fairsched.testing.laws"):
    try:
        exec(name)
    except ImportError as exc:
        print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "pip install 'fairsched[testing]'" in line
