"""Replay figures on tiny traces, worked out by hand, and the replay against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmperf.autoscale.policies import Decision, Observation, StaticPeak
from swarmperf.autoscale.replay import (
    ReplaySettings,
    oracle,
    replay,
    service_time,
    validate_against_simulation,
)
from swarmperf.autoscale.traces import Trace, read_trace
from swarmperf.core.errors import ConfigError


def burst(tmp_path: Path) -> Trace:
    """Seven tasks at 0, 1, ..., 6 s and one at 60 s: the peak minute holds 7."""
    stamps = [*range(7), 60]
    path = tmp_path / "burst.csv"
    path.write_text("timestamp\n" + "".join(f"{t}\n" for t in stamps))
    return read_trace(path)


SETTINGS = ReplaySettings(peak_agents=1, startup=10.0, max_agents=10)


def test_the_service_time_puts_the_peak_at_the_target(tmp_path: Path) -> None:
    # 1 agent x 0.7 x 60 s / 7 tasks = 6 s per task.
    assert service_time(burst(tmp_path), SETTINGS) == pytest.approx(6.0)


def test_one_agent_by_hand(tmp_path: Path) -> None:
    # Task i arrives at i and starts at 6i: it waits 5i, over the 6 s of slack (2x the 6 s
    # service, less the service) for i = 2..6, so 5 of minute 0's 7 tasks violate (a violation
    # minute); the task at 60 s finds the agent free. One agent for 120 s.
    figures = replay(burst(tmp_path), StaticPeak(1), SETTINGS)
    assert figures.tasks == 8
    assert figures.violating_tasks == 5
    assert figures.violation_minutes == 1
    assert figures.scale_events == 0
    assert figures.agent_hours == pytest.approx(120 / 3600)


class Scripted:
    """Two agents from 3 s on."""

    name = "scripted"
    period = 3.0
    min_agents = 1
    max_agents = 2

    def decide(self, observation: Observation, now: float) -> Decision:
        return Decision(now, self.name, observation.replicas, {}, 2, 2, None)


def test_an_added_agent_serves_after_startup_and_is_paid_from_the_ask(tmp_path: Path) -> None:
    # Asked for at 3 s, serving at 13 s. Agent 1: tasks 0, 1, 2 at 0, 6, 12; agent 2 takes
    # task 3 at 13; then task 4 at 18 (agent 1), 5 at 19 (agent 2), 6 at 24 (agent 1).
    # Waits 0, 5, 10, 10, 14, 14, 18: tasks 2 to 6 violate. Agent-seconds 120 + 117.
    figures = replay(burst(tmp_path), Scripted(), SETTINGS)
    assert figures.violating_tasks == 5
    assert figures.scale_events == 1
    assert figures.agent_hours == pytest.approx(237 / 3600)


def test_the_oracle_by_hand(tmp_path: Path) -> None:
    # Minute 0 needs 3 agents (with 2, task 4 waits 8 s > 6 s; with 3, the longest wait is
    # task 6's 6 s); minute 1 needs 1. Up to 3 at 0 s, paying the 10 s start-up of each of the
    # 2 added, down to 1 at 60 s: 3 x 60 + 1 x 60 + 2 x 10 agent-seconds, no violation.
    figures = oracle(burst(tmp_path), SETTINGS)
    assert figures.violating_tasks == 0
    assert figures.violation_minutes == 0
    assert figures.scale_events == 2
    assert figures.agent_hours == pytest.approx(260 / 3600)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        ReplaySettings(slo_factor=1.0)
    with pytest.raises(ConfigError):
        ReplaySettings(peak_agents=0)
    with pytest.raises(ConfigError):
        ReplaySettings(startup=-1.0)


def test_the_replay_agrees_with_the_simulator(tmp_path: Path) -> None:
    # The same tasks and agent schedule through the real coordinator in virtual time.
    rows = "\n".join(f"{i},{(30 if (i // 5) % 2 else 4) + i % 3}" for i in range(40))
    path = tmp_path / "waves.csv"
    path.write_text("minute_index,requests\n" + rows + "\n")
    trace = read_trace(path)
    settings = ReplaySettings(peak_agents=6, startup=30.0)
    for name in ("hpa", "predictive"):
        check = validate_against_simulation(trace, name, settings)
        assert check.replay_violation_minutes == check.sim_violation_minutes
        assert abs(check.replay_violating_tasks - check.sim_violating_tasks) <= 0.01 * check.tasks
