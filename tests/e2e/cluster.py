"""Real `celery worker` processes for the end-to-end tests and the benchmark.

A `Cluster` gives one broker, one Redis (storage and results), a key prefix and a queue of its
own; it imports `tests.e2e.app` with that environment and starts workers as subprocesses,
which it stops by pid (SIGTERM, then SIGKILL) and cleans up after.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import fairsched

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


class Cluster:
    """Worker subprocesses sharing one broker, storage prefix and queue."""

    def __init__(
        self,
        broker: str,
        redis_url: str,
        settings: dict[str, Any] | None = None,
        storage_url: str | None = None,
    ):
        tag = uuid.uuid4().hex[:10]
        self.broker = broker
        self.redis_url = redis_url
        self.storage_url = storage_url or redis_url
        self.prefix = f"fairsched-e2e:{tag}:"
        self.queue = f"fairsched-e2e-{tag}"
        self.settings = dict(settings or {})
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "FAIRSCHED_E2E_BROKER": broker,
            "FAIRSCHED_E2E_REDIS": redis_url,
            "FAIRSCHED_E2E_STORAGE": storage_url or "",
            "FAIRSCHED_E2E_PREFIX": self.prefix,
            "FAIRSCHED_E2E_QUEUE": self.queue,
            "FAIRSCHED_E2E_SETTINGS": json.dumps(self.settings),
        }
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._logdir = Path(tempfile.mkdtemp(prefix="fairsched-e2e-"))
        # The test process uses the same app module, configured the same way.
        for name, value in self.env.items():
            if name.startswith("FAIRSCHED_E2E_"):
                os.environ[name] = value
        sys.modules.pop("tests.e2e.app", None)
        self.module = importlib.import_module("tests.e2e.app")
        self.app = self.module.app
        import redis

        self.client = redis.Redis.from_url(redis_url)

    # -- workers ------------------------------------------------------------------------------

    def start(
        self, name: str, pool: str = "prefork", concurrency: int = 2, wait: bool = True
    ) -> int:
        """Start worker `name` and wait until it consumes; return its pid."""
        hostname = f"{name}-{self.queue}@localhost"
        log = self._logdir / f"{name}.log"
        self.logs[name] = log
        proc = subprocess.Popen(
            [
                CELERY,
                "-A",
                "tests.e2e.app",
                "worker",
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-Q",
                self.queue,
                "-n",
                hostname,
                "-l",
                # INFO shows each task and Celery's reconnects, for chasing a failure.
                os.environ.get("FAIRSCHED_E2E_LOGLEVEL", "WARNING"),
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--prefetch-multiplier",
                "1",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.workers[name] = proc
        if wait:
            deadline = time.monotonic() + 60
            while hostname.encode() not in self.client.lrange(f"{self.prefix}e2e:ready", 0, -1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{self.log(name)}")
                time.sleep(0.05)
        return proc.pid

    def log(self, name: str, tail: int = 5000) -> str:
        """The last `tail` characters worker `name` printed."""
        return self.logs[name].read_text(errors="replace")[-tail:]

    def diagnosis(self) -> str:
        """Each live worker's thread stacks (Celery logs them on SIGUSR1) and log tail."""
        live = {name: proc for name, proc in self.workers.items() if proc.poll() is None}
        for proc in live.values():
            os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(1.0)  # the workers write their stacks to their logs
        logs = [f"--- worker {name} ---\n{self.log(name, 30000)}" for name in self.workers]
        return "\n".join([self._backlog(), *logs])

    def _backlog(self) -> str:
        # What waits where: the broker's queue list (wake tokens, with late binding) and the
        # storage's backlogs.
        import redis

        try:
            storage = fairsched.dispatcher_for(self.app).storage
            queued = sum(storage.backlog_size(k, self.queue) for k in storage.keys(self.queue))
            listed: Any = "-"
            if self.broker.startswith("redis"):
                with redis.Redis.from_url(self.broker, socket_timeout=2) as broker:
                    listed = broker.llen(self.queue)
        except Exception as exc:  # a diagnosis must not hide the failure it explains
            return f"backlog unknown: {exc!r}"
        return f"broker queue list: {listed} item(s); storage backlogs: {queued} task(s)"

    def kill(self, name: str) -> None:
        """kill -9 worker `name` (its pool children die with their parent's pipes)."""
        proc = self.workers.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> None:
        """Warm shutdown of worker `name` by pid; SIGKILL if it lingers."""
        proc = self.workers.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def close(self) -> None:
        """Stop every worker and delete everything this cluster stored."""
        for name in list(self.workers):
            self.stop(name)
        for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(key)
        self.client.delete(self.queue)
        if self.storage_url != self.redis_url:
            import redis

            # The storage server may be the one a test broke; it is the test's own either way.
            with contextlib.suppress(redis.RedisError):
                storage = redis.Redis.from_url(self.storage_url, socket_timeout=2)
                for key in storage.scan_iter(match=f"{self.prefix}*", count=1000):
                    storage.delete(key)
                storage.close()
        if self.broker.startswith("amqp"):
            with self.app.connection_for_write() as conn:
                channel = conn.default_channel
                with contextlib.suppress(Exception):
                    channel.queue_delete(self.queue)
        self.client.close()

    # -- what the tasks recorded --------------------------------------------------------------

    def started(self) -> dict[str, float]:
        """When each task token first started."""
        raw = self.client.hgetall(f"{self.prefix}e2e:started")
        return {k.decode(): float(v) for k, v in raw.items()}

    def runs(self) -> list[str]:
        """Task tokens in the order they started (a token twice if it ran twice)."""
        return [v.decode() for v in self.client.lrange(f"{self.prefix}e2e:runs", 0, -1)]

    def hooks(self) -> list[list[Any]]:
        """What the LRUTask hooks recorded."""
        return [json.loads(v) for v in self.client.lrange(f"{self.prefix}e2e:hooks", 0, -1)]

    def wait_started(self, tokens: list[str], timeout: float) -> dict[str, float]:
        """Wait until every token has started; return the start times."""
        deadline = time.monotonic() + timeout
        while True:
            started = self.started()
            if all(t in started for t in tokens):
                return started
            if time.monotonic() > deadline:
                missing = [t for t in tokens if t not in started]
                raise TimeoutError(
                    f"{len(missing)} tasks never started, e.g. {missing[:3]}\n{self.diagnosis()}"
                )
            time.sleep(0.05)
