"""Shared fixtures: a real Redis server per session, a clean key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests import servers

# "ci" runs more examples; "dev" keeps the inner loop quick. Select with HYPOTHESIS_PROFILE.
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if servers.in_ci() else "dev"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    with servers.redis_url() as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A redis-py client on the session's server."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: object) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = f"fairsched-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    for key in redis_client.scan_iter(match=f"*{prefix}*", count=1000):  # type: ignore[attr-defined]
        redis_client.delete(key)  # type: ignore[attr-defined]
