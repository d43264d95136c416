"""Run results (frozen values) and the streaming accumulators the engine fills.

Waits are kept per key in a log-binned histogram with a bounded range: bins grow by `GAMMA`
between `WAIT_FLOOR` and `WAIT_CAP`, so a reported percentile is within `SKETCH_ERROR` (under
0.5%) of the true one; waits of 0 are counted exactly, waits in (0, `WAIT_FLOOR`] share the
lowest bin (absolute error under `WAIT_FLOOR`) and waits above `WAIT_CAP` share the top one.
Each key's bins are one dense array covering the bins it has used, at most `MAX_BIN - MIN_BIN
+ 1` counters (24 KB), so memory grows with the number of keys, never with the trace length.
Percentiles are nearest-rank over that histogram.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any

from attrs import asdict, define, field, frozen

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
    service_sum: float = 0.0
    zero_waits: int = 0
    #: Counts of waits > 0 per log bin; `bins[i]` is bin `low + i`. The engine increments a
    #: bin in place when it is in range and calls `count_wait` otherwise.
    bins: array[int] = field(factory=lambda: array("q"))
    low: int = 0
    #: Tasks arrived and not yet started (in the policy's backlog or the broker queue).
    waiting: int = 0
    #: Start of the current unserved stretch: the later of the last start and the arrival
    #: that made the key backlogged.
    since: float = 0.0
    starvation_episodes: int = 0
    longest_gap: float = 0.0
    #: Time expired tasks spent in the system (for Little's law).
    expired_wait_sum: float = 0.0

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


def quantiles(zero: int, bins: Mapping[int, int], qs: Iterable[float]) -> list[float]:
    """Nearest-rank quantiles over `zero` zero waits plus a log-binned histogram."""
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
        out.append(value)
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


@frozen
class KeyStats:
    """Per-key outcome of a run. Times in seconds; slowdown is (wait + service) / service."""

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


@frozen
class FairnessPoint:
    """Jain's index over the weighted service of the keys backlogged in [start, end)."""

    start: float
    end: float
    jain: float
    backlogged: int


@frozen
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


@frozen
class RunResult:
    """What one simulated run measured; comparable with `==` (same inputs, same result).

    `window` is `math.inf` for forwarding everything to the broker. `jain_share` is the mean
    of the timeline's points (service shares of backlogged keys); `jain_slowdown` is over the
    per-key mean slowdowns; `max_min_slowdown` is the largest over the smallest of those.
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


@define
class Timeline:
    """Per-interval weighted service and backlogged keys; intervals double when too many."""

    step: float
    origin: float = 0.0
    max_points: int = 256
    boundary: float = 0.0
    #: Closed intervals: (weighted service per key, keys backlogged during it).
    closed: list[tuple[dict[str, float], set[str]]] = field(factory=list)
    service: dict[str, float] = field(factory=dict)
    active: set[str] = field(factory=set)

    def start(self, origin: float) -> None:
        """Begin the first interval at `origin`."""
        self.origin = origin
        self.boundary = origin + self.step

    def roll(self, now: float, backlogged: Iterator[str]) -> None:
        """Close every interval ending at or before `now`; `backlogged` are the waiting keys."""
        waiting = set(backlogged)
        while now >= self.boundary:
            self.closed.append((self.service, self.active | waiting))
            self.service = {}
            self.active = set(waiting)
            self.boundary += self.step
            if len(self.closed) >= self.max_points:
                self._coarsen()

    def _coarsen(self) -> None:
        merged: list[tuple[dict[str, float], set[str]]] = []
        pairs = self.closed
        for i in range(0, len(pairs) - 1, 2):
            (s1, a1), (s2, a2) = pairs[i], pairs[i + 1]
            total = dict(s1)
            for key, value in s2.items():
                total[key] = total.get(key, 0.0) + value
            merged.append((total, a1 | a2))
        leftover = pairs[-1] if len(pairs) % 2 else None
        self.step *= 2
        if leftover is not None:
            # The odd interval becomes the first half of the open one.
            for key, value in leftover[0].items():
                self.service[key] = self.service.get(key, 0.0) + value
            self.active |= leftover[1]
        self.closed = merged
        self.boundary = self.origin + self.step * (len(merged) + 1)

    def points(self) -> tuple[FairnessPoint, ...]:
        """Jain's index per interval, the open one included; intervals with no service skipped."""
        out = []
        intervals = [*self.closed, (self.service, self.active)]
        for i, (service, active) in enumerate(intervals):
            keys = active | set(service)
            value = jain(service.get(k, 0.0) for k in keys)
            if not math.isnan(value):
                start = self.origin + i * self.step
                out.append(FairnessPoint(start, start + self.step, value, len(keys)))
        return tuple(out)
