"""Laws every policy keeps, checked against a plain FIFO-per-key model under random interleavings.

The operation sequences and the laws are `fairsched.testing`'s: the runner keeps the model
beside a `FairQueue` and the laws compare them after every call. Conservation: every enqueued
job is dispatched exactly once per time it was queued, or comes back as expired or revoked;
nothing is invented, nothing lost; an id that is queued is refused and changes nothing, one
that finished is accepted again; the queue's keys, jobs, sizes and length match the model
after every call. FIFO within a key: a dispatched job is always the oldest queued job of its
key (a requeued job counts as the oldest). Work conservation: dispatch returns a job whenever
an unexpired one is queued. Expiry: no job whose deadline has passed is ever dispatched, and
exactly those jobs are handed back as expired.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from fairsched.testing import (
    Op,
    check,
    conservation,
    fifo_within_key,
    no_expired_dispatch,
    run,
    work_conservation,
)
from fairsched.testing.strategies import operations, policy_configs

LAWS = [conservation, fifo_within_key, work_conservation, no_expired_dispatch]


@settings(max_examples=max(settings().max_examples, 200))
@given(config=policy_configs(), ops=operations())
def test_every_policy_conserves_jobs_in_fifo_order_and_expires_exactly_the_due(
    config: dict[str, Any], ops: list[Op]
) -> None:
    check(run(config, ops), LAWS)


def test_a_queued_id_is_refused_and_a_finished_one_accepted_again() -> None:
    ops = [
        Op("enqueue", task="t1", key="a"),
        Op("enqueue", task="t1", key="b"),  # queued: refused
        Op("dispatch"),
        Op("enqueue", task="t1", key="b"),  # running: refused
        Op("complete", runtime=1.0),
        Op("enqueue", task="t1", key="b"),  # finished: accepted
        Op("revoke", task="t1"),
        Op("revoke", task="t1"),  # not queued any more: nothing
    ]
    trace = run("drr", ops)
    check(trace, LAWS)
    assert [step.refused for step in trace.steps if step.op.verb == "enqueue"] == [
        False,
        True,
        True,
        False,
    ]
    revoked = [step.job for step in trace.steps if step.op.verb == "revoke"]
    assert [job.key if job else None for job in revoked] == ["b", None]
