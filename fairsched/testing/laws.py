"""Fairness laws a policy's traces must obey, and `check_policy`, which searches for a break.

A `Law` reads a `Trace` (see `run`) and says what broke, or None. `check_policy` runs a policy
through operation sequences Hypothesis generates (`strategies.operations()` unless given) in a
fresh `policies.FairQueue` per example, checks every law on each, and on a break raises an
`AssertionError` naming the laws the shrunk counterexample breaks, with its steps.

>>> from policies import PureLru
>>> check_policy(PureLru(), [fifo_within_key, bounded_wait(6)], max_examples=20)
"""

from __future__ import annotations

from . import _requires  # noqa: F401  (first: a missing Hypothesis says how to install it)

# isort: split

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from attrs import field, frozen
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from policies import Job

from ._ops import Op, Step, Trace, _ids, _num, builder, is_factory, run
from .strategies import operations

__all__ = [
    "UNIVERSAL_LAWS",
    "Law",
    "bounded_wait",
    "check",
    "check_policy",
    "conservation",
    "cost_fairness",
    "determinism",
    "fifo_within_key",
    "max_dispatches_between_services",
    "no_expired_dispatch",
    "weighted_share",
    "work_conservation",
]

#: Slack for float sums in the share laws.
_EPS = 1e-9

#: Settings of a search unless the caller gives a base: no database (every search runs the
#: same function, so one policy's failures would be replayed against the next) and no
#: "explain" phase (it takes most of the time of a failing search and adds nothing to the
#: step-by-step counterexample).
_OWN_DEFAULTS: dict[str, Any] = {
    "database": None,
    "phases": [phase for phase in Phase if phase is not Phase.explain],
}


@frozen(repr=False)
class Law:
    """A property every trace must have: `verdict(trace)` is None if it holds, else what broke
    (naming the step, as numbered in `str(trace)`).

    >>> never_idle = Law("never_idle", lambda t: None, "The queue is never idle.")
    >>> never_idle
    never_idle
    """

    name: str
    verdict: Callable[[Trace], str | None]
    statement: str = field(default="")

    def __call__(self, trace: Trace) -> str | None:
        return self.verdict(trace)

    def __repr__(self) -> str:
        return self.name


def _jobs_text(backlogs: Mapping[str, Sequence[Job]]) -> str:
    return "{" + ", ".join(f"{k}: [{_ids(v)}]" for k, v in backlogs.items()) + "}"


# -- the laws every policy keeps ---------------------------------------------------------------


def _fifo(trace: Trace) -> str | None:
    for number, step in enumerate(trace.steps):
        job = step.job
        if step.op.verb != "dispatch" or job is None:
            continue
        queued = step.pending().get(job.key, ())
        if not queued or queued[0] != job:
            head = queued[0].id if queued else "nothing"
            return f"step {number}: dispatched {job.id} while the head of key {job.key} was {head}"
    return None


fifo_within_key = Law(
    "fifo_within_key",
    _fifo,
    "Within a key, jobs are dispatched in the order they were queued: a dispatched job is "
    "the oldest job of its key still queued (a requeued job is put back as the oldest).",
)


def _conservation(trace: Trace) -> str | None:
    for number, step in enumerate(trace.steps):
        broken = _conserved(step)
        if broken is not None:
            return f"step {number}: {broken}"
    return None


def _conserved(step: Step) -> str | None:
    op, job = step.op, step.job
    queued = [j for jobs in step.before.values() for j in jobs]
    if op.verb == "enqueue":
        live = any(j.id == op.task for j in queued)
        if live and not step.refused:
            return f"accepted {op.task} while a job with that id was queued"
        if not live and not any(j.id == op.task for j in step.running) and step.refused:
            return f"refused {op.task}, an id neither queued nor running"
    elif op.verb in ("dispatch", "expire"):
        pool = Counter(queued)
        for gone in (*step.expired, *(() if job is None else (job,))):
            if pool[gone] == 0:
                what = "dispatched" if gone is job else "handed back as expired"
                return f"{what} {gone.id}, which was not queued (invented, or handed out twice)"
            pool[gone] -= 1
    elif op.verb == "revoke":
        expected = next((j for j in queued if j.id == op.task), None)
        if job != expected:
            return f"revoke {op.task} returned {job!r}; the queued job was {expected!r}"
    elif op.verb in ("complete", "requeue"):
        named = step.named()
        if named is not None and job != named:
            return f"{op.verb} of running {named.id} returned {job!r}"
    if dict(step.held) != dict(step.after) or list(step.held) != list(step.after):
        return f"holds {_jobs_text(step.held)}; should hold {_jobs_text(step.after)}"
    for key, size in step.sizes.items():
        if size != len(step.after.get(key, ())):
            return f"reports {size} jobs for key {key}; {len(step.after.get(key, ()))} are queued"
    if step.total != sum(map(len, step.after.values())):
        return f"reports {step.total} jobs queued; {sum(map(len, step.after.values()))} are"
    if step.in_flight is not None and step.in_flight != len(step.running_after):
        return f"reports {step.in_flight} running; {len(step.running_after)} are"
    return None


conservation = Law(
    "conservation",
    _conservation,
    "Every enqueued job is, at every step, in exactly one place: queued, running (dispatched, "
    "not yet completed or requeued) or gone (completed, expired, revoked). Dispatch, expiry "
    "and revoke return only queued jobs, each once; an id that is queued is refused; and the "
    "target holds exactly the queued jobs, in order, with matching sizes and counts.",
)


def _work_conservation(trace: Trace) -> str | None:
    for number, step in enumerate(trace.steps):
        if step.op.verb == "dispatch" and step.job is None:
            waiting = [key for key, jobs in step.pending().items() if jobs]
            if waiting:
                return f"step {number}: dispatched nothing while keys {waiting} had jobs queued"
    return None


work_conservation = Law(
    "work_conservation",
    _work_conservation,
    "A dispatch returns a job whenever a job is queued that has not expired. (Leave it out "
    "for a policy that holds work back on purpose, such as a rate limit.)",
)


def _no_expired_dispatch(trace: Trace) -> str | None:
    for number, step in enumerate(trace.steps):
        if step.op.verb not in ("dispatch", "expire"):
            continue
        at, job = step.op.at, step.job
        if job is not None and job.deadline is not None and job.deadline < at:
            return f"step {number}: dispatched {job.id} at {_num(at)}, after its deadline"
        due = Counter(
            j
            for jobs in step.before.values()
            for j in jobs
            if j.deadline is not None and j.deadline < at
        )
        if Counter(step.expired) != due:
            return (
                f"step {number}: handed back as expired [{_ids(step.expired)}]; the jobs past "
                f"their deadline at {_num(at)} were [{_ids(due)}]"
            )
    return None


no_expired_dispatch = Law(
    "no_expired_dispatch",
    _no_expired_dispatch,
    "No job is dispatched after its deadline (deadline < now); a dispatch or expire at `now` "
    "hands back as expired exactly the queued jobs whose deadline is before `now`, each once.",
)


def _determinism(trace: Trace) -> str | None:
    if trace.replay is None:
        return "cannot replay: the target was one object; pass a policy or a factory"
    again = trace.replay()

    def decisions(t: Trace) -> list[tuple[Op, Job | None, tuple[Job, ...], bool]]:
        return [(s.op, s.job, s.expired, s.refused) for s in t.steps]

    first, second = decisions(trace), decisions(again)
    for number, (one, two) in enumerate(zip(first, second, strict=False)):
        if one != two:
            return (
                f"step {number}: the first run gave {_result_text(one)}, the second "
                f"{_result_text(two)}"
            )
    if len(first) != len(second) or trace.error != again.error:
        return f"the runs differ in length or error: {trace.error!r} vs {again.error!r}"
    return None


def _result_text(decision: tuple[Op, Job | None, tuple[Job, ...], bool]) -> str:
    _, job, expired, refused = decision
    text = "nothing" if job is None else job.id
    if expired:
        text += f" (expired {_ids(expired)})"
    return text + (" (refused)" if refused else "")


determinism = Law(
    "determinism",
    _determinism,
    "The same operations give the same decisions: a second run on a fresh target dispatches, "
    "expires, refuses and returns the same jobs at every step (no dict order, no chance, no "
    "state kept outside the policy's state object).",
)

#: The laws every policy keeps whatever its idea of fairness: `check_policy`'s default.
UNIVERSAL_LAWS: tuple[Law, ...] = (
    fifo_within_key,
    conservation,
    work_conservation,
    no_expired_dispatch,
    determinism,
)


# -- bounds --------------------------------------------------------------------------------------


def bounded_wait(n: int) -> Law:
    """A backlogged key is served within `n` dispatches: from the moment it has a job queued,
    or was last served, at most `n - 1` dispatches serve other keys (or nothing) before it.

    >>> bounded_wait(4)
    bounded_wait(4)
    """
    if n < 1:
        raise ValueError(f"bounded_wait needs n >= 1, got {n}")

    def verdict(trace: Trace) -> str | None:
        waited: dict[str, list[int]] = {}  # key -> numbers of the dispatches it sat through
        for number, step in enumerate(trace.steps):
            if step.op.verb == "dispatch":
                served = None if step.job is None else step.job.key
                for key, jobs in step.pending().items():
                    if not jobs:
                        continue
                    if key == served:
                        waited[key] = []
                        continue
                    seen = waited.setdefault(key, [])
                    seen.append(number)
                    if len(seen) >= n:
                        return (
                            f"key {key} stayed backlogged through {n} dispatches without "
                            f"being served (steps {', '.join(map(str, seen))})"
                        )
            for key in list(waited):
                if key not in step.after:
                    del waited[key]
        return None

    return Law(f"bounded_wait({n})", verdict, f"A backlogged key is served within {n} dispatches.")


#: Another name for `bounded_wait`.
max_dispatches_between_services = bounded_wait

Bound = float | Callable[[float, float], float]


def weighted_share(bound: Bound) -> Law:
    """Weighted service, counted in dispatches, stays in step: over any stretch of dispatches
    during which keys i and j both stay backlogged and keep their weights, the dispatches s_i
    and s_j they got satisfy |s_i / w_i - s_j / w_j| <= `bound`.

    `bound` is a number, or a function of (w_i, w_j): `lambda wi, wj: 1 / wi + 1 / wj` is the
    bound of start-time fair queuing (`weighted_lru`).
    """
    return _share_law(
        f"weighted_share({_bound_text(bound)})",
        bound,
        lambda job: 1.0,
        "Over any stretch of dispatches during which two keys stay backlogged and keep their "
        "weights, their dispatch counts divided by their weights differ by at most the bound.",
    )


def cost_fairness(bound: Bound, *, default_cost: float = 1.0) -> Law:
    """Weighted service, counted in cost, stays in step: as `weighted_share`, with s_i the sum
    of the costs of the jobs dispatched for key i (`default_cost` for a job that declares
    none). For policies that are fair in service time rather than task count, such as `drr`.
    """
    return _share_law(
        f"cost_fairness({_bound_text(bound)})",
        bound,
        lambda job: default_cost if job.cost is None else job.cost,
        "Over any stretch of dispatches during which two keys stay backlogged and keep their "
        "weights, the costs dispatched for each, divided by its weight, differ by at most "
        "the bound.",
    )


def _bound_text(bound: Bound) -> str:
    if callable(bound):
        return getattr(bound, "__name__", "bound").replace("<lambda>", "f(wi, wj)")
    return _num(bound)


def _share_law(name: str, bound: Bound, service: Callable[[Job], float], statement: str) -> Law:
    def limit(wi: float, wj: float) -> float:
        return bound(wi, wj) if callable(bound) else float(bound)

    def verdict(trace: Trace) -> str | None:
        # Per pair of keys backlogged together: [first step, D, min D, max D], D being
        # s_i/w_i - s_j/w_j since the first step; any sub-stretch differs by max D - min D.
        spans: dict[tuple[str, str], list[float]] = {}
        for number, step in enumerate(trace.steps):
            if step.op.verb == "dispatch":
                live = [key for key, jobs in step.pending().items() if jobs]
                job = step.job
                for pair in combinations(live, 2):
                    span = spans.setdefault(pair, [number, 0.0, 0.0, 0.0])
                    i, j = pair
                    wi, wj = step.weight(i), step.weight(j)
                    if job is not None and job.key == i:
                        span[1] += service(job) / wi
                    elif job is not None and job.key == j:
                        span[1] -= service(job) / wj
                    span[2], span[3] = min(span[2], span[1]), max(span[3], span[1])
                    if span[3] - span[2] > limit(wi, wj) + _EPS:
                        return (
                            f"keys {i} (weight {_num(wi)}) and {j} (weight {_num(wj)}), both "
                            f"backlogged from step {int(span[0])} to step {number}: "
                            f"s_{i}/w_{i} - s_{j}/w_{j} ranged over [{span[2]:.4g}, "
                            f"{span[3]:.4g}], a spread of {span[3] - span[2]:.4g} > "
                            f"{limit(wi, wj):.4g}"
                        )
                for pair in list(spans):
                    if pair[0] not in live or pair[1] not in live:
                        del spans[pair]
            changed = step.op.key if step.op.verb == "set_weight" else None
            for pair in list(spans):
                if changed in pair or pair[0] not in step.after or pair[1] not in step.after:
                    del spans[pair]
        return None

    return Law(name, verdict, statement)


# -- checking --------------------------------------------------------------------------------


def check(trace: Trace, laws: Iterable[Law] = UNIVERSAL_LAWS) -> None:
    """Raise `AssertionError` naming every law `trace` breaks (or the error the run raised),
    followed by the trace step by step and its ops as code; return None if all hold."""
    if trace.error is not None:
        lines = [f"raised at {trace.error}"]
    else:
        lines = [f"breaks {law.name}: {why}" for law in laws if (why := law(trace)) is not None]
    if lines:
        ops = ["ops = [", *(f"    {op!r}," for op in trace.ops), "]"]
        raise AssertionError("\n".join([*lines, "", str(trace), "", *ops]))


def check_policy(
    policy: Any,
    laws: Iterable[Law] = UNIVERSAL_LAWS,
    *,
    max_examples: int = 100,
    ops: st.SearchStrategy[Sequence[Op]] | None = None,
    hypothesis_settings: settings | None = None,
) -> None:
    """Search for operation sequences on which `policy` breaks one of `laws`.

    `policy` is a policy object, a registry name, a `{"policy": ...}` mapping, a function of
    no arguments returning one (or a fresh `FairQueue` or `Storage`), or a Hypothesis strategy
    of any of these. Each example runs `ops` (default `strategies.operations()`) on a fresh
    target, checks every law, and stops at the first break, which Hypothesis shrinks.
    `hypothesis_settings` is a base for the search's settings (phases, database, ...).

    Raises:
        AssertionError: a law broke (or the policy raised); the message names the laws the
            shrunk counterexample breaks and lists its steps.
    """
    laws = tuple(laws)
    sequences = operations() if ops is None else ops
    configs = policy if isinstance(policy, st.SearchStrategy) else st.just(policy)
    # A bad name or configuration raises here, not in every example.
    if not isinstance(policy, st.SearchStrategy) and not builder(policy)[1]:
        raise TypeError(
            f"check_policy runs each example on a fresh target; {policy!r} is one object. "
            "Pass a policy, or a function of no arguments that builds the queue or storage"
        )

    @settings(
        hypothesis_settings,
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        **({} if hypothesis_settings else _OWN_DEFAULTS),
    )
    @given(config=configs, sequence=sequences)
    def search(config: Any, sequence: Sequence[Op]) -> None:
        try:
            check(run(config, sequence), laws)
        except AssertionError as exc:
            raise AssertionError(f"{_describe(config)} {exc}") from None

    try:
        search()
    except AssertionError as exc:
        # The message holds the shrunk example in full; Hypothesis's notes would repeat it.
        raise AssertionError(str(exc)) from None
    except Flaky as exc:
        # The same example passed once and failed once: something kept state between runs.
        found = [e for e in getattr(exc, "exceptions", ()) if isinstance(e, AssertionError)]
        detail = f" {found[0]}" if found else f"\n{exc}"
        raise AssertionError(
            f"{_describe(policy)} gives different results for the same operations from one "
            f"run to the next (state kept outside the policy state, or chance); once it{detail}"
        ) from None


def _describe(policy: Any) -> str:
    if isinstance(policy, st.SearchStrategy):
        return "a policy drawn from the strategy"
    if is_factory(policy):
        return f"the policy from {getattr(policy, '__qualname__', repr(policy))}()"
    return f"policy {policy!r}"
