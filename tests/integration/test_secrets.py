"""Passwords in URLs never reach what fairsched prints, logs or raises."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery

import fairsched
from fairsched import ConfigurationError, FairschedConfig, RedisStorage, StorageUnavailable
from fairsched._urls import RedactedURL, redact_url

SECRET = "hunter2-s3cret"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"rediss://worker:{SECRET}@cache/0", "rediss://worker:***@cache/0"),
        (f"redis://{SECRET}@cache/0", "redis://***@cache/0"),
        (f"redis://cache/0?password={SECRET}&db=2", "redis://cache/0?password=***&db=2"),
        (f"unix:///run/redis.sock?password={SECRET}", "unix:///run/redis.sock?password=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("memory://localhost/", "memory://localhost/"),
    ],
)
def test_redact_url_masks_every_form_of_credential(url, expected):
    assert redact_url(url) == expected


def test_a_redacted_url_is_the_url_everywhere_but_in_its_repr():
    url = RedactedURL(f"redis://:{SECRET}@cache/0")
    assert url == f"redis://:{SECRET}@cache/0" and str(url) == url and f"{url}" == url
    assert SECRET not in repr(url) and SECRET not in repr({"redis_url": url})


def test_celery_censored_settings_and_config_repr_hide_the_storage_password():
    app = Celery(f"s{uuid.uuid4().hex[:6]}", broker="memory://")
    app.conf.fairsched = {"redis_url": f"redis://:{SECRET}@127.0.0.1:1/0"}
    fairsched.configure(app=app)
    assert SECRET not in app.conf.humanize(with_defaults=False, censored=True)
    config = FairschedConfig.from_celery(app.conf)
    assert config.redis_url == f"redis://:{SECRET}@127.0.0.1:1/0"  # still the real URL
    assert SECRET not in repr(config)


def test_celery_report_subprocess_does_not_print_the_storage_password():
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FAIRSCHED_E2E_BROKER": "memory://",
        "FAIRSCHED_E2E_REDIS": "redis://127.0.0.1:1/0",
        "FAIRSCHED_E2E_STORAGE": f"redis://:{SECRET}@127.0.0.1:1/0",
        # Not the settings an end-to-end cluster of this session left in the environment.
        "FAIRSCHED_E2E_SETTINGS": "{}",
    }
    celery = str(Path(sys.executable).with_name("celery"))
    done = subprocess.run(
        [celery, "-A", "tests.e2e.app", "report"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "redis_url" in done.stdout  # the setting is shown...
    assert SECRET not in done.stdout + done.stderr  # ...without its password


@pytest.mark.parametrize(
    "url",
    [f"http://user:{SECRET}@host/0", f"redis://:{SECRET}@[::1/0", f"mongodb://:{SECRET}@h/0"],
)
def test_a_bad_url_error_does_not_show_the_password(url):
    with pytest.raises(ConfigurationError) as caught:
        RedisStorage.from_url(url)
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def test_an_unreachable_redis_error_does_not_show_the_password(caplog):
    storage = RedisStorage.from_url(
        f"redis://:{SECRET}@127.0.0.1:1/0", max_retries=0, connect_timeout=0.5
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageUnavailable) as caught:
        storage.in_flight("celery")
    assert SECRET not in str(caught.value) + caplog.text
