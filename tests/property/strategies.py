"""Shared Hypothesis generators: keys, weights, costs and policy configurations."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: A handful of keys, so collisions (several tasks per key) are the norm.
KEYS = ["a", "b", "c", "d", "e", "f"]

keys = st.sampled_from(KEYS)
weights = st.floats(min_value=0.25, max_value=8.0, allow_nan=False, allow_infinity=False)
costs = st.floats(min_value=0.01, max_value=5.0, allow_nan=False, allow_infinity=False)
quanta = st.floats(min_value=0.1, max_value=4.0, allow_nan=False, allow_infinity=False)


def policy_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Configurations of every built-in policy, with random options and weights."""
    weight_maps = st.dictionaries(keys, weights, max_size=len(KEYS))
    inner = st.one_of(
        st.just({"policy": "lru"}),
        st.builds(lambda w: {"policy": "weighted_lru", "weights": w}, weight_maps),
        st.builds(lambda q, w: {"policy": "drr", "quantum": q, "weights": w}, quanta, weight_maps),
    )
    wrapped = st.builds(
        lambda i, s: {"policy": "expiry_aware", "inner": i, "slack": s},
        inner,
        st.floats(min_value=0.0, max_value=10.0),
    )
    return st.one_of(inner, wrapped)


#: One fixed configuration per built-in policy, for tests parametrized by name.
BUILT_IN = {
    "lru": {"policy": "lru"},
    "weighted_lru": {"policy": "weighted_lru", "weights": {"a": 3, "b": 1}},
    "drr": {"policy": "drr", "quantum": 1.0, "weights": {"a": 2}},
    "expiry_aware": {"policy": "expiry_aware", "inner": {"policy": "drr"}, "slack": 2.0},
}
