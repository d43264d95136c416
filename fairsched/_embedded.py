"""A Celery worker running in a thread of the current process (the demo and the tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery._state import _set_task_join_will_block
from celery.worker import WorkController

__all__ = ["embedded_worker"]


class _Worker(WorkController):  # type: ignore[misc]
    """A worker that says when its consumer is ready, so callers can wait for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


@contextmanager
def embedded_worker(
    app: Celery,
    pool: str = "threads",
    concurrency: int = 2,
    loglevel: str = "WARNING",
    start_timeout: float = 30.0,
    **options: Any,
) -> Iterator[WorkController]:
    """Run a worker of `app` in a daemon thread; stop it on exit.

    Raises:
        RuntimeError: the worker did not become ready within `start_timeout` seconds.
    """
    app.finalize()
    # Task and result objects look the app up as the current one in the worker's threads.
    app.set_current()
    app.set_default()
    worker = _Worker(
        app=app,
        pool=pool,
        concurrency=concurrency,
        loglevel=loglevel,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
        **options,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            worker.ready.set()

    thread = threading.Thread(target=run, name="fairsched-embedded-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(start_timeout):
        worker.stop(in_sighandler=False)
        raise RuntimeError(f"embedded worker not ready after {start_timeout} s")
    if failure:
        raise failure[0]
    # A starting worker marks its process as one where result.get() would deadlock; here the
    # caller is not a task, so waiting on results is fine (Celery's own test worker does this).
    _set_task_join_will_block(False)
    try:
        yield worker
    finally:
        worker.stop(in_sighandler=False)
        thread.join(10)
