"""Lua twins: how a policy declares the Lua code that makes the same decisions inside Redis.

`fairsched.storage.RedisStorage` runs every storage verb as one atomic Lua script, so the
policy must exist there too. A policy class that has a twin defines `lua_twin(self)`,
returning a `LuaTwin`: where its Lua source is (a file in a package, read with
`importlib.resources`, or the text itself) and the numbers its options set. The source defines
the hooks of the Python protocol on a table `P` (docs/policies.md, "Lua twins"); the storage
assembles it into each verb's script after the shared core and before the verbs, reads it from
the package once per process, and passes `options` with every call (so two storages with
different options share one script). This module only describes a twin: nothing here reads a
file or talks to Redis.

>>> from policies import from_config, lua_twin
>>> twin = lua_twin(from_config({"policy": "drr", "quantum": 2.0}))
>>> twin.package, twin.resource, dict(twin.options)
('policies', 'lua/drr.lua', {'quantum': 2.0, 'alpha': 0.2})
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from attrs import field, frozen

from ._errors import PolicyError

__all__ = ["LuaTwin", "lua_twin"]

#: An option's name, as the Lua code reads it (`OPT.<name>`).
_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _options(value: Mapping[str, Any] | None) -> Mapping[str, float]:
    checked: dict[str, float] = {}
    for name, number in (value or {}).items():
        if not isinstance(name, str) or not _OPTION_NAME.match(name):
            raise PolicyError(f"Lua twin option name {name!r} is not a Lua identifier")
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise PolicyError(f"Lua twin option {name!r} must be a number, got {number!r}")
        if not math.isfinite(number):
            raise PolicyError(f"Lua twin option {name!r} must be finite, got {number!r}")
        checked[name] = float(number)
    return MappingProxyType(checked)


@frozen
class LuaTwin:
    """The Lua twin of one policy object.

    Give either `package` and `resource` (a file shipped as package data, e.g. `"my_policies"`
    and `"lua/largest_backlog.lua"`) or `source` (the Lua text itself, for tests). `options`
    are the numbers the script reads as `OPT.<name>` (finite floats; a policy passes what its
    own options are, e.g. a quantum). `inner` is the twin a wrapping policy wraps (as
    `expiry_aware` wraps another): it is assembled first, and the wrapper's code finds it as
    `P` and replaces it.

    Raises:
        PolicyError: neither or both of a resource and a source, or a bad option.
    """

    package: str | None = None
    resource: str | None = None
    source: str | None = None
    options: Mapping[str, float] = field(factory=dict, converter=_options)
    inner: LuaTwin | None = None

    def __attrs_post_init__(self) -> None:
        from_file = self.package is not None and self.resource is not None
        if from_file == (self.source is not None) or (self.package is None) != (
            self.resource is None
        ):
            raise PolicyError("a Lua twin needs package and resource, or source, not both")

    def chain(self) -> tuple[LuaTwin, ...]:
        """This twin and the ones it wraps, innermost first (the order they are assembled)."""
        inner = self.inner.chain() if self.inner is not None else ()
        return (*inner, self)


def lua_twin(policy: Any) -> LuaTwin | None:
    """The Lua twin `policy` declares (its `lua_twin()`), or None if it has none.

    Raises:
        PolicyError: the policy's `lua_twin()` returned something other than a `LuaTwin`.
    """
    declare = getattr(policy, "lua_twin", None)
    if declare is None:
        return None
    twin = declare()
    if twin is not None and not isinstance(twin, LuaTwin):
        raise PolicyError(
            f"{type(policy).__name__}.lua_twin() must return a policies.LuaTwin, got "
            f"{type(twin).__name__}"
        )
    return twin
