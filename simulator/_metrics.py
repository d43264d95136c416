"""Run results (frozen values) and the streaming accumulators the engine fills.

Waits are kept per key in a log-binned histogram with a bounded range: bins grow by `GAMMA`
between `WAIT_FLOOR` and `WAIT_CAP`, so a reported percentile is within `SKETCH_ERROR` (under
0.5%) of the true one; waits of 0 are counted exactly, waits in (0, `WAIT_FLOOR`] share the
lowest bin (absolute error under `WAIT_FLOOR`) and waits above `WAIT_CAP` share the top one.
Each key's bins are one dense array covering the bins it has used, at most `MAX_BIN - MIN_BIN
+ 1` counters (24 KB), so memory grows with the number of keys, never with the trace length.
Percentiles are nearest-rank over that histogram, clamped to the exact maximum (a bin's
reported value can exceed the largest wait in it), so p50 <= p95 <= p99 <= max always holds.

Every field of `RunResult`, `KeyStats` and `FairnessPoint` is defined exactly in the
"Metrics" section of docs/simulator.md; the docstrings below give the short form.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any, NamedTuple

from attrs import Attribute, asdict, define, field, frozen

#: Bin growth factor of the wait histograms.
GAMMA = 1.01
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
#: Largest relative error of a reported wait percentile (above the floor, below the cap).
SKETCH_ERROR = (GAMMA - 1) / (GAMMA + 1)
#: Waits in (0, WAIT_FLOOR] seconds are reported as about WAIT_FLOOR; waits above WAIT_CAP
#: as about WAIT_CAP (115 days). `wait_max` and `wait_mean` stay exact.
WAIT_FLOOR = 1e-6
WAIT_CAP = 1e7
MIN_BIN = math.ceil(math.log(WAIT_FLOOR) * INV_LOG_GAMMA)
MAX_BIN = math.ceil(math.log(WAIT_CAP) * INV_LOG_GAMMA)
#: Spare bins added on each side when a key's array grows, so growth is rare.
GROW_BY = 16


def bin_value(index: int) -> float:
    """The value reported for histogram bin `index` (its waits lie in (G^(i-1), G^i])."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


def bin_index(wait: float) -> int:
    """The histogram bin of a wait > 0, clamped to [MIN_BIN, MAX_BIN]."""
    return min(max(math.ceil(math.log(wait) * INV_LOG_GAMMA), MIN_BIN), MAX_BIN)


@define(slots=True)
class KeyAccumulator:
    """Running totals for one key, updated in place on the engine's hot path."""

    weight: float = 1.0
    started: int = 0
    expired: int = 0
    missed: int = 0
    wait_sum: float = 0.0
    wait_max: float = 0.0
    slowdown_sum: float = 0.0
    #: Bounded minus plain slowdown, summed over the started tasks shorter than tau that
    #: waited (for every other task the two are equal).
    bounded_fix: float = 0.0
    service_sum: float = 0.0
    zero_waits: int = 0
    #: Counts of waits > 0 per log bin; `bins[i]` is bin `low + i`. The engine increments a
    #: bin in place when it is in range and calls `count_wait` otherwise.
    bins: array[int] = field(factory=lambda: array("q"))
    low: int = 0
    #: Tasks arrived and not yet started (in the policy's backlog, the broker queue, or on a
    #: worker reserved during the latency).
    waiting: int = 0
    #: Start of the current unserved stretch: the latest of the last start, the last expiry
    #: and the arrival that made the key backlogged.
    since: float = 0.0
    #: Last time the key's backlog emptied (a start or an expiry left nothing waiting).
    emptied: float = -math.inf
    #: Length the current unserved stretch may reach before it counts as starvation: the fixed
    #: `starvation_after`, or `starvation_factor` x the key's fair gap when the stretch began.
    allowed: float = math.inf
    starvation_episodes: int = 0
    longest_gap: float = 0.0
    #: Time expired tasks spent in the system (for Little's law).
    expired_wait_sum: float = 0.0
    #: Arrival and service time of the key's first task; start of its first started task.
    first_arrival: float = math.nan
    first_task_service: float = math.nan
    first_start: float = math.nan

    def count_wait(self, wait: float) -> None:
        """Count a wait > 0 in its bin, growing the array to cover it (the slow path)."""
        index = bin_index(wait)
        bins = self.bins
        if not bins:
            self.low = max(index - GROW_BY, MIN_BIN)
            bins.extend(repeat(0, min(index + GROW_BY, MAX_BIN) - self.low + 1))
        elif index < self.low:
            low = max(index - GROW_BY, MIN_BIN)
            self.bins = bins = array("q", repeat(0, self.low - low)) + bins
            self.low = low
        elif index >= self.low + len(bins):
            bins.extend(repeat(0, min(index + GROW_BY, MAX_BIN) - self.low - len(bins) + 1))
        bins[index - self.low] += 1

    def histogram(self) -> dict[int, int]:
        """The non-empty bins, {bin index: count}."""
        low = self.low
        return {low + i: c for i, c in enumerate(self.bins) if c}


def quantiles(
    zero: int, bins: Mapping[int, int], qs: Iterable[float], ceiling: float = math.inf
) -> list[float]:
    """Nearest-rank quantiles over `zero` zero waits plus a log-binned histogram.

    Each value is at most `ceiling` (pass the exact largest wait: a bin's reported value lies
    up to `SKETCH_ERROR` above the waits in it). Values are non-decreasing in `q`.
    """
    total = zero + sum(bins.values())
    out: list[float] = []
    if total == 0:
        return [math.nan for _ in qs]
    ordered = sorted(bins.items())
    for q in qs:
        rank = max(1, math.ceil(q * total))
        if rank <= zero:
            out.append(0.0)
            continue
        seen = zero
        value = 0.0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                value = bin_value(index)
                break
        out.append(min(value, ceiling))
    return out


def jain(values: Iterable[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when equal, 1/n when one takes all.

    >>> jain([1.0, 1.0]), jain([1.0, 0.0])
    (1.0, 0.5)
    """
    xs = list(values)
    square = sum(x * x for x in xs)
    if not xs or square == 0:
        return math.nan
    return sum(xs) ** 2 / (len(xs) * square)


def _float_key(value: float) -> tuple[bool, float]:
    # nan marks "undefined" in results (no task started, no contended interval...): two
    # results that agree on it are equal, so a run still compares equal to its replay.
    return (True, 0.0) if value != value else (False, value)


def _nan_equal(cls: type, fields: list[Attribute[Any]]) -> list[Attribute[Any]]:
    """attrs field transformer: float fields compare nan as equal to nan."""
    return [f.evolve(eq_key=_float_key) if f.type in (float, "float") else f for f in fields]


class Shares(Mapping[str, float]):
    """A read-only {key: fraction} mapping, comparable, hashable and picklable.

    (`types.MappingProxyType` cannot be pickled or deep-copied, and pandas deep-copies
    `DataFrame.attrs`, where `compare` keeps the results.)

    >>> shares = Shares({"a": 0.75, "b": 0.25})
    >>> shares["a"], len(shares), shares == {"a": 0.75, "b": 0.25}
    (0.75, 2, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> None:
        self._items: dict[str, float] = dict(items)

    @classmethod
    def adopt(cls, items: dict[str, float]) -> Shares:
        """Wrap `items` without copying it (the caller must not change it afterwards)."""
        shares = cls.__new__(cls)
        shares._items = items
        return shares

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Shares):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"Shares({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Shares, (self._items,))


@frozen(field_transformer=_nan_equal)
class KeyStats:
    """Per-key outcome of a run. Times in seconds; slowdown is (wait + service) / service.

    `first_service` is the time from the key's first arrival to its first start (nan if none
    started); `share` its fraction of all the service started in the run; `bounded_slowdown`
    the mean of max(1, (wait + service) / max(service, tau)). `starvation_episodes` counts its
    unserved stretches past the starvation limit and `longest_gap` is the longest of those.
    """

    key: str
    weight: float
    count: int
    expired: int
    missed: int
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_p99: float
    wait_max: float
    slowdown_mean: float
    service: float
    starvation_episodes: int
    longest_gap: float
    #: (wait upper bound, tasks) pairs, ascending; the first pair counts waits of 0.
    wait_histogram: tuple[tuple[float, int], ...] = field(repr=False)
    first_service: float = math.nan
    share: float = math.nan
    bounded_slowdown: float = math.nan

    def wait_cdf(self) -> tuple[list[float], list[float]]:
        """Points (waits, fraction of this key's tasks waiting at most that long)."""
        xs: list[float] = []
        ys: list[float] = []
        seen = 0
        for value, count in self.wait_histogram:
            seen += count
            xs.append(value)
            ys.append(seen / self.count if self.count else math.nan)
        return xs, ys


@frozen(field_transformer=_nan_equal)
class FairnessPoint:
    """How the service delivered in [start, end) was shared among the backlogged keys.

    `keys` are the keys backlogged or served at some time in the interval (`backlogged` is
    their number), `contended` the number of those backlogged for the whole of it. `received`
    maps each of `keys` to its fraction of the service delivered in the interval, `entitled`
    to its weight over the total weight of `keys`. Over the contended keys (at least 2, else
    both are nan): `jain` is Jain's index of received / entitled, and `contention_share` the
    smallest received / entitled, capped at 1 (1: no contended key got less than its
    entitlement).
    """

    start: float
    end: float
    jain: float
    backlogged: int
    contention_share: float = math.nan
    contended: int = 0
    #: Seconds of service delivered in the interval, per key (keys that got none left out).
    service: Shares = field(factory=Shares, repr=False)
    keys: frozenset[str] = field(factory=frozenset, repr=False)
    #: Weights other than 1 of the run's keys (one mapping shared by every point).
    weights: Shares = field(factory=Shares, repr=False)

    @property
    def received(self) -> Shares:
        """{key: fraction of the interval's service it received}, for each of `keys`."""
        service = self.service
        total = math.fsum(service.values())
        return Shares.adopt({k: service.get(k, 0.0) / total for k in sorted(self.keys)})

    @property
    def entitled(self) -> Shares:
        """{key: its weight / the total weight of `keys`}, for each of `keys`."""
        weights = self.weights
        total = math.fsum(weights.get(k, 1.0) for k in self.keys)
        return Shares.adopt({k: weights.get(k, 1.0) / total for k in sorted(self.keys)})


@frozen(field_transformer=_nan_equal)
class Record:
    """One task's path through a recorded run (`simulate(..., record=True)`)."""

    id: str
    key: str
    arrival: float
    dispatched: float
    started: float
    finished: float
    expired: bool = False
    #: Position in the dispatch sequence (0 first); -1 for a task that expired unserved.
    order: int = -1


@frozen(field_transformer=_nan_equal)
class RunResult:
    """What one simulated run measured; comparable with `==` (same inputs, same result).

    The model it ran (`workers`, `window`, `dispatch`, `overhead`, `latency`, `loop`) comes
    first; `window` is `math.inf` for forwarding everything to the broker. Fairness:
    `jain_share` and `contention_share` are means over the timeline's intervals (see
    `FairnessPoint`), `contention_share_min` the worst interval. `jain_slowdown` (Jain's index
    of the per-key mean slowdowns) and `max_min_slowdown` compare keys' slowdowns; they are not
    fairness measures on heavy-tailed traces, where FIFO can score best. Starvation uses the
    fixed `starvation_threshold` (seconds) when one was given, else `starvation_factor` x each
    key's fair gap (`starvation_threshold` is then nan). Every field is defined in the
    "Metrics" section of docs/simulator.md.
    """

    policy: str
    workers: int
    window: float
    tasks: int
    completed: int
    expired: int
    missed: int
    makespan: float
    throughput: float
    utilisation: float
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_p99: float
    wait_max: float
    slowdown_mean: float
    jain_slowdown: float
    jain_share: float
    max_min_slowdown: float
    starvation_episodes: int
    starvation_threshold: float
    mean_in_system: float
    per_key: tuple[KeyStats, ...] = field(repr=False)
    timeline: tuple[FairnessPoint, ...] = field(repr=False)
    records: tuple[Record, ...] | None = field(default=None, repr=False)
    dispatch: str = "late"
    overhead: float = 0.0
    latency: float = 0.0
    loop: str = "open"
    first_service_mean: float = math.nan
    first_service_max: float = math.nan
    bounded_slowdown_mean: float = math.nan
    slowdown_tau: float = math.nan
    contention_share: float = math.nan
    contention_share_min: float = math.nan
    starvation_factor: float = math.nan
    starved_tasks_fraction: float = math.nan

    def key(self, name: str) -> KeyStats:
        """The stats of key `name` (KeyError if it never appeared)."""
        for stats in self.per_key:
            if stats.key == name:
                return stats
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        """The scalar fields as a dict (what `compare` puts in a row)."""
        skip = {"per_key", "timeline", "records"}
        return asdict(self, filter=lambda a, _: a.name not in skip)


class Interval(NamedTuple):
    """A closed timeline interval: service delivered per key, who was backlogged."""

    #: Seconds of service delivered in the interval, per key (not divided by weight).
    service: dict[str, float]
    #: Keys backlogged at some time in the interval.
    active: frozenset[str]
    #: Keys backlogged for the whole interval.
    held: frozenset[str]


@define
class Timeline:
    """Service per key and backlogged keys per time interval; intervals double when too many.

    Everything is read from the key accumulators when an interval closes, so the engine does
    no per-task work for the timeline, and closing an interval looks closely only at the keys
    *touched* in it: those whose unserved stretch restarted in it (`since`: an arrival to an
    empty backlog, a start or an expiry). Any other key started no task, and its backlog,
    empty or not, stayed so all through the interval.

    Service is counted as delivered: a task running across a boundary is split between the
    intervals it overlaps. A task's whole service is in its key's `service_sum` from its
    start; an interval is credited the growth of `service_sum` over it, plus the parts carried
    in at its start, minus the parts of tasks still running at its end (`roll` is told their
    finish times). A key was backlogged for the whole interval if it was at its start
    (`backlogged`) and its backlog did not empty in it (`emptied`).
    """

    step: float
    stats: Mapping[str, KeyAccumulator]
    origin: float = 0.0
    max_points: int = 256
    boundary: float = 0.0
    closed: list[Interval] = field(factory=list)
    #: Service of the open interval besides the growth of `service_sum` since it opened: parts
    #: carried in at its start, and the closed interval merged into it when intervals doubled.
    service: dict[str, float] = field(factory=dict)
    #: Each key's `service_sum` when the open interval began (absent: 0).
    credited: dict[str, float] = field(factory=dict)
    #: Start of the open interval's own part (the rest was merged in from a closed one).
    opened: float = 0.0
    #: Keys backlogged when the open interval began.
    backlogged: frozenset[str] = frozenset()
    #: Of the part merged in when intervals doubled: keys backlogged in it, for all of it.
    merged_active: frozenset[str] = frozenset()
    merged_held: frozenset[str] | None = None

    def start(self, origin: float) -> None:
        """Begin the first interval at `origin`."""
        self.origin = self.opened = origin
        self.boundary = origin + self.step

    def roll(self, running: Iterable[tuple[str, float]]) -> None:
        """Close the open interval at `boundary`, given the state at that instant.

        `running` is (key, finish time) for each task in service, whose whole service was
        credited when it started.
        """
        boundary = self.boundary
        after: dict[str, float] = {}
        for key, finish in running:
            if finish > boundary:
                after[key] = after.get(key, 0.0) + finish - boundary
        stats = self.stats
        touched = self._touched()
        self.closed.append(self._interval(touched, after))
        credited = self.credited
        for key in touched:
            credited[key] = stats[key].service_sum
        still = [k for k in touched if stats[k].waiting]
        self.backlogged = self.backlogged.difference(touched).union(still)
        self.service = after
        self.merged_active = frozenset()
        self.merged_held = None
        self.opened = boundary
        self.boundary += self.step
        if len(self.closed) >= self.max_points:
            self._coarsen()

    def _touched(self) -> list[str]:
        # A list in the accumulators' order, not a set: the order in which service is summed
        # must not depend on string hashing, which differs between processes.
        opened = self.opened
        return [k for k, a in self.stats.items() if a.since >= opened]

    def _interval(self, touched: list[str], after: Mapping[str, float]) -> Interval:
        """The open interval as it stands, less `after`: service delivered past its end."""
        stats = self.stats
        credited = self.credited
        service = dict(self.service)
        for key in touched:
            grown = stats[key].service_sum - credited.get(key, 0.0)
            if grown:
                service[key] = service.get(key, 0.0) + grown
        for key, value in after.items():
            service[key] = service.get(key, 0.0) - value
        opened = self.opened
        held = self.backlogged.difference([k for k in touched if stats[k].emptied >= opened])
        if self.merged_held is not None:
            held &= self.merged_held
        return Interval(service, self.backlogged.union(self.merged_active, touched), held)

    def _coarsen(self) -> None:
        merged: list[Interval] = []
        pairs = self.closed
        for i in range(0, len(pairs) - 1, 2):
            first, second = pairs[i], pairs[i + 1]
            total = dict(first.service)
            for key, value in second.service.items():
                total[key] = total.get(key, 0.0) + value
            merged.append(Interval(total, first.active | second.active, first.held & second.held))
        leftover = pairs[-1] if len(pairs) % 2 else None
        self.step *= 2
        if leftover is not None:
            # The odd interval becomes the first half of the open one.
            for key, value in leftover.service.items():
                self.service[key] = self.service.get(key, 0.0) + value
            self.merged_active = leftover.active
            self.merged_held = leftover.held
        self.closed = merged
        self.boundary = self.origin + self.step * (len(merged) + 1)

    def points(self) -> tuple[FairnessPoint, ...]:
        """One point per interval that delivered service, the open one included."""
        out = []
        weights = Shares.adopt({k: a.weight for k, a in self.stats.items() if a.weight != 1.0})
        last = self._interval(self._touched(), {})
        for i, (service, active, held) in enumerate([*self.closed, last]):
            # Round-off of the carried parts can leave -1e-13 where nothing was delivered.
            delivered = {k: v for k, v in service.items() if v > 0.0}
            total = math.fsum(delivered.values())
            if not total > 0.0:
                continue
            # A key served only by a task carried in from before may not be in `active`.
            involved = active if delivered.keys() <= active else active.union(delivered)
            # fsum: exact whatever the order of the set.
            weight_sum = (
                math.fsum(weights.get(k, 1.0) for k in involved)
                if weights
                else float(len(involved))
            )
            # received / entitled = (s_k / total) / (w_k / weight_sum)
            scale = weight_sum / total
            ratios = [delivered.get(k, 0.0) * scale / weights.get(k, 1.0) for k in sorted(held)]
            contended = len(ratios) >= 2
            start = self.origin + i * self.step
            out.append(
                FairnessPoint(
                    start,
                    start + self.step,
                    jain(ratios) if contended else math.nan,
                    len(involved),
                    min(min(ratios), 1.0) if contended else math.nan,
                    len(ratios),
                    Shares.adopt(delivered),
                    involved,
                    weights,
                )
            )
        return tuple(out)


def mean_of(values: Iterable[float]) -> float:
    """The mean of the values that are not nan (nan if there are none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
