"""The event engine: c identical workers behind a window, per-key backlogs run by a policy.

The model is the runtime's dispatch path. A task arrives and joins its key's backlog. When
fewer than `window` tasks are in flight (dispatched, not finished), the policy picks a key and
that key's oldest task is dispatched into the broker, a FIFO queue in front of the workers; a
free worker takes the head of that queue. The window slot is released when the task finishes.
`window == workers` models fairsched; `window == inf` models forwarding every task to the broker
at once (celery-ranch); `policy=None` is a plain FIFO baseline.

Events. Completions sit in a heap of plain tuples `(at, seq, kind, index)`, where `index` is the
worker slot; arrivals are read from the trace in order, one row at a time, so the heap holds at
most `workers` entries and memory does not grow with the trace. Simultaneous events follow one
rule: **completions before arrivals at the same instant**, completions among themselves in the
order they were scheduled, arrivals in trace order. Each event is followed by at most one
dispatch (an event frees at most one slot or adds at most one task), as the runtime's
`finish` and `submit` do: complete (or enqueue), withdraw expired tasks, then dispatch.

Two scheduler paths drive the same policy objects. Without deadlines the engine keeps its own
per-key FIFOs in a `policies.Backlog` and calls the policy hooks directly (no withdrawals can
occur, so the hooks seen are exactly `FairQueue`'s: activate, pick, dispatch, complete). With
deadlines it uses `policies.FairQueue` itself, which also withdraws expired tasks. The
differential tests check both against `FairQueue` and `fairsched.MemoryStorage`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Any

from attrs import define, field, frozen

from policies import (
    Backlog,
    DeficitRoundRobin,
    ExpiryAware,
    FairQueue,
    Job,
    Policy,
    PureLru,
    WeightedLru,
    from_config,
)
from policies._job import check_key, check_weight

from ._metrics import (
    INV_LOG_GAMMA,
    FairnessPoint,
    KeyAccumulator,
    KeyStats,
    Record,
    RunResult,
    Timeline,
    bin_value,
    jain,
    quantiles,
)
from ._trace import Row

#: Event kind of a task finishing on a worker (the only kind the heap holds).
FINISH = 0

#: How many arrivals pass between two progress callbacks.
PROGRESS_EVERY = 1 << 16


@frozen
class SimJob(Job):
    """A job record that also carries its true service time (the policy never reads it)."""

    service: float = 1.0


Progress = Callable[[int], None]


@define
class Simulation:
    """One configured run: a policy (or None for FIFO), c workers, a window.

    `starvation_after` (seconds) is the unserved stretch of a backlogged key counted as a
    starvation episode. `timeline_step` is the initial width of the fairness-over-time
    intervals (they double when there are too many). `record=True` keeps one `Record` per task
    (memory grows with the trace; for tests and small analyses).
    """

    policy: Policy[Any] | None
    workers: int = 1
    window: float = math.nan
    starvation_after: float = 60.0
    timeline_step: float = 1.0
    record: bool = False
    progress: Progress | None = None
    name: str = field(default="")

    def __attrs_post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {self.workers!r}")
        if math.isnan(self.window):
            self.window = float(self.workers)
        if not self.window >= 1:
            raise ValueError(f"window must be >= 1 (or inf), got {self.window!r}")
        if not (self.starvation_after > 0 and self.timeline_step > 0):
            raise ValueError("starvation_after and timeline_step must be > 0")
        if not self.name:
            self.name = "fifo" if self.policy is None else str(self.policy.name)

    def run(self, rows: Iterable[Row], deadlines: bool = False) -> RunResult:
        """Replay `rows` (sorted by arrival) to the end and return what was measured.

        `deadlines=True` routes dispatch through `FairQueue`, which withdraws expired tasks;
        leave it False only when no row has a deadline (the faster path ignores them).
        """
        return _Run(self, deadlines).go(iter(rows))


@define
class _Run:
    """State of one run; `go` holds the hot loop with everything bound to locals."""

    sim: Simulation
    use_queue: bool
    stats: dict[str, KeyAccumulator] = field(factory=dict)
    records: dict[str, list[Any]] = field(factory=dict)
    expired_total: int = 0
    dispatched: int = 0

    def go(self, rows: Any) -> RunResult:
        sim = self.sim
        policy = sim.policy
        workers = sim.workers
        window = sim.window
        threshold = sim.starvation_after
        record = sim.record
        progress = sim.progress
        stats = self.stats
        records = self.records
        timeline = Timeline(sim.timeline_step)
        tl_service = timeline.service
        tl_active = timeline.active

        backlog = Backlog()
        queue: FairQueue | None = None
        state: Any = None
        if policy is not None:
            for key, weight in policy.weights.items():
                backlog.weights[check_key(key)] = check_weight(weight, key)
            if self.use_queue:
                queue = FairQueue(policy, backlog)
                state = queue.state
            else:
                state = policy.new_state(backlog)
        queues = backlog.queues
        sizes = backlog.sizes
        first_seen = backlog.first_seen
        weight_of = backlog.weight
        fifo: deque[SimJob] = deque()
        on_activate = policy.on_activate if policy is not None else None
        pick = policy.pick if policy is not None else None
        on_dispatch = policy.on_dispatch if policy is not None else None
        on_complete = policy.on_complete if policy is not None else None
        if on_complete is not None and _is_empty(on_complete):
            on_complete = None  # e.g. LRU ignores run times: skip a call per task
        # With one key backlogged, a built-in policy's `pick` names that key (it changes no
        # state the decisions depend on: it only drops stale heap entries, which later picks
        # drop as well), so the call is skipped; activate and dispatch are always seen.
        sole_pick = _picks_sole_key(policy)
        q_enqueue = queue.enqueue if queue is not None else None
        q_dispatch = queue.dispatch if queue is not None else None
        q_expire = queue.expire if queue is not None else None
        deadline_heap = backlog.deadlines

        heap: list[tuple[float, int, int, int]] = []
        seq = 0
        running: list[SimJob | None] = [None] * workers
        free = list(range(workers - 1, -1, -1))
        broker: deque[SimJob] = deque()
        in_flight = 0
        waiting_total = 0  # tasks queued for the policy (not yet dispatched)
        first_t = math.nan
        now = 0.0
        arrived = 0
        dispatched = 0
        boundary = math.inf
        log = math.log
        ceil = math.ceil
        inv_log_gamma = INV_LOG_GAMMA
        next_progress = PROGRESS_EVERY if progress is not None else -1
        # SimJob records built through their slots: what attrs' generated __init__ does, less
        # its per-field lookups (no field of Job or SimJob has a validator or converter).
        new = object.__new__
        set_id, set_key, set_at, set_cost, set_deadline, set_service = _JOB_SLOTS

        row = next(rows, None)
        if row is not None:
            first_t = row[1]
            timeline.start(first_t)
            boundary = timeline.boundary
        next_at = row[1] if row is not None else math.inf

        while True:
            # ---- one event: a completion (ties go to completions) or an arrival ----------
            if heap and heap[0][0] <= next_at:
                now, _, _, slot = heappop(heap)
                job = running[slot]
                assert job is not None
                in_flight -= 1
                if job.deadline is not None and now > job.deadline:
                    stats[job.key].missed += 1
                if record:
                    records[job.id][3] = now
                if on_complete is not None:
                    on_complete(state, job, job.service)
                if broker:
                    # The freed worker takes the broker's head at once.
                    job = broker.popleft()
                    running[slot] = job
                else:
                    running[slot] = None
                    free.append(slot)
                    job = None
            elif row is not None:
                key, now, service, deadline, cost = row
                arrived += 1
                job = new(SimJob)
                set_id(job, str(arrived))
                set_key(job, key)
                set_at(job, now)
                set_cost(job, cost)
                set_deadline(job, deadline)
                set_service(job, service)
                acc = stats.get(key)
                if acc is None:
                    acc = stats[key] = KeyAccumulator(weight_of(check_key(key)))
                if not acc.waiting:
                    acc.since = now
                    tl_active.add(key)
                acc.waiting += 1
                if record:
                    records[job.id] = [job, math.nan, math.nan, math.nan, False, -1]
                if policy is None:
                    fifo.append(job)
                elif q_enqueue is not None:
                    q_enqueue(job, now)
                else:
                    q = queues.get(key)
                    if q is None:
                        if key not in first_seen:
                            first_seen[key] = len(first_seen)
                        queues[key] = deque((job,))
                        sizes[key] = 1
                        on_activate(state, key, now)  # type: ignore[misc]
                    else:
                        q.append(job)
                        sizes[key] += 1
                waiting_total += 1
                job = None
                row = next(rows, None)
                next_at = row[1] if row is not None else math.inf
                if arrived == next_progress:
                    progress(arrived)  # type: ignore[misc]
                    next_progress += PROGRESS_EVERY
            else:
                break

            # ---- withdraw expired tasks (deadline path only) ----------------------------
            if q_expire is not None and deadline_heap and deadline_heap[0][0] < now:
                for gone in q_expire(now):
                    self._expired(gone, now)
                    waiting_total -= 1

            # ---- dispatch at most one task into a free window slot ---------------------
            if waiting_total and in_flight < window:
                if policy is None:
                    picked: SimJob | None = fifo.popleft()
                elif q_dispatch is not None:
                    picked = q_dispatch(now).job  # type: ignore[assignment]
                else:
                    sole = sole_pick and len(queues) == 1
                    key = next(iter(queues)) if sole else pick(state, now)  # type: ignore[misc,assignment]
                    if key is None:
                        picked = None
                    else:
                        q = queues[key]
                        picked = q.popleft()  # type: ignore[assignment]
                        if q:
                            sizes[key] -= 1
                        else:
                            del queues[key], sizes[key]
                        on_dispatch(state, key, picked, now)  # type: ignore[misc, arg-type]
                if picked is not None:
                    waiting_total -= 1
                    in_flight += 1
                    if record:
                        entry = records[picked.id]
                        entry[1] = now
                        entry[5] = dispatched
                    dispatched += 1
                    if free:
                        slot = free.pop()
                        running[slot] = picked
                        job = picked
                    else:
                        broker.append(picked)

            # ---- a task starting on worker `slot` -------------------------------------
            if job is not None:
                service = job.service
                key = job.key
                seq += 1
                heappush(heap, (now + service, seq, FINISH, slot))
                wait = now - job.enqueued_at
                acc = stats[key]
                acc.started += 1
                acc.service_sum += service
                if wait > 0.0:
                    acc.wait_sum += wait
                    acc.slowdown_sum += (wait + service) / service
                    if wait > acc.wait_max:
                        acc.wait_max = wait
                    bins = acc.bins
                    b = ceil(log(wait) * inv_log_gamma) - acc.low
                    if 0 <= b < len(bins):
                        bins[b] += 1
                    else:
                        acc.count_wait(wait)
                    gap = now - acc.since
                    if gap > threshold:
                        acc.starvation_episodes += 1
                        if gap > acc.longest_gap:
                            acc.longest_gap = gap
                else:
                    # (0 + s) / s is exactly 1; and the key's unserved stretch began no
                    # earlier than this arrival, so its gap is 0.
                    acc.zero_waits += 1
                    acc.slowdown_sum += 1.0
                acc.since = now
                acc.waiting -= 1
                if now >= boundary:
                    timeline.roll(now, (k for k, a in stats.items() if a.waiting))
                    boundary = timeline.boundary
                    tl_service = timeline.service
                    tl_active = timeline.active
                    # The key that starts now was backlogged in the new interval too.
                    tl_active.add(key)
                tl_service[key] = tl_service.get(key, 0.0) + service / acc.weight
                if record:
                    records[job.id][2] = now

        return self._result(arrived, now, first_t, timeline)

    def _expired(self, job: Job, now: float) -> None:
        acc = self.stats[job.key]
        acc.expired += 1
        acc.waiting -= 1
        acc.since = now
        acc.expired_wait_sum += now - job.enqueued_at
        self.expired_total += 1
        if self.sim.record:
            entry = self.records[job.id]
            entry[4] = True
            entry[3] = now

    def _result(
        self,
        arrived: int,
        end: float,
        first_t: float,
        timeline: Timeline,
    ) -> RunResult:
        sim = self.sim
        per_key: list[KeyStats] = []
        all_bins: dict[int, int] = {}
        zero = started = 0
        wait_sum = slowdown_sum = 0.0
        wait_max = busy = area = 0.0
        episodes = 0
        for key, acc in sorted(self.stats.items()):
            bins = acc.histogram()
            p50, p95, p99 = quantiles(acc.zero_waits, bins, (0.5, 0.95, 0.99))
            n = acc.started
            histogram = [(0.0, acc.zero_waits)] + [(bin_value(i), c) for i, c in bins.items()]
            per_key.append(
                KeyStats(
                    key=key,
                    weight=acc.weight,
                    count=n,
                    expired=acc.expired,
                    missed=acc.missed,
                    wait_mean=acc.wait_sum / n if n else math.nan,
                    wait_p50=p50,
                    wait_p95=p95,
                    wait_p99=p99,
                    wait_max=acc.wait_max,
                    slowdown_mean=acc.slowdown_sum / n if n else math.nan,
                    service=acc.service_sum,
                    starvation_episodes=acc.starvation_episodes,
                    longest_gap=acc.longest_gap,
                    wait_histogram=tuple(histogram),
                )
            )
            zero += acc.zero_waits
            for i, c in bins.items():
                all_bins[i] = all_bins.get(i, 0) + c
            started += n
            busy += acc.service_sum
            # Little's law area: every task is in the system from arrival to its finish
            # (wait + service) or to its expiry, so the time integral is a sum over tasks.
            area += acc.wait_sum + acc.service_sum + acc.expired_wait_sum
            wait_sum += acc.wait_sum
            slowdown_sum += acc.slowdown_sum
            wait_max = max(wait_max, acc.wait_max)
            episodes += acc.starvation_episodes
        p50, p95, p99 = quantiles(zero, all_bins, (0.5, 0.95, 0.99))
        span = end - first_t if arrived else 0.0
        slowdowns = [k.slowdown_mean for k in per_key if k.count]
        timeline_points: tuple[FairnessPoint, ...] = timeline.points() if arrived else ()
        shares = [p.jain for p in timeline_points]
        records = None
        if sim.record:
            records = tuple(
                Record(job.id, job.key, job.enqueued_at, d, s, f, gone, order)
                for job, d, s, f, gone, order in self.records.values()
            )
        return RunResult(
            policy=sim.name,
            workers=sim.workers,
            window=sim.window,
            tasks=arrived,
            completed=started,
            expired=self.expired_total,
            missed=sum(k.missed for k in per_key),
            makespan=span,
            throughput=started / span if span > 0 else math.nan,
            utilisation=busy / (sim.workers * span) if span > 0 else math.nan,
            wait_mean=wait_sum / started if started else math.nan,
            wait_p50=p50,
            wait_p95=p95,
            wait_p99=p99,
            wait_max=wait_max,
            slowdown_mean=slowdown_sum / started if started else math.nan,
            jain_slowdown=jain(slowdowns),
            jain_share=sum(shares) / len(shares) if shares else math.nan,
            max_min_slowdown=max(slowdowns) / min(slowdowns) if slowdowns else math.nan,
            starvation_episodes=episodes,
            starvation_threshold=sim.starvation_after,
            mean_in_system=area / span if span > 0 else math.nan,
            per_key=tuple(per_key),
            timeline=timeline_points,
            records=records,
        )


#: The slot setters of a SimJob, in constructor order.
_JOB_SLOTS: tuple[Any, ...] = tuple(
    getattr(SimJob, name).__set__
    for name in ("id", "key", "enqueued_at", "cost", "deadline", "service")
)


def _picks_sole_key(policy: Any) -> bool:
    """Whether `policy` is a built-in whose `pick` names the only backlogged key, if one is."""
    if isinstance(policy, ExpiryAware):
        return _picks_sole_key(policy.inner)
    return type(policy) in (PureLru, WeightedLru, DeficitRoundRobin)


def _empty() -> None:
    pass


def _is_empty(method: Any) -> bool:
    """Whether `method`'s body does nothing (its bytecode is that of an empty function)."""
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    return code is not None and code.co_code == _empty.__code__.co_code and not code.co_consts[1:]


def as_policy(policy: Any) -> Policy[Any] | None:
    """A policy object from a policy, a name, a spec mapping, or None/"fifo" for the baseline."""
    if policy is None or policy == "fifo" or policy == {"policy": "fifo"}:
        return None
    return from_config(policy)
