"""Hypothesis strategies for policy tests: keys, weights, costs, deadlines, policy
configurations, workloads (lists of jobs) and operation sequences (lists of `Op`).

>>> from hypothesis import given
>>> from fairsched.testing import check, run
>>> @given(config=policy_configs(), ops=operations())
... def test_every_built_in_keeps_fifo(config, ops):
...     check(run(config, ops))
>>> test_every_built_in_keeps_fifo()
"""

from __future__ import annotations

from . import _requires  # noqa: F401  (first: a missing Hypothesis says how to install it)

# isort: split

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from policies import Job

from ._ops import Op

__all__ = [
    "BUILT_IN",
    "KEYS",
    "arrivals",
    "costs",
    "floods",
    "key_sets",
    "keys",
    "operations",
    "operations_for",
    "policy_configs",
    "quanta",
    "sybils",
    "ttls",
    "weights",
]

#: A handful of keys, so collisions (several tasks per key) are the norm.
KEYS = ("a", "b", "c", "d", "e", "f")

keys = st.sampled_from(KEYS)
#: Key weights, a 32:1 spread.
weights = st.floats(min_value=0.25, max_value=8.0, allow_nan=False, allow_infinity=False)
#: Declared task costs (any unit; seconds in the examples).
costs = st.floats(min_value=0.01, max_value=5.0, allow_nan=False, allow_infinity=False)
#: Fixed DRR quanta.
quanta = st.floats(min_value=0.1, max_value=4.0, allow_nan=False, allow_infinity=False)
#: Seconds from enqueue to a job's deadline, or None (no deadline); short ones are common,
#: so jobs do expire while queued.
ttls = (
    st.none()
    | st.sampled_from([0.0, 0.5, 1.0, 3.0])
    | st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
)


def key_sets(min_size: int = 1) -> st.SearchStrategy[list[str]]:
    """Distinct keys from KEYS, at least `min_size` of them."""
    return st.lists(st.sampled_from(KEYS), min_size=min_size, max_size=len(KEYS), unique=True)


def policy_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Configurations of every built-in policy, with random options and weights."""
    weight_maps = st.dictionaries(keys, weights, max_size=len(KEYS))
    inner = st.one_of(
        st.just({"policy": "lru"}),
        st.builds(lambda w: {"policy": "weighted_lru", "weights": w}, weight_maps),
        st.builds(lambda q, w: {"policy": "drr", "quantum": q, "weights": w}, quanta, weight_maps),
    )
    wrapped = st.builds(
        lambda i, s: {"policy": "expiry_aware", "inner": i, "slack": s},
        inner,
        st.floats(min_value=0.0, max_value=10.0),
    )
    return st.one_of(inner, wrapped)


#: One fixed configuration per built-in policy, for tests parametrized by name.
BUILT_IN: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "lru": {"policy": "lru"},
        "weighted_lru": {"policy": "weighted_lru", "weights": {"a": 3, "b": 1}},
        "drr": {"policy": "drr", "quantum": 1.0, "weights": {"a": 2}},
        "expiry_aware": {"policy": "expiry_aware", "inner": {"policy": "drr"}, "slack": 2.0},
    }
)

#: Seconds between one call and the next; often 0, so calls share an instant.
_gaps = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5])
_costs_or_none = st.none() | costs
_runtimes = st.floats(min_value=0.0, max_value=10.0)


def operations(
    keys: st.SearchStrategy[str] = keys,
    *,
    max_size: int = 100,
    costs: st.SearchStrategy[float | None] = _costs_or_none,
    ttls: st.SearchStrategy[float | None] = ttls,
    runtimes: st.SearchStrategy[float] = _runtimes,
    weights: st.SearchStrategy[float] | None = weights,
    withdrawals: bool = True,
    drain: bool = True,
) -> st.SearchStrategy[list[Op]]:
    """Operation sequences over one queue: up to `max_size` actions, each one call or a burst.

    Actions: enqueue a job (fresh id `t1`, `t2`, ...; or, with `withdrawals`, an id used
    before, which is refused while queued or running); a burst that enqueues 1-6 jobs for
    each of 1-4 keys at one instant (so several keys stay backlogged together); 1-4 dispatches;
    complete a running job (the oldest, or one named by an earlier id: skipped unless it is
    running) with a run time from `runtimes`; expire; with `withdrawals`, requeue a running
    job (the newest, or one named) and revoke an earlier id; with `weights`
    (None: never), set a key's weight. Time moves forward by 0-2.5 s between actions; a
    deadline is the time of enqueue plus a draw from `ttls`. With `drain`, a final `drain`
    serves what is left.
    """
    enqueue = st.tuples(st.just("enqueue"), keys, costs, ttls, _gaps)
    burst = st.tuples(
        st.just("burst"),
        st.lists(keys, min_size=1, max_size=4, unique=True),
        st.integers(1, 6),
        costs,
        ttls,
    )
    dispatch = st.tuples(st.just("dispatch"), _gaps, st.integers(1, 4))
    # Which running job: the oldest (complete) or newest (requeue), or one named by an id.
    which = st.none() | st.integers(0, 63)
    complete = st.tuples(st.just("complete"), runtimes, which)
    expire = st.tuples(st.just("expire"), _gaps)
    actions = [enqueue, dispatch, burst, dispatch, complete, expire]
    if withdrawals:
        actions += [
            st.tuples(st.just("requeue"), which),
            st.tuples(st.just("revoke"), st.integers(0, 63)),
            st.tuples(st.just("reuse"), st.integers(0, 63), keys, costs, ttls),
        ]
    if weights is not None:
        actions.append(st.tuples(st.just("set_weight"), keys, weights))
    # Lists of lists: Hypothesis draws short lists on average (about five items), which
    # would leave few keys backlogged together and few deadlines passing in a queue.
    chunk = min(max_size, 10)
    chunks = st.lists(st.lists(st.one_of(actions), max_size=chunk), max_size=-(-max_size // chunk))
    return chunks.map(lambda drawn: _ops_of([a for part in drawn for a in part], drain))


def _ops_of(actions: list[tuple[Any, ...]], drain: bool) -> list[Op]:
    """The ops a list of drawn actions stands for (ids and times assigned in order)."""
    now = 0.0
    ids: list[str] = []
    out: list[Op] = []

    def enqueue(task: str, key: str, cost: float | None, ttl: float | None) -> None:
        deadline = None if ttl is None else now + ttl
        out.append(Op("enqueue", at=now, task=task, key=key, cost=cost, deadline=deadline))

    def fresh() -> str:
        ids.append(f"t{len(ids) + 1}")
        return ids[-1]

    for action in actions:
        kind = action[0]
        if kind == "enqueue":
            _, key, cost, ttl, gap = action
            now += gap
            enqueue(fresh(), key, cost, ttl)
        elif kind == "burst":
            _, burst_keys, per_key, cost, ttl = action
            for _ in range(per_key):
                for key in burst_keys:
                    enqueue(fresh(), key, cost, ttl)
        elif kind == "dispatch":
            _, gap, times = action
            now += gap
            out += [Op("dispatch", at=now)] * times
        elif kind == "complete":
            out.append(Op("complete", at=now, task=_pick(ids, action[2]), runtime=action[1]))
        elif kind == "expire":
            now += action[1]
            out.append(Op("expire", at=now))
        elif kind == "requeue":
            out.append(Op("requeue", at=now, task=_pick(ids, action[1])))
        elif kind == "revoke" and ids:
            out.append(Op("revoke", at=now, task=ids[action[1] % len(ids)]))
        elif kind == "reuse" and ids:
            _, index, key, cost, ttl = action
            enqueue(ids[index % len(ids)], key, cost, ttl)
        elif kind == "set_weight":
            out.append(Op("set_weight", at=now, key=action[1], weight=action[2]))
    if drain:
        out.append(Op("drain", at=now))
    return out


def _pick(ids: list[str], index: int | None) -> str | None:
    return None if index is None or not ids else ids[index % len(ids)]


# -- workloads: lists of jobs ----------------------------------------------------------------


def arrivals(
    keys: st.SearchStrategy[str] = keys,
    *,
    min_size: int = 1,
    max_size: int = 40,
    costs: st.SearchStrategy[float | None] = _costs_or_none,
    ttls: st.SearchStrategy[float | None] | None = None,
    gaps: st.SearchStrategy[float] = _gaps,
) -> st.SearchStrategy[list[Job]]:
    """Jobs arriving one after another: ids `j1`, `j2`, ... in order of arrival, each `gaps`
    seconds after the one before, with a key, a cost and (with `ttls`) a deadline, the arrival
    plus a draw from `ttls`, drawn per job."""

    def build(drawn: list[tuple[str, float | None, float | None, float]]) -> list[Job]:
        now, jobs = 0.0, []
        for n, (key, cost, ttl, gap) in enumerate(drawn, 1):
            now += gap
            jobs.append(Job(f"j{n}", key, now, cost, None if ttl is None else now + ttl))
        return jobs

    one = st.tuples(keys, costs, st.none() if ttls is None else ttls, gaps)
    return st.lists(one, min_size=min_size, max_size=max_size).map(build)


@st.composite
def floods(
    draw: st.DrawFn,
    *,
    flooders: tuple[int, int] = (1, 3),
    size: tuple[int, int] = (5, 40),
    light: tuple[int, int] = (1, 4),
    costs: st.SearchStrategy[float | None] | None = None,
) -> list[Job]:
    """A flood: keys `bulk0`, `bulk1`, ... (how many: drawn from the range `flooders`) each
    enqueue `size` jobs at time 0, interleaved; keys `light0`, ... (`light`) then enqueue one
    job each at a whole second within the flood (at most one per flooding job). Jobs are
    listed in order of arrival; with `costs`, each declares a cost drawn from it."""
    bulk, per_key, quiet = (draw(st.integers(*bounds)) for bounds in (flooders, size, light))

    def cost() -> float | None:
        return None if costs is None else draw(costs)

    jobs = [
        Job(f"bulk{k}-{i}", f"bulk{k}", 0.0, cost()) for i in range(per_key) for k in range(bulk)
    ]
    late = [
        Job(f"light{k}", f"light{k}", float(draw(st.integers(0, per_key))), cost())
        for k in range(quiet)
    ]
    return jobs + sorted(late, key=lambda job: job.enqueued_at)


@st.composite
def sybils(
    draw: st.DrawFn,
    *,
    sybil_keys: tuple[int, int] = (2, 12),
    honest_keys: tuple[int, int] = (1, 3),
    per_key: tuple[int, int] = (2, 10),
) -> list[Job]:
    """One tenant spread over many keys against honest ones, all at time 0: keys `sybil0`,
    `sybil1`, ... and `honest0`, ... (how many of each: drawn from the ranges given) each
    enqueue `per_key` jobs, interleaved, so the tenant has its key count times as many."""
    fake, real, n = (draw(st.integers(*bounds)) for bounds in (sybil_keys, honest_keys, per_key))
    names = [f"sybil{k}" for k in range(fake)] + [f"honest{k}" for k in range(real)]
    return [Job(f"{key}-{i}", key, 0.0) for i in range(n) for key in names]


@st.composite
def operations_for(
    draw: st.DrawFn,
    workload: st.SearchStrategy[list[Job]],
    *,
    dispatches: tuple[int, int] = (0, 2),
    runtimes: st.SearchStrategy[float] | None = None,
    drain: bool = True,
) -> list[Op]:
    """Ops that serve a workload: each job is enqueued at its arrival time; after each
    arrival come 0-2 (the range `dispatches`) dispatches, each dispatched job completed at once
    with a run time from `runtimes` (None: no run time fed back); then, with `drain`, a drain.
    """
    out: list[Op] = []
    at = 0.0
    for job in draw(workload):
        at = job.enqueued_at
        out.append(
            Op("enqueue", at=at, task=job.id, key=job.key, cost=job.cost, deadline=job.deadline)
        )
        for _ in range(draw(st.integers(*dispatches))):
            runtime = None if runtimes is None else draw(runtimes)
            out.append(Op("dispatch", at=at))
            out.append(Op("complete", at=at, runtime=runtime))
    if drain:
        out.append(Op("drain", at=at))
    return out
