"""Weighted LRU: start-time fair queuing over dispatches."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import ClassVar

from attrs import define, field, frozen

from ._backlog import Backlog
from ._job import Job
from ._lua import LuaTwin
from ._options import frozen_weights
from ._protocol import DefaultHooks


@define
class WeightedLruState:
    """Virtual time, each key's next start tag, and a heap of backlogged keys by tag."""

    backlog: Backlog
    vtime: float = 0.0
    tags: dict[str, float] = field(factory=dict)
    heap: list[tuple[float, int, str]] = field(factory=list)


@frozen
class WeightedLru(DefaultHooks):
    """Give each backlogged key a share of dispatches proportional to its weight.

    Start-time fair queuing (Goyal et al., 1996) with every task counted as one unit: a key's
    start tag advances by 1/w per dispatch, the smallest tag goes next (ties by first enqueue),
    and a key that becomes backlogged starts at max(virtual time, its old tag), so idling earns
    no credit and costs no place. Guarantee, for keys backlogged together from one instant with
    total weight W over K keys: after n dispatches key k has had between
    n*w_k/W - K*w_k/W and n*w_k/W + 1 of them.
    """

    name: ClassVar[str] = "weighted_lru"
    weights: Mapping[str, float] = field(factory=dict, converter=frozen_weights)

    def lua_twin(self) -> LuaTwin:
        """Its Lua twin, for RedisStorage (policies/lua/weighted_lru.lua)."""
        return LuaTwin("policies", "lua/weighted_lru.lua")

    def new_state(self, backlog: Backlog) -> WeightedLruState:
        return WeightedLruState(backlog)

    def on_activate(self, state: WeightedLruState, key: str, now: float) -> None:
        tag = max(state.vtime, state.tags.get(key, state.vtime))
        state.tags[key] = tag
        heapq.heappush(state.heap, (tag, state.backlog.first_seen[key], key))

    def _top_tag(self, state: WeightedLruState) -> float:
        heap, queues, tags = state.heap, state.backlog.queues, state.tags
        while heap:
            tag, _, key = heap[0]
            if key in queues and tags[key] == tag:
                return tag
            heapq.heappop(heap)
        return math.inf

    def pick(self, state: WeightedLruState, now: float) -> str | None:
        # `_top_tag`, inlined (the simulator's hot path).
        heap, queues, tags = state.heap, state.backlog.queues, state.tags
        while heap:
            tag, _, key = heap[0]
            if key in queues and tags[key] == tag:
                return None if tag == math.inf else key
            heapq.heappop(heap)
        return None

    def on_dispatch(self, state: WeightedLruState, key: str, job: Job, now: float) -> None:
        heap, backlog, tags = state.heap, state.backlog, state.tags
        queues = backlog.queues
        old = tags[key]
        top = math.inf  # `_top_tag`, inlined
        while heap:
            top, _, other = heap[0]
            if other in queues and tags[other] == top:
                break
            heapq.heappop(heap)
        else:
            top = math.inf
        # Virtual time is the smallest start tag among the keys backlogged before this
        # dispatch; taking the min also keeps it from jumping when a key is served out of turn.
        state.vtime = max(state.vtime, min(old, top))
        tag = old + 1.0 / backlog.weights.get(key, 1.0)
        tags[key] = tag
        if key in queues:
            entry = (tag, backlog.first_seen[key], key)
            if top == old and heap[0][2] == key:
                heapq.heapreplace(heap, entry)  # one sift instead of a push and a later pop
            else:
                heapq.heappush(heap, entry)
