"""The per-key backlogs every policy reads: what the fair queue and the policies share.

`Backlog` holds a FIFO of job records per key, the order in which keys were first seen (the
tie-break), the weights, and a heap of deadlines.
"""

from __future__ import annotations

from collections import deque

from attrs import define, field

from ._job import Job


@define
class Backlog:
    """The per-key FIFO backlogs a policy state reads (never writes).

    Invariants: `queues` holds only keys with at least one live job, and the head of each queue
    is live (withdrawn jobs deeper in a queue are skipped lazily, counted in `sizes` already).
    """

    queues: dict[str, deque[Job]] = field(factory=dict)
    sizes: dict[str, int] = field(factory=dict)
    #: Order of first enqueue per key: the tie-break every policy uses. Never forgotten, so a
    #: key that comes back keeps its place.
    first_seen: dict[str, int] = field(factory=dict)
    weights: dict[str, float] = field(factory=dict)
    #: Live jobs by id, for revoke and for spotting a duplicate id.
    jobs: dict[str, Job] = field(factory=dict)
    #: Identities (`id(job)`) of withdrawn jobs still sitting inside a queue. Identity, not the
    #: job id, since an id may be queued again while its withdrawn entry is still in a queue;
    #: the queue keeps the object alive until the entry is dropped, so the identity is unique.
    withdrawn: set[int] = field(factory=set)
    #: (deadline, seq, job) of jobs with a deadline; an entry whose job is no longer queued is
    #: skipped. The job itself, not its id, marks the entry: an id may be queued again.
    deadlines: list[tuple[float, int, Job]] = field(factory=list)
    _seq: int = 0

    def head(self, key: str) -> Job:
        """The next job of a backlogged `key` (KeyError if it has none)."""
        return self.queues[key][0]

    def weight(self, key: str) -> float:
        """The weight of `key` (1.0 unless set)."""
        return self.weights.get(key, 1.0)

    def next_seq(self) -> int:
        """A number larger than any handed out before (orders simultaneous events)."""
        self._seq += 1
        return self._seq
