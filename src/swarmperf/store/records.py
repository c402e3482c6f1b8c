"""Frozen snapshots of stored rows, as the store's read methods return them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUN_RUNNING = "running"  # a run's status from `start_run` until `finish_run`


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a swarm. Times are wall-clock UNIX seconds."""

    id: int
    swarm_id: str
    started_at: float
    finished_at: float | None
    status: str
    backend: str
    strategy: str
    spec: dict[str, Any]
    report: dict[str, Any] | None


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
