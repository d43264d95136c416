"""Talking to Redis: building a client from a URL, telling failures that pass from those that
do not, and repeating the calls that failed in a way that may pass."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from policies import InvalidJob

from .._urls import redact_url
from ..errors import ConfigurationError, ScriptError, StorageUnavailable
from ._base import check_positive

#: Error codes of Redis replies that mean "not now" (memory full, a replica, loading, cluster
#: or primary down, a busy script, persistence failing), not "this call is wrong". Redis 6.2
#: wraps the code of an error raised inside a script in its message ("... -OOM command not
#: allowed ..."), so the code is looked for in the text as well as in redis-py's classes.
_UNAVAILABLE = re.compile(
    r"(?:^|[\s-])(OOM|READONLY|LOADING|CLUSTERDOWN|MASTERDOWN|BUSY|TRYAGAIN|NOREPLICAS|MISCONF)\b"
)

#: redis-py's classes for some of those replies, by name (not all exist in every version).
_UNAVAILABLE_CLASSES = (
    ("OutOfMemoryError", "OOM"),
    ("ReadOnlyError", "READONLY"),
    ("ClusterDownError", "CLUSTERDOWN"),
    ("TryAgainError", "TRYAGAIN"),
    ("MasterDownError", "MASTERDOWN"),
)

#: Error replies of our own scripts (see _core.lua and the verb headers).
DUPLICATE = "DUPLICATE"
NOINIT = "NOINIT"


class Unregistered(Exception):
    """A script found its domain unregistered (internal: the storage registers it again)."""


def classify(what: str, exc: Exception, prefix: str) -> Exception:
    """The error to raise for a driver error `exc` raised during `what`."""
    import redis

    message = str(exc)
    if isinstance(exc, redis.AuthenticationError):
        return ConfigurationError(f"Redis refused the credentials during {what}: {message}")
    if isinstance(exc, redis.exceptions.NoPermissionError) or message.startswith("NOPERM"):
        return ConfigurationError(
            f"the Redis user lacks permission for {what} under prefix {prefix!r}: {message}"
        )
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return StorageUnavailable(f"Redis unavailable during {what}: {message}")
    if message.startswith(DUPLICATE):
        return InvalidJob("task id is already queued or leased in its domain")
    if message.startswith(NOINIT):
        return Unregistered(message)
    for name, code in _UNAVAILABLE_CLASSES:
        # redis-py strips the code from the message of the errors it has a class for;
        # which classes exist depends on its version.
        cls = getattr(redis.exceptions, name, None)
        if cls is not None and isinstance(exc, cls):
            return StorageUnavailable(f"Redis refused {what} ({code}): {message}")
    found = _UNAVAILABLE.search(message)
    if found:
        return StorageUnavailable(f"Redis refused {what} ({found.group(1)}): {message}")
    return ScriptError(f"{what} failed in Redis: {message}")


def with_retries(
    what: str,
    call: Callable[[bool], Any],
    *,
    retries: int,
    backoff: float,
    prefix: str,
    repeat: bool = False,
) -> Any:
    """Run `call(repeat)`, repeating failures that may pass, with exponential back-off.

    Every call may be repeated: reads and settings are idempotent, and every script takes a
    replay flag (`repeat`) so a repeated state change returns what its first run did instead
    of doing it twice (see `ops` in _core.lua). A connection failure, a timeout and a "not
    now" reply (out of memory, read-only replica, loading, ...) are repeated up to `retries`
    times, then raise `StorageUnavailable` with Redis's own words.
    """
    import redis

    attempt = 0
    while True:
        try:
            return call(repeat)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            error = classify(what, exc, prefix)
            if not isinstance(error, StorageUnavailable) or attempt >= retries:
                raise error from exc
            # A request that never reached Redis cannot have run, but telling that apart
            # from a lost reply depends on the driver's wording; repeating is always safe.
            repeat = True
            time.sleep(backoff * 2**attempt)
            attempt += 1


def client_for(
    url: str,
    *,
    socket_timeout: float,
    connect_timeout: float,
    client_options: Mapping[str, Any] | None = None,
) -> Any:
    """A redis-py client for `url` (redis://, rediss://, unix://) with both timeouts set and
    redis-py's own retries off (the storage repeats calls itself, knowing what a repeat means).

    Raises:
        ConfigurationError: a bad URL or timeout; the message never shows the URL's password.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        scheme = urlsplit(url).scheme
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"Redis URL must start with redis://, rediss:// or unix://, got {redact_url(url)!r}"
        )
    kwargs: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 0),
        "socket_timeout": check_positive("socket_timeout", socket_timeout),
        "socket_connect_timeout": check_positive("connect_timeout", connect_timeout),
    }
    kwargs.update(client_options or {})
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:  # redis-py names the URL in some of these
        message = str(exc).replace(url, redact_url(url))
        raise ConfigurationError(f"bad Redis URL {redact_url(url)!r}: {message}") from None


def with_ssl(url: str, use_ssl: bool | None) -> str:
    """`url` as rediss:// when `use_ssl` is True; a rediss:// URL with `use_ssl=False` is a
    contradiction (`ConfigurationError`); None leaves the URL as it is."""
    parts = urlsplit(url)
    if use_ssl is True and parts.scheme == "redis":
        return urlunsplit(parts._replace(scheme="rediss"))
    if use_ssl is False and parts.scheme == "rediss":
        raise ConfigurationError(
            f"redis_use_ssl is False but the URL {redact_url(url)!r} uses rediss://"
        )
    return url
