"""Deficit round-robin (Shreedhar and Varghese, 1995), fair in service time."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import ClassVar

from attrs import define, field, frozen
from attrs.validators import optional

from ._backlog import Backlog
from ._job import Job
from ._lua import LuaTwin
from ._options import frozen_weights, positive, unit_interval


@define
class DrrState:
    """Rounds, per-key deficits and a heap of backlogged keys by (visit round, position).

    A key's slot is the round of its next visit that can pay for its head task, and its
    position in the round. Rounds in which a key could not pay are skipped in one step (its
    credit accrues by `quantum * weight` per round), so a dispatch costs O(log K) whatever the
    ratio of cost to quantum.
    """

    backlog: Backlog
    round: int = 0
    positions: int = 0
    #: Mean (EWMA, factor alpha) of the costs charged at dispatch: the automatic quantum.
    mean_cost: float | None = None
    #: Mean (EWMA) of every measured run time: the cost of a key with no estimate of its own.
    mean_runtime: float | None = None
    slots: dict[str, tuple[int, int]] = field(factory=dict)
    base: dict[str, int] = field(factory=dict)
    deficit: dict[str, float] = field(factory=dict)
    estimate: dict[str, float] = field(factory=dict)
    heap: list[tuple[int, int, str]] = field(factory=list)


@frozen
class DeficitRoundRobin:
    """Serve keys in turn, letting each spend up to `quantum * weight` cost per round.

    A task's cost is its declared cost, else an exponentially weighted mean (factor `alpha`) of
    its key's measured run times, else the same mean over every key's run times (a new key
    is charged what tasks cost so far), else 1. `quantum`, when not set, follows the costs:
    it is the exponentially weighted mean (factor `alpha`) of the costs charged so far (1
    while no cost is known), so a key of average tasks gets about one per round whatever
    the unit or scale of the costs. A key that becomes backlogged joins the current round at
    its end with a zero deficit. Guarantee, for keys backlogged together from one instant, a
    fixed quantum and costs at most C: at every point the weighted service S_i/w_i of any two
    of them differ by at most `quantum + C / min(w_i, w_j)`. With the automatic quantum, a
    key that becomes backlogged behind K keys of cheap tasks is served within two rounds: at
    most 4K of their tasks (tested in tests/property/test_fairness_laws.py).
    """

    name: ClassVar[str] = "drr"
    quantum: float | None = field(default=None, validator=optional(positive))
    alpha: float = field(default=0.2, validator=unit_interval)
    weights: Mapping[str, float] = field(factory=dict, converter=frozen_weights)

    def lua_twin(self) -> LuaTwin:
        """Its Lua twin, for RedisStorage (policies/lua/drr.lua); quantum 0 means automatic."""
        options = {"quantum": self.quantum or 0.0, "alpha": self.alpha}
        return LuaTwin("policies", "lua/drr.lua", options=options)

    def new_state(self, backlog: Backlog) -> DrrState:
        return DrrState(backlog)

    def cost(self, state: DrrState, job: Job) -> float:
        """The cost charged for `job`: declared, else the key's estimate, else the mean run
        time of all keys, else 1."""
        known = self._known_cost(state, job)
        return 1.0 if known is None else known

    @staticmethod
    def _known_cost(state: DrrState, job: Job) -> float | None:
        if job.cost is not None:
            return job.cost
        found = state.estimate.get(job.key)
        return found if found is not None else state.mean_runtime

    def per_round(self, state: DrrState) -> float:
        """The quantum now: as configured, else the mean charged cost, else the mean run
        time (known before any known cost is charged), else 1; a mean of 0 (free tasks
        only) does not count, since a round must grant something."""
        if self.quantum is not None:
            return self.quantum
        for mean in (state.mean_cost, state.mean_runtime):
            if mean is not None and mean > 0:
                return mean
        return 1.0

    def _schedule(self, state: DrrState, key: str, pos: int, continuing: bool) -> None:
        backlog = state.backlog
        cost = self.cost(state, backlog.queues[key][0])
        deficit, base = state.deficit[key], state.base[key]
        if continuing and deficit >= cost:
            visit = base
        else:
            per_round = self.per_round(state) * backlog.weights.get(key, 1.0)
            visit = base + max(1, math.ceil((cost - deficit) / per_round))
        slot = (visit, pos)
        old = state.slots.get(key)
        if old == slot:
            return  # its heap entry is still valid
        state.slots[key] = slot
        heap = state.heap
        if old is not None and heap and heap[0] == (*old, key):
            heapq.heapreplace(heap, (visit, pos, key))  # one sift instead of push + later pop
        else:
            heapq.heappush(heap, (visit, pos, key))

    def _top(self, state: DrrState) -> tuple[int, int, str] | None:
        heap, slots = state.heap, state.slots
        while heap:
            visit, pos, key = heap[0]
            if slots.get(key) == (visit, pos):
                return heap[0]
            heapq.heappop(heap)
        return None

    def on_activate(self, state: DrrState, key: str, now: float) -> None:
        state.positions += 1
        state.base[key] = state.round - 1
        state.deficit[key] = 0.0
        self._schedule(state, key, state.positions, continuing=False)

    def pick(self, state: DrrState, now: float) -> str | None:
        top = self._top(state)
        return None if top is None else top[2]

    def on_dispatch(self, state: DrrState, key: str, job: Job, now: float) -> None:
        slots, heap = state.slots, state.heap
        visit, pos = slots[key]
        top_visit = None  # `_top`, inlined (the simulator's hot path)
        while heap:
            head = heap[0]
            if slots.get(head[2]) == (head[0], head[1]):
                top_visit = head[0]
                break
            heapq.heappop(heap)
        # Served in turn: the round advances to this visit. Served out of turn (a wrapper such
        # as expiry_aware chose it): it is charged in the current round and the round stays.
        current = visit if top_visit == visit else state.round
        state.round = current
        backlog, deficit, base = state.backlog, state.deficit, state.base
        known = self._known_cost(state, job)
        if known is not None:
            # The automatic quantum counts this cost before it grants the rounds' credit, so
            # credit is never granted at a scale the costs have left (the placeholder 1 says
            # nothing about the scale and is not counted).
            mean = state.mean_cost
            state.mean_cost = (
                known if mean is None else self.alpha * known + (1 - self.alpha) * mean
            )
        grant = self.per_round(state) * backlog.weights.get(key, 1.0)
        credit = deficit[key] + (current - base[key]) * grant
        base[key] = current
        left = credit - (1.0 if known is None else known)
        # Rounds skipped while the automatic quantum was larger would grant credit at a scale
        # the costs have left; a key banks at most one round's grant (with a fixed quantum
        # the credit left is below one grant anyway).
        deficit[key] = left if self.quantum is not None else min(left, grant)
        if key in backlog.queues:
            self._schedule(state, key, pos, continuing=True)
        else:
            del slots[key], base[key], deficit[key]  # `on_deactivate`, inlined

    def on_head_change(self, state: DrrState, key: str, now: float) -> None:
        visit, pos = state.slots[key]
        self._schedule(state, key, pos, continuing=visit == state.base[key])

    def on_deactivate(self, state: DrrState, key: str, now: float) -> None:
        del state.slots[key], state.base[key], state.deficit[key]

    def on_complete(self, state: DrrState, job: Job, runtime: float) -> None:
        alpha = self.alpha
        mean = state.mean_runtime
        state.mean_runtime = runtime if mean is None else alpha * runtime + (1 - alpha) * mean
        if job.cost is None:
            old = state.estimate.get(job.key)
            state.estimate[job.key] = (
                runtime if old is None else alpha * runtime + (1 - alpha) * old
            )

    def on_weight_change(self, state: DrrState, key: str, now: float) -> None:
        self.on_head_change(state, key, now)
