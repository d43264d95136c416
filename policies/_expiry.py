"""Expiry-aware wrapper: earliest deadline first for urgent keys, else the inner policy."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import define, field, frozen

from ._backlog import Backlog
from ._errors import PolicyError
from ._job import Job
from ._lru import PureLru
from ._lua import LuaTwin, lua_twin
from ._options import non_negative
from ._protocol import Policy


@define
class ExpiryAwareState:
    """The inner policy's state and a heap of key heads by deadline."""

    backlog: Backlog
    inner: Any
    #: (deadline, first seen, seq, key, job): a key's head by deadline. The job itself marks
    #: the entry (an id may be queued again); seq orders entries of one key, never two keys.
    heads: list[tuple[float, int, int, str, Job]] = field(factory=list)


def _check_inner(instance: Any, attribute: Any, value: Any) -> None:
    if not (hasattr(value, "new_state") and hasattr(value, "pick")):
        raise PolicyError(
            f"inner must be a policy, got {type(value).__name__}; configuration names "
            "(inner='drr') are built by from_config"
        )


@frozen
class ExpiryAware:
    """Serve a key whose head task is due within `slack` seconds first, earliest deadline first.

    Every policy already withdraws tasks whose deadline has passed (they are handed back as
    expired, never dispatched); this wrapper also orders by urgency. A key whose head deadline
    is at most `now + slack` goes before all others; otherwise `inner` decides. Guarantee: an
    urgent head is never passed over for a non-urgent one, and with a slack covering the whole
    horizon every deadline an earliest-deadline-first order meets is met.
    """

    name: ClassVar[str] = "expiry_aware"
    inner: Policy[Any] = field(factory=PureLru, validator=_check_inner)
    slack: float = field(default=1.0, validator=non_negative)

    @property
    def weights(self) -> Mapping[str, float]:
        """The inner policy's configured weights."""
        return self.inner.weights

    def lua_twin(self) -> LuaTwin | None:
        """Its Lua twin wrapping the inner policy's (policies/lua/expiry_aware.lua); None
        when the inner policy has none."""
        inner = lua_twin(self.inner)
        if inner is None:
            return None
        return LuaTwin(
            "policies", "lua/expiry_aware.lua", options={"slack": self.slack}, inner=inner
        )

    def new_state(self, backlog: Backlog) -> ExpiryAwareState:
        return ExpiryAwareState(backlog, self.inner.new_state(backlog))

    def _track_head(self, state: ExpiryAwareState, key: str) -> None:
        head = state.backlog.head(key)
        if head.deadline is not None:
            backlog = state.backlog
            entry = (head.deadline, backlog.first_seen[key], backlog.next_seq(), key, head)
            heapq.heappush(state.heads, entry)

    def on_activate(self, state: ExpiryAwareState, key: str, now: float) -> None:
        self.inner.on_activate(state.inner, key, now)
        self._track_head(state, key)

    def pick(self, state: ExpiryAwareState, now: float) -> str | None:
        heads, queues = state.heads, state.backlog.queues
        while heads:
            deadline, _, _, key, job = heads[0]
            queue = queues.get(key)
            if queue is not None and queue[0] is job:
                if deadline <= now + self.slack:
                    return key
                break
            heapq.heappop(heads)
        return self.inner.pick(state.inner, now)

    def on_dispatch(self, state: ExpiryAwareState, key: str, job: Job, now: float) -> None:
        self.inner.on_dispatch(state.inner, key, job, now)
        if key in state.backlog.queues:
            self._track_head(state, key)

    def on_head_change(self, state: ExpiryAwareState, key: str, now: float) -> None:
        self.inner.on_head_change(state.inner, key, now)
        self._track_head(state, key)

    def on_deactivate(self, state: ExpiryAwareState, key: str, now: float) -> None:
        self.inner.on_deactivate(state.inner, key, now)

    def on_complete(self, state: ExpiryAwareState, job: Job, runtime: float) -> None:
        self.inner.on_complete(state.inner, job, runtime)

    def on_weight_change(self, state: ExpiryAwareState, key: str, now: float) -> None:
        self.inner.on_weight_change(state.inner, key, now)
