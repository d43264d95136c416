"""Pure LRU: serve the backlogged key served longest ago."""

from __future__ import annotations

import heapq
from typing import ClassVar

from attrs import define, field, frozen

from ._job import Job
from ._queue import Backlog

#: Rank offset that puts never-served keys (ranked by first enqueue) before every served key
#: (ranked by dispatch counter). 2**52 keeps ranks exact as doubles, as the Redis twin needs.
NEVER_SERVED = -(2**52)


@define
class LruState:
    """Dispatch order per key and a heap of backlogged keys by that order."""

    backlog: Backlog
    last_served: dict[str, int] = field(factory=dict)
    heap: list[tuple[int, str]] = field(factory=list)
    counter: int = 0


@frozen
class PureLru:
    """Serve the backlogged key whose last dispatch is oldest; never-served keys first.

    Recency is the order of dispatches, not a timestamp, so two keys served at the same instant
    are still ordered. A key whose backlog empties keeps its rank and does not go to the back
    when it returns. Guarantee: with K keys backlogged, each is served within K dispatches.
    """

    name: ClassVar[str] = "lru"

    def new_state(self, backlog: Backlog) -> LruState:
        return LruState(backlog)

    @staticmethod
    def _rank(state: LruState, key: str) -> int:
        served = state.last_served.get(key)
        return served if served is not None else NEVER_SERVED + state.backlog.first_seen[key]

    def on_activate(self, state: LruState, key: str, now: float) -> None:
        heapq.heappush(state.heap, (self._rank(state, key), key))

    def pick(self, state: LruState, now: float) -> str | None:
        heap, queues = state.heap, state.backlog.queues
        # Entries go stale when their key is served or empties; they are dropped on reaching
        # the top, so each costs one pop in all.
        while heap:
            rank, key = heap[0]
            if key in queues and rank == self._rank(state, key):
                return key
            heapq.heappop(heap)
        return None

    def on_dispatch(self, state: LruState, key: str, job: Job, now: float) -> None:
        state.counter += 1
        state.last_served[key] = state.counter
        if key in state.backlog.queues:
            heapq.heappush(state.heap, (state.counter, key))

    def on_head_change(self, state: LruState, key: str, now: float) -> None:
        pass

    def on_deactivate(self, state: LruState, key: str, now: float) -> None:
        pass

    def on_complete(self, state: LruState, job: Job, runtime: float) -> None:
        pass

    def on_weight_change(self, state: LruState, key: str, now: float) -> None:
        pass
