"""`celery -A proj fairsched status` and `fairsched status -A proj:app`, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

BIN = Path(sys.executable).parent

PROJECT = """
    import os
    from celery import Celery
    from fairsched import configure, lru_task

    app = Celery("proj", broker="memory://")
    app.conf.fairsched = {
        "redis_url": os.environ["STATUS_REDIS_URL"],
        "redis_prefix": os.environ["STATUS_PREFIX"],
        "window": 1,
        "weights": {"ui": 3},
    }
    configure(app=app)

    @lru_task(app)
    def work(x):
        return x
"""


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_status_shows_backlogs_weights_and_slots(tmp_path, redis_url, redis_prefix):
    (tmp_path / "proj.py").write_text(textwrap.dedent(PROJECT))
    env = {**os.environ, "STATUS_REDIS_URL": redis_url, "STATUS_PREFIX": redis_prefix}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    submit = "import proj\nfor i in range(5): proj.work.lru_delay('bulk', i)\n"
    submit += "proj.work.lru_delay('ui', 1)\n"
    done = run(tmp_path, env, sys.executable, "-c", submit)
    assert done.returncode == 0, done.stderr

    via_celery = run(
        tmp_path, env, str(BIN / "celery"), "-A", "proj", "fairsched", "status", "--json"
    )
    assert via_celery.returncode == 0, via_celery.stderr
    report = json.loads(via_celery.stdout)
    # window 1: the first bulk task was dispatched, the rest wait in their backlogs
    assert report["queues"] == [{"queue": "celery", "in_flight": 1, "window": 1}]
    assert [(k["key"], k["backlog"], k["weight"]) for k in report["keys"]] == [
        ("bulk", 4, 1.0),
        ("ui", 1, 3.0),
    ]
    assert report["keys"][1]["last_dispatch"] is None

    table = run(tmp_path, env, str(BIN / "fairsched"), "status", "-A", "proj:app")
    assert table.returncode == 0, table.stderr
    assert "queue celery: 1 in flight of a window of 1" in table.stdout
    assert "2 backlogged keys" in table.stdout


def test_status_without_an_app_is_a_usage_error(tmp_path):
    result = run(tmp_path, dict(os.environ), str(BIN / "fairsched"), "status")
    assert result.returncode == 2
    assert "name the app" in result.stderr
