"""The spec's `topology` and `messages` sections: read into their settings, bad ones explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmperf.core.errors import ConfigError
from swarmperf.routing import TopologySettings
from swarmperf.runtime.traffic import MessagePattern
from swarmperf.sim.messaging import LinkModel
from swarmperf.spec import SpecError, load_spec, parse_spec_yaml

AGENTS = "agents: [{id: m, count: 3}, {id: r}]\n"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mapreduce.yaml"


def problem_of(text: str) -> ConfigError:
    with pytest.raises(SpecError) as info:
        parse_spec_yaml(text, "test.yaml")
    assert len(info.value.problems) == 1, info.value
    return info.value


def test_a_spec_without_them_is_a_mesh_with_no_traffic() -> None:
    spec = parse_spec_yaml(AGENTS)
    assert spec.topology.to_settings() == TopologySettings("mesh")
    assert spec.messages is None


def test_the_sections_become_their_settings() -> None:
    spec = parse_spec_yaml(
        AGENTS + "seed: 3\n"
        "topology: {kind: star, hub: r}\n"
        "messages: {pattern: gather, to: [r], bytes: 2KiB, latency: 1ms, relay_cost: 100us,\n"
        "  receive_cost: 20us}\n"
    )
    assert spec.topology.to_settings() == TopologySettings("star", hub="r")
    assert spec.messages is not None
    assert spec.messages.message_pattern(spec.seed) == MessagePattern("gather", ("r",), 2048, 1, 3)
    assert spec.messages.link_model() == LinkModel(0.001, None, 0.0001, 20e-6)
    assert parse_spec_yaml(spec.to_yaml()) == spec


def test_the_example_is_valid() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.topology.kind == "hybrid"
    assert spec.messages is not None
    assert spec.messages.to == ("reducer-0", "reducer-1")


@pytest.mark.parametrize(
    ("text", "where", "fix"),
    [
        ("topology: {kind: torus}\n", "kind", "ring"),
        ("topology: {kind: star, hub: x}\n", "topology.hub names 'x'", "m-0"),
        ("topology: {kind: hierarchical, fanout: 0}\n", "fanout", ""),
        ("messages: {to: [m-0, rr]}\n", "messages.to names 'rr'", "Did you mean 'r'"),
        ("messages: {pattern: pipeline}\n", "messages.to", "needs its receivers"),
        ("messages: {pattern: fan, to: [r]}\n", "pattern", "gather"),
        ("messages: {to: [r], latency: soon}\n", "latency", "30s"),
        ("messages: {to: [r], bytes: -1}\n", "bytes", ""),
        ("messages: {to: [r], receive_cost: -1ms}\n", "receive_cost", ""),
    ],
)
def test_a_bad_section_says_where_and_how_to_fix_it(text: str, where: str, fix: str) -> None:
    error = str(problem_of(AGENTS + text))
    assert where in error
    assert fix in error
