"""Workload generators: deterministic trace rows from a seed.

Every generator is a lazy iterator of rows `(key, arrival, service, deadline, cost)` in arrival
order, driven by one `random.Random(seed)`: the same arguments give the same trace. Write one to
disk with `write_trace(path, rows)` or keep it in memory with `Trace.from_rows(rows)`.

>>> from simulator import poisson
>>> rows = list(poisson(3, rate=1.0, seed=7))
>>> rows == list(poisson(3, rate=1.0, seed=7)), [r[0] for r in rows]
(True, ['k0', 'k0', 'k0'])
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect
from collections.abc import Callable, Iterator
from itertools import accumulate

from ._trace import Row

SERVICE_KINDS = ("exp", "det", "lognormal", "pareto")


def service_sampler(
    rng: random.Random, kind: str = "exp", mean: float = 1.0, sigma: float = 1.0, alpha: float = 2.5
) -> Callable[[], float]:
    """A function drawing service times with the given `mean` (seconds).

    `kind`: "exp" (exponential), "det" (always `mean`), "lognormal" (shape `sigma`) or
    "pareto" (shape `alpha` > 1).
    """
    if not mean > 0:
        raise ValueError(f"mean service must be > 0, got {mean!r}")
    if kind == "exp":
        rate = 1.0 / mean
        return lambda: rng.expovariate(rate)
    if kind == "det":
        return lambda: mean
    if kind == "lognormal":
        mu = math.log(mean) - sigma * sigma / 2
        return lambda: rng.lognormvariate(mu, sigma)
    if kind == "pareto":
        if not alpha > 1:
            raise ValueError(f"pareto alpha must be > 1 for a finite mean, got {alpha!r}")
        scale = mean * (alpha - 1) / alpha
        return lambda: scale * rng.paretovariate(alpha)
    raise ValueError(f"unknown service kind {kind!r}; valid: {', '.join(SERVICE_KINDS)}")


def zipf_picker(rng: random.Random, keys: list[str], s: float) -> Callable[[], str]:
    """A function drawing keys[i] with probability proportional to 1 / (i + 1) ** s."""
    if len(keys) == 1:
        only = keys[0]
        return lambda: only
    cumulative = list(accumulate(1.0 / (i + 1) ** s for i in range(len(keys))))
    total = cumulative[-1]
    last = len(keys) - 1
    return lambda: keys[min(bisect(cumulative, rng.random() * total), last)]


def _positive(value: float) -> float:
    # A sampler can round to 0.0 (exponential draws near 0); the trace format needs > 0.
    return value if value > 0 else 5e-324


def poisson(
    n: int,
    rate: float,
    *,
    keys: int = 1,
    zipf: float = 0.0,
    service: str = "exp",
    mean_service: float = 1.0,
    sigma: float = 1.0,
    alpha: float = 2.5,
    deadline_slack: float | None = None,
    seed: int = 0,
    prefix: str = "k",
) -> Iterator[Row]:
    """`n` tasks with Poisson arrivals at `rate` per second over `keys` keys.

    Key i is drawn with probability proportional to 1/(i+1)**zipf (0 = uniform). With
    `deadline_slack`, each task's deadline is its arrival plus that many seconds.
    """
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    rng = random.Random(seed)
    draw = service_sampler(rng, service, mean_service, sigma, alpha)
    pick = zipf_picker(rng, [f"{prefix}{i}" for i in range(keys)], zipf)
    expo = rng.expovariate
    at = 0.0
    for _ in range(n):
        at += expo(rate)
        due = None if deadline_slack is None else at + deadline_slack
        yield (pick(), at, _positive(draw()), due, None)


def flood(
    burst: int,
    *,
    light_keys: int = 10,
    light_rate: float = 1.0,
    duration: float = 100.0,
    burst_at: float = 10.0,
    service: str = "exp",
    mean_service: float = 1.0,
    seed: int = 0,
) -> Iterator[Row]:
    """Light keys `user0..` trickle Poisson tasks at `light_rate` in total for `duration`
    seconds, while key `flood` dumps `burst` tasks at the single instant `burst_at`."""
    rng = random.Random(seed)
    draw = service_sampler(rng, service, mean_service)
    pick = zipf_picker(rng, [f"user{i}" for i in range(light_keys)], 0.0)
    at = rng.expovariate(light_rate)
    flooded = False
    while True:
        if not flooded and (at >= burst_at or at >= duration):
            for _ in range(burst):
                yield ("flood", burst_at, _positive(draw()), None, None)
            flooded = True
        if at >= duration:
            return
        yield (pick(), at, _positive(draw()), None, None)
        at += rng.expovariate(light_rate)


def sybil(
    n: int,
    rate: float,
    *,
    honest_keys: int = 10,
    sybil_keys: int = 50,
    sybil_share: float = 0.5,
    service: str = "exp",
    mean_service: float = 1.0,
    seed: int = 0,
) -> Iterator[Row]:
    """`n` Poisson tasks: a `sybil_share` of them from one tenant spread evenly over
    `sybil_keys` keys `sybil0..`, the rest evenly over `honest_keys` keys `user0..`."""
    if not 0 <= sybil_share <= 1:
        raise ValueError(f"sybil_share must be in [0, 1], got {sybil_share!r}")
    rng = random.Random(seed)
    draw = service_sampler(rng, service, mean_service)
    honest = [f"user{i}" for i in range(honest_keys)]
    fake = [f"sybil{i}" for i in range(sybil_keys)]
    at = 0.0
    for _ in range(n):
        at += rng.expovariate(rate)
        group = fake if rng.random() < sybil_share else honest
        yield (group[rng.randrange(len(group))], at, _positive(draw()), None, None)


def diurnal(
    duration: float,
    *,
    base_rate: float,
    peak_rate: float,
    period: float = 86_400.0,
    keys: int = 10,
    zipf: float = 1.0,
    service: str = "exp",
    mean_service: float = 1.0,
    seed: int = 0,
) -> Iterator[Row]:
    """Poisson arrivals for `duration` seconds whose rate swings from `base_rate` (at t = 0)
    to `peak_rate` (at half a `period`) and back, as a cosine; drawn by thinning."""
    if not (0 < base_rate <= peak_rate):
        raise ValueError("need 0 < base_rate <= peak_rate")
    rng = random.Random(seed)
    draw = service_sampler(rng, service, mean_service)
    pick = zipf_picker(rng, [f"k{i}" for i in range(keys)], zipf)
    swing = peak_rate - base_rate
    at = 0.0
    while True:
        at += rng.expovariate(peak_rate)
        if at >= duration:
            return
        rate = base_rate + swing * (1 - math.cos(2 * math.pi * at / period)) / 2
        if rng.random() * peak_rate <= rate:
            yield (pick(), at, _positive(draw()), None, None)


def merge(*streams: Iterator[Row]) -> Iterator[Row]:
    """Interleave several sorted row streams into one, by arrival (stable)."""
    return heapq.merge(*streams, key=lambda row: row[1])
