"""Bulkheads: per task kind concurrency pools, so one flooding or failing kind cannot
take every agent from the others."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from swarmperf.core.errors import BulkheadFull, ConfigError
from swarmperf.core.model import Task


@dataclass(frozen=True, slots=True)
class BulkheadSettings:
    """At most `max_concurrent` tasks of the kind bound to agents at once; at most
    `max_queued` more waiting for a place."""

    max_concurrent: int
    max_queued: int = 10_000

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ConfigError(
                "bulkheads.max_concurrent", self.max_concurrent, "Use an integer >= 1."
            )
        if self.max_queued < 0:
            raise ConfigError("bulkheads.max_queued", self.max_queued, "Use an integer >= 0.")


class Bulkheads:
    """Counts places per kind; tasks that find their bulkhead full wait parked here."""

    def __init__(self, settings: Mapping[str, BulkheadSettings]) -> None:
        self.settings = dict(settings)
        self._active: dict[str, int] = dict.fromkeys(self.settings, 0)
        self._waiting: dict[str, int] = dict.fromkeys(self.settings, 0)  # queued + parked
        self._parked: dict[str, deque[Task]] = {kind: deque() for kind in self.settings}

    def __bool__(self) -> bool:
        return bool(self.settings)

    def admit(self, task: Task) -> None:
        """Count a new task, or raise `BulkheadFull` (then nothing is counted)."""
        kind = task.kind
        limits = self.settings.get(kind)
        if limits is None:
            return
        waiting = self._waiting[kind]
        if waiting >= limits.max_queued:
            raise BulkheadFull(task.id, kind, waiting, limits.max_queued)
        self._waiting[kind] = waiting + 1

    def try_enter(self, task: Task) -> bool:
        """Take a place for `task`; False when its bulkhead is full (park it then)."""
        kind = task.kind
        limits = self.settings.get(kind)
        if limits is None or task.bulkhead is not None:
            return True
        if self._active[kind] >= limits.max_concurrent:
            return False
        self._active[kind] += 1
        self._waiting[kind] -= 1
        task.bulkhead = kind
        return True

    def park(self, task: Task) -> None:
        self._parked[task.kind].append(task)

    def leave(self, task: Task, *, done: bool) -> Task | None:
        """`task` gives its place back (`done`: for good, else it waits again).

        Returns a parked task that may now have the place, to be queued again first.
        """
        kind = task.bulkhead
        if kind is None:
            if done and task.kind in self.settings:
                self._waiting[task.kind] -= 1  # finished without ever taking a place
            return None
        task.bulkhead = None
        self._active[kind] -= 1
        if not done:
            self._waiting[kind] += 1
        parked = self._parked[kind]
        return parked.popleft() if parked else None

    def drain_parked(self) -> list[Task]:
        """Take every parked task out (each still counts as waiting until it `leave`s)."""
        out: list[Task] = []
        for parked in self._parked.values():
            out.extend(parked)
            parked.clear()
        return out

    def statistics(self) -> dict[str, dict[str, int]]:
        return {
            kind: {
                "active": self._active[kind],
                "waiting": self._waiting[kind],
                "parked": len(self._parked[kind]),
            }
            for kind in self.settings
        }
