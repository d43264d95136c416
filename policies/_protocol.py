"""The interface every policy implements, built-in or third-party."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, TypeVar

from ._backlog import Backlog
from ._job import Job

StateT = TypeVar("StateT")


class Policy(Protocol[StateT]):
    """Decides which backlogged key is served next.

    A policy is frozen configuration; everything that changes lives in the state object it
    creates, which the fair queue owns and passes back to every hook. Hooks run in O(log K) for
    K backlogged keys, read no clock (time arrives as `now`, in seconds) and do no I/O. The
    queue keeps the backlogs itself (FIFO per key); hooks read them through `state`'s backlog
    and only maintain the policy's own index.

    Hook order for one key: `on_activate` when it becomes backlogged; then any mix of
    `on_dispatch` (its head was popped; it may now be empty), `on_head_change` (its head was
    withdrawn or a job was put back in front; still backlogged) and `on_weight_change`;
    `on_deactivate` when its last job was withdrawn rather than dispatched.
    """

    name: ClassVar[str]

    @property
    def weights(self) -> Mapping[str, float]:
        """Weights configured on the policy itself (key -> weight); empty if it takes none."""
        ...

    def new_state(self, backlog: Backlog) -> StateT:
        """A fresh state reading `backlog` (the queue's live backlogs)."""
        ...

    def on_activate(self, state: StateT, key: str, now: float) -> None:
        """`key` went from no backlog to some."""
        ...

    def pick(self, state: StateT, now: float) -> str | None:
        """The backlogged key to serve next, or None if none should be served."""
        ...

    def on_dispatch(self, state: StateT, key: str, job: Job, now: float) -> None:
        """`job`, the head of `key`, was popped to run (whether or not this policy picked it)."""
        ...

    def on_head_change(self, state: StateT, key: str, now: float) -> None:
        """The head of `key` changed without a dispatch; the key is still backlogged."""
        ...

    def on_deactivate(self, state: StateT, key: str, now: float) -> None:
        """The last job of `key` was withdrawn (expired or revoked), not dispatched."""
        ...

    def on_complete(self, state: StateT, job: Job, runtime: float) -> None:
        """A dispatched `job` finished after `runtime` seconds of service."""
        ...

    def on_weight_change(self, state: StateT, key: str, now: float) -> None:
        """The weight of the backlogged `key` changed."""
        ...


#: The weights of a policy that takes none.
NO_WEIGHTS: Mapping[str, float] = MappingProxyType({})


class DefaultHooks:
    """The hooks most policies leave alone, as no-ops, and no configured weights.

    A policy class may inherit this and define only the hooks it needs; the `Policy` protocol
    is what the fair queue and the storages rely on, not this class.
    """

    __slots__ = ()

    @property
    def weights(self) -> Mapping[str, float]:
        """No weights of its own (the keys' weights still come from the backlog)."""
        return NO_WEIGHTS

    def on_head_change(self, state: Any, key: str, now: float) -> None:
        """Nothing to do when a head changes without a dispatch."""

    def on_deactivate(self, state: Any, key: str, now: float) -> None:
        """Nothing to do when a key's last job is withdrawn."""

    def on_complete(self, state: Any, job: Job, runtime: float) -> None:
        """Run times are not used."""

    def on_weight_change(self, state: Any, key: str, now: float) -> None:
        """Weights are read when they are needed; nothing to redo."""
