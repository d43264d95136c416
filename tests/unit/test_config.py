"""FairschedConfig: defaults, parsing of app.conf.fairsched, and errors that name the setting."""

from __future__ import annotations

import attrs
import pytest

from fairsched import ConfigurationError, FairschedConfig, SerializerType
from fairsched.config import SETTING_NAMES


class Conf(dict):
    """The part of Celery's app.conf that from_celery reads: a mapping with .get."""


def test_defaults_work_without_any_settings():
    config = FairschedConfig.from_celery(Conf())
    assert config.window == "auto"
    assert config.policy_name == "weighted_lru"
    assert config.redis_url is None
    assert config.redis_serializer == "json"
    assert config.heartbeat_ttl == 3 * config.heartbeat_interval


def test_every_documented_setting_is_accepted():
    config = FairschedConfig.from_mapping(
        {
            "policy": {"policy": "drr", "quantum": 2.0},
            "weights": {"gold": 3, "free": 1},
            "window": 16,
            "window_factor": 1.5,
            "lease_timeout": 60,
            "redis_url": "redis://localhost:6379/0",
            "redis_prefix": "myapp:",
            "redis_serializer": SerializerType.MSGPACK,
            "redis_key_ttl": 3600,
            "redis_max_retries": 5,
            "redis_use_ssl": True,
            "metrics_enabled": False,
            "record_size": 50_000,
        }
    )
    assert config.record_size == 50_000
    assert config.policy_name == "drr"
    assert dict(config.weights) == {"gold": 3.0, "free": 1.0}
    assert config.window == 16
    assert config.redis_serializer == "msgpack"
    assert config.redis_use_ssl is True


def test_config_is_frozen_all_the_way_down():
    config = FairschedConfig.from_mapping({"weights": {"a": 2}, "policy": {"policy": "drr"}})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.window = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.weights["a"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        config.policy["quantum"] = 5


def test_unknown_setting_is_named_and_valid_ones_listed():
    with pytest.raises(ConfigurationError) as info:
        FairschedConfig.from_mapping({"windw": 4})
    message = str(info.value)
    assert "'windw'" in message
    for name in SETTING_NAMES:
        assert name in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("window", 0, "int >= 1 or 'auto'"),
        ("window", "big", "int >= 1 or 'auto'"),
        ("window", 2.5, "int >= 1 or 'auto'"),
        ("window", True, "int >= 1 or 'auto'"),
        ("window_factor", 0, "> 0"),
        ("window_factor", float("nan"), "> 0"),
        ("lease_timeout", -1, "> 0"),
        ("lease_timeout", "60", "> 0"),
        ("redis_url", 6379, "a str"),
        ("redis_max_retries", -1, "int >= 0"),
        ("redis_use_ssl", "yes", "True or False"),
        ("metrics_enabled", 1, "True or False"),
        ("redis_key_ttl", 0, "> 0"),
        ("idle_window", 0, "int >= 1"),
    ],
)
def test_bad_value_names_the_setting_and_what_is_valid(name, value, expected):
    with pytest.raises(ConfigurationError) as info:
        FairschedConfig.from_mapping({name: value})
    assert repr(name) in str(info.value)
    assert expected in str(info.value)


def test_unknown_policy_lists_the_valid_ones():
    with pytest.raises(ConfigurationError) as info:
        FairschedConfig.from_mapping({"policy": "fifo"})
    assert "'policy'" in str(info.value)
    assert "weighted_lru" in str(info.value) and "drr" in str(info.value)


def test_unknown_policy_option_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="quantum"):
        FairschedConfig.from_mapping({"policy": {"policy": "lru", "quantum": 2}})


@pytest.mark.parametrize("weights", [{"a": 0}, {"a": -1}, {"a": float("inf")}, {"": 1}, [1, 2]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ConfigurationError, match="'weights'"):
        FairschedConfig.from_mapping({"weights": weights})


def test_unknown_serializer_lists_the_known_ones():
    with pytest.raises(ConfigurationError) as info:
        FairschedConfig.from_mapping({"redis_serializer": "toml"})
    assert "'redis_serializer'" in str(info.value)
    assert "json" in str(info.value)


def test_settings_must_be_a_mapping():
    with pytest.raises(ConfigurationError, match="dict"):
        FairschedConfig.from_celery(Conf(fairsched=["window", 3]))


def test_overrides_win_over_app_settings():
    config = FairschedConfig.from_celery(Conf(fairsched={"window": 3}), window=9)
    assert config.window == 9


def test_celery_ranch_settings_are_read_with_a_warning():
    conf = Conf(celery_ranch={"redis_prefix": "myapp:", "metrics_enabled": True})
    with pytest.warns(DeprecationWarning, match="celery_ranch"):
        config = FairschedConfig.from_celery(conf)
    assert config.redis_prefix == "myapp:"


def test_the_old_record_file_setting_is_refused_with_the_replacement_named():
    with pytest.raises(ConfigurationError, match="replaced by 'record_size'"):
        FairschedConfig.from_mapping({"record_workload": "/tmp/trace.csv"})


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100", 10**8])
def test_record_size_must_be_a_bounded_int(bad):
    with pytest.raises(ConfigurationError, match="record_size"):
        FairschedConfig.from_mapping({"record_size": bad})


@pytest.mark.parametrize(
    ("broker", "fairsched", "given", "expected"),
    [
        # A Redis broker holding the storage: late binding, the fair transport.
        ("redis://127.0.0.1:1/0", {}, None, "fairsched.transport:Transport"),
        # A storage Redis of its own: windowed dispatch, kombu's Redis transport with the fix
        # for a lost broker.
        (
            "redis://127.0.0.1:1/0",
            {"redis_url": "redis://127.0.0.1:2/0"},
            None,
            "fairsched.transport:RedisTransport",
        ),
        (
            "redis://127.0.0.1:1/0",
            {"dispatch": "window"},
            None,
            "fairsched.transport:RedisTransport",
        ),
        # A transport the app names itself is its own business.
        ("redis://127.0.0.1:1/0", {"dispatch": "window"}, "my.transport:T", "my.transport:T"),
        # Not a Redis broker: Celery's choice.
        ("memory://", {}, None, None),
    ],
)
def test_configure_picks_the_broker_transport(broker, fairsched, given, expected):
    from celery import Celery

    import fairsched as fs

    app = Celery("t", broker=broker)
    app.conf.broker_transport = given
    app.conf.fairsched = fairsched
    fs.configure(app=app)
    assert app.conf.broker_transport == expected


def test_reconfiguring_for_windowed_dispatch_leaves_the_fair_transport():
    from celery import Celery

    import fairsched as fs

    app = Celery("t", broker="redis://127.0.0.1:1/0")
    fs.configure(app=app)
    fs.configure(app=app, dispatch="window")
    assert app.conf.broker_transport == "fairsched.transport:RedisTransport"
