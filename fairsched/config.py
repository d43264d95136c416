"""Settings of the Celery integration, read from `app.conf.fairsched` and checked at start-up.

>>> config = FairschedConfig.from_mapping({"policy": "drr", "window": 8})
>>> config.window, config.policy_name
(8, 'drr')
>>> FairschedConfig.from_mapping({"windw": 8})
Traceback (most recent call last):
...
fairsched.errors.ConfigurationError: unknown fairsched setting 'windw'; valid settings: ...
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs
from attrs import field, frozen

from policies import DEFAULT_POLICY, PolicyError, from_config
from policies._job import check_weights

from ._urls import RedactedURL
from .errors import ConfigurationError
from .serializers import SerializerType, get_serializer
from .storage import DEFAULT_LEASE_TIMEOUT, MAX_RECORD_SIZE
from .storage._redis import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT

__all__ = ["SETTING_NAMES", "FairschedConfig"]

#: The celery-ranch settings name; read when `fairsched` is absent, with a warning.
LEGACY_SETTINGS = "celery_ranch"


def _fail(name: str, expected: str, value: object) -> ConfigurationError:
    return ConfigurationError(f"fairsched setting {name!r} must be {expected}, got {value!r}")


def _policy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    return value


def _check_policy(instance: Any, attribute: Any, value: Any) -> None:
    try:
        from_config(value)
    except PolicyError as exc:
        raise ConfigurationError(f"fairsched setting 'policy': {exc}") from exc


def _weights(value: Any) -> Mapping[str, float]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise _fail("weights", "a mapping of key to weight", value)
    try:
        return MappingProxyType(check_weights(value))
    except PolicyError as exc:
        raise ConfigurationError(f"fairsched setting 'weights': {exc}") from exc


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise _fail(attribute.name, "a finite number > 0", value)


def _int_at_least(low: int) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _fail(attribute.name, f"an int >= {low}", value)

    return check


def _check_window(instance: Any, attribute: Any, value: Any) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail("window", "an int >= 1 or 'auto'", value)


def _dispatch(instance: Any, attribute: Any, value: Any) -> None:
    if value not in ("auto", "late", "window"):
        raise _fail("dispatch", "'auto', 'late' or 'window'", value)


def _optional(check: Any) -> Any:
    def run(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return run


def _str(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise _fail(attribute.name, "a str", value)


def _bool(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute.name, "True or False", value)


def _record_size(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RECORD_SIZE:
        raise _fail("record_size", f"an int in [0, {MAX_RECORD_SIZE}]", value)


def _no_record_file(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        raise ConfigurationError(
            "fairsched setting 'record_workload' (a local trace file per worker) is replaced "
            "by 'record_size': N, which records every task outcome in the storage; export "
            "them with `fairsched record export` (docs/recording.md)"
        )


def _serializer_name(value: Any) -> Any:
    return value.value if isinstance(value, SerializerType) else value


def _check_serializer(instance: Any, attribute: Any, value: Any) -> None:
    _str(instance, attribute, value)
    if value == "pickle":
        return  # allowed by explicit opt-in; the storage warns when it builds the serializer
    try:
        get_serializer(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"fairsched setting 'redis_serializer': {exc}") from exc


@frozen
class FairschedConfig:
    """The validated `app.conf.fairsched` settings; every field has a working default.

    Times are seconds. `window` is the number of tasks per domain in flight at once, or
    "auto": `window_factor` times the total concurrency of the live workers consuming the
    domain (`idle_window` while no worker is live).
    """

    #: Policy name, or mapping `{"policy": NAME, **options}` (see `fairsched policies`).
    policy: Any = field(default=DEFAULT_POLICY, converter=_policy, validator=_check_policy)
    #: Key weights applied to the storage at configure time (kept there until changed).
    weights: Mapping[str, float] = field(factory=dict, converter=_weights)
    #: How tasks reach workers: "late" (the policy chooses when a worker process is free; a
    #: Redis broker, whose Redis holds the backlogs), "window" (a window of chosen tasks is
    #: published to the broker; any broker), or "auto" (late for a Redis broker when the
    #: storage can live in it, else window). See docs/celery.md, "Dispatch modes".
    dispatch: Literal["auto", "late", "window"] = field(default="auto", validator=_dispatch)
    window: int | Literal["auto"] = field(default="auto", validator=_check_window)
    window_factor: float = field(default=2.0, validator=_positive)
    #: Window used by "auto" when no worker has a live heartbeat, so tasks still reach the
    #: broker and wait there for the first worker.
    idle_window: int = field(default=1, validator=_int_at_least(1))
    lease_timeout: float = field(default=DEFAULT_LEASE_TIMEOUT, validator=_positive)
    #: How often each worker reclaims lapsed leases and refills the window.
    reclaim_interval: float = field(default=1.0, validator=_positive)
    #: How often each worker renews its heartbeat; it is dead after 3 missed beats.
    heartbeat_interval: float = field(default=2.0, validator=_positive)
    redis_url: str | None = field(
        default=None, validator=_optional(_str), repr=lambda url: repr(RedactedURL(url or ""))
    )
    redis_prefix: str = field(default="fairsched:", validator=_str)
    redis_serializer: str = field(
        default="json", converter=_serializer_name, validator=_check_serializer
    )
    redis_key_ttl: float | None = field(default=None, validator=_optional(_positive))
    redis_max_retries: int = field(default=3, validator=_int_at_least(0))
    redis_use_ssl: bool = field(default=False, validator=_bool)
    #: Seconds to wait for one Redis reply / one connection attempt; a hung Redis surfaces as
    #: StorageUnavailable after about (redis_max_retries + 1) * redis_socket_timeout.
    redis_socket_timeout: float = field(default=DEFAULT_SOCKET_TIMEOUT, validator=_positive)
    redis_connect_timeout: float = field(default=DEFAULT_CONNECT_TIMEOUT, validator=_positive)
    metrics_enabled: bool = field(default=True, validator=_bool)
    #: How many task outcomes each domain's recording keeps (0: nothing is recorded); read
    #: them back with `fairsched record export`. See docs/recording.md.
    record_size: int = field(default=0, validator=_record_size)
    #: Replaced by `record_size` (the recording now lives in the storage); refused with a hint.
    record_workload: Any = field(default=None, validator=_no_record_file)

    @property
    def policy_name(self) -> str:
        """The configured policy's registry name."""
        return str(from_config(self.policy).name)

    @property
    def heartbeat_ttl(self) -> float:
        """Seconds after its last beat that a worker stops counting towards the window."""
        return 3 * self.heartbeat_interval

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None, **overrides: Any) -> FairschedConfig:
        """Build from a settings mapping plus keyword overrides (which win).

        Raises:
            ConfigurationError: a setting is unknown or has a bad value; the message names it
                and lists the valid settings or values.
        """
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise ConfigurationError(
                f"app.conf.fairsched must be a dict of settings, got {type(settings).__name__}"
            )
        merged = {**settings, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = sorted(str(k) for k in merged if k not in SETTING_NAMES)
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ConfigurationError(
                f"unknown fairsched setting {names}; valid settings: {', '.join(SETTING_NAMES)}"
            )
        return cls(**merged)

    @classmethod
    def from_celery(cls, conf: Any, **overrides: Any) -> FairschedConfig:
        """Build from a Celery app's configuration (`app.conf.fairsched`).

        The celery-ranch name `app.conf.celery_ranch` is read when `fairsched` is absent.

        Raises:
            ConfigurationError: a setting is unknown or has a bad value.
        """
        settings = conf.get("fairsched")
        if settings is None and conf.get(LEGACY_SETTINGS) is not None:
            warnings.warn(
                "app.conf.celery_ranch is read for compatibility; rename it app.conf.fairsched",
                DeprecationWarning,
                stacklevel=2,
            )
            settings = conf.get(LEGACY_SETTINGS)
        return cls.from_mapping(settings, **overrides)


def hide_secrets(conf: Any) -> None:
    """Store the storage URL in `conf` (a Celery app's configuration) as a `RedactedURL`, so
    `celery report` and other censored dumps of the settings, which mask `broker_url` and
    `result_backend` by name but not a URL nested in `fairsched`, do not print its password.
    """
    for name in ("fairsched", LEGACY_SETTINGS):
        settings = conf.get(name)
        if not isinstance(settings, Mapping):
            continue
        url = settings.get("redis_url")
        if isinstance(url, str) and not isinstance(url, RedactedURL):
            conf[name] = {**settings, "redis_url": RedactedURL(url)}


#: Every setting `app.conf.fairsched` may hold.
SETTING_NAMES: tuple[str, ...] = tuple(a.name for a in attrs.fields(FairschedConfig))
