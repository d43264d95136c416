"""Releasing a finished task's slot, retried from a background thread while the storage is
unreachable, so an outage delays dispatch by the outage and not by the lease."""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from typing import Any

from attrs import define

from ..dispatch import Dispatcher
from ..errors import StorageUnavailable
from ..storage import Outcome
from ._dispatchers import find

logger = logging.getLogger("fairsched.celery")


@define
class Release:
    """A slot to release: `finish` of `task_id`, retried until `until` while Redis is away."""

    dispatcher: Dispatcher
    task_id: str
    domain: str
    runtime: float | None
    until: float
    outcome: Outcome | None = None
    attempts: int = 0

    def run(self) -> bool:
        """Try once; True when done (released, or failed for good and logged)."""
        self.attempts += 1
        try:
            self.dispatcher.finish(self.task_id, self.domain, self.runtime, self.outcome)
        except StorageUnavailable as exc:
            if time.time() < self.until:
                if self.attempts == 1:
                    logger.warning(
                        "releasing the slot of task %s failed (%s); retrying until its lease ends",
                        self.task_id,
                        exc,
                    )
                return False
            logger.error(
                "releasing the slot of task %s failed for %d attempts until its lease ended "
                "(%s); the lease lapses and the task may run again",
                self.task_id,
                self.attempts,
                exc,
            )
        except Exception:
            # Not an outage (a bug, a refused call): repeating would fail the same way.
            logger.exception("releasing the slot of task %s failed", self.task_id)
        else:
            if self.attempts > 1:
                logger.warning(
                    "released the slot of task %s after %d attempts", self.task_id, self.attempts
                )
        return True

    def backoff(self) -> float:
        """Seconds before the next attempt: 0.1 s doubling to 2 s, never past the lease."""
        delay = min(RELEASE_BACKOFF_MAX, 0.1 * 2.0 ** min(self.attempts - 1, 10))
        return max(0.0, min(delay, self.until - time.time()))


#: Longest wait between two attempts to release a slot while the storage is unreachable.
RELEASE_BACKOFF_MAX = 2.0


class Releaser:
    """Releases slots from a background thread, retrying those the storage could not take.

    In a prefork pool child every release goes through it: a child takes its next task only
    when `task_postrun` returns, so releasing there (a Lua round trip, then the broker publish
    of the next task) would add about a millisecond to every task. Other pools release on the
    task's own thread and hand over only a release that failed because the storage was
    unreachable. Such a release is retried with back-off until it succeeds or the task's lease
    ends (then the lease lapses and the task is reclaimed), and each retry is sent as a repeat,
    so a release whose reply was lost still yields the task it leased, which is published.
    A slot is released later, never earlier, so the window holds. On a clean exit of the
    process (`worker_process_shutdown`, worker stop) the queue is drained; if the process is
    killed first, the leases lapse and those tasks run again, as for a kill mid-task.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._queue: queue.SimpleQueue[Release | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, item: Release) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # Threads do not survive fork: start one in this process.
                    self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._run, name="fairsched-release", daemon=True
                    )
                    self._thread.start()
                    self._pid = os.getpid()
        self._queue.put(item)

    def _run(self) -> None:
        waiting: list[tuple[float, int, Release]] = []  # (next attempt, order, release)
        order = 0
        stopping = False
        while True:
            timeout = None if not waiting else max(0.0, waiting[0][0] - time.monotonic())
            if stopping:
                timeout = 0.0
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            else:
                if item is None:
                    stopping = True
                elif not item.run():
                    order += 1
                    heapq.heappush(waiting, (time.monotonic() + item.backoff(), order, item))
                continue
            # Due retries, oldest first; when stopping, one last attempt each.
            while waiting and (stopping or waiting[0][0] <= time.monotonic()):
                _, _, due = heapq.heappop(waiting)
                if not due.run() and not stopping:
                    order += 1
                    heapq.heappush(waiting, (time.monotonic() + due.backoff(), order, due))
            if stopping and not waiting:
                return

    def drain(self, timeout: float = 10.0) -> None:
        """Release every queued slot (one last try for those failing), then stop the thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
        self._pid = 0


#: This process's releaser (prefork children enable it in `worker_process_init`).
releaser = Releaser()


def release(
    app: Any,
    task_id: str,
    domain: str,
    runtime: float | None,
    lease: Any = None,
    outcome: Outcome | None = None,
) -> None:
    """Release the slot of a fairsched task that ended (`lease`: its lease deadline from its
    headers, if any; `outcome`: how it ended), now or from the background thread; see
    `Releaser`."""
    dispatcher = find(app, f"task {task_id}")
    if dispatcher is None:
        return
    try:
        until = float(lease)
    except (TypeError, ValueError):  # a message from before the lease header
        until = time.time() + dispatcher.config.lease_timeout
    item = Release(dispatcher, task_id, domain, runtime, until, outcome)
    if releaser.enabled or not item.run():
        releaser.put(item)
