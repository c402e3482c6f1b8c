"""The trial rule: a change is kept exactly when its measured figures bear it out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.core.trial import KEPT, ROLLED_BACK, TrialRule, judge

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)
maybe = st.none() | values
rules = st.builds(
    TrialRule,
    minimise=st.booleans(),
    predicted=maybe,
    tolerance=st.floats(min_value=0, max_value=5, allow_nan=False),
    limit=maybe,
    min_gain=st.none() | st.floats(min_value=-2, max_value=2, allow_nan=False),
    min_samples=st.integers(min_value=1, max_value=50),
)


def window(value: float | None, completed: int = 100, queue: float = 0) -> dict[str, Any]:
    return {"latency_p99_s": value, "completed": completed, "queue_depth": queue}


@given(rule=rules, before=maybe, value=values, better=positive)
def test_a_better_figure_never_turns_a_kept_change_into_a_rolled_back_one(
    rule: TrialRule, before: float | None, value: float, better: float
) -> None:
    improved = value - better if rule.minimise else value + better
    if judge(rule, window(before), window(value)).keep:
        assert judge(rule, window(before), window(improved)).keep


@given(rule=rules, before=maybe, value=values)
def test_a_check_left_out_never_turns_a_kept_change_into_a_rolled_back_one(
    rule: TrialRule, before: float | None, value: float
) -> None:
    if judge(rule, window(before), window(value)).keep:
        for loose in ({"predicted": None}, {"limit": None}, {"min_gain": None}):
            laxer = TrialRule(**{**rule.to_data(), **loose})
            assert judge(laxer, window(before), window(value)).keep


@given(rule=rules, before=maybe, value=values)
def test_maximising_a_figure_is_minimising_its_negation(
    rule: TrialRule, before: float | None, value: float
) -> None:
    def neg(x: float | None) -> float | None:
        return None if x is None else -x

    mirrored = TrialRule(
        minimise=not rule.minimise,
        predicted=neg(rule.predicted),
        tolerance=rule.tolerance,
        limit=neg(rule.limit),
        min_gain=rule.min_gain,
        min_samples=rule.min_samples,
    )
    assert (
        judge(rule, window(before), window(value)).keep
        == judge(mirrored, window(neg(before)), window(-value)).keep
    )


@given(
    predicted=positive,
    tolerance=st.floats(min_value=0, max_value=2, allow_nan=False),
    value=positive,
)
def test_a_prediction_alone_keeps_exactly_what_is_within_its_tolerance(
    predicted: float, tolerance: float, value: float
) -> None:
    rule = TrialRule(predicted=predicted, tolerance=tolerance)
    verdict = judge(rule, {}, window(value))
    assert verdict.keep == (value <= predicted * (1 + tolerance))
    assert verdict.name == (KEPT if verdict.keep else ROLLED_BACK)


@given(before=positive, value=positive, min_gain=st.floats(min_value=-1, max_value=1))
def test_a_minimum_gain_keeps_exactly_the_changes_that_gain_as_much(
    before: float, value: float, min_gain: float
) -> None:
    verdict = judge(TrialRule(min_gain=min_gain), window(before), window(value))
    assert verdict.keep == ((before - value) / before >= min_gain)


@given(rule=rules, done=st.integers(min_value=0, max_value=200), queue=st.integers(0, 100))
def test_too_few_tasks_roll_back_only_a_change_that_lets_the_queue_grow(
    rule: TrialRule, done: int, queue: int
) -> None:
    if done >= rule.min_samples:
        return
    after = window(1.0, completed=done, queue=queue)
    assert judge(rule, window(1.0, queue=5), after).keep == (queue <= 5)


def test_the_reasons_name_the_figures() -> None:
    rule = TrialRule(predicted=0.2, tolerance=0.5, limit=1.0)
    assert "beyond the limit 1" in judge(rule, {}, window(1.5)).why
    assert "predicted 0.2" in judge(rule, {}, window(0.5)).why
    kept = judge(rule, {}, window(0.25))
    assert kept.keep
    assert "within 50% of the predicted 0.2" in kept.why
    gain = TrialRule(min_gain=0.1)
    assert "not measured before" in judge(gain, {}, window(0.5)).why
    assert "a gain of +0%" in judge(gain, window(0.5), window(0.5)).why


@pytest.mark.parametrize(
    ("field", "value"),
    [("tolerance", -0.1), ("predicted", float("nan")), ("min_samples", 0), ("limit", True)],
)
def test_a_bad_rule_names_its_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        TrialRule(**{field: value})  # type: ignore[arg-type]
