"""Pure scheduling policies: which key is served next. No I/O, no clock, no Celery.

>>> from policies import FairQueue, Job, from_config
>>> queue = FairQueue(from_config("lru"))
>>> for i, key in enumerate(["bulk", "bulk", "ui"]):
...     queue.enqueue(Job(f"t{i}", key), now=0.0)
>>> [queue.dispatch(now=1.0).job.key for _ in range(3)]
['bulk', 'ui', 'bulk']
"""

from ._backlog import Backlog
from ._drr import DeficitRoundRobin, DrrState
from ._errors import (
    FairschedError,
    InvalidJob,
    InvalidTime,
    InvalidWeight,
    PolicyError,
    UnknownOption,
    UnknownPolicy,
)
from ._expiry import ExpiryAware, ExpiryAwareState
from ._job import (
    MAX_KEY_BYTES,
    MAX_WEIGHT,
    MIN_WEIGHT,
    Job,
)
from ._lru import LruState, PureLru
from ._lua import LuaTwin, lua_twin
from ._protocol import DefaultHooks, Policy
from ._queue import FairQueue, Pick
from ._registry import (
    DEFAULT_POLICY,
    ENTRY_POINT_GROUP,
    POLICIES,
    available,
    from_config,
    option_names,
    parse_spec,
    policy_class,
)
from ._weighted import WeightedLru, WeightedLruState

__all__ = [
    "DEFAULT_POLICY",
    "ENTRY_POINT_GROUP",
    "MAX_KEY_BYTES",
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "POLICIES",
    "Backlog",
    "DefaultHooks",
    "DeficitRoundRobin",
    "DrrState",
    "ExpiryAware",
    "ExpiryAwareState",
    "FairQueue",
    "FairschedError",
    "InvalidJob",
    "InvalidTime",
    "InvalidWeight",
    "Job",
    "LruState",
    "LuaTwin",
    "Pick",
    "Policy",
    "PolicyError",
    "PureLru",
    "UnknownOption",
    "UnknownPolicy",
    "WeightedLru",
    "WeightedLruState",
    "available",
    "from_config",
    "lua_twin",
    "option_names",
    "parse_spec",
    "policy_class",
]
