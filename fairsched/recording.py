"""Exporting what a deployment recorded (`record_size` > 0) as a trace the simulator replays.

Each domain's storage records every task's outcome when the task leaves it (see
`Storage.records`). `export` writes them, sorted by arrival, as a recording file: a trace
(`key,arrival,service,deadline,cost`) with the recording's own columns kept (`id`, `queue`,
`dispatched`, `started`, `finished`, `weight`, `outcome`, `worker`), which `fairsched simulate`
replays as it is and `simulator.calibrate` reads to fit the model to the real run.

>>> from fairsched.storage import MemoryStorage, Task
>>> from policies import Job
>>> storage = MemoryStorage(record_size=100)
>>> storage.enqueue(Task(Job("t1", "bulk", 1.0), b"{}"), now=1.0)
>>> _ = storage.dispatch(now=1.0)
>>> _ = storage.complete("t1", "celery", 0.25, now=1.5)
>>> rows = exported(storage.records())
>>> (rows[0].key, rows[0].service, rows[0].outcome)
('bulk', 0.25, 'done')
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path

from simulator import RecordedTask, write_recording

from .storage import OUTCOMES, Storage, TaskRecord

__all__ = ["EXPORTED_OUTCOMES", "export", "exported", "parse_time"]

#: Outcomes exported by default: what ran, and what expired waiting (the simulator replays
#: it with its deadline, so a better policy may run it in time). Revoked tasks are left out:
#: a replay has no one to revoke them, so they would add work the real run never did.
EXPORTED_OUTCOMES = ("done", "failed", "retried", "expired")

#: Run time given to a task that never ran when neither its key nor its domain has a measured
#: one to lend (the trace format needs a service time > 0).
FALLBACK_SERVICE = 0.001

#: Shortest service time exported: a task's measured run time can round to 0 on a coarse
#: clock, and a trace's service must be > 0.
MIN_SERVICE = 1e-6


def exported(
    records: Sequence[TaskRecord], outcomes: Collection[str] = EXPORTED_OUTCOMES
) -> list[RecordedTask]:
    """The records with an outcome in `outcomes`, as recording rows sorted by arrival (then
    queue, then id, so the order is stable).

    A task that never ran (expired, revoked) has no measured run time: it gets the median of
    its key's measured run times, else of its domain's, else `FALLBACK_SERVICE`, so that the
    replay offers the work a real run would have done had the task been served.

    Raises:
        ValueError: an outcome is not one of `fairsched.storage.OUTCOMES`.
    """
    unknown = sorted(set(outcomes) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"unknown outcome {unknown[0]!r}; valid: {', '.join(OUTCOMES)}")
    measured: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_domain: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.service is not None:
            measured[(record.domain, record.key)].append(record.service)
            per_domain[record.domain].append(record.service)
    rows = []
    for r in records:
        if r.outcome not in outcomes:
            continue
        service = r.service
        if service is None:
            lent = measured.get((r.domain, r.key)) or per_domain.get(r.domain)
            service = statistics.median(lent) if lent else FALLBACK_SERVICE
        rows.append(
            RecordedTask(
                key=r.key,
                arrival=r.arrival,
                service=max(service, MIN_SERVICE),
                deadline=r.deadline,
                cost=r.cost,
                id=r.id,
                queue=r.domain,
                dispatched=r.dispatched,
                started=r.started,
                finished=r.finished,
                weight=r.weight,
                outcome=r.outcome,
                worker=r.worker,
            )
        )
    rows.sort(key=lambda row: (row.arrival, row.queue, row.id))
    return rows


def export(
    storage: Storage,
    path: str | Path,
    domain: str | None = None,
    since: float | None = None,
    until: float | None = None,
    outcomes: Collection[str] = EXPORTED_OUTCOMES,
) -> int:
    """Write the recorded outcomes of `storage` (of `domain`, or all; arrived in [`since`,
    `until`)) to `path` as a recording file (CSV, `.jsonl`, either `.gz`); returns how many
    rows. See `exported` for what is written."""
    rows = exported(storage.records(domain, since, until), outcomes)
    return write_recording(path, rows)


_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])\Z")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str, now: float | None = None) -> float:
    """Seconds since the epoch from epoch seconds ("1796083200"), an ISO 8601 time
    ("2026-12-01T05:00", local time unless it names its zone) or a span ago ("90s", "15m",
    "2h", "7d").

    Raises:
        ValueError: the text is none of those (the message shows the accepted forms).
    """
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        return (time.time() if now is None else now) - float(ago[1]) * _UNIT[ago[2]]
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: give epoch seconds, an ISO 8601 time such as "
            "2026-12-01T05:00, or a span ago such as 90s, 15m, 2h, 7d"
        ) from None
