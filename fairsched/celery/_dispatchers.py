"""The dispatcher of each configured app, for the worker-side signal handlers to find."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from ..dispatch import Dispatcher

logger = logging.getLogger("fairsched.celery")

#: The dispatcher of each configured app. Weak, so a discarded app (tests) is forgotten.
DISPATCHERS: weakref.WeakKeyDictionary[Any, Dispatcher] = weakref.WeakKeyDictionary()
#: Held while an app is configured, so two threads never build two dispatchers for it.
CONFIGURE_LOCK = threading.RLock()


def find(app: Any, what: str) -> Dispatcher | None:
    """The dispatcher of `app`; without an app (a message Celery could not route to a task),
    the only dispatcher of this process if there is exactly one. Logs when none is found."""
    found = DISPATCHERS.get(app) if app is not None else None
    if found is not None:
        return found
    candidates = list(DISPATCHERS.values())
    if len(candidates) == 1:
        return candidates[0]
    logger.error("cannot tell which app %s belongs to; it is left to its lease", what)
    return None
