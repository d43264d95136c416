"""What `lru_apply_async` accepts: its Celery options and `expires`, checked before anything is
stored, since a value that makes a publish fail would make every publish of the task fail."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from policies import InvalidJob
from policies._numbers import check_number

#: apply_async options refused by lru_apply_async, with the reason shown to the caller.
REFUSED_OPTIONS = {
    "countdown": "a delayed task would hold a dispatch slot (or jump the fair queue) while "
    "it waits",
    "eta": "a delayed task would hold a dispatch slot (or jump the fair queue) while it waits",
}


def deadline_of(expires: Any, now: float, utc: bool = True) -> float | None:
    """Absolute expiry time (seconds since the epoch) of an `expires=` value.

    Accepts seconds from `now`, a `timedelta`, or a `datetime` (naive ones are UTC when `utc`,
    as Celery's `enable_utc`, else local time).

    Raises:
        InvalidJob: the value is none of those, not finite, or past the year 9999.
    """
    if expires is None:
        return None
    if isinstance(expires, timedelta):
        return now + expires.total_seconds()
    if isinstance(expires, datetime):
        if expires.tzinfo is None and utc:
            expires = expires.replace(tzinfo=timezone.utc)
        return float(expires.timestamp())
    if not isinstance(expires, (int, float)) or isinstance(expires, bool):
        raise InvalidJob(
            f"expires must be seconds, a timedelta or a datetime, got {type(expires).__name__}"
        )
    deadline = now + check_number(expires, "expires", InvalidJob)
    try:
        # Celery sends the deadline as a datetime: one it cannot represent would fail at
        # every publish, so it is refused here, before anything is stored.
        datetime.fromtimestamp(deadline, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise InvalidJob(
            f"expires={expires!r} seconds from now is past the year 9999; expires is "
            "seconds from now (not a timestamp, nor milliseconds), a timedelta or a datetime"
        ) from None
    return deadline


def _named(value: Any) -> bool:
    # kombu's Queue and Exchange; not imported here so this module does not need kombu.
    return isinstance(getattr(value, "name", None), str) and bool(value.name)


def _kind(ok: Callable[[Any], bool], expected: str) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if not ok(value):
            raise InvalidJob(f"option {name}= must be {expected}, got {value!r}")

    return check


def _seconds(name: str, value: Any) -> None:
    check_number(value, f"option {name}=", InvalidJob, low=0, low_open=True)


def _priority(name: str, value: Any) -> None:
    check_number(value, f"option {name}=", InvalidJob, low=0, high=255, integer=True)


def _serializer(name: str, value: Any) -> None:
    from kombu.serialization import registry

    if value not in registry._encoders:  # the registry has no public lookup
        raise InvalidJob(
            f"option serializer={value!r} is not a registered kombu serializer; "
            f"known: {', '.join(sorted(registry._encoders))}"
        )


def _compression(name: str, value: Any) -> None:
    from kombu import compression as codecs

    try:
        codecs.get_encoder(value)  # type: ignore[no-untyped-call]
    except (KeyError, TypeError):
        raise InvalidJob(
            f"option compression={value!r} is not a known compression; "
            f"known: {', '.join(sorted(codecs.encoders()))}"  # type: ignore[no-untyped-call]
        ) from None


#: apply_async options whose value can be checked before the task is stored.
CHECKED_OPTIONS: Mapping[str, Callable[[str, Any], None]] = {
    "queue": _kind(
        lambda v: (isinstance(v, str) and v != "") or _named(v), "a queue name or Queue"
    ),
    "exchange": _kind(lambda v: isinstance(v, str) or _named(v), "an exchange name or Exchange"),
    "routing_key": _kind(lambda v: isinstance(v, str), "a str"),
    "priority": _priority,
    "headers": _kind(lambda v: isinstance(v, Mapping), "a mapping"),
    "time_limit": _seconds,
    "soft_time_limit": _seconds,
    "task_id": _kind(lambda v: isinstance(v, str) and v != "", "a non-empty str"),
    "shadow": _kind(lambda v: isinstance(v, str), "a str"),
    "ignore_result": _kind(lambda v: isinstance(v, bool), "True or False"),
    "serializer": _serializer,
    "compression": _compression,
}


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as a new dict, or `InvalidJob` for one `lru_apply_async` refuses
    (countdown, eta) or one that would make every publish fail: a value of the wrong type,
    or a serializer or compression kombu does not know."""
    for option, why in REFUSED_OPTIONS.items():
        if options.get(option) is not None:
            raise InvalidJob(
                f"lru_apply_async does not take {option}=: {why}. Call apply_async for a "
                f"delayed call outside fair scheduling, or submit later (e.g. from a task "
                f"scheduled with {option}=)."
            )
    checked = {k: v for k, v in options.items() if k not in REFUSED_OPTIONS}
    for name, check in CHECKED_OPTIONS.items():
        value = checked.get(name)
        if value is not None:
            check(name, value)
    return checked
