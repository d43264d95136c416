"""The task record policies see: identity, key, times and cost; never the payload."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen

from ._errors import InvalidJob, InvalidTime, InvalidWeight
from ._numbers import check_number

#: Longest key accepted, in UTF-8 bytes. Keys name Redis members and log lines; a bound keeps
#: a runaway caller from storing megabyte keys.
MAX_KEY_BYTES = 1024

#: The range of a key's weight. Policies divide by weights (a start tag grows by 1/w) and
#: multiply by them (a DRR round grants quantum * w); inside this range both stay ordinary
#: doubles, a ratio of 1e12 between two keys still advances every tag, and the Lua twins
#: reach the same floats. Beyond it, 5e-324 makes 1/w infinite and a key unservable.
MIN_WEIGHT = 1e-6
MAX_WEIGHT = 1e6


@frozen
class Job:
    """One queued task as a policy sees it.

    `enqueued_at` and `deadline` are seconds on the caller's clock. A job whose `deadline` has
    passed (`deadline < now`) is never dispatched; it is handed back as expired. `cost` is the
    declared service cost (seconds or any unit used consistently); `None` lets a cost-aware
    policy estimate it.
    """

    id: str
    key: str
    enqueued_at: float = 0.0
    cost: float | None = None
    deadline: float | None = None


def check_key(key: object) -> str:
    """Return `key` if it is a usable key, else raise `InvalidJob` saying why."""
    if not isinstance(key, str):
        raise InvalidJob(f"key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidJob("key must not be empty")
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidJob(f"key is {len(key.encode('utf-8'))} bytes; the limit is {MAX_KEY_BYTES}")
    return key


def check_weight(weight: object, key: str | None = None) -> float:
    """Return `weight` as a float if it lies in [MIN_WEIGHT, MAX_WEIGHT], else raise
    `InvalidWeight`."""
    where = f" for key {key!r}" if key is not None else ""
    return check_number(weight, f"weight{where}", InvalidWeight, low=MIN_WEIGHT, high=MAX_WEIGHT)


def check_weights(weights: Mapping[str, object]) -> dict[str, float]:
    """Return `weights` as {key: float} if every key and weight is valid, else raise naming the
    first bad one; used wherever several weights are set at once, so none is set unless all
    are valid."""
    return {check_key(k): check_weight(w, k) for k, w in weights.items()}


def check_time(now: object) -> float:
    """Return `now` (seconds) as a float, or raise `InvalidTime`."""
    return check_number(now, "now", InvalidTime)


def check_job(job: Job) -> Job:
    """Return `job` if every field is valid, else raise `InvalidJob` naming the field."""
    if not isinstance(job.id, str) or not job.id:
        raise InvalidJob(f"job id must be a non-empty str, got {job.id!r}")
    check_key(job.key)
    where = f"job {job.id!r}:"
    check_number(job.enqueued_at, f"{where} enqueued_at", InvalidJob)
    if job.deadline is not None:
        check_number(job.deadline, f"{where} deadline", InvalidJob)
    if job.cost is not None:
        check_number(job.cost, f"{where} cost", InvalidJob, low=0)
    return job


def check_runtime(runtime: object) -> float:
    """Return `runtime` (seconds) as a float if it is finite and >= 0, else raise `InvalidJob`."""
    return check_number(runtime, "runtime", InvalidJob, low=0)
