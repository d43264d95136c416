"""The Redis fixture gives a real, writable server and cleans up after the test."""

from __future__ import annotations


def test_redis_fixture_is_a_real_server(redis_client, redis_prefix):
    redis_client.set(f"{redis_prefix}probe", b"1")
    assert redis_client.get(f"{redis_prefix}probe") == b"1"
    info = redis_client.info("server")
    major, minor = (int(p) for p in info["redis_version"].split(".")[:2])
    assert (major, minor) >= (6, 2)
