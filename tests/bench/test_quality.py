"""quality-assess: criteria groups, scores, scalability figures and advice tied to the numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.quality import (
    assess,
    criterion_score,
    parse_criteria,
    plan_thresholds,
    scalability,
)
from swarmperf.bench.results import (
    SCHEMA_VERSION,
    Environment,
    ErrorRecord,
    IterationResult,
    ScenarioResult,
    SuiteResult,
)
from swarmperf.bench.thresholds import Figures, evaluate, parse_threshold
from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary

ENV = Environment(
    machine="test",
    cpu="test cpu",
    cores=2,
    memory_bytes=1,
    os="linux",
    python="3.11",
    packages={},
    git_commit=None,
    swarmperf_version="0.1.0",
)


def iteration(
    index: int,
    *,
    rate: float = 200.0,
    duration: float = 1.0,
    failed: int = 0,
    asked: int | None = None,
    lag: float | None = 0.0001,
) -> IterationResult:
    completed = int(rate * duration)
    return IterationResult(
        index=index,
        started_at=1000.0 + index,
        duration_s=duration,
        asked=completed if asked is None else asked,
        completed=completed,
        succeeded=completed - failed,
        failed=failed,
        dropped=0,
        throughput_per_s=rate,
        error_rate=failed / completed if completed else None,
        latency=LatencySummary(count=completed - failed),
        lag_p99_s=lag,
    )


def scenario(
    name: str = "steady",
    *,
    kind: str = "load",
    latencies: Sequence[float] = (),
    samples: dict[str, list[float]] | None = None,
    summary: dict[str, float | None] | None = None,
    iterations: Sequence[IterationResult] | None = None,
    errors: Sequence[ErrorRecord] = (),
    extra: dict[str, Any] | None = None,
) -> ScenarioResult:
    its = list(iterations) if iterations is not None else [iteration(i) for i in range(5)]
    lat = list(latencies) if latencies else [0.01 + 0.0001 * i for i in range(200)]
    figures: dict[str, float | None] = {
        "throughput_per_s": float(np.mean([it.throughput_per_s or 0.0 for it in its])),
        "error_rate": sum(it.failed for it in its) / max(1, sum(it.completed for it in its)),
        "latency_p99_s": float(np.percentile(lat, 99)),
    }
    if summary is not None:
        figures = summary
    return ScenarioResult(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        target="local",
        settings={},
        iterations=its,
        summary=figures,
        samples=samples or {},
        latency_samples_s=lat,
        errors=list(errors),
        extra=extra or {},
        notes=[],
    )


def suite(*scenarios: ScenarioResult, name: str = "quick", started: float = 1000.0) -> SuiteResult:
    return SuiteResult(
        schema_version=SCHEMA_VERSION,
        suite=name,
        started_at=started,
        finished_at=started + 10,
        environment=ENV,
        scenarios=list(scenarios),
    )


def test_a_healthy_scenario_passes_every_default_criterion() -> None:
    report = assess(suite(scenario()))
    assert report.passed
    assert [c.status for c in report.criteria] == ["pass"] * 4
    assert report.score == 100.0
    assert report.coverage == 1.0
    assert report.recommendations == []


def test_a_slow_tail_fails_latency_scores_the_share_reached_and_says_why() -> None:
    fast = [0.01] * 980
    slow = [1.25] * 20  # 2% of tasks take 1.25 s: p99 is 1.25 s against 1 s
    report = assess(suite(scenario(latencies=fast + slow)), ["latency"])
    (criterion,) = report.criteria
    assert criterion.status == "fail"
    assert criterion.result.value == pytest.approx(1.25)
    assert criterion.score == pytest.approx(80.0)
    assert report.score == pytest.approx(80.0)
    assert not report.passed
    advice = criterion.recommendation or ""
    assert "1.25 s" in advice
    assert "median is 10 ms" in advice
    assert "tail" in advice


def test_latency_advice_blames_saturation_when_the_swarm_falls_behind() -> None:
    its = [iteration(i, rate=50.0, asked=100) for i in range(3)]  # 100 asked per s, 50 done
    report = assess(suite(scenario(latencies=[2.0] * 100, iterations=its)), ["latency"])
    advice = report.criteria[0].recommendation or ""
    assert "50.0/s of the 100.0/s offered" in advice
    assert "add agents" in advice


def test_failures_fail_reliability_and_advice_names_the_top_error_pattern() -> None:
    its = [iteration(i, failed=4) for i in range(5)]  # 2% of 200 per iteration
    errors = [
        ErrorRecord(
            type="TimeoutError",
            message=f"task t{i} timed out",
            count=4,
            first_seen=1.0,
            last_seen=2.0,
        )
        for i in range(4)
    ] + [ErrorRecord(type="ValueError", message="bad", count=4, first_seen=1.0, last_seen=2.0)]
    report = assess(suite(scenario(iterations=its, errors=errors)), ["reliability"])
    statuses = {c.result.expression: c.status for c in report.criteria}
    assert statuses == {"availability>=99.9%": "fail", "rate<=0.1%": "fail"}
    availability = report.criteria[0]
    # 2% unavailable against 0.1% allowed scores 5, not 98.
    assert availability.score == pytest.approx(5.0)
    advice = report.criteria[1].recommendation or ""
    assert "80% of failures are TimeoutError" in advice
    assert "task <id> timed out" in advice


def test_a_missing_figure_is_no_data_with_its_reason_and_never_passes() -> None:
    report = assess(suite(scenario(summary={"error_rate": 0.0})), ["throughput", "latency"])
    throughput = report.criteria[0]
    assert throughput.status == "no data"
    assert "throughput_per_s" in throughput.result.reason
    assert throughput.score is None
    assert not report.passed
    assert report.score == 100.0  # over the groups with data
    assert report.coverage == pytest.approx(0.30 / 0.55)


def test_an_empty_suite_is_no_data_throughout() -> None:
    report = assess(suite())
    assert report.criteria
    assert {c.status for c in report.criteria} == {"no data"}
    assert report.score is None
    assert report.coverage == 0.0
    assert not report.passed


def test_stress_and_spike_scenarios_are_not_held_to_the_sla() -> None:
    broken = scenario("stress", kind="stress", latencies=[5.0] * 50)
    report = assess(suite(scenario(), broken, scenario("spike", kind="spike")))
    assert {c.scenario for c in report.criteria} == {"steady"}
    assert report.passed


def test_scalability_from_a_linear_curve_passes() -> None:
    curve = [{"offered_per_s": r, "throughput_per_s": r * 0.99} for r in (100, 200, 400, 800)]
    report = assess(suite(scenario("ramp", kind="stress", extra={"curve": curve})), ["scalability"])
    values = {c.result.expression: c.result.value for c in report.criteria}
    assert values["linearity>=0.8"] == pytest.approx(1.0)
    assert values["retention>=0.9"] == pytest.approx(1.0)
    assert report.passed
    assert {c.scenario for c in report.criteria} == {"ramp"}


def test_a_collapsing_curve_fails_retention_with_the_peak_in_the_advice() -> None:
    points = [(100, 100.0), (200, 200.0), (400, 300.0), (800, 150.0)]
    curve = [{"offered_per_s": x, "throughput_per_s": y} for x, y in points]
    report = assess(suite(scenario("ramp", kind="stress", extra={"curve": curve})), ["scalability"])
    retention = next(c for c in report.criteria if c.result.threshold.aggregate == "retention")
    assert retention.status == "fail"
    assert retention.result.value == pytest.approx(0.5)
    advice = retention.recommendation or ""
    assert "300.0/s at a load of 400" in advice
    assert "150.0/s at 800" in advice


def test_scalability_without_a_curve_is_no_data() -> None:
    report = assess(suite(scenario()), ["scalability"])
    assert {c.status for c in report.criteria} == {"no data"}
    assert "no stress scenario" in report.criteria[0].result.reason


def test_linearity_matches_a_least_squares_fit() -> None:
    points = [(1.0, 10.0), (2.0, 18.0), (4.0, 30.0), (8.0, 41.0)]
    figures = scalability(points)
    assert figures is not None
    slope = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)[0]
    assert figures.linearity == pytest.approx(slope / 10.0)
    assert figures.retention == 1.0
    assert scalability([(5.0, 1.0), (5.0, 2.0)]) is None


def test_an_override_replaces_the_default_with_the_same_aggregate_and_adds_others() -> None:
    plan = plan_thresholds(["latency"], ["p(99)<2s", "p(95)<200ms"])
    assert [t.to_expression() for t in plan["latency"]] == ["p(99)<2s", "p(95)<200ms"]


def test_an_override_outside_the_chosen_criteria_is_an_error() -> None:
    with pytest.raises(ConfigError, match="add reliability to --criteria"):
        plan_thresholds(["latency"], ["rate<1%"])


def test_unknown_criteria_names_the_choices() -> None:
    assert parse_criteria("latency, Throughput,latency") == ("latency", "throughput")
    with pytest.raises(ConfigError, match="throughput, latency, reliability, scalability"):
        parse_criteria("latency,speed")


@settings(max_examples=200, deadline=None)
@given(
    value=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    limit=st.floats(min_value=0.001, max_value=1e3),
    op=st.sampled_from(["<", "<=", ">", ">="]),
    aggregate=st.sampled_from(["throughput", "rate", "availability", "linearity"]),
)
def test_scores_are_100_exactly_for_passes_and_in_0_100_otherwise(
    value: float, limit: float, op: str, aggregate: str
) -> None:
    if aggregate in ("rate", "availability"):
        value, limit = min(value, 1.0), min(limit, 1.0)
    threshold = parse_threshold(f"{aggregate}{op}{limit!r}")
    figures = Figures(throughput_per_s=value, error_rate=value, availability=value, linearity=value)
    result = evaluate(threshold, figures)
    score = criterion_score(result)
    assert score is not None
    assert 0.0 <= score <= 100.0
    if result.passed:
        assert score == 100.0
