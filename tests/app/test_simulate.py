"""Scaling a spec's agents for a simulation: proportions kept, the total exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.app.simulate import scaled_agents
from swarmperf.core.errors import ConfigError
from swarmperf.spec import parse_spec_yaml


def _spec(counts: list[int]) -> str:
    groups = "".join(f"  - id: g{i}\n    count: {c}\n" for i, c in enumerate(counts))
    return f"swarm_id: s\nagents:\n{groups}workload:\n  tasks: 10\n"


def test_groups_keep_their_proportions() -> None:
    spec = parse_spec_yaml(_spec([1, 3]))
    assert [g["count"] for g in scaled_agents(spec, 400)] == [100, 300]
    assert [g["id"] for g in scaled_agents(spec, 400)] == ["g0", "g1"]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    counts=st.lists(st.integers(1, 50), min_size=1, max_size=6),
    agents=st.integers(1, 5000),
)
def test_the_total_is_what_was_asked_and_no_group_vanishes(counts: list[int], agents: int) -> None:
    scaled = [g["count"] for g in scaled_agents(parse_spec_yaml(_spec(counts)), agents)]
    assert all(c >= 1 for c in scaled)
    if agents >= len(counts):
        assert sum(scaled) == agents


def test_fewer_than_one_agent_is_a_config_error_naming_the_option() -> None:
    spec = parse_spec_yaml(_spec([2]))
    with pytest.raises(ConfigError) as caught:
        scaled_agents(spec, 0, field="--agents")
    assert str(caught.value) == "--agents: 0 is not valid. Use an integer >= 1."


def _simulated(backend: str, prefetch: str) -> list[tuple[str | None, float | None]]:
    from swarmperf.app.simulate import simulate_spec

    text = f"""\
swarm_id: binding
backend: {backend}
strategy: least-loaded
seed: 3
agents:
  - {{id: fast, count: 2, weight: 4{prefetch}}}
  - {{id: slow, count: 2, weight: 1{prefetch}}}
workload:
  tasks: 300
  kind: sleep
  size: {{distribution: exponential, mean: 1s}}
"""
    outcome, _ = simulate_spec(parse_spec_yaml(text))
    # Task ids run on from run to run: compare in submission order.
    ordered = sorted(outcome.results, key=lambda r: int(r.task_id.lstrip("t")))
    return [(r.agent, r.finished_at) for r in ordered]


def test_a_simulated_spec_binds_tasks_as_its_backend_would() -> None:
    # Ray agents prefetch unless told otherwise; a simulation of a Ray spec does too.
    assert _simulated("ray", "") == _simulated("sim", ", prefetch: 4")
    assert _simulated("ray", ", prefetch: 0") == _simulated("sim", "")
    assert _simulated("ray", "") != _simulated("ray", ", prefetch: 0")
