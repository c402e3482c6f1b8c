"""Choosing among strategies: the soonest makespan wins, p99 breaks ties, gaps rank last."""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from typing import Any

import pytest

from swarmperf.app.compare import best_strategy, ranked
from swarmperf.app.run import RunOutcome, compare_strategies
from swarmperf.spec import parse_spec_yaml

SPEC = """\
swarm_id: compared
backend: sim
agents:
  - id: a
    count: 3
  - id: slow
    slowdown: 6
workload:
  tasks: 400
  kind: sleep
  size: {value: 5ms}
"""


@pytest.fixture(scope="module")
def outcome() -> RunOutcome:
    spec = parse_spec_yaml(SPEC)
    return asyncio.run(compare_strategies(spec, ["round-robin"]))["round-robin"]


def _with(outcome: RunOutcome, makespan: float | None, p99: float | None) -> RunOutcome:
    """A real outcome with its makespan and p99 latency set as given."""
    report = outcome.report
    latency: dict[str, Any]
    if "latency" in {f.name for f in fields(report)}:
        latency = {"latency": replace(report.latency, p99=p99)}
    else:  # the flat fields the report held before its latency became one summary
        latency = {"latency_p99": p99}
    return replace(outcome, report=replace(report, makespan=makespan, **latency))


def test_the_soonest_makespan_wins_and_p99_breaks_ties(outcome: RunOutcome) -> None:
    outcomes = {
        "late": _with(outcome, 3.0, 0.1),
        "tied-slower-tail": _with(outcome, 2.0, 0.5),
        "tied-faster-tail": _with(outcome, 2.0, 0.2),
    }
    assert best_strategy(outcomes) == "tied-faster-tail"
    assert ranked(outcomes) == ["tied-faster-tail", "tied-slower-tail", "late"]


def test_a_missing_figure_ranks_last_and_equals_keep_their_order(outcome: RunOutcome) -> None:
    outcomes = {
        "no-makespan": _with(outcome, None, 0.1),
        "first": _with(outcome, 1.0, None),
        "second": _with(outcome, 1.0, None),
        "measured": _with(outcome, 1.0, 0.3),
    }
    assert ranked(outcomes) == ["measured", "first", "second", "no-makespan"]


def test_nothing_compared_has_no_best() -> None:
    assert best_strategy({}) is None
    assert ranked({}) == []


def test_on_a_real_comparison_the_slow_agent_costs_round_robin() -> None:
    # Round-robin hands the slow agent its full share; least-loaded routes around it.
    spec = parse_spec_yaml(SPEC)
    outcomes = asyncio.run(compare_strategies(spec, ["round-robin", "least-loaded"]))
    assert best_strategy(outcomes) == "least-loaded"
    assert ranked(outcomes)[-1] == "round-robin"
