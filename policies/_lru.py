"""Pure LRU: serve the backlogged key served longest ago."""

from __future__ import annotations

import heapq
from collections import deque
from typing import ClassVar

from attrs import define, field, frozen

from ._backlog import Backlog
from ._job import Job
from ._lua import LuaTwin
from ._protocol import DefaultHooks

#: Rank offset that puts never-served keys (ranked by first enqueue) before every served key
#: (ranked by dispatch counter). 2**52 keeps ranks exact as doubles, as the Redis twin needs.
NEVER_SERVED = -(2**52)


@define
class LruState:
    """Each key's rank and the backlogged keys ordered by it, in two parts.

    A key served goes to the back: its new rank is the largest yet, so `served` (a FIFO) stays
    sorted by appending, in O(1). Keys that become backlogged (new, or returning with an old
    rank) go in `heap`. The next key is the smaller of the two fronts.
    """

    backlog: Backlog
    last_served: dict[str, int] = field(factory=dict)
    heap: list[tuple[int, str]] = field(factory=list)
    served: deque[tuple[int, str]] = field(factory=deque)
    counter: int = 0


@frozen
class PureLru(DefaultHooks):
    """Serve the backlogged key whose last dispatch is oldest; never-served keys first.

    Recency is the order of dispatches, not a timestamp, so two keys served at the same instant
    are still ordered. A key whose backlog empties keeps its rank and does not go to the back
    when it returns. Guarantee: with K keys backlogged, each is served within K dispatches.
    """

    name: ClassVar[str] = "lru"

    def lua_twin(self) -> LuaTwin:
        """Its Lua twin, for RedisStorage (policies/lua/lru.lua)."""
        return LuaTwin("policies", "lua/lru.lua")

    def new_state(self, backlog: Backlog) -> LruState:
        return LruState(backlog)

    @staticmethod
    def _rank(state: LruState, key: str) -> int:
        served = state.last_served.get(key)
        return served if served is not None else NEVER_SERVED + state.backlog.first_seen[key]

    def on_activate(self, state: LruState, key: str, now: float) -> None:
        # `_rank`, inlined: this runs once per activation on the simulator's hot path.
        served = state.last_served.get(key)
        rank = served if served is not None else NEVER_SERVED + state.backlog.first_seen[key]
        heapq.heappush(state.heap, (rank, key))

    def pick(self, state: LruState, now: float) -> str | None:
        heap, served, queues = state.heap, state.served, state.backlog.queues
        last_served, first_seen = state.last_served, state.backlog.first_seen
        # Entries go stale when their key is served or empties; they are dropped on reaching
        # the front, so each costs one pop in all.
        while heap:
            rank, key = heap[0]
            if key in queues:
                last = last_served.get(key)
                if rank == (last if last is not None else NEVER_SERVED + first_seen[key]):
                    break
            heapq.heappop(heap)
        while served:
            rank, key = served[0]
            if key in queues and rank == last_served[key]:
                break
            served.popleft()
        if heap and (not served or heap[0][0] < served[0][0]):
            return heap[0][1]
        return served[0][1] if served else None

    def on_dispatch(self, state: LruState, key: str, job: Job, now: float) -> None:
        counter = state.counter = state.counter + 1
        state.last_served[key] = counter
        if key in state.backlog.queues:
            state.served.append((counter, key))
