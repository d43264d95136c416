"""Fairness laws for policies, as a kit: strategies, law checkers, a Redis twin check, fixtures.

>>> from fairsched.testing import bounded_wait, check_policy, fifo_within_key
>>> check_policy("lru", laws=[fifo_within_key, bounded_wait(6)], max_examples=20)

- `check_policy(policy, laws)` searches Hypothesis-generated operation sequences for one on
  which the policy, run in a `policies.FairQueue`, breaks a law; the error shows the shrunk
  counterexample step by step. Laws: `fifo_within_key`, `conservation`, `work_conservation`,
  `no_expired_dispatch`, `determinism` (together `UNIVERSAL_LAWS`), `bounded_wait(n)`,
  `weighted_share(bound)`, `cost_fairness(bound)`; or your own `Law`.
- `run(target, ops)` applies a list of `Op` to a policy or a `Storage` and returns a `Trace`;
  `check(trace, laws)` judges it. `fairsched.testing.strategies` generates keys, weights,
  costs, policy configurations, workloads and operation sequences.
- `check_twin(policy, redis=...)` holds a policy's Lua twin in `RedisStorage` to the Python
  policy in `MemoryStorage`.
- The pytest plugin (`fairsched.testing.plugin`, loaded automatically) provides the
  `fairsched_redis_url`, `fairsched_redis` and `fairsched_redis_prefix` fixtures.

Everything but the plugin and `servers` needs Hypothesis: `pip install 'fairsched[testing]'`.
Names are imported on first use, so loading the plugin imports neither Hypothesis nor the laws.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._ops import Op, Step, Trace, run
    from .differential import check_twin
    from .laws import (
        UNIVERSAL_LAWS,
        Law,
        bounded_wait,
        check,
        check_policy,
        conservation,
        cost_fairness,
        determinism,
        fifo_within_key,
        max_dispatches_between_services,
        no_expired_dispatch,
        weighted_share,
        work_conservation,
    )

__all__ = [
    "UNIVERSAL_LAWS",
    "Law",
    "Op",
    "Step",
    "Trace",
    "bounded_wait",
    "check",
    "check_policy",
    "check_twin",
    "conservation",
    "cost_fairness",
    "determinism",
    "fifo_within_key",
    "max_dispatches_between_services",
    "no_expired_dispatch",
    "run",
    "weighted_share",
    "work_conservation",
]

#: Where each public name lives.
_HOMES = {
    **dict.fromkeys(__all__, "laws"),
    **dict.fromkeys(("Op", "Step", "Trace", "run"), "_ops"),
    "check_twin": "differential",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}._requires")  # a missing Hypothesis says what to do
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
