"""Task ids in Redis: uuids are stored as 16 bytes, every id comes back exactly as given."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fairsched import InvalidJob, Job, MemoryStorage, RedisStorage, Task
from fairsched.storage._redis_wire import pack_id, unpack_id

pytestmark = pytest.mark.redis

DASHED = str(uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF))
HEX = uuid.UUID(int=0x0123456789ABCDEF0123456789ABCDEF).hex
# Ids that look like a packed uuid, or almost like a uuid, must stay distinct from real ones.
AWKWARD = [
    DASHED,
    HEX,
    DASHED.upper(),
    HEX.upper(),
    HEX[:-1],
    HEX + "0",
    "\x01" + "x" * 16,
    "\x02" + bytes.fromhex(HEX).decode("latin-1"),
    "\x00",
    "\x00\x01",
    "plain:id:with:colons",
    "ключ-✓",
]


@pytest.mark.parametrize("task_id", AWKWARD)
def test_packing_an_id_round_trips(task_id: str) -> None:
    assert unpack_id(pack_id(task_id)) == task_id


def test_packing_is_one_to_one_and_shrinks_uuids() -> None:
    packed = [pack_id(t) for t in AWKWARD]
    assert len(set(packed)) == len(AWKWARD)
    assert len(pack_id(DASHED)) == len(pack_id(HEX)) == 17


def test_every_verb_gives_ids_back_as_given(redis_client: Any, redis_prefix: str) -> None:
    redis = RedisStorage(redis_client, prefix=redis_prefix)
    memory = MemoryStorage()
    for storage in (redis, memory):
        for i, tid in enumerate(AWKWARD):
            storage.enqueue(Task(Job(tid, f"k{i % 3}", float(i)), b"p", "celery"), now=float(i))
    for i in range(3):
        key = f"k{i}"
        assert [t.id for t in redis.queued(key)] == [t.id for t in memory.queued(key)]
    with pytest.raises(InvalidJob):  # the duplicate check sees the packed form
        redis.enqueue(Task(Job(DASHED, "k9", 0.0), b"p", "celery"), now=20.0)
    assert redis.revoke(HEX, "celery", now=20.0).id == HEX  # type: ignore[union-attr]
    assert memory.revoke(HEX, "celery", now=20.0).id == HEX  # type: ignore[union-attr]
    order = []
    for storage in (redis, memory):
        got = []
        while (task := storage.dispatch(now=30.0).task) is not None:
            got.append(task.id)
            assert storage.complete(task.id, "celery", runtime=0.1, now=31.0).id == task.id  # type: ignore[union-attr]
        order.append(got)
    assert order[0] == order[1]
    assert sorted(order[0]) == sorted(t for t in AWKWARD if t != HEX)
