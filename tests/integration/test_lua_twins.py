"""A third party's policy runs on Redis through the same twin mechanism as the built-ins."""

from __future__ import annotations

import heapq
from typing import Any, ClassVar

import pytest
from attrs import define, field, frozen

from fairsched import ConfigurationError, MemoryStorage, RedisStorage, ScriptError, Task
from policies import (
    Backlog,
    DefaultHooks,
    DeficitRoundRobin,
    ExpiryAware,
    Job,
    LuaTwin,
    PolicyError,
    PureLru,
    lua_twin,
)

#: The twin of `Alphabetical`: a zset of backlogged keys, all of score 0, so ZRANGE's order is
#: the keys' byte order, which is Python's order for ASCII keys.
ALPHABETICAL_LUA = """
local P = {}
local K_ALPHA = B .. 'alpha'
function P.activate(key, now) redis.call('ZADD', K_ALPHA, 0, key) end
function P.pick(now) return redis.call('ZRANGE', K_ALPHA, 0, 0)[1] end
function P.dispatched(key, t, now, still, fields)
  if not still then redis.call('ZREM', K_ALPHA, key) end
end
function P.head_change(key, now) end
function P.deactivate(key, now) redis.call('ZREM', K_ALPHA, key) end
function P.complete(t, runtime) end
function P.weight_change(key, now) end
function P.purge() redis.call('UNLINK', K_ALPHA) end
"""


@define
class AlphabeticalState:
    backlog: Backlog
    heap: list[str] = field(factory=list)
    live: set[str] = field(factory=set)


@frozen
class Alphabetical(DefaultHooks):
    """Serves the backlogged key that sorts first (a priority by name; a test policy)."""

    name: ClassVar[str] = "alphabetical"
    source: str = ALPHABETICAL_LUA

    def lua_twin(self) -> LuaTwin:
        return LuaTwin(source=self.source)

    def new_state(self, backlog: Backlog) -> AlphabeticalState:
        return AlphabeticalState(backlog)

    def on_activate(self, state: AlphabeticalState, key: str, now: float) -> None:
        state.live.add(key)
        heapq.heappush(state.heap, key)

    def pick(self, state: AlphabeticalState, now: float) -> str | None:
        while state.heap and state.heap[0] not in state.live:
            heapq.heappop(state.heap)  # withdrawn since
        return state.heap[0] if state.heap else None

    def on_dispatch(self, state: AlphabeticalState, key: str, job: Job, now: float) -> None:
        if not state.backlog.sizes.get(key):
            state.live.discard(key)

    def on_deactivate(self, state: AlphabeticalState, key: str, now: float) -> None:
        state.live.discard(key)


def run(storage: Any) -> list[str]:
    for i, key in enumerate(["m", "b", "z", "b", "a", "m"]):
        storage.enqueue(Task(Job(f"t{i}", key, float(i)), b"{}"), now=float(i))
    storage.revoke("t4", "celery", now=6.0)  # "a" leaves before it is served
    order = []
    while (got := storage.dispatch(now=7.0).task) is not None:
        order.append(got.key)
    return order


def test_a_user_policy_with_a_twin_runs_on_redis_and_decides_as_in_memory(
    redis_client: Any, redis_prefix: str
) -> None:
    memory = run(MemoryStorage(policy=Alphabetical()))
    redis = RedisStorage(redis_client, prefix=redis_prefix, policy=Alphabetical())
    assert run(redis) == memory == ["b", "b", "m", "m", "z"]
    redis.enqueue(Task(Job("again", "c"), b"{}"), now=8.0)
    assert redis.purge() == 6  # five leased, one queued
    assert not redis_client.exists(f"{redis_prefix}{{celery}}:alpha")  # its P.purge ran


def test_the_built_ins_declare_their_twins_the_same_way() -> None:
    assert lua_twin(PureLru()) == LuaTwin("policies", "lua/lru.lua")
    drr = lua_twin(DeficitRoundRobin(quantum=2.0))
    assert drr is not None and dict(drr.options) == {"quantum": 2.0, "alpha": 0.2}
    wrapped = lua_twin(ExpiryAware(inner=DeficitRoundRobin(), slack=3.0))
    assert wrapped is not None
    assert [t.resource for t in wrapped.chain()] == ["lua/drr.lua", "lua/expiry_aware.lua"]
    assert lua_twin(ExpiryAware(inner=Alphabetical())) is not None
    assert lua_twin(object()) is None


def test_an_error_in_a_twin_names_its_own_line(redis_client: Any, redis_prefix: str) -> None:
    broken = ALPHABETICAL_LUA.replace(
        "function P.pick(now) return redis.call('ZRANGE', K_ALPHA, 0, 0)[1] end",
        "function P.pick(now) return no_such_function() end",
    )
    storage = RedisStorage(redis_client, prefix=redis_prefix, policy=Alphabetical(broken))
    storage.enqueue(Task(Job("t", "a"), b"{}"), now=0.0)
    with pytest.raises(ScriptError, match=r"the Lua twin given as source, line 5:"):
        storage.dispatch(now=1.0)
    syntax = RedisStorage(
        redis_client,
        prefix=redis_prefix + "x:",
        policy=Alphabetical("local P = {} function P.pick(now return end"),
    )
    with pytest.raises(ScriptError, match=r"the Lua twin given as source, line 1:"):
        syntax.enqueue(Task(Job("t", "a"), b"{}"), now=0.0)


def test_a_twin_that_cannot_be_read_is_refused_at_construction(redis_client: Any) -> None:
    @frozen
    class Elsewhere(Alphabetical):
        def lua_twin(self) -> LuaTwin:
            return LuaTwin("no_such_package_anywhere", "lua/x.lua")

    with pytest.raises(ConfigurationError, match=r"cannot read the Lua twin 'lua/x\.lua'"):
        RedisStorage(redis_client, policy=Elsewhere())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "package and resource, or source"),
        ({"source": "x", "package": "p", "resource": "r"}, "not both"),
        ({"package": "p"}, "package and resource"),
        ({"source": "x", "options": {"bad name": 1.0}}, "not a Lua identifier"),
        ({"source": "x", "options": {"q": float("nan")}}, "finite"),
        ({"source": "x", "options": {"q": "1"}}, "must be a number"),
    ],
)
def test_a_malformed_twin_is_a_policy_error(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        LuaTwin(**kwargs)


def test_check_twin_passes_a_faithful_twin_and_catches_a_broken_one(redis_client: Any) -> None:
    from hypothesis import Phase, settings

    from fairsched.testing import check_twin

    fast = settings(phases=[Phase.generate])  # no shrinking: the failure is enough here
    check_twin(Alphabetical(), redis=redis_client, max_examples=30, hypothesis_settings=fast)
    # A twin that looks right and serves the key that sorts *last*.
    backwards = ALPHABETICAL_LUA.replace("ZRANGE', K_ALPHA, 0, 0", "ZRANGE', K_ALPHA, -1, -1")
    with pytest.raises(AssertionError, match="dispatch"):
        check_twin(
            Alphabetical(backwards), redis=redis_client, max_examples=60, hypothesis_settings=fast
        )
