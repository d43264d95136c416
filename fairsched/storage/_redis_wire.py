"""The wire format between `RedisStorage` and its scripts: numbers, task ids, replies, keys."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from policies import Job

from ._base import Dispatch, Task, TaskRecord


def num(value: float) -> str:
    # repr round-trips a double exactly; Lua's tonumber reads it back bit for bit.
    return repr(float(value))


def opt(value: float | None) -> str:
    return "" if value is None else num(value)


def word(value: float | None) -> str:
    # An optional number among several in one argument ('-': none).
    return "-" if value is None else repr(float(value))


def text(value: bytes) -> str:
    return value.decode("utf-8")


_UUID_DASHED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_UUID_HEX = re.compile(r"[0-9a-f]{32}\Z")
_TAG_DASHED, _TAG_HEX, _TAG_RAW = b"\x01", b"\x02", b"\x00"


def pack_id(task_id: str) -> bytes:
    """A task id as stored in Redis: a canonical lowercase uuid (what Celery makes), dashed or
    hex, as a tag byte and its 16 bytes; any other id as its UTF-8, behind a tag byte only if
    it starts with one, so the mapping stays one-to-one.

    An id is stored three times per queued task (hash field, list entry, lease/deadline
    member), so 17 bytes instead of 32 or 36 save memory on every backlogged task.
    """
    if len(task_id) == 36 and _UUID_DASHED.match(task_id):
        return _TAG_DASHED + bytes.fromhex(task_id.replace("-", ""))
    if len(task_id) == 32 and _UUID_HEX.match(task_id):
        return _TAG_HEX + bytes.fromhex(task_id)
    raw = task_id.encode("utf-8")
    return _TAG_RAW + raw if raw[:1] in (_TAG_DASHED, _TAG_HEX, _TAG_RAW) else raw


def unpack_id(stored: bytes) -> str:
    """The task id from its stored form (the inverse of `pack_id`)."""
    tag = stored[:1]
    if tag == _TAG_DASHED:
        h = stored[1:].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if tag == _TAG_HEX:
        return stored[1:].hex()
    if tag == _TAG_RAW:
        return stored[1:].decode("utf-8")
    return stored.decode("utf-8")


def tasks(domain: str, flat: Sequence[Any], start: int = 0) -> list[Task]:
    """Tasks from a script reply: 6 fields each (id, key, enqueued_at, cost, deadline, payload)."""
    out = []
    for i in range(start, len(flat), 6):
        tid, key, enq, cost, deadline, payload = flat[i : i + 6]
        job = Job(
            unpack_id(tid),
            text(key),
            float(enq),
            float(cost) if cost else None,
            float(deadline) if deadline else None,
        )
        out.append(Task(job, bytes(payload), domain))
    return out


def _unpack(reply: bytes) -> list[bytes]:
    """The fields of a packed reply: their byte lengths, a newline, then the fields."""
    head, _, data = reply.partition(b"\n")
    fields = []
    start = 0
    for size in map(int, head.split()):
        end = start + size
        fields.append(data[start:end])
        start = end
    return fields


def dispatch_reply(domain: str, reply: bytes) -> Dispatch:
    """A dispatch from its packed reply: lease deadline or '', [task], expired tasks."""
    fields = _unpack(reply)
    if fields[0]:
        task = tasks(domain, fields[1:7])[0]
        return Dispatch(task, tuple(tasks(domain, fields, 7)), float(fields[0]))
    return Dispatch(None, tuple(tasks(domain, fields, 1)))


def _hash_tag(domain: str) -> str:
    # Percent-encode the braces so a domain cannot end the hash tag early, and '%' so the
    # encoding stays one-to-one (two domains never share key names).
    return domain.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def key_base(prefix: str, domain: str) -> str:
    """The start of every Redis key of `domain`: `<prefix>{<domain>}:`, one hash tag."""
    return f"{prefix}{{{_hash_tag(domain)}}}:"


#: The values packed in a trace stream entry, in the order record() in _core.lua packs them.
RECORD_FIELDS = (
    "id",
    "key",
    "arrival",
    "dispatched",
    "started",
    "service",
    "cost",
    "deadline",
    "weight",
    "outcome",
    "worker",
    "finished",
)


def _maybe(value: bytes | None) -> float | None:
    return float(value) if value else None


def task_record(domain: str, entry: dict[bytes, bytes]) -> TaskRecord:
    """A recorded outcome from one trace stream entry (its field `r`, packed)."""
    raw = dict(zip(RECORD_FIELDS, _unpack(entry[b"r"]), strict=True))
    return TaskRecord(
        id=unpack_id(raw["id"]),
        key=text(raw["key"]),
        domain=domain,
        arrival=float(raw["arrival"]),
        dispatched=_maybe(raw["dispatched"]),
        started=_maybe(raw["started"]),
        service=_maybe(raw["service"]),
        cost=_maybe(raw["cost"]),
        deadline=_maybe(raw["deadline"]),
        weight=float(raw["weight"]),
        outcome=text(raw["outcome"]),
        worker=text(raw["worker"]),
        finished=float(raw["finished"]),
    )
