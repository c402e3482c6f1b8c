"""The swarm spec: valid specs round-trip; a bad one says where, what is wrong and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.balancing.strategies import STRATEGIES
from swarmperf.core.errors import ConfigError
from swarmperf.core.model import AgentSpec
from swarmperf.core.queueing import QueueSettings
from swarmperf.spec import (
    DEMO_SPEC_YAML,
    AgentGroupSpec,
    ConstantSize,
    ParetoSize,
    PoissonArrival,
    QueueSpec,
    SpecError,
    SwarmSpec,
    demo_spec,
    load_spec,
    parse_spec,
    parse_spec_yaml,
)

MINIMAL = "agents: [{id: a}]\n"


def problems_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec_yaml(text, "test.yaml")
    return info.value


# -- valid specs --------------------------------------------------------------------------


def test_demo_spec_is_valid_and_as_described() -> None:
    spec = demo_spec()
    agents = spec.agent_specs()
    assert len(agents) == 8
    assert len({a.id for a in agents}) == 8
    assert [a.id for a in agents if a.slowdown == 4] == ["slow"]
    assert spec.strategy == "capacity-aware"
    workload = spec.workload
    assert workload.kind == "sleep"
    assert workload.tasks == 2000
    assert workload.failure_rate == 0.01
    assert workload.size == ParetoSize(distribution="pareto", mean=0.005, alpha=1.5)


def test_demo_yaml_is_the_demo_spec() -> None:
    assert parse_spec(yaml.safe_load(DEMO_SPEC_YAML)) == demo_spec()


@pytest.mark.parametrize("spec", [demo_spec(), parse_spec_yaml(MINIMAL)], ids=["demo", "minimal"])
def test_specs_round_trip_through_data_and_yaml(spec: SwarmSpec) -> None:
    assert parse_spec(spec.to_data()) == spec
    assert parse_spec_yaml(spec.to_yaml()) == spec


def test_durations_are_written_as_text() -> None:
    data = demo_spec().to_data()
    assert data["duration"] == "30s"
    assert data["workload"]["size"]["mean"] == "5ms"


def test_minimal_spec_takes_the_defaults() -> None:
    spec = parse_spec_yaml(MINIMAL)
    assert spec.swarm_id == "default"
    assert spec.backend == "local"
    assert spec.strategy == "capacity-aware"
    assert spec.duration is None
    assert spec.agent_specs() == [AgentSpec("a")]
    assert spec.queue_settings() == QueueSettings()
    assert spec.workload.size == ConstantSize()


def test_groups_expand_to_numbered_agents_with_the_group_settings() -> None:
    spec = parse_spec_yaml(
        "agents:\n"
        "  - {id: gpu, count: 3, weight: 2, concurrency: 4, queue_limit: 8, prefetch: 2,"
        " tags: [gpu]}\n"
        "  - {id: slow, slowdown: 4}\n"
    )
    gpu = AgentSpec(
        id="gpu-0",
        weight=2.0,
        concurrency=4,
        tags=frozenset({"gpu"}),
        queue_limit=8,
        prefetch=2,
        slowdown=1.0,
    )
    assert spec.agent_specs()[0] == gpu
    assert [a.id for a in spec.agent_specs()] == ["gpu-0", "gpu-1", "gpu-2", "slow"]
    assert spec.agent_specs()[-1].slowdown == 4.0


def test_an_agent_without_prefetch_leaves_it_to_the_backend() -> None:
    spec = parse_spec_yaml("agents: [{id: a}, {id: b, prefetch: 0}, {id: c, prefetch: null}]\n")
    assert [a.prefetch for a in spec.agent_specs()] == [None, 0, None]
    assert parse_spec(spec.to_data()) == spec


def test_the_spec_covers_every_agent_and_queue_setting() -> None:
    # Fails when a setting is added to AgentSpec or QueueSettings but not to the spec.
    assert {f.name for f in dataclasses.fields(AgentSpec)} <= set(AgentGroupSpec.model_fields)
    assert {f.name for f in dataclasses.fields(QueueSettings)} == set(QueueSpec.model_fields)


def test_queue_settings_come_from_the_queue_section() -> None:
    spec = parse_spec_yaml(
        MINIMAL + "queue: {max_queued: 10, level_weights: [4, 3, 2, 1], max_wait: 2m,"
        " urgent_within: 250ms, tenant_weights: {a: 2}, tenant_quotas: {a: 1000}}\n"
    )
    assert spec.queue_settings() == QueueSettings(
        max_queued=10,
        level_weights=(4.0, 3.0, 2.0, 1.0),
        max_wait=120.0,
        urgent_within=0.25,
        tenant_weights={"a": 2.0},
        tenant_quotas={"a": 1000},
    )


@pytest.mark.parametrize("name", [*sorted(STRATEGIES), "auto"])
def test_every_registered_strategy_is_accepted(name: str) -> None:
    spec = parse_spec_yaml(MINIMAL + f"strategy: {name}\n")
    assert spec.strategy_names() == (sorted(STRATEGIES) if name == "auto" else [name])


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("5ms", ConstantSize(value=0.005)),
        ("{value: 5ms}", ConstantSize(value=0.005)),
        ("{distribution: pareto, mean: 5ms, alpha: 1.5}", ParetoSize(mean=0.005, alpha=1.5)),
    ],
)
def test_size_shorthands(size: str, expected: Any) -> None:
    spec = parse_spec_yaml(MINIMAL + f"workload: {{size: {size}}}\n")
    assert spec.workload.size == expected


def test_rates_accept_text_and_numbers() -> None:
    spec = parse_spec_yaml(MINIMAL + "workload: {arrival: {process: poisson, rate: 30/m}}\n")
    assert spec.workload.arrival == PoissonArrival(process="poisson", rate=0.5)
    spec = parse_spec_yaml(MINIMAL + "workload: {arrival: {process: constant, rate: 200}}\n")
    assert spec.workload.arrival.rate == 200.0  # type: ignore[union-attr]


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "swarm.yaml"
    path.write_text(DEMO_SPEC_YAML, encoding="utf-8")
    assert load_spec(path) == demo_spec()


agent_items = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
        "weight": st.floats(0.01, 100),
        "concurrency": st.integers(1, 16),
        "slowdown": st.floats(0.1, 10),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    agents=st.lists(agent_items, min_size=1, max_size=4, unique_by=lambda a: a["id"]),
    max_wait_ms=st.integers(1, 10_000_000),
    rate=st.floats(0.001, 1e6),
    mean=st.floats(1e-6, 100),
)
def test_generated_specs_round_trip(
    agents: list[dict[str, Any]], max_wait_ms: int, rate: float, mean: float
) -> None:
    spec = parse_spec(
        {
            "agents": agents,
            "queue": {"max_wait": f"{max_wait_ms}ms"},
            "workload": {
                "size": {"distribution": "exponential", "mean": mean},
                "arrival": {"process": "poisson", "rate": rate},
            },
        }
    )
    assert spec.queue.max_wait == pytest.approx(max_wait_ms / 1000, rel=1e-12)
    assert parse_spec_yaml(spec.to_yaml()) == spec


# -- bad specs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            MINIMAL + "strategy: fastest\n",
            "strategy: 'fastest' — is not a known strategy. Choose one of: capacity-aware,",
        ),
        (
            MINIMAL + "strategy: least-loded\n",
            "strategy: 'least-loded' — is not a known strategy. Did you mean 'least-loaded'?",
        ),
        (
            "agents: [{id: a, weight: -1}]\n",
            "agents[0].weight: -1 — must be greater than 0. Use a number > 0.",
        ),
        (
            MINIMAL + "queue: {max_wait: 5 minutes}\n",
            "queue.max_wait: '5 minutes' — is not a valid duration. "
            "Use a duration like 30s, 5m or 250ms.",
        ),
        (
            MINIMAL + "workload: {deadline: -2s}\n",
            "workload.deadline: '-2s' — is not a valid duration. Durations cannot be negative",
        ),
        (
            "agents: [{id: a, wieght: 2}]\n",
            "agents[0].wieght — is not a known key. Did you mean 'weight'?",
        ),
        (
            MINIMAL + "worklaod: {tasks: 5}\n",
            "worklaod — is not a known key. Did you mean 'workload'?",
        ),
        (
            MINIMAL
            + "workload: {size: {distribution: lognormal, mean: 5ms, sigma: 1, sigam: 2}}\n",
            "workload.size.sigam — is not a known key. Did you mean 'sigma'?",
        ),
        (
            MINIMAL + "workload: {priorities: {normal: 0.5, high: 0.4}}\n",
            "workload.priorities: {'normal': 0.5, 'high': 0.4} — the shares add up to 0.9, not 1.",
        ),
        (
            MINIMAL + "workload: {tenants: {a: 0.7, b: 0.7}}\n",
            "workload.tenants: {'a': 0.7, 'b': 0.7} — the shares add up to 1.4, not 1. Make them",
        ),
        (
            MINIMAL + "workload: {priorities: {urgent: 1}}\n",
            "workload.priorities.urgent: 'urgent' — is not one of the choices. "
            "Choose one of: critical, high, normal, low.",
        ),
        (
            "agents:\n  - id: a\n   weight: 2\n",
            "test.yaml:3:4: 'weight: 2' — is not valid YAML",
        ),
        (
            "agents: [{id: a}]\nagents: [{id: b}]\n",
            "test.yaml:2:1: 'agents: [{id: b}]' — found the key 'agents' twice. Keep only one",
        ),
        (
            "agents: [{id: a, count: 2}, {id: a-1}]\n",
            "agents: ['a-1'] — gives more than one agent the same id.",
        ),
        (
            MINIMAL + "backend: spark\n",
            "backend: 'spark' — is not one of the choices. "
            "Choose one of: local, process, ray, sim.",
        ),
        (
            MINIMAL + "workload: {size: {distribution: weibull, mean: 1s}}\n",
            "workload.size.distribution: 'weibull' — is not one of the choices. Choose one of:",
        ),
        (
            MINIMAL + "workload: {size: {distribution: pareto, mean: 5ms, alpha: 1}}\n",
            "workload.size.alpha: 1 — must be greater than 1, or the Pareto mean is infinite.",
        ),
        (
            MINIMAL + "workload: {arrival: {process: poisson}}\n",
            "workload.arrival.rate: (missing) — is required. Add a rate, e.g. rate: 500/s.",
        ),
        (
            MINIMAL + "workload: {arrival: {process: poisson, rate: 0/s}}\n",
            "workload.arrival.rate: '0/s' — is not a valid rate. Use a rate > 0",
        ),
        ("swarm_id: x\n", "agents: (missing) — is required. Add a list of agents"),
        ("agents: []\n", "agents: [] — is empty."),
        ("agents: [{id: 'a b'}]\n", "agents[0].id: 'a b' — is not a valid name. Use letters"),
        ("agents: [{id: a, prefetch: -1}]\n", "agents[0].prefetch: -1 — must be at least 0."),
        ("- a\n- b\n", "(spec): 'test.yaml' — holds a list, not a mapping."),
        ("", "(spec) — is empty."),
    ],
)
def test_each_problem_names_field_value_and_fix(text: str, line: str) -> None:
    error = problems_of(text)
    assert isinstance(error, ConfigError)
    assert len(error.problems) == 1
    assert f"  - {line}" in str(error)


def test_all_problems_are_listed_at_once() -> None:
    error = problems_of(
        "strategy: fastest\n"
        "seed: -1\n"
        "agents: [{id: a, weight: 0}, {id: b, slowdown: -2, colour: red}]\n"
        "queue: {max_wait: soon, level_weights: [1, 2]}\n"
        "workload: {tasks: 0, failure_rate: 2, priorities: {normal: 0.2}}\n"
    )
    paths = [p.path for p in error.problems]
    assert paths == [
        "strategy",
        "seed",
        "agents[0].weight",
        "agents[1].slowdown",
        "agents[1].colour",
        "queue.level_weights",
        "queue.max_wait",
        "workload.tasks",
        "workload.failure_rate",
        "workload.priorities",
    ]
    message = str(error)
    assert message.startswith("Invalid swarm spec test.yaml (10 problems):")
    # An unknown key's value is not shown: it may be a secret put in the wrong place.
    assert all(f"  - {path}: " in message or f"  - {path} — " in message for path in paths)


def test_the_error_carries_the_first_problem_as_a_config_error() -> None:
    error = problems_of(MINIMAL + "strategy: fastest\n")
    assert error.field == "strategy"
    assert error.value == "fastest"
    assert "round-robin" in error.fix


def test_parse_spec_names_its_source() -> None:
    with pytest.raises(SpecError, match=r"^Invalid swarm spec flags \(1 problem\):"):
        parse_spec({"agents": [{"id": "a"}], "seed": "x"}, "flags")


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match="cannot be read") as info:
        load_spec(path)
    assert info.value.problems[0].value == str(path)
