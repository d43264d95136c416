"""shortest_first: serve the key whose tasks are expected to be shortest, with aging.

An example third-party fairsched policy (see README.md). Registered by its distribution's
entry point, so `{"policy": "shortest_first"}` works in configuration, in `fairsched simulate`,
and in both storages (Redis through its Lua twin, `lua/shortest_first.lua`).
"""

from __future__ import annotations

import heapq
import math
from typing import ClassVar

from attrs import define, field, frozen

from policies import Backlog, DefaultHooks, Job, LuaTwin, PolicyError

__all__ = ["ShortestFirst", "ShortestFirstState"]


def _age(instance: object, attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise PolicyError(f"shortest_first option 'age' must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise PolicyError(f"shortest_first option 'age' must be finite, got {value!r}")


def _alpha(instance: object, attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise PolicyError(f"shortest_first option 'alpha' must be in (0, 1], got {value!r}")


@define
class ShortestFirstState:
    """What changes: each backlogged key's score (and a heap of them), the run-time estimates,
    the dispatch count when each key was last served."""

    backlog: Backlog
    #: (score, first-seen ordinal, key); an entry whose score is not the key's current one is
    #: stale and dropped when it reaches the top.
    heap: list[tuple[float, int, str]] = field(factory=list)
    score: dict[str, float] = field(factory=dict)
    estimate: dict[str, float] = field(factory=dict)
    last: dict[str, int] = field(factory=dict)
    dispatches: int = 0


@frozen
class ShortestFirst(DefaultHooks):
    """Shortest expected task first, aged so no key starves.

    A key's score is its run-time estimate (EWMA, factor `alpha`, of its finished tasks' run
    times; 0 before any) plus `age` (seconds per dispatch) times the dispatch count when it was
    last served (when it was first backlogged, if never); the lowest score is served, ties in
    first-seen order. A backlogged key is served within `max estimate / age + K` dispatches.
    """

    name: ClassVar[str] = "shortest_first"

    age: float = field(default=0.01, validator=_age)
    alpha: float = field(default=0.2, validator=_alpha)

    def lua_twin(self) -> LuaTwin:
        """The twin RedisStorage runs (package data of this distribution)."""
        options = {"age": self.age, "alpha": self.alpha}
        return LuaTwin("fairsched_shortest_first", "lua/shortest_first.lua", options=options)

    def new_state(self, backlog: Backlog) -> ShortestFirstState:
        """A fresh state over `backlog`."""
        return ShortestFirstState(backlog)

    def _push(self, state: ShortestFirstState, key: str) -> None:
        # The same float operations as the twin's rescore(), in the same order.
        score = state.estimate.get(key, 0.0) + self.age * state.last[key]
        state.score[key] = score
        heapq.heappush(state.heap, (score, state.backlog.first_seen[key], key))

    def on_activate(self, state: ShortestFirstState, key: str, now: float) -> None:
        """Score the key: never served, it counts as served now."""
        state.last.setdefault(key, state.dispatches)
        self._push(state, key)

    def pick(self, state: ShortestFirstState, now: float) -> str | None:
        """The backlogged key with the lowest score."""
        heap = state.heap
        while heap:
            score, _, key = heap[0]
            if state.score.get(key) == score:
                return key
            heapq.heappop(heap)
        return None

    def on_dispatch(self, state: ShortestFirstState, key: str, job: Job, now: float) -> None:
        """Count the dispatch; the key is served now, and re-scored if still backlogged."""
        state.dispatches += 1
        state.last[key] = state.dispatches
        if state.backlog.sizes.get(key):
            self._push(state, key)
        else:
            state.score.pop(key, None)

    def on_deactivate(self, state: ShortestFirstState, key: str, now: float) -> None:
        """The key's last task was withdrawn: it leaves the heap."""
        state.score.pop(key, None)

    def on_complete(self, state: ShortestFirstState, job: Job, runtime: float) -> None:
        """Update the key's estimate (re-scoring it if it is backlogged)."""
        old = state.estimate.get(job.key)
        state.estimate[job.key] = (
            runtime if old is None else self.alpha * runtime + (1 - self.alpha) * old
        )
        if job.key in state.score:
            self._push(state, job.key)
