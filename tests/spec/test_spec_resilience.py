"""The spec's resilience section: good settings build a guard; mistakes are explained."""

from __future__ import annotations

import pytest

from swarmperf.spec import SpecError, parse_spec, parse_spec_yaml

BASE = """\
agents:
  - id: a
    rate_limits: [llm]
resilience:
  rate_limits:
    llm: {requests_per_minute: 600, tokens_per_minute: 90000, burst: 10s}
  breaker: {failure_threshold: 3, open_for: 2s, adaptive: true}
  retry: {max_attempts: 4, base_delay: 10ms, per_kind: {summarise: {max_attempts: 2}}}
  fallbacks: {summarise: cached-summary}
  bulkheads: {summarise: {max_concurrent: 2}}
"""


def test_a_full_resilience_section_builds_a_guard() -> None:
    spec = parse_spec_yaml(BASE)
    guard = spec.guard(lambda: 0.0)
    settings = guard.settings
    assert settings.breaker is not None
    assert settings.breaker.open_for == 2.0
    assert settings.breaker.adaptive
    assert settings.retry is not None
    assert settings.retry.for_kind("summarise").max_attempts == 2
    assert settings.retry.for_kind("other").max_attempts == 4
    assert settings.agent_rate_limits == {"a": ("llm",)}
    assert spec.resilience.bulkhead_settings()["summarise"].max_concurrent == 2
    assert parse_spec_yaml(spec.to_yaml()) == spec  # round-trips


def test_parts_can_be_switched_off() -> None:
    spec = parse_spec_yaml("agents: [{id: a}]\nresilience: {breaker: null, retry: null}\n")
    settings = spec.guard(lambda: 0.0).settings
    assert settings.breaker is None
    assert settings.retry is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("failure_threshold: 3", "failure_threshold: 0"),
            ["resilience.breaker.failure_threshold"],
        ),
        (("open_for: 2s", "open_for: soon"), ["resilience.breaker.open_for", "'soon'"]),
        (("rate_limits: [llm]", "rate_limits: [lmm]"), ["rate_limits", "'lmm'", "llm"]),
        (("max_attempts: 4", "max_attempts: -1"), ["resilience.retry.max_attempts"]),
        (("burst: 10s", "burst: 10ms"), ["rate_limits.llm.burst", "0.01", "at least 0.1s"]),
        (
            ("fallbacks: {summarise: cached-summary}", "fallbacks: {summarise: summarise}"),
            ["fallback", "another kind"],
        ),
        (
            ("bulkheads: {summarise: {max_concurrent: 2}}", "bulkheads: {summarise: {}}"),
            ["max_concurrent"],
        ),
    ],
)
def test_mistakes_name_the_field_and_the_fix(change: tuple[str, str], expected: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_yaml(BASE.replace(*change)).guard(lambda: 0.0)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message


def test_a_retry_budget_without_a_window_is_refused_by_validate_not_at_run_time() -> None:
    data = {
        "agents": [{"id": "w"}],
        "workload": {"kind": "sleep", "tasks": 1},
        "resilience": {"retry": {"budget": {"window": "0s"}}},
    }
    with pytest.raises(SpecError, match="window is not valid"):
        parse_spec(data, "test")
