"""`fairsched demo`: a bulk flood against an interactive trickle, plain Celery vs fairsched.

Everything runs in this process: a Celery app on the in-memory broker, a worker in a thread
and MemoryStorage (or, with `--redis URL`, a Redis broker and RedisStorage). The same
workload runs twice, once with `delay` and once with `lru_delay`, and the interactive key's
waits (from submission to the start of the task) are printed side by side.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import click
from attrs import frozen
from tqdm import tqdm

from ._urls import MASK, redact_url
from .errors import ConfigurationError, FairschedError, StorageUnavailable

__all__ = ["LIMITS", "DemoResult", "demo", "percentile", "run_demo"]

#: The accepted range of each demo size (times in milliseconds): wide enough for any
#: demonstration, narrow enough that a typo cannot start a run of hours or fill memory.
LIMITS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "bulk": (0, 100_000),
        "interactive": (1, 10_000),
        "service_ms": (0, 10_000),
        "gap_ms": (0, 10_000),
        "concurrency": (1, 64),
    }
)
_WHOLE = ("bulk", "interactive", "concurrency")


def _check_sizes(sizes: Mapping[str, object]) -> None:
    """Raise `ConfigurationError` naming the first size outside its `LIMITS` range."""
    for name, value in sizes.items():
        low, high = LIMITS[name]
        kinds = int if name in _WHOLE else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            # `not low <= value <= high` also refuses nan.
            raise ConfigurationError(f"{name} must be between {low} and {high}, got {value!r}")


def _scrub(text: str, url: str | None) -> str:
    """`text` with `url` redacted, and its password masked wherever else it appears."""
    if not url:
        return text
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
        # A lone user-info is read as a password by some clients; redact_url masks it too.
        secret = parts.password if parts.password is not None else parts.username
    except ValueError:
        return text
    return text.replace(secret, MASK) if secret else text


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@frozen
class DemoResult:
    """Waits (seconds) of the interactive tasks in one run, and the run's length."""

    mode: str
    waits: tuple[float, ...]
    elapsed: float

    def summary(self) -> dict[str, float]:
        """p50, p95 and max wait in milliseconds."""
        return {
            "p50_ms": percentile(self.waits, 50) * 1000,
            "p95_ms": percentile(self.waits, 95) * 1000,
            "max_ms": max(self.waits, default=math.nan) * 1000,
        }


@frozen
class _Run:
    """The shared state of one demo app: when each task started, how many finished."""

    started: dict[str, float]
    done: list[int]
    lock: threading.Lock


@contextmanager
def _demo_app(redis_url: str | None, concurrency: int) -> Iterator[tuple[Any, Any, _Run]]:
    from celery import Celery

    from .celery import configure, lru_task
    from .storage import MemoryStorage

    queue = f"fairsched-demo-{uuid.uuid4().hex[:8]}"
    broker = redis_url or "memory://localhost/"
    app = Celery("fairsched_demo", broker=broker, backend="cache+memory://")
    app.conf.update(
        task_default_queue=queue,
        broker_transport_options={"polling_interval": 0.005},
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    storage: Any
    if redis_url is None:
        storage = MemoryStorage(policy="weighted_lru")
    else:
        from .storage import RedisStorage

        storage = RedisStorage.from_url(
            redis_url, prefix=f"fairsched-demo:{uuid.uuid4().hex[:8]}:", policy="weighted_lru"
        )
        try:
            storage.domains()  # fail now, before a worker starts, if Redis cannot be reached
        except StorageUnavailable as exc:
            storage.close()
            message = _scrub(str(exc), redis_url)
            raise StorageUnavailable(
                f"cannot reach Redis at {redact_url(redis_url)}: {message}"
            ) from None
    configure(app=app, storage=storage, heartbeat_interval=0.5, reclaim_interval=0.2)
    run = _Run({}, [0], threading.Lock())

    @lru_task(app, name="fairsched.demo.work", shared=False)
    def work(token: str, seconds: float) -> None:
        run.started[token] = time.time()
        time.sleep(seconds)
        with run.lock:
            run.done[0] += 1

    from ._embedded import embedded_worker

    try:
        with embedded_worker(app, pool="threads", concurrency=concurrency):
            yield app, work, run
    finally:
        storage.purge()
        if redis_url is not None:
            _forget_redis(storage, queue)


def _forget_redis(storage: Any, queue: str) -> None:
    client = storage.client
    for name in client.scan_iter(match=f"{storage.prefix}*", count=1000):
        client.delete(name)
    client.delete(queue)
    storage.close()


def _one_run(
    mode: str,
    work: Any,
    run: _Run,
    bulk: int,
    interactive: int,
    service: float,
    gap: float,
    bar: Any,
) -> DemoResult:
    with run.lock:
        run.done[0] = 0
    submit: Callable[[str, str], Any]
    if mode == "plain":

        def submit(key: str, token: str) -> Any:
            return work.delay(token, service)
    else:

        def submit(key: str, token: str) -> Any:
            return work.lru_delay(key, token, service)

    begin = time.time()
    for i in range(bulk):
        submit("bulk", f"{mode}-bulk-{i}")
    submitted: dict[str, float] = {}
    shown = 0
    for i in range(interactive):
        token = f"{mode}-ui-{i}"
        submitted[token] = time.time()
        submit("interactive", token)
        next_at = submitted[token] + gap
        while time.time() < next_at:
            shown = _advance(bar, run, shown)
            time.sleep(min(0.02, max(0.0, next_at - time.time())))
    total = bulk + interactive
    deadline = time.time() + 120 + total * service
    while run.done[0] < total:
        if time.time() > deadline:
            raise click.ClickException(f"{mode} run did not finish: {run.done[0]}/{total} tasks")
        shown = _advance(bar, run, shown)
        time.sleep(0.02)
    _advance(bar, run, shown)
    waits = tuple(run.started[t] - at for t, at in submitted.items())
    return DemoResult(mode, waits, time.time() - begin)


def _advance(bar: Any, run: _Run, shown: int) -> int:
    done = run.done[0]
    if done > shown:
        bar.update(done - shown)
    return done


def run_demo(
    bulk: int = 300,
    interactive: int = 20,
    service_ms: float = 20.0,
    gap_ms: float = 100.0,
    concurrency: int = 2,
    redis_url: str | None = None,
    progress: bool = True,
) -> tuple[DemoResult, DemoResult]:
    """Run the workload with plain `delay`, then with `lru_delay`; return both results.

    Raises:
        ConfigurationError: a size is outside its `LIMITS` range.
        StorageUnavailable: `redis_url` cannot be reached (the message hides its password).
    """
    _check_sizes(
        {
            "bulk": bulk,
            "interactive": interactive,
            "service_ms": service_ms,
            "gap_ms": gap_ms,
            "concurrency": concurrency,
        }
    )
    results = []
    with _demo_app(redis_url, concurrency) as (_, work, run):
        for mode in ("plain", "fair"):
            with tqdm(
                total=bulk + interactive,
                desc=f"{'delay' if mode == 'plain' else 'lru_delay':>9}",
                unit="task",
                disable=not progress,
                leave=True,
            ) as bar:
                results.append(
                    _one_run(
                        mode, work, run, bulk, interactive, service_ms / 1000, gap_ms / 1000, bar
                    )
                )
    return results[0], results[1]


def _number(ctx: click.Context, param: click.Parameter, value: float) -> float:
    # FloatRange lets nan through (every comparison with nan is false).
    if math.isnan(value):
        raise click.BadParameter("must be a number of milliseconds, got nan")
    return value


def _whole(name: str) -> click.IntRange:
    return click.IntRange(*LIMITS[name])


def _millis(name: str) -> click.FloatRange:
    return click.FloatRange(*LIMITS[name])


@click.command("demo")
@click.option(
    "--bulk",
    type=_whole("bulk"),
    default=300,
    show_default=True,
    help="Tasks the bulk key floods in.",
)
@click.option(
    "--interactive",
    type=_whole("interactive"),
    default=20,
    show_default=True,
    help="Tasks the interactive key trickles in.",
)
@click.option(
    "--service-ms",
    type=_millis("service_ms"),
    callback=_number,
    default=20.0,
    show_default=True,
    help="Run time of each task.",
)
@click.option(
    "--gap-ms",
    type=_millis("gap_ms"),
    callback=_number,
    default=100.0,
    show_default=True,
    help="Time between interactive submissions.",
)
@click.option(
    "--concurrency",
    type=_whole("concurrency"),
    default=2,
    show_default=True,
    help="Worker threads.",
)
@click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="Use this Redis as broker and storage instead of memory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def demo(
    bulk: int,
    interactive: int,
    service_ms: float,
    gap_ms: float,
    concurrency: int,
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Flood one key, trickle another: interactive waits with delay vs lru_delay."""
    where = (
        f"Redis at {redact_url(redis_url)}" if redis_url else "in-memory broker and MemoryStorage"
    )
    if not as_json:
        click.echo(
            f"fairsched demo: {bulk} bulk tasks of {service_ms:g} ms at once, then "
            f"{interactive} interactive tasks one per {gap_ms:g} ms; {concurrency} worker "
            f"threads; {where}."
        )
    try:
        plain, fair = run_demo(
            bulk, interactive, service_ms, gap_ms, concurrency, redis_url, progress=not as_json
        )
    except (FairschedError, RuntimeError) as exc:  # RuntimeError: the worker did not start
        raise click.ClickException(_scrub(str(exc), redis_url)) from None
    a, b = plain.summary(), fair.summary()
    if as_json:
        click.echo(json.dumps({"plain": a, "fair": b}))
        return
    click.echo("")
    click.echo("interactive key: wait from submission to start")
    click.echo(f"{'':8}{'delay':>14}{'lru_delay':>14}")
    for label, name in (("p50", "p50_ms"), ("p95", "p95_ms"), ("max", "max_ms")):
        click.echo(f"{label:8}{a[name]:>11.1f} ms{b[name]:>11.1f} ms")
    click.echo(
        f"{'run':8}{plain.elapsed:>12.1f} s{fair.elapsed:>12.1f} s"
        "   (total time of each run: the flood still gets done)"
    )
    if b["p95_ms"] < a["p95_ms"]:
        click.echo(
            f"\nlru_delay cut the interactive p95 wait {a['p95_ms'] / max(b['p95_ms'], 1e-9):.0f}x."
        )
