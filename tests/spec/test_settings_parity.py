"""Every spec section that sets a settings class has its fields and defaults, so none drift."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from swarmperf.core.errors import ConfigError
from swarmperf.core.model import Fault
from swarmperf.core.queueing import QueueSettings
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.guard import ResilienceSettings, RetryBudgetSettings
from swarmperf.resilience.ratelimit import RateLimit
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy
from swarmperf.routing import TopologySettings
from swarmperf.spec import SpecError, SwarmSpec, parse_spec, parse_spec_yaml
from swarmperf.spec.messages import TopologySpec
from swarmperf.spec.resilience import (
    BreakerSpec,
    BulkheadSpec,
    FaultSpec,
    RateLimitSpec,
    ResilienceSpec,
    RestartSpec,
    RetryBudgetSpec,
    RetryPolicySpec,
    RetrySpec,
)
from swarmperf.spec.sections import QueueSpec
from swarmperf.spec.types import FROM_SETTINGS, Duration, SettingsSection

ROOT = Path(__file__).resolve().parents[2]

# (section, settings class, settings fields the spec sets another way)
PAIRS: list[tuple[type[BaseModel], type[Any], frozenset[str]]] = [
    (BreakerSpec, BreakerSettings, frozenset()),
    (RetryPolicySpec, RetryPolicy, frozenset()),
    (RetryBudgetSpec, RetryBudgetSettings, frozenset()),
    (RestartSpec, RestartPolicy, frozenset()),
    (FaultSpec, Fault, frozenset()),
    (RateLimitSpec, RateLimit, frozenset({"name"})),  # the key it is written under
    (BulkheadSpec, BulkheadSettings, frozenset()),
    (QueueSpec, QueueSettings, frozenset()),
    (TopologySpec, TopologySettings, frozenset()),
]
IDS = [section.__name__ for section, _, _ in PAIRS]


def settable(settings: type[Any], excluded: frozenset[str]) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(settings) if f.init and f.name not in excluded]


@pytest.mark.parametrize(("section", "settings", "excluded"), PAIRS, ids=IDS)
def test_a_section_has_every_field_of_its_settings(
    section: type[BaseModel], settings: type[Any], excluded: frozenset[str]
) -> None:
    # Fails when a setting gains a field that the spec cannot set.
    assert list(section.model_fields) == [f.name for f in settable(settings, excluded)]


@pytest.mark.parametrize(("section", "settings", "excluded"), PAIRS, ids=IDS)
def test_a_section_has_the_defaults_of_its_settings(
    section: type[BaseModel], settings: type[Any], excluded: frozenset[str]
) -> None:
    for field in settable(settings, excluded):
        spec_field = section.model_fields[field.name]
        if field.default is not dataclasses.MISSING:
            expected = field.default
        elif field.default_factory is not dataclasses.MISSING:
            expected = field.default_factory()
        else:
            assert spec_field.is_required(), field.name
            continue
        assert spec_field.get_default(call_default_factory=True) == expected, field.name


def _sections_made_from_settings() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    todo = list(SettingsSection.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "settings_class" in cls.__dict__ and cls.__module__.startswith("swarmperf."):
            found.add(cls)
    return found


def test_every_section_made_from_settings_is_checked_here() -> None:
    assert _sections_made_from_settings() == {section for section, _, _ in PAIRS}


def _compiled_modules() -> set[str]:
    tree = ast.parse((ROOT / "hatch_build.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets
        ):
            paths = ast.literal_eval(node.value)
            return {p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths}
    raise AssertionError("hatch_build.py lists no COMPILED modules")


COMPILED_PAIRS = [pair for pair in PAIRS if pair[1].__module__ in _compiled_modules()]


@pytest.mark.parametrize(
    ("section", "settings", "excluded"),
    COMPILED_PAIRS,
    ids=[section.__name__ for section, _, _ in COMPILED_PAIRS],
)
def test_a_section_of_a_compiled_class_declares_every_field(
    section: type[BaseModel], settings: type[Any], excluded: frozenset[str]
) -> None:
    # Compiled, a class keeps no field types: a field taken over untyped would get a wrong
    # type in a regular install only.
    declared: frozenset[str] = getattr(section, "settings_declared", frozenset())
    assert {f.name for f in settable(settings, excluded)} <= declared


def test_retry_is_a_policy_with_overrides_by_kind_and_a_budget() -> None:
    assert [f.name for f in dataclasses.fields(RetryPolicies)] == ["default", "per_kind"]
    policy = [f.name for f in dataclasses.fields(RetryPolicy)]
    assert list(RetrySpec.model_fields) == [*policy, "per_kind", "budget"]


# Where the spec sets each field of ResilienceSettings.
RESILIENCE_SOURCES = {
    "breaker": ("resilience", "breaker"),
    "kind_breaker": ("resilience", "kind_breaker"),
    "retry": ("resilience", "retry"),
    "retry_budget": ("resilience", "retry", "budget"),
    "rate_limits": ("resilience", "rate_limits"),
    "agent_rate_limits": ("agents", "rate_limits"),
    "fallbacks": ("resilience", "fallbacks"),
    "shed_at": ("resilience", "shed_at"),
    "seed": ("seed",),
}


def test_every_resilience_setting_has_a_place_in_the_spec() -> None:
    assert {f.name for f in dataclasses.fields(ResilienceSettings)} == set(RESILIENCE_SOURCES)
    for path in RESILIENCE_SOURCES.values():
        model: Any = SwarmSpec
        for key in path:
            assert key in model.model_fields, path
            model = _model_inside(model.model_fields[key].annotation)


def _model_inside(annotation: Any) -> Any:
    """The section model an annotation holds (`X | None`, `tuple[X, ...]`), if any."""
    todo = [annotation]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
        todo.extend(getattr(tp, "__args__", ()))
    return None


def test_a_spec_without_resilience_settings_gets_the_settings_defaults() -> None:
    spec = parse_spec_yaml("agents: [{id: a}]\n")
    assert spec.guard(lambda: 0.0).settings == ResilienceSettings()
    assert ResilienceSpec().restart_policy() == RestartPolicy()


def test_adaptive_alpha_can_be_set_from_yaml() -> None:
    spec = parse_spec_yaml(
        "agents: [{id: a}]\nresilience: {breaker: {adaptive: true, adaptive_alpha: 0.05}}\n"
    )
    breaker = spec.guard(lambda: 0.0).settings.breaker
    assert breaker is not None
    assert breaker.adaptive_alpha == 0.05
    assert parse_spec_yaml(spec.to_yaml()) == spec


@pytest.mark.parametrize("alpha", ["0", "1.5", "often"])
def test_a_bad_adaptive_alpha_names_the_field_and_the_fix(alpha: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_yaml(
            f"agents: [{{id: a}}]\nresilience: {{breaker: {{adaptive_alpha: {alpha}}}}}\n"
        )
    (problem,) = info.value.problems
    assert problem.path == "resilience.breaker.adaptive_alpha"
    assert problem.fix.startswith("Use")


def test_retry_on_transient_round_trips_under_its_name() -> None:
    spec = parse_spec_yaml("agents: [{id: a}]\nresilience: {retry: {retry_on: transient}}\n")
    assert spec.to_data()["resilience"]["retry"]["retry_on"] == "transient"
    assert parse_spec(spec.to_data()) == spec == parse_spec_yaml("agents: [{id: a}]\n")


# -- sections made from settings classes --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
    window: float = 2.0
    added: int = 7  # a field the section below does not mention

    def __post_init__(self) -> None:
        if self.added < 0:
            raise ConfigError("example.added", self.added, "Use an integer >= 0.")


class ExampleSpec(SettingsSection, settings=Example):
    window: Duration = FROM_SETTINGS


def test_a_field_the_section_does_not_mention_is_settable_with_its_default() -> None:
    assert Example(**ExampleSpec().settings_arguments()) == Example()
    spec = ExampleSpec.model_validate({"window": "5s", "added": 3})
    assert Example(**spec.settings_arguments()) == Example(5.0, 3)


def test_the_settings_class_checks_a_section_with_its_own_fix() -> None:
    with pytest.raises(ValidationError) as info:
        ExampleSpec.model_validate({"added": -1})
    (error,) = info.value.errors()
    assert error["ctx"]["problem"] == "example.added is not valid"
    assert error["ctx"]["fix"] == "Use an integer >= 0."


def test_a_section_cannot_give_a_setting_a_default_of_its_own() -> None:
    with pytest.raises(TypeError, match="FROM_SETTINGS"):

        class Drifted(SettingsSection, settings=Example):
            window: Duration = 3.0


def test_a_section_cannot_declare_a_setting_that_does_not_exist() -> None:
    with pytest.raises(TypeError, match="not a field of Example"):

        class Misspelt(SettingsSection, settings=Example):
            windw: Duration = FROM_SETTINGS
