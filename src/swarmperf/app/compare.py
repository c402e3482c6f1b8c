"""Comparing strategies on one workload: which did best, and the others in order."""

from __future__ import annotations

from collections.abc import Mapping

from swarmperf.app.run import RunOutcome
from swarmperf.runtime.report import RunReport

_NEVER = float("inf")


def rank_key(report: RunReport) -> tuple[float, float]:
    """Sooner makespan first, then lower p99 latency; a figure the run lacks ranks last."""
    makespan = report.makespan if report.makespan is not None else _NEVER
    p99 = report.latency_p99 if report.latency_p99 is not None else _NEVER
    return (makespan, p99)


def ranked(outcomes: Mapping[str, RunOutcome]) -> list[str]:
    """The strategies best first; equal ones keep the order they ran in."""
    return sorted(outcomes, key=lambda name: rank_key(outcomes[name].report))


def best_strategy(outcomes: Mapping[str, RunOutcome]) -> str | None:
    """The strategy that finished the workload soonest (ties: lower p99 latency); None if
    nothing ran."""
    order = ranked(outcomes)
    return order[0] if order else None
