"""The `autoscale:` section: a valid one round-trips; a bad one names the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.spec import AutoscaleSpec, SpecError, parse_spec, parse_spec_yaml

AGENTS = "agents: [{id: a, count: 2}]\n"


def problems(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec_yaml(AGENTS + text, "test.yaml")
    return {p.path: f"{p.problem}. {p.fix}" for p in info.value.problems}


def test_a_full_section_round_trips() -> None:
    spec = parse_spec_yaml(
        AGENTS
        + """\
autoscale:
  policy: hpa
  min_agents: 2
  max_agents: 40
  target: 0.6
  startup: 45s
  period: 10s
  interval: 1m
  forecaster: sarima
  mode: forecast_only
  behavior:
    scale_up: {stabilization_window_seconds: 0, select_policy: Min,
               policies: [{type: Pods, value: 4, period_seconds: 15}]}
    scale_down: {stabilization_window_seconds: 120}
"""
    )
    section = spec.autoscale
    assert section is not None
    assert (section.policy, section.min_agents, section.max_agents) == ("hpa", 2, 40)
    assert (section.startup, section.period, section.interval) == (45.0, 10.0, 60.0)
    assert section.behavior.scale_down.stabilization_window_seconds == 120
    assert parse_spec(spec.to_data()) == spec


def test_no_section_means_no_autoscaler_and_defaults_are_the_replays() -> None:
    assert parse_spec_yaml(AGENTS).autoscale is None
    section = AutoscaleSpec()
    assert (section.policy, section.mode, section.startup) == ("predictive", "act", None)


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("autoscale: {policy: hpaa}", "autoscale.policy", "Did you mean 'hpa'?"),
        ("autoscale: {policy: oracle}", "autoscale.policy", "Choose one of: hpa, keda"),
        ("autoscale: {min_agents: 5, max_agents: 3}", "autoscale", "min_agents <= max_agents"),
        ("autoscale: {min_agents: 0}", "autoscale.min_agents", "Use a number >= 1"),
        ("autoscale: {policy: hpa, target: 1.5}", "autoscale", "utilisation in (0, 1]"),
        ("autoscale: {startup: soon}", "autoscale.startup", "duration"),
        ("autoscale: {mode: dry}", "autoscale.mode", "forecast_only"),
        ("autoscale: {forecaster: prophet}", "autoscale.forecaster", "holt-winters"),
        (
            "autoscale: {behavior: {scale_down: {stabilization_window_seconds: 9000}}}",
            "autoscale.behavior.scale_down.stabilization_window_seconds",
            "3600",
        ),
        (
            "autoscale: {behavior: {scale_up: {policies: [{type: Pod, value: 1, "
            "period_seconds: 15}]}}}",
            "autoscale.behavior.scale_up.policies[0].type",
            "Did you mean 'Pods'?",
        ),
        ("autoscale: {behaviour: {}}", "autoscale.behaviour", ""),
    ],
)
def test_a_bad_section_names_the_field_and_the_fix(text: str, path: str, words: str) -> None:
    found = problems(text)
    assert path in found, found
    assert words in found[path]


def test_validate_explains_a_bad_section_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "swarm.yaml"
    spec.write_text(AGENTS + "autoscale: {min_agents: 5, max_agents: 3, policy: kedaa}\n")
    done = subprocess.run(
        [sys.executable, "-m", "swarmperf", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "autoscale.policy: 'kedaa'" in done.stderr
    assert "Did you mean 'keda'?" in done.stderr


@given(
    agents=st.integers(0, 20_000),
    low=st.integers(1, 10),
    high=st.none() | st.integers(10, 10_000),
)
def test_a_swarm_is_never_bounded_below_its_own_size_unless_the_user_says(
    agents: int, low: int, high: int | None
) -> None:
    made = (
        AutoscaleSpec(min_agents=low)
        if high is None
        else AutoscaleSpec(min_agents=low, max_agents=high)
    )
    settings = made.for_swarm(agents)
    if high is not None:
        assert settings.max_agents == high  # the user's bound stands
    else:
        assert settings.max_agents == min(10_000, max(10, agents))
    assert settings.min_agents == low
    assert settings.min_agents <= settings.max_agents
