"""Worker heartbeats: which workers are alive per domain, and their total concurrency.

`window="auto"` sizes each domain's window from this registry. A worker beats every
`heartbeat_interval` seconds with a time-to-live of three intervals, so a killed worker stops
counting within that TTL without anybody having to notice its death.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from attrs import define, field

from ._base import Clock
from ._redis_scripts import DOMAIN_KEYS, WORKER_PREFIX, standalone_script
from ._redis_wire import key_base

__all__ = ["MemoryWorkerRegistry", "RedisWorkerRegistry"]


@define
class MemoryWorkerRegistry:
    """In-process registry: for workers that share the process with their producers."""

    clock: Clock = time.monotonic
    #: domain -> worker -> (concurrency, alive until).
    _live: dict[str, dict[str, tuple[int, float]]] = field(factory=dict, init=False)
    _lock: threading.Lock = field(factory=threading.Lock, init=False)

    def beat(self, worker: str, domains: Iterable[str], concurrency: int, ttl: float) -> None:
        """Record that `worker` is alive for `ttl` seconds, serving `domains`."""
        until = self.clock() + ttl
        with self._lock:
            for domain in domains:
                self._live.setdefault(domain, {})[worker] = (concurrency, until)

    def leave(self, worker: str, domains: Iterable[str]) -> None:
        """Forget `worker` at once."""
        with self._lock:
            for domain in domains:
                self._live.get(domain, {}).pop(worker, None)

    def concurrency(self, domain: str) -> int:
        """Total concurrency of the live workers serving `domain`."""
        now = self.clock()
        with self._lock:
            workers = self._live.get(domain, {})
            for worker in [w for w, (_, until) in workers.items() if until <= now]:
                del workers[worker]
            return sum(c for c, _ in workers.values())


@define
class RedisWorkerRegistry:
    """Registry in Redis: one key per worker and domain whose TTL is the heartbeat's.

    Key schema, under the domain's hash tag (see docs/redis.md): `<base>workers`, the set of
    worker names, and `<base>worker:<worker>` = concurrency with a TTL. Expiry is Redis's
    own, so the workers' clocks need not agree, and a registry emptied by a restart fills
    again at the next beats. Errors propagate as the client's exceptions; callers above the
    storage layer catch them broadly (a heartbeat must never crash a worker).
    """

    client: Any
    prefix: str
    _script: Any = field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._script = self.client.register_script(standalone_script("heartbeat"))

    def _set(self, domain: str) -> str:
        return key_base(self.prefix, domain) + DOMAIN_KEYS["WORKERS"]

    def _key(self, domain: str, worker: str) -> str:
        return f"{key_base(self.prefix, domain)}{WORKER_PREFIX}{worker}"

    def beat(self, worker: str, domains: Iterable[str], concurrency: int, ttl: float) -> None:
        """Record that `worker` is alive for `ttl` seconds, serving `domains`."""
        ttl_ms = max(1, int(ttl * 1000))
        for domain in domains:
            self._script(
                keys=[self._set(domain), self._key(domain, worker)],
                args=[worker, concurrency, ttl_ms],
            )

    def leave(self, worker: str, domains: Iterable[str]) -> None:
        """Forget `worker` at once."""
        for domain in domains:
            pipe = self.client.pipeline(transaction=False)
            pipe.srem(self._set(domain), worker)
            pipe.delete(self._key(domain, worker))
            pipe.execute()

    def concurrency(self, domain: str) -> int:
        """Total concurrency of the live workers serving `domain`; forgets dead ones."""
        names = sorted(self.client.smembers(self._set(domain)))
        if not names:
            return 0
        workers = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        values = self.client.mget([self._key(domain, w) for w in workers])
        dead = [w for w, v in zip(workers, values, strict=False) if v is None]
        if dead:
            self.client.srem(self._set(domain), *dead)
        return sum(int(v) for v in values if v is not None)
