"""Scenario and suite definitions: parsing, defaults, and every bad value explained."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.loadgen import expected_requests
from swarmperf.bench.scenarios import (
    DEFAULT_COOLDOWN,
    DEFAULT_DURATION,
    DEFAULT_ITERATIONS,
    DEFAULT_WARMUP,
    LoadScenario,
    Overrides,
    StressScenario,
    SuiteDefaults,
    SuiteError,
    builtin_suites,
    load_suite,
    parse_suite,
    parse_suite_yaml,
    run_settings,
)
from swarmperf.bench.suite import planned_seconds
from swarmperf.core.errors import ConfigError


def test_the_built_in_suites_are_valid_and_quick_is_short() -> None:
    suites = builtin_suites()
    assert set(suites) == {"quick", "comprehensive"}
    for suite in suites.values():
        assert {s.kind for s in suite.scenarios} == {
            "load",
            "stress",
            "volume",
            "endurance",
            "spike",
        }
    quick = suites["quick"]
    planned = sum(
        planned_seconds(s, run_settings(s, quick.defaults, Overrides())) for s in quick.scenarios
    )
    assert planned < 45  # scheduled seconds; the whole suite must stay well under a minute


def test_defaults_are_the_documented_ones() -> None:
    d = SuiteDefaults()
    assert (d.duration, d.iterations, d.warmup, d.cooldown) == (300.0, 10, 30.0, 10.0)
    assert (DEFAULT_DURATION, DEFAULT_ITERATIONS, DEFAULT_WARMUP, DEFAULT_COOLDOWN) == (
        300.0,
        10,
        30.0,
        10.0,
    )


def test_command_line_beats_scenario_beats_suite_defaults() -> None:
    suite = parse_suite_yaml(
        """
suite: s
defaults: {duration: 20s, iterations: 4, warmup: 2s, cooldown: 1s}
scenarios:
  - {name: a, kind: load, rate: 10/s, duration: 5s}
  - {name: b, kind: load, rate: 10/s}
"""
    )
    a, b = suite.scenarios
    assert run_settings(a, suite.defaults, Overrides()) == run_settings(
        a, suite.defaults, Overrides(duration=5.0)
    )
    got = run_settings(a, suite.defaults, Overrides())
    assert (got.duration, got.iterations, got.warmup, got.cooldown) == (5.0, 4, 2.0, 1.0)
    got = run_settings(b, suite.defaults, Overrides(duration=1.0, iterations=2, warmup=0.0))
    assert (got.duration, got.iterations, got.warmup, got.cooldown) == (1.0, 2, 0.0, 1.0)


def test_scenarios_can_be_written_in_python() -> None:
    scenario = LoadScenario(name="web", rate="250/s", ramp_up="2s")  # type: ignore[arg-type]
    assert scenario.rate == 250.0
    assert scenario.ramp_up == 2.0
    stages = scenario.stages(10.0)
    assert expected_requests(stages) == pytest.approx(250 * 1 + 2500)
    suite = parse_suite({"suite": "py", "scenarios": [scenario.model_dump()]})
    assert suite.scenarios[0] == scenario


@pytest.mark.parametrize(
    ("yaml_text", "field", "value", "fix"),
    [
        ("- {name: a, kind: load}", "scenarios[0].rate", "(missing)", "rate: 200/s"),
        ("- {name: a, kind: lod, rate: 1}", "scenarios[0].kind", "'lod'", "Use one of: load"),
        ("- {name: a, rate: 1}", "scenarios[0].kind", "(missing)", "Use one of"),
        ("- {name: a, kind: load, rate: -5/s}", "scenarios[0].rate", "'-5/s'", "rate > 0"),
        ("- {name: a, kind: load, rate: 5, colour: red}", "scenarios[0].colour", "'red'", "Remove"),
        ("- {name: a, kind: load, rate: 5, duration: 0s}", "scenarios[0].duration", "'0s'", "30s"),
        ("- {name: a, kind: load, rate: 5, iterations: 0}", "scenarios[0].iterations", "0", ">= 1"),
        ("- {name: a, kind: load, model: closed}", "scenarios[0].users", "(missing)", "users: 16"),
        (
            "- {name: a, kind: stress, start_rate: 100, max_rate: 10}",
            "scenarios[0].max_rate",
            "10.0",
            "max_rate >= start_rate",
        ),
        (
            "- {name: a, kind: stress, start_rate: 1, max_rate: 9, step: 1, factor: 2}",
            "scenarios[0].step",
            "",
            "Keep one",
        ),
        (
            "- {name: a, kind: stress, start_rate: 1, max_rate: 9, model: closed}",
            "scenarios[0].model",
            "'closed'",
            "open model",
        ),
        (
            "- {name: a, kind: spike, baseline_rate: 100, spike_rate: 50}",
            "scenarios[0].spike_rate",
            "50.0",
            "above the baseline",
        ),
        (
            "- {name: a, kind: stress, start_rate: 1, max_rate: 9, break_when: "
            "{error_rate: null, achieved_below: null}}",
            "scenarios[0].break_when",
            "",
            "at least one of p99",
        ),
        ("- {name: a, kind: volume, tasks: 0}", "scenarios[0].tasks", "0", ">= 1"),
        (
            "- {name: a, kind: load, rate: 1}\n- {name: a, kind: load, rate: 2}",
            "scenarios",
            "['a']",
            "its own name",
        ),
        ("[]", "scenarios", "", "at least one scenario"),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_fix(
    yaml_text: str, field: str, value: str, fix: str
) -> None:
    text = "suite: s\nscenarios:\n" + "\n".join(f"  {line}" for line in yaml_text.splitlines())
    if yaml_text == "[]":
        text = "suite: s\nscenarios: []\n"
    with pytest.raises(SuiteError) as info:
        parse_suite_yaml(text, "my.yaml")
    message = str(info.value)
    assert "my.yaml" in message
    line = next((ln for ln in message.splitlines() if f"- {field}:" in ln), None)
    assert line is not None, message
    assert value in line
    assert fix in line
    assert isinstance(info.value, ConfigError)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SuiteError) as info:
        parse_suite_yaml(
            "suite: s\nscenarios:\n  - {name: a, kind: load}\n  - {name: b, kind: x}\n"
        )
    assert len(info.value.problems) == 2


def test_not_a_mapping_and_bad_yaml_are_explained() -> None:
    with pytest.raises(SuiteError, match="not a mapping"):
        parse_suite_yaml("- a\n- b\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        parse_suite_yaml("suite: [unclosed\n")


def test_suites_load_by_name_or_path(tmp_path: Path) -> None:
    assert load_suite("quick").suite == "quick"
    path = tmp_path / "mine.yaml"
    path.write_text("suite: mine\nscenarios:\n  - {name: a, kind: volume, tasks: 10}\n")
    assert load_suite(str(path)).scenarios[0].name == "a"
    with pytest.raises(ConfigError) as info:
        load_suite(str(tmp_path / "nope.yaml"))
    assert info.value.field == "--suite"
    assert "quick" in info.value.fix


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"duration": 0.0}, "--duration"),
        ({"iterations": 0}, "--iterations"),
        ({"warmup": -1.0}, "--warmup"),
        ({"cooldown": -1.0}, "--cooldown"),
    ],
)
def test_bad_overrides_are_refused(overrides: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Overrides(**overrides)  # type: ignore[arg-type]
    assert info.value.field == field


@settings(deadline=None)
@given(
    start=st.floats(1, 1000),
    span=st.floats(1, 100),
    factor=st.one_of(st.none(), st.floats(1.1, 4)),
)
def test_stress_steps_climb_from_start_to_max(
    start: float, span: float, factor: float | None
) -> None:
    top = start * span
    scenario = StressScenario(
        name="s",
        start_rate=start,
        max_rate=top,
        factor=factor,
        step=None if factor is not None else start,
    )
    rates = scenario.rates()
    assert rates[0] == start
    assert rates[-1] == pytest.approx(top)
    assert all(b > a for a, b in itertools.pairwise(rates))
    assert len(rates) <= 200
