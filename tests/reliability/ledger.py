"""Counting every task of a fault test by its unique token: submitted, refused, run, lost, run
twice; and the figures the docs' reliability table is made from."""

from __future__ import annotations

import collections
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from attrs import define, field

from fairsched import StorageUnavailable
from tests.e2e.cluster import Cluster
from tests.reliability.harness import wait_for


@define
class Ledger:
    """What a fault test submitted and what ran, by token."""

    cluster: Cluster
    accepted: list[str] = field(factory=list)
    #: Submits that raised StorageUnavailable (the caller was told: not accepted).
    refused: list[str] = field(factory=list)
    errors: list[str] = field(factory=list)

    def submit(self, key: str, token: str, seconds: float = 0.0) -> bool:
        """Submit one task; True if accepted."""
        try:
            self.cluster.module.work.lru_delay(key, token, seconds)
        except StorageUnavailable as exc:
            self.refused.append(token)
            self.errors.append(str(exc))
            return False
        self.accepted.append(token)
        return True

    def wait_all_ran(self, timeout: float) -> None:
        """Wait until every accepted task has started at least once."""
        self.cluster.wait_started(self.accepted, timeout=timeout)

    def counts(self) -> dict[str, int]:
        runs = collections.Counter(self.cluster.runs())
        return {
            "submitted": len(self.accepted) + len(self.refused),
            "accepted": len(self.accepted),
            "refused": len(self.refused),
            "ran": sum(1 for t in self.accepted if runs[t]),
            "lost": sum(1 for t in self.accepted if not runs[t]),
            "duplicated": sum(n - 1 for t, n in runs.items() if n > 1),
        }

    def settle(self, name: str, fault_at: float, timeout: float, **figures: Any) -> dict[str, Any]:
        """Wait until every accepted task ran, then report the counts and the longest stall
        since the fault (wall clock `fault_at`); return them."""
        self.wait_all_ran(timeout=timeout)
        stall = self.longest_stall(fault_at - 1, time.time())
        counts: dict[str, Any] = {**self.counts(), **figures, "longest_stall_s": round(stall, 2)}
        report(name, **counts)
        return counts

    def fault_then_settle(
        self, name: str, after: int, fault: Callable[[], object], timeout: float
    ) -> tuple[dict[str, Any], float]:
        """Once `after` tasks have started, run `fault` (a kill and restart, say), then settle;
        return the counts (with `down_s`, how long the fault took) and that duration."""
        wait_for(f"{after} started", lambda: len(self.cluster.started()) >= after, timeout=60)
        began = time.time()
        fault()
        down = time.time() - began
        return self.settle(name, began, timeout, down_s=round(down, 2)), down

    def longest_stall(self, after: float, before: float) -> float:
        """The longest time between two task starts in [after, before] (wall clock)."""
        starts = sorted(t for t in self.cluster.started().values() if after <= t <= before)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        return max(gaps, default=0.0)


def report(name: str, **figures: Any) -> None:
    """Print the figures of one fault test (pytest -s shows them) and, when
    FAIRSCHED_RELIABILITY_REPORT names a file, append them to it as a JSON line."""
    line = {"test": name, "at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}
    print(f"\nRELIABILITY {json.dumps(line)}")
    path = os.environ.get("FAIRSCHED_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
