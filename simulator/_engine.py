"""The event engine: c identical workers behind a window, per-key backlogs run by a policy.

The model is the runtime's dispatch path. A task arrives and joins its key's backlog. When
fewer than `window` tasks are in flight (dispatched, not finished), the policy picks a key and
that key's oldest task is dispatched into the broker, a FIFO queue in front of the workers; a
free worker takes the head of that queue. The window slot is released when the task finishes.
`dispatch="late"` (window = workers, the runtime's default with a Redis broker) and
`dispatch="window"` (window = `WINDOW_FACTOR` x workers, the runtime's windowed default) model
fairsched; `window == inf` models forwarding every task to the broker at once (celery-ranch);
`policy=None` is a plain FIFO baseline.

Costs of the real system, both 0 by default: `overhead` keeps a worker busy that long after
each task finishes (the task's result, its window slot and the policy's `on_complete` come at
start + service; the worker takes its next task at start + service + overhead), and `latency`
delays the start of a task dispatched to an idle worker (the worker is reserved meanwhile; a
worker that takes a task from the broker queue as it frees itself starts it at once).

Events. The heap holds plain tuples `(at, kind, seq, slot)`, `slot` being the worker:
`FINISH` (a task ends), `FREE` (a worker ends its overhead; only when overhead > 0), `START`
(a reserved worker starts its task; only when latency > 0) and `ROLL` (the fairness timeline
closes an interval). Arrivals are read from the trace in order, one row at a time
(`loop="open"`), or come from a `ClosedLoop`; a worker has at most one event in the heap at a
time, so the heap holds at most `workers + 1` entries and memory does not grow with the trace.
Simultaneous events follow one rule: **heap events before arrivals at the same instant**; among
heap events, the timeline's boundary (so an interval closes on the state at its end), then
finishes, frees and starts, each kind in the order it was scheduled; arrivals in trace order.
So a task that a finish at t lets into the window, when a worker also ends its overhead at t,
is taken from the broker at t with no latency. Each event is followed by at most one dispatch
(an event frees at most one slot or adds at most one task), as the runtime's `finish` and
`submit` do: complete (or enqueue), withdraw expired tasks, then dispatch. With overhead =
latency = 0 the only task events are finishes, and the rule is the former "completions before
arrivals".

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
    KeyAccumulator,
    KeyStats,
    Record,
    RunResult,
    Timeline,
    bin_value,
    jain,
    mean_of,
    quantiles,
)
from ._trace import Row, Trace

#: Event kinds in the heap, in their order at one instant: a task finishing on a worker, a
#: worker ending its per-task overhead, a reserved worker starting its task after the latency.
FINISH = 0
FREE = 1
START = 2
#: The fairness timeline closing an interval: first at its instant, so an interval's figures
#: are those of the state at its boundary, before any event there.
ROLL = -1
#: Not an event: what a finished task's worker does during its overhead (neither takes the
#: broker's head nor starts a task).
_OVERHEAD = 3

#: Default window of `dispatch="window"`, per worker: the runtime's `window_factor` default
#: (`fairsched.FairschedConfig.window_factor`), which sizes the window at this many tasks in
#: flight per worker process.
WINDOW_FACTOR = 2.0

#: Dispatch modes and arrival loops `Simulation` accepts.
DISPATCH_MODES = ("late", "window")
LOOPS = ("open", "closed")

#: How many arrivals pass between two progress callbacks.
PROGRESS_EVERY = 1 << 16


@frozen
class SimJob(Job):
    """A job record that also carries its true service time (the policy never reads it)."""

    service: float = 1.0


Progress = Callable[[int], None]


def _seconds(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return value


@define
class Simulation:
    """One configured run: a policy (or None for FIFO), c workers, a window, the system's costs.

    Model: `dispatch` is "late" (default window = `workers`: the policy chooses when a worker
    process is free, as the runtime does with a Redis broker) or "window" (default window =
    `WINDOW_FACTOR` x `workers`, the runtime's windowed dispatch); an explicit `window` wins.
    `overhead` (seconds) keeps a worker busy after each task beyond its service time;
    `latency` (seconds) delays the start of a task dispatched to an idle worker. `loop` is
    "open" (arrivals at their recorded times) or "closed" (a key's task that in the trace came
    after its previous task finished arrives its think time after that task finishes in the
    simulation; see `ClosedLoop`).

    Metrics: `starvation_after` (seconds) is a fixed unserved stretch of a backlogged key
    counted as a starvation episode; None (the default) uses `starvation_factor` x the key's
    fair gap instead. `slowdown_tau` (seconds) is the floor of the bounded slowdown's
    denominator. `timeline_step` is the initial width of the fairness-over-time intervals (they
    double when there are too many). `record=True` keeps one `Record` per task (memory grows
    with the trace; for tests and small analyses).

    Raises ValueError naming the parameter for any value out of range.
    """

    policy: Policy[Any] | None
    workers: int = 1
    window: float = math.nan
    starvation_after: float | None = None
    timeline_step: float = 1.0
    record: bool = False
    progress: Progress | None = None
    name: str = field(default="")
    dispatch: str = "late"
    overhead: float = 0.0
    latency: float = 0.0
    loop: str = "open"
    starvation_factor: float = 10.0
    slowdown_tau: float = 0.01

    def __attrs_post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {self.workers!r}")
        if self.dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be 'late' or 'window', got {self.dispatch!r}")
        if self.loop not in LOOPS:
            raise ValueError(f"loop must be 'open' or 'closed', got {self.loop!r}")
        self.overhead = _seconds("overhead", self.overhead)
        self.latency = _seconds("latency", self.latency)
        if math.isnan(self.window):
            factor = 1.0 if self.dispatch == "late" else WINDOW_FACTOR
            # As the runtime sizes its window: ceil(factor x concurrency), at least 1.
            self.window = float(max(1, math.ceil(factor * self.workers)))
        if not self.window >= 1:
            raise ValueError(f"window must be >= 1 (or inf), got {self.window!r}")
        if self.starvation_after is not None and not self.starvation_after > 0:
            raise ValueError(f"starvation_after must be > 0 or None, got {self.starvation_after!r}")
        for label in ("starvation_factor", "slowdown_tau"):
            value = getattr(self, label)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a finite number > 0, got {value!r}")
        if not self.timeline_step > 0:
            raise ValueError(f"timeline_step must be > 0, got {self.timeline_step!r}")
        if not self.name:
            self.name = "fifo" if self.policy is None else str(self.policy.name)

    def run(self, rows: Iterable[Row], deadlines: bool = False) -> RunResult:
        """Replay `rows` (sorted by arrival) to the end and return what was measured.

        `deadlines=True` routes dispatch through `FairQueue`, which withdraws expired tasks;
        leave it False only when no row has a deadline (the faster path ignores them). With
        `loop="closed"` the rows are held in memory (a `Trace` is used as it is).
        """
        source: Any
        if self.loop == "closed":
            source = ClosedLoop(rows if isinstance(rows, Trace) else Trace.from_rows(rows))
        else:
            source = iter(rows)
        return _Run(self, deadlines).go(source)


class ClosedLoop:
    """The arrivals of a closed-loop replay of a trace held in memory.

    Within a key, task i > 0 is *dependent* when in the trace it arrived at or after the key's
    previous task finished, finish being arrival + service (the trace holds no finish time).
    A dependent task arrives its think time, arrival_i - (arrival_{i-1} + service_{i-1}),
    after the key's previous task finishes in the simulation (or expires unserved); any other
    task arrives arrival_i - arrival_{i-1} after the key's previous task arrived in the
    simulation. A key's first task arrives at its recorded time. So a flood stays a flood, and
    a user who waited for each result before sending the next request waits in the replay
    too. A deadline moves with its task's arrival (the slack is kept).

    Iterating yields rows with their simulated arrival times, in time order (ties in trace
    order); the engine calls `finished` when a task ends, which may put an earlier arrival
    ahead of the row it holds.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        keys, arrivals, services = trace.keys, trace.arrivals, trace.services
        n = len(trace)
        #: The index of the key's next task (-1: none) and whether that task is dependent.
        self.successor = [-1] * n
        self.dependent = [False] * n
        #: (simulated arrival, index) of the tasks whose arrival time is known, not yet held.
        self.pending: list[tuple[float, int]] = []
        last: dict[str, int] = {}
        for j in range(n):
            i = last.get(keys[j], -1)
            last[keys[j]] = j
            if i < 0:
                # A key's first task; appended in trace order, so the list is a valid heap.
                self.pending.append((arrivals[j], j))
            else:
                self.successor[i] = j
                self.dependent[j] = arrivals[j] >= arrivals[i] + services[i]
        #: The row the engine holds (not yet arrived): its index (-1: none) and arrival.
        self.head = -1
        self.head_at = 0.0
        self.arrived = 0
        #: Per key: (id of the task whose end releases the successor, its index, the
        #: successor's index).
        self.blocked: dict[str, tuple[str, int, int]] = {}

    def __iter__(self) -> ClosedLoop:
        return self

    def __next__(self) -> Row:
        # The engine asks for the next row once the one it held has arrived.
        i = self.head
        if i >= 0:
            self.arrived += 1
            j = self.successor[i]
            if j >= 0:
                if self.dependent[j]:
                    self.blocked[self.trace.keys[i]] = (str(self.arrived), i, j)
                else:
                    # Shifted as its predecessor was: a trace replayed without delay keeps
                    # its exact times.
                    arrivals = self.trace.arrivals
                    heappush(self.pending, (arrivals[j] + (self.head_at - arrivals[i]), j))
            self.head = -1
        if not self.pending:
            raise StopIteration
        at, j = heappop(self.pending)
        return self._hold(at, j)

    def finished(self, job: Job, now: float, row: Row | None) -> Row | None:
        """Release the dependent successor of `job` (ended at `now`); the row to hold next."""
        entry = self.blocked.get(job.key)
        if entry is None or entry[0] != job.id:
            return row
        del self.blocked[job.key]
        _, i, j = entry
        arrivals, services = self.trace.arrivals, self.trace.services
        # Its think time after the end: arrival_j - (arrival_i + service_i), as a shift.
        at = arrivals[j] + (now - (arrivals[i] + services[i]))
        if row is not None and (self.head_at, self.head) <= (at, j):
            heappush(self.pending, (at, j))
            return row
        if row is not None:
            heappush(self.pending, (self.head_at, self.head))
        return self._hold(at, j)

    def _hold(self, at: float, j: int) -> Row:
        trace = self.trace
        self.head, self.head_at = j, at
        deadline = trace.deadlines[j] if trace.deadlines is not None else None
        if deadline is not None:
            deadline += at - trace.arrivals[j]
        cost = trace.costs[j] if trace.costs is not None else None
        return (trace.keys[j], at, trace.services[j], deadline, cost)


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
        relative = threshold is None
        allowed = math.inf if threshold is None else threshold
        # Fair gap of a key = backlogged keys x mean service / workers; limit = factor x gap.
        scale = sim.starvation_factor / workers
        tau = sim.slowdown_tau
        overhead = sim.overhead
        latency = sim.latency
        follow = rows.finished if isinstance(rows, ClosedLoop) else None
        extra = follow is not None or overhead > 0
        record = sim.record
        progress = sim.progress
        stats = self.stats
        records = self.records
        timeline = Timeline(sim.timeline_step, stats)

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
        backlogged = 0  # keys with a task arrived and not started
        run_service = 0.0  # service of the tasks started so far, and their number
        run_started = 0
        first_t = math.nan
        now = end = 0.0  # end: time of the last finish or expiry
        arrived = 0
        dispatched = 0
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
            heappush(heap, (timeline.boundary, ROLL, seq, 0))
        next_at = row[1] if row is not None else math.inf

        while True:
            # ---- one event: from the heap (ties go to it) or an arrival -------------------
            if heap and heap[0][0] <= next_at:
                now, kind, _, slot = heappop(heap)
                job = running[slot]
                if not kind:  # FINISH
                    assert job is not None
                    end = now
                    in_flight -= 1
                    if job.deadline is not None and now > job.deadline:
                        stats[job.key].missed += 1
                    if record:
                        records[job.id][3] = now
                    if on_complete is not None:
                        on_complete(state, job, job.service)
                    if extra:
                        if follow is not None:
                            row = follow(job, now, row)
                            next_at = row[1] if row is not None else math.inf
                        if overhead:
                            # The task is done; its worker stays busy `overhead` longer.
                            seq += 1
                            heappush(heap, (now + overhead, FREE, seq, slot))
                            job = None
                            kind = _OVERHEAD
                elif kind < 0:  # ROLL
                    self._roll(timeline, heap, running)
                    if heap or row is not None:
                        seq += 1
                        heappush(heap, (timeline.boundary, ROLL, seq, 0))
                    continue
                if kind <= FREE:
                    # The worker is free: it takes the broker's head at once.
                    if broker:
                        job = broker.popleft()
                        running[slot] = job
                    else:
                        running[slot] = None
                        free.append(slot)
                        job = None
                # (START: the task reserved for this worker, `job`, starts now.)
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
                    acc = stats[key] = KeyAccumulator(
                        weight_of(check_key(key)),
                        allowed=allowed,
                        first_arrival=now,
                        first_task_service=service,
                    )
                if not acc.waiting:
                    acc.since = now
                    backlogged += 1
                    if relative:
                        acc.allowed = (
                            scale
                            * backlogged
                            * (run_service / run_started if run_started else acc.first_task_service)
                        )
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
                end = now
                for gone in q_expire(now):
                    waiting_total -= 1
                    acc = self._expired(gone, now)
                    if not acc.waiting:
                        backlogged -= 1
                        acc.emptied = now
                    elif relative:
                        mean = run_service / run_started if run_started else acc.first_task_service
                        acc.allowed = scale * backlogged * mean
                    if follow is not None:
                        row = follow(gone, now, row)
                        next_at = row[1] if row is not None else math.inf

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
                        if latency:
                            # The worker is reserved; the task starts `latency` later.
                            seq += 1
                            heappush(heap, (now + latency, START, seq, slot))
                        else:
                            job = picked
                    else:
                        broker.append(picked)

            # ---- a task starting on worker `slot` -------------------------------------
            if job is not None:
                service = job.service
                key = job.key
                seq += 1
                heappush(heap, (now + service, FINISH, seq, slot))
                wait = now - job.enqueued_at
                acc = stats[key]
                if not acc.started:
                    acc.first_start = now
                acc.started += 1
                acc.service_sum += service
                run_service += service
                run_started += 1
                if wait > 0.0:
                    acc.wait_sum += wait
                    acc.slowdown_sum += (wait + service) / service
                    if service < tau:
                        bounded = (wait + service) / tau
                        acc.bounded_fix += max(bounded, 1.0) - (wait + service) / service
                    if wait > acc.wait_max:
                        acc.wait_max = wait
                    bins = acc.bins
                    b = ceil(log(wait) * inv_log_gamma) - acc.low
                    if 0 <= b < len(bins):
                        bins[b] += 1
                    else:
                        acc.count_wait(wait)
                    gap = now - acc.since
                    if gap > acc.allowed:
                        acc.starvation_episodes += 1
                        if gap > acc.longest_gap:
                            acc.longest_gap = gap
                else:
                    # (0 + s) / s is exactly 1, and so is the bounded slowdown; the key's
                    # unserved stretch began no earlier than this arrival, so its gap is 0.
                    acc.zero_waits += 1
                    acc.slowdown_sum += 1.0
                acc.since = now
                acc.waiting -= 1
                if not acc.waiting:
                    backlogged -= 1
                    acc.emptied = now
                elif relative:
                    # A new unserved stretch begins now for the rest of the key's backlog.
                    acc.allowed = scale * backlogged * run_service / run_started
                if record:
                    records[job.id][2] = now

        return self._result(arrived, end, first_t, timeline)

    @staticmethod
    def _roll(
        timeline: Timeline, heap: list[tuple[float, int, int, int]], running: list[SimJob | None]
    ) -> None:
        """Close the timeline's open interval, at its boundary (the tasks in service are the
        finishes in the heap)."""
        in_service = [(running[s].key, at) for at, k, _, s in heap if k == FINISH]  # type: ignore[union-attr]
        timeline.roll(in_service)

    def _expired(self, job: Job, now: float) -> KeyAccumulator:
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
        return acc

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
        wait_sum = slowdown_sum = bounded_sum = 0.0
        wait_max = area = 0.0
        episodes = 0
        busy = sum(acc.service_sum for acc in self.stats.values())
        for key, acc in sorted(self.stats.items()):
            bins = acc.histogram()
            p50, p95, p99 = quantiles(acc.zero_waits, bins, (0.5, 0.95, 0.99), acc.wait_max)
            n = acc.started
            histogram = [(0.0, acc.zero_waits)] + [(bin_value(i), c) for i, c in bins.items()]
            bounded = acc.slowdown_sum + acc.bounded_fix
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
                    first_service=acc.first_start - acc.first_arrival,
                    share=acc.service_sum / busy if busy > 0 else math.nan,
                    bounded_slowdown=bounded / n if n else math.nan,
                )
            )
            zero += acc.zero_waits
            for i, c in bins.items():
                all_bins[i] = all_bins.get(i, 0) + c
            started += n
            # Little's law area: every task is in the system from arrival to its finish
            # (wait + service) or to its expiry, so the time integral is a sum over tasks.
            area += acc.wait_sum + acc.service_sum + acc.expired_wait_sum
            wait_sum += acc.wait_sum
            slowdown_sum += acc.slowdown_sum
            bounded_sum += bounded
            wait_max = max(wait_max, acc.wait_max)
            episodes += acc.starvation_episodes
        p50, p95, p99 = quantiles(zero, all_bins, (0.5, 0.95, 0.99), wait_max)
        span = end - first_t if arrived else 0.0
        slowdowns = [k.slowdown_mean for k in per_key if k.count]
        firsts = [k.first_service for k in per_key if k.count]
        timeline_points = timeline.points() if arrived else ()
        contention = [x for p in timeline_points if not math.isnan(x := p.contention_share)]
        records = None
        if sim.record:
            records = tuple(
                Record(job.id, job.key, job.enqueued_at, d, s, f, gone, order)
                for job, d, s, f, gone, order in self.records.values()
            )
        relative = sim.starvation_after is None
        return RunResult(
            policy=sim.name,
            workers=sim.workers,
            window=sim.window,
            dispatch=sim.dispatch,
            overhead=sim.overhead,
            latency=sim.latency,
            loop=sim.loop,
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
            first_service_mean=mean_of(firsts),
            first_service_max=max(firsts) if firsts else math.nan,
            slowdown_mean=slowdown_sum / started if started else math.nan,
            bounded_slowdown_mean=bounded_sum / started if started else math.nan,
            slowdown_tau=sim.slowdown_tau,
            jain_slowdown=jain(slowdowns),
            jain_share=mean_of(p.jain for p in timeline_points),
            contention_share=mean_of(contention),
            contention_share_min=min(contention, default=math.nan),
            max_min_slowdown=max(slowdowns) / min(slowdowns) if slowdowns else math.nan,
            starvation_episodes=episodes,
            starvation_threshold=math.nan if relative else sim.starvation_after,  # type: ignore[arg-type]
            starvation_factor=sim.starvation_factor if relative else math.nan,
            starved_tasks_fraction=episodes / started if started else math.nan,
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
