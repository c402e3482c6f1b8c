"""Frozen snapshots of stored rows, as the store's read methods return them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RUN_RUNNING = "running"  # a run's status from `start_run` until `finish_run`
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
# Stopped by SIGTERM or SIGINT: it drained, cancelled the rest and recorded its end.
RUN_INTERRUPTED = "interrupted"
# Never written: what readers call a `running` run whose process is gone (killed, crashed,
# its machine lost) before it could record its end. Its stored data is partial.
RUN_ABORTED = "aborted"
# A running run refreshes its heartbeat this often, and one silent for `HEARTBEAT_STALE`
# is taken for dead when its process cannot be checked (another host). Generous: a writer
# may wait minutes for a busy store's lock.
HEARTBEAT_EVERY = 5.0
HEARTBEAT_STALE = 300.0
# What a run was. A simulated run's agents and tasks are virtual and its times are virtual
# seconds: readers of a swarm's history leave such runs out unless asked for them.
RUN_REAL = "real"
RUN_SIMULATED = "simulated"
RUN_KINDS = (RUN_REAL, RUN_SIMULATED)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a swarm. Times are wall-clock UNIX seconds.

    `status` is as readers should show it: `aborted` for a run stored as `running` whose
    process is gone (see `run_status`); `stored_status` is what the row says.
    `heartbeat_at` is when the running process last said it was alive.
    `kind` is `real` or `simulated`; `number` counts the swarm's runs of that kind from 1
    (the per-swarm name people see: "run 3 of swarm 'prod'"), while `id` is the store's key.
    """

    id: int
    swarm_id: str
    started_at: float
    finished_at: float | None
    status: str
    backend: str
    strategy: str
    spec: dict[str, Any]
    report: dict[str, Any] | None
    pid: int | None = None
    host: str | None = None
    heartbeat_at: float | None = None
    stored_status: str | None = None
    kind: str = RUN_REAL
    number: int | None = None

    @property
    def simulated(self) -> bool:
        return self.kind == RUN_SIMULATED

    def label(self) -> str:
        """How to name the run to people: "run 3 of swarm 'prod'" (with the store's id)."""
        number = self.id if self.number is None else self.number
        kind = "simulated run" if self.simulated else "run"
        return f"{kind} {number} of swarm {self.swarm_id!r} (id {self.id})"

    @property
    def aborted(self) -> bool:
        return self.status == RUN_ABORTED

    @property
    def last_seen(self) -> float:
        """When the run was last known to be going: its end, else its last heartbeat."""
        if self.finished_at is not None:
            return self.finished_at
        return self.heartbeat_at if self.heartbeat_at is not None else self.started_at


def run_status(
    status: str,
    *,
    pid: int | None,
    host: str | None,
    heartbeat_at: float | None,
    started_at: float,
    clock: Callable[[], float],
    this_host: str,
    alive: Callable[[int], bool],
) -> str:
    """A stored status as readers should see it: a `running` run whose process is gone is
    `aborted`. Gone: on this host, its pid is dead; elsewhere (or with no pid recorded),
    no heartbeat for `HEARTBEAT_STALE` seconds. Pure, given `alive` and `clock` (read
    only when needed)."""
    if status != RUN_RUNNING:
        return status
    if pid is not None and host == this_host:
        return RUN_RUNNING if alive(pid) else RUN_ABORTED
    last = heartbeat_at if heartbeat_at is not None else started_at
    return RUN_ABORTED if clock() - last > HEARTBEAT_STALE else RUN_RUNNING


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": the state follows the last ')'.
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (macOS): signal 0 is all we know
        return True


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One metric value at one instant (`ts`, UNIX seconds). None: no value at that time."""

    swarm_id: str
    run_id: int | None
    ts: float
    name: str
    value: float | None


@dataclass(frozen=True, slots=True)
class BenchmarkRecord:
    id: int
    name: str
    created_at: float
    swarm_id: str | None
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """An optimisation decision: what was decided (`decision`), and why (`reason`)."""

    id: int
    swarm_id: str
    created_at: float
    kind: str
    decision: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Something that happened to a swarm, such as a breaker trip. `ts` is UNIX seconds."""

    id: int
    swarm_id: str
    run_id: int | None
    ts: float
    kind: str
    subject: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AgentNodeRecord:
    """An agent of a run started on a node (a Ray node id and its address) at `placed_at`
    (UNIX seconds); an agent restarted elsewhere has a row per start, in order."""

    run_id: int
    agent: str
    node_id: str
    address: str | None
    placed_at: float
