"""The task API: `@lru_task`, `LRUTask.lru_delay`, weights, revoke and monitoring."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from celery import Celery, Task
from celery.result import AsyncResult

from ..storage import Storage
from ..storage import Task as StoredTask
from ._apps import dispatcher_for, install

F = TypeVar("F", bound=Callable[..., Any])


class LRUTask(Task):  # type: ignore[misc]
    """A Celery task that can also be submitted fairly, under a key.

    `delay` / `apply_async` still send it straight to the broker (no fair scheduling).
    `on_success` / `on_failure` of subclasses run as for any Celery task, with the task's own
    id, args and kwargs.
    """

    def lru_delay(self, key: str, *args: Any, **kwargs: Any) -> AsyncResult:
        """Submit `self(*args, **kwargs)` fairly under `key` (short for `lru_apply_async`)."""
        return self.lru_apply_async(key, args, kwargs)

    def lru_apply_async(
        self,
        key: str,
        args: Iterable[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        expires: Any = None,
        cost: float | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Submit this task fairly under `key` and return its own `AsyncResult`.

        The task waits in its key's backlog until the policy picks it and its domain (the
        Celery queue it routes to) has a free slot; then it is published with its own id,
        so `.get()` returns its value. `expires` is seconds, a timedelta or a datetime; a task
        that expires in the backlog never runs and is marked REVOKED. `cost` is the declared
        service cost for cost-aware policies. Other `options` are Celery's `apply_async`
        options (queue, routing_key, headers, priority, link, ...); `countdown` and `eta` are
        refused.

        Raises:
            InvalidJob: bad key, cost or expiry, or a refused option.
            SerializationError: an argument cannot be encoded; nothing was stored.
            StorageError: the storage failed; nothing was stored.
        """
        dispatcher = dispatcher_for(self.app)
        task_id = dispatcher.submit(
            self.name,
            key,
            tuple(args or ()),
            dict(kwargs or {}),
            expires=expires,
            cost=cost,
            options=options,
        )
        return self.AsyncResult(task_id)


def lru_task(app: Celery, *, base: type[Task] | None = None, **options: Any) -> Callable[[F], Any]:
    """Decorator: register a function as a Celery task of `app` that also has `lru_delay`.

    `base` may be any Task subclass; one that is not an `LRUTask` gets it mixed in.
    `options` are `app.task` options (name, bind, acks_late, max_retries, ...).
    """
    if base is None:
        base = LRUTask
    elif not issubclass(base, LRUTask):
        base = type(f"LRU{base.__name__}", (LRUTask, base), {"__module__": base.__module__})
    install(app)

    def decorate(fun: F) -> Any:
        return app.task(base=base, **options)(fun)

    return decorate


def set_weight(app: Celery, key: str, weight: float) -> None:
    """Set the weight of `key` at run time; kept in the storage until changed.

    Raises:
        InvalidWeight: the weight is not within [MIN_WEIGHT, MAX_WEIGHT].
    """
    dispatcher_for(app).storage.set_weight(key, weight)


def revoke(app: Celery, task_id: str, queue: str | None = None, **control_options: Any) -> bool:
    """Revoke a task: withdrawn from its backlog if still queued (and marked REVOKED), else
    revoked through `app.control.revoke` (`control_options`, e.g. terminate=True, go there).

    `queue`, the Celery queue the task was routed to, makes the withdrawal one storage call;
    without it each queue the storage knows is asked in turn.
    Returns True if the task was withdrawn from the backlog.
    """
    if dispatcher_for(app).revoke(task_id, queue):
        return True
    app.control.revoke(task_id, **control_options)
    return False


# -- monitoring, under the names celery-ranch users know --------------------------------------


def get_all_lru_keys(app: Celery | None = None, queue: str | None = None) -> list[str]:
    """Keys with a backlog (of `queue`, or of any): `storage.keys()` under its celery-ranch
    name. `app` defaults to Celery's current app."""
    return _storage(app).keys(queue)


def get_tasks_by_lru_key(
    key: str, app: Celery | None = None, limit: int | None = None, queue: str | None = None
) -> list[StoredTask]:
    """The queued tasks of `key` in dispatch order: `storage.queued()` under its celery-ranch
    name."""
    return _storage(app).queued(key, limit, queue)


def get_last_used_times(app: Celery | None = None, queue: str | None = None) -> dict[str, float]:
    """Each key's latest dispatch time: `storage.last_dispatched()` under its celery-ranch
    name."""
    return _storage(app).last_dispatched(queue)


def _storage(app: Celery | None) -> Storage:
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    return dispatcher_for(app).storage
