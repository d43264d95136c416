"""Shared fixtures: a real Redis server per session, a clean key prefix per test."""

from __future__ import annotations

import os

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


# The Redis fixtures are the `fairsched` pytest plugin's (fairsched/testing/plugin.py), under
# the names these tests use.


@pytest.fixture(scope="session")
def redis_url(fairsched_redis_url: str) -> str:
    """URL of a real Redis server for this test session."""
    return fairsched_redis_url


@pytest.fixture
def redis_client(fairsched_redis: object) -> object:
    """A redis-py client on the session's server."""
    return fairsched_redis


@pytest.fixture
def redis_prefix(fairsched_redis_prefix: str) -> str:
    """A key prefix unique to this test; every key containing it is deleted afterwards."""
    return fairsched_redis_prefix
