"""What the monitor measures at one instant: the shared vocabulary of collectors and detectors.

Every figure is measured or `None`; where it is `None`, `reasons` says why (no sample yet, not
supported on this platform...). Nothing here is ever filled with a plausible default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from swarmperf.core.latency import LatencySummary


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent over the window."""

    agent_id: str
    completed: int  # tasks finished (any outcome) in the window
    failed: int
    in_flight: int
    slots: int  # concurrency
    utilization: float | None  # busy slot-seconds / (slots * window), in [0, 1]
    service: LatencySummary  # service time (start -> finish), over the window
    breaker: str | None = None  # "closed" | "half_open" | "open"; None: no breaker
    alive: bool = True


@dataclass(frozen=True, slots=True)
class SwarmFigures:
    """The swarm as a whole over the window ending at `ts` (UNIX seconds)."""

    ts: float
    window_s: float
    completed: int
    failed: int
    throughput_per_s: float | None
    error_rate: float | None  # failed / completed
    availability: float | None  # 1 - share of tasks rejected or failed for lack of an agent
    # Over the window, from sliding sketches, which keep no minimum (`min` is None).
    latency: LatencySummary  # end to end: queued -> finished
    wait: LatencySummary  # queued -> started
    service: LatencySummary  # started -> finished
    queue_depth: int
    queue_depth_by_priority: Mapping[str, int]
    balance_cv: float | None  # coefficient of variation of per-agent utilisation
    agents: Mapping[str, AgentFigures]
    reasons: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SystemFigures:
    """The machine (and this process) at `ts`, from psutil; absent figures carry a reason."""

    ts: float
    cpu_percent: float | None
    cpu_per_core: tuple[float, ...]
    load_avg: tuple[float, float, float] | None
    memory_percent: float | None
    memory_available_bytes: int | None
    memory_pressure: float | None  # PSI "some avg10" where the kernel offers it
    swap_percent: float | None
    disk_read_bytes_per_s: float | None
    disk_write_bytes_per_s: float | None
    net_sent_bytes_per_s: float | None
    net_recv_bytes_per_s: float | None
    net_errors_per_s: float | None
    net_drops_per_s: float | None
    process_rss_bytes: int | None
    process_threads: int | None
    process_fds: int | None
    reasons: Mapping[str, str] = field(default_factory=dict)


def flatten(swarm: SwarmFigures | None, system: SystemFigures | None) -> dict[str, float | None]:
    """Snapshot as flat `name -> value` rows for the store's metrics table (stable names)."""
    rows: dict[str, float | None] = {}
    if swarm is not None:
        rows.update(
            {
                "swarm.completed": swarm.completed,
                "swarm.failed": swarm.failed,
                "swarm.throughput_per_s": swarm.throughput_per_s,
                "swarm.error_rate": swarm.error_rate,
                "swarm.availability": swarm.availability,
                "swarm.queue_depth": swarm.queue_depth,
                "swarm.balance_cv": swarm.balance_cv,
            }
        )
        for prefix, q in (
            ("swarm.latency", swarm.latency),
            ("swarm.wait", swarm.wait),
            ("swarm.service", swarm.service),
        ):
            rows.update(_quantile_rows(prefix, q))
        for agent in swarm.agents.values():
            base = f"agent.{agent.agent_id}"
            rows[f"{base}.completed"] = agent.completed
            rows[f"{base}.failed"] = agent.failed
            rows[f"{base}.in_flight"] = agent.in_flight
            rows[f"{base}.utilization"] = agent.utilization
            rows.update(_quantile_rows(f"{base}.service", agent.service))
    if system is not None:
        for name in (
            "cpu_percent",
            "memory_percent",
            "memory_available_bytes",
            "memory_pressure",
            "swap_percent",
            "disk_read_bytes_per_s",
            "disk_write_bytes_per_s",
            "net_sent_bytes_per_s",
            "net_recv_bytes_per_s",
            "net_errors_per_s",
            "net_drops_per_s",
            "process_rss_bytes",
            "process_threads",
            "process_fds",
        ):
            value = getattr(system, name)
            rows[f"system.{name}"] = None if value is None else float(value)
        for i, core in enumerate(system.cpu_per_core):
            rows[f"system.cpu{i}_percent"] = core
        if system.load_avg is not None:
            rows["system.load1"] = system.load_avg[0]
    return {
        k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
        for k, v in rows.items()
    }


def _quantile_rows(prefix: str, q: LatencySummary) -> dict[str, float | None]:
    return {
        f"{prefix}.count": q.count,
        f"{prefix}.p50": q.p50,
        f"{prefix}.p90": q.p90,
        f"{prefix}.p95": q.p95,
        f"{prefix}.p99": q.p99,
        f"{prefix}.max": q.max,
        f"{prefix}.mean": q.mean,
    }
