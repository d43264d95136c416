"""Stand-ins for a storage script whose replies a failing Redis loses."""

from __future__ import annotations

from typing import Any

import redis


class Outage:
    """Stands in for one script during an outage: the first call runs but its reply is lost,
    then every call fails until `over` is set."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls, self.over = real, 0, False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.over:
            return self.real(*args, **kwargs)
        if self.calls == 1:
            self.real(*args, **kwargs)
        raise redis.ConnectionError("Connection closed by server.")
