"""Worker side: Celery signal handlers that time tasks and release their slots when they end,
telling the storage how each ended (for the recording).

Module-level state, as signal handlers are: the start time of each running fairsched task in
this process, and whether the handlers are connected.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import signals, states

from ..dispatch import HEADER_DOMAIN, HEADER_KEY, HEADER_LEASE
from ..storage import Outcome
from ._dispatchers import DISPATCHERS
from ._release import release, releaser


def _header(request: Any, name: str) -> Any:
    if request is None:
        return None
    getter = getattr(request, "get", None)
    value = getter(name) if getter is not None else getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(name)
    return value


#: Per running fairsched task in this process: (wall-clock start, monotonic start).
_started: dict[str, tuple[float, float]] = {}
_started_lock = threading.Lock()

#: Celery's final task states, as the recording names them.
_OUTCOME_OF_STATE = {
    states.SUCCESS: "done",
    states.IGNORED: "done",
    states.RETRY: "retried",
    states.REVOKED: "revoked",
}


def _worker_name(request: Any) -> str:
    """The process that runs the task: the worker's node name and this process's pid."""
    return f"{getattr(request, 'hostname', None) or 'worker'}:{os.getpid()}"


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and _header(getattr(task, "request", None), HEADER_KEY) is not None:
        with _started_lock:
            _started[task_id] = (time.time(), time.monotonic())


def _on_postrun(task_id: str | None = None, task: Any = None, state: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    key = _header(request, HEADER_KEY)
    if not task_id or key is None:
        return
    with _started_lock:
        started = _started.pop(task_id, None)
    runtime = None if started is None else time.monotonic() - started[1]
    outcome = Outcome(
        _OUTCOME_OF_STATE.get(state, "failed"),
        None if started is None else started[0],
        _worker_name(request),
    )
    # A retry ends here too (state RETRY): it returns its slot, and the retried message runs
    # outside the window; its own postrun then finds no lease and changes nothing.
    release(
        getattr(task, "app", None),
        task_id,
        str(_header(request, HEADER_DOMAIN)),
        runtime,
        _header(request, HEADER_LEASE),
        outcome,
    )


def _on_revoked(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    if request is None or _header(request, HEADER_KEY) is None:
        return
    with _started_lock:
        _started.pop(request.id, None)
    release(
        getattr(sender, "app", None),
        request.id,
        str(_header(request, HEADER_DOMAIN)),
        None,
        _header(request, HEADER_LEASE),
        Outcome("expired" if expired else "revoked", None, _worker_name(request)),
    )


def _on_message_dropped(message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    task_id = headers.get("id")
    if task_id and headers.get(HEADER_KEY) is not None:
        release(
            None,
            task_id,
            str(headers.get(HEADER_DOMAIN)),
            None,
            headers.get(HEADER_LEASE),
            # Refused before it ran: no start, and no worker name in the message to give.
            Outcome("failed"),
        )


def _on_process_init(**_: Any) -> None:
    # Only prefork children send this signal: release slots off the task's thread there.
    releaser.enabled = True
    # Connections inherited from the parent must not be shared with it after fork.
    for dispatcher in list(DISPATCHERS.values()):
        dispatcher.storage.reopen()


def _on_process_shutdown(**_: Any) -> None:
    releaser.drain()


_signals_connected = False


def connect_signals() -> None:
    """Connect the worker-side handlers to Celery's signals, once per process."""
    global _signals_connected
    if _signals_connected:
        return
    _signals_connected = True
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="fairsched.prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="fairsched.postrun")
    signals.task_revoked.connect(_on_revoked, weak=False, dispatch_uid="fairsched.revoked")
    signals.task_rejected.connect(
        _on_message_dropped, weak=False, dispatch_uid="fairsched.rejected"
    )
    signals.task_unknown.connect(_on_message_dropped, weak=False, dispatch_uid="fairsched.unknown")
    signals.worker_process_init.connect(
        _on_process_init, weak=False, dispatch_uid="fairsched.process_init"
    )
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid="fairsched.process_shutdown"
    )
