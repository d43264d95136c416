"""RedisStorage makes the same decisions as MemoryStorage, the reference, for every policy.

`fairsched.testing.check_twin` applies random interleavings of every verb of the `Storage`
protocol to both storages with the same explicit times and requires identical results, typed
errors, monitoring and recordings (see its module for the inputs covered). Here it runs for the
six built-in configurations, with random options, and for a policy whose Python side differs
from the Lua twin it inherits, which it must catch.

FAIRSCHED_DIFF_EXAMPLES sets the examples per policy (default 60).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st

from fairsched.testing import check_twin
from fairsched.testing.strategies import keys, quanta, weights
from policies import PureLru
from policies._lru import LruState

pytestmark = pytest.mark.redis

EXAMPLES = int(os.environ.get("FAIRSCHED_DIFF_EXAMPLES", "60"))

weight_maps = st.dictionaries(keys, weights, max_size=3)
INNER: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "lru": st.just({"policy": "lru"}),
    "weighted_lru": st.builds(lambda w: {"policy": "weighted_lru", "weights": w}, weight_maps),
    "drr": st.builds(
        lambda q, a, w: {"policy": "drr", "quantum": q, "alpha": a, "weights": w},
        st.sampled_from([None, None, 1.0, 0.5]) | quanta,
        st.sampled_from([0.2, 0.5, 1.0]),
        weight_maps,
    ),
}
POLICIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    **INNER,
    **{
        f"expiry_aware+{name}": st.builds(
            lambda i, s: {"policy": "expiry_aware", "inner": i, "slack": s},
            inner,
            st.sampled_from([0.0, 0.5, 2.0]),
        )
        for name, inner in INNER.items()
    },
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_redis_storage_decides_like_memory_storage(policy: str, redis_client: Any) -> None:
    check_twin(POLICIES[policy], redis=redis_client, max_examples=EXAMPLES)


class NewestFirstLru(PureLru):
    """Serves the key served most recently instead of longest ago, yet inherits LRU's twin."""

    def pick(self, state: LruState, now: float) -> str | None:
        queues = state.backlog.queues
        if not queues:
            return None
        first_seen = state.backlog.first_seen
        return max(queues, key=lambda k: (state.last_served.get(k, -1), -first_seen[k]))


def test_check_twin_catches_a_python_policy_that_differs_from_its_twin(redis_client: Any) -> None:
    unshrunk = settings(phases=[Phase.generate])  # shrinking against Redis takes a minute
    with pytest.raises(AssertionError, match="RedisStorage and MemoryStorage disagree"):
        check_twin(NewestFirstLru(), redis=redis_client, hypothesis_settings=unshrunk)
    assert not redis_client.keys("fairsched-twin:*"), "check_twin left keys behind"
