"""Threshold expressions: parsing, errors that point at the bad part, evaluation and margins."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.thresholds import (
    OPS,
    RATE_UNITS,
    THROUGHPUT_UNITS,
    TIME_UNITS,
    Figures,
    ThresholdError,
    evaluate,
    figures_from_scenario,
    format_number,
    parse_threshold,
)
from swarmperf.core.errors import ConfigError
from tests.bench.test_quality import iteration, scenario


@pytest.mark.parametrize(
    ("text", "aggregate", "op", "limit"),
    [
        ("p(95)<200ms", "p(95)", "<", 0.2),
        ("p(99.9)<=1s", "p(99.9)", "<=", 1.0),
        ("avg<100ms", "avg", "<", 0.1),
        ("med<50ms", "med", "<", 0.05),
        ("min>=1us", "min", ">=", 1e-6),
        ("max<5s", "max", "<", 5.0),
        ("max<2m", "max", "<", 120.0),
        ("p(90)<300", "p(90)", "<", 0.3),  # a bare latency is milliseconds, as in k6
        ("rate<0.01", "rate", "<", 0.01),
        ("rate<1%", "rate", "<", 0.01),
        ("availability>=99.9%", "availability", ">=", 0.999),
        ("throughput>1000/s", "throughput", ">", 1000.0),
        ("throughput>600/m", "throughput", ">", 10.0),
        ("throughput>=50", "throughput", ">=", 50.0),
        ("count>=100", "count", ">=", 100.0),
        ("linearity>=80%", "linearity", ">=", 0.8),
        ("  P( 95 ) <  200 ms ", "p(95)", "<", 0.2),
        ("AVG<1.5e2ms", "avg", "<", 0.15),
    ],
)
def test_valid_expressions(text: str, aggregate: str, op: str, limit: float) -> None:
    t = parse_threshold(text)
    assert (t.aggregate, t.op) == (aggregate, op)
    assert t.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("p95<200ms", 1, "p(N), e.g. p(95)"),
        ("p(95)<<200ms", 6, "a number"),
        ("p(95)=200ms", 5, "<, <=, >, >="),
        ("p(0)<1s", 2, "(0, 100]"),
        ("p(101)<1s", 2, "(0, 100]"),
        ("p(95<1s", 4, "')' closing p(N"),
        ("p(95)<200kb", 9, "us, ms, s or m"),
        ("p(95)<200%", 9, "a time unit"),
        ("throughput>5ms", 12, "1000/s or 60/m"),
        ("rate<5", 5, "0 to 100%"),
        ("rate<150%", 5, "0 to 100%"),
        ("count>1.5", 6, "a whole number"),
        ("count>10/s", 8, "no unit"),
        ("latency<1s", 0, "p(N), avg, med, min, max, rate, availability, throughput, count"),
        ("", 0, "what to check"),
        ("p(95)", 5, "ends where a comparison should be"),
        ("avg<", 4, "ends where a number should be"),
        ("avg<100ms and more", 10, "unexpected"),
    ],
)
def test_errors_point_at_the_bad_part_and_say_what_is_allowed(
    text: str, column: int, says: str
) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_threshold(text)
    error = caught.value
    assert error.column == column
    assert says in str(error)
    assert f"At column {column + 1}" in str(error)
    assert "\n    " + " " * column + "^" in str(error)  # the caret under the bad part
    assert isinstance(error, ConfigError)
    assert error.field == "threshold"


def test_non_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        parse_threshold(95)  # type: ignore[arg-type]


_positive = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
_space = st.sampled_from(["", " ", "  "])


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, str, str, float, str]:
    """A valid expression as people might space it, and the parts it must parse into."""
    family = draw(st.sampled_from(["percentile", "latency", "rate", "throughput", "count"]))
    op = draw(st.sampled_from(OPS))
    if family == "percentile":
        pct = draw(st.floats(min_value=0.001, max_value=100.0))
        aggregate = f"p({format_number(pct)})"
        written = f"p({draw(_space)}{format_number(pct)}{draw(_space)})"
    else:
        names = {
            "latency": ["avg", "med", "min", "max"],
            "rate": ["rate", "availability"],
            "throughput": ["throughput"],
            "count": ["count"],
        }[family]
        aggregate = written = draw(st.sampled_from(names))
    if family in ("percentile", "latency"):
        unit = draw(st.sampled_from(["", *TIME_UNITS]))
        number = draw(_positive)
    elif family == "rate":
        unit = draw(st.sampled_from(list(RATE_UNITS)))
        number = draw(st.floats(min_value=0.0, max_value=100.0 if unit == "%" else 1.0))
    elif family == "throughput":
        unit = draw(st.sampled_from(list(THROUGHPUT_UNITS)))
        number = draw(_positive)
    else:
        unit = ""
        number = float(draw(st.integers(min_value=0, max_value=10**9)))
    text = f"{draw(_space)}{written}{draw(_space)}{op}{draw(_space)}{format_number(number)}"
    text += f"{draw(_space)}{unit}{draw(_space)}"
    return text, aggregate, op, number, unit


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_generated_expressions_parse_and_round_trip(
    case: tuple[str, str, str, float, str],
) -> None:
    text, aggregate, op, number, unit = case
    t = parse_threshold(text)
    assert (t.aggregate, t.op, t.number, t.unit) == (aggregate, op, number, unit)
    assert parse_threshold(t.to_expression()) == t
    assert parse_threshold(str(t)).to_expression() == t.to_expression()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("p()avgmedrt<>=.%/sum0123456789 eE-+x"), max_size=20))
def test_garbage_raises_nothing_but_our_error(text: str) -> None:
    parsed = None
    column = None
    try:
        parsed = parse_threshold(text)
    except ThresholdError as exc:
        column = exc.column
    if parsed is None:
        assert column is not None
        assert 0 <= column <= len(text)
    else:
        assert parse_threshold(parsed.to_expression()) == parsed


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_text_raises_nothing_but_our_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_threshold(text)


def test_percentiles_come_from_the_latency_samples() -> None:
    samples = tuple(i / 1000 for i in range(1, 101))  # 1..100 ms
    figures = Figures(latency_samples_s=samples)
    result = evaluate(parse_threshold("p(95)<200ms"), figures)
    assert result.passed is True
    assert result.value is not None
    assert result.value == pytest.approx(float(np.percentile(samples, 95)))
    assert result.margin == pytest.approx(0.2 - result.value)
    assert result.margin is not None
    assert result.relative_margin == pytest.approx(result.margin / 0.2)
    missed = evaluate(parse_threshold("max<=50ms"), figures)
    assert missed.passed is False
    assert missed.margin == pytest.approx(-0.05)
    assert "100 ms misses max<=50ms" in missed.reason


def test_a_missing_figure_gives_no_verdict_and_the_reason() -> None:
    result = evaluate(
        parse_threshold("throughput>10/s"),
        Figures(missing={"throughput": "the summary has no throughput_per_s"}),
    )
    assert result.passed is None
    assert result.value is None
    assert result.reason == "no data: the summary has no throughput_per_s"
    latency = evaluate(parse_threshold("p(99)<1s"), Figures())
    assert latency.passed is None
    assert "no latency samples" in latency.reason


def test_summary_quantiles_stand_in_when_there_are_no_samples() -> None:
    figures = Figures(latency={"p(99)": 0.5})
    assert evaluate(parse_threshold("p(99)<1s"), figures).value == 0.5
    assert evaluate(parse_threshold("p(95)<1s"), figures).passed is None


def test_exact_summary_figures_win_over_the_bounded_latency_sample() -> None:
    # A results file keeps a bounded sample of latencies; its summary is over all of them, so
    # the slowest request (max) or the p99 may be missing from the sample.
    samples = tuple(i / 1000 for i in range(1, 101))  # 1..100 ms
    figures = Figures(latency_samples_s=samples, latency={"max": 2.0, "p(99)": 0.5})
    assert evaluate(parse_threshold("max<1s"), figures).passed is False
    assert evaluate(parse_threshold("p(99)<200ms"), figures).value == 0.5
    # What the summary does not hold still comes from the sample.
    p95 = evaluate(parse_threshold("p(95)<1s"), figures).value
    assert p95 == pytest.approx(float(np.percentile(samples, 95)))


def test_figures_of_a_scenario_come_from_its_iterations_when_the_summary_lacks_them() -> None:
    its = [iteration(i, rate=100.0, failed=5) for i in range(4)]
    s = scenario(iterations=its, summary={"latency_p99_s": 0.3, "latency_p50_s": 0.1})
    figures = figures_from_scenario(s)
    assert figures.error_rate == pytest.approx(0.05)
    assert figures.availability == pytest.approx(0.95)
    assert figures.count == 400
    assert figures.throughput_per_s is None
    assert evaluate(parse_threshold("count>=400"), figures).passed is True
    assert evaluate(parse_threshold("rate<1%"), figures).passed is False
    assert (figures.latency or {})["med"] == 0.1


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(min_value=0, max_value=1e3, allow_nan=False),
    limit=st.floats(min_value=0, max_value=1e3, allow_nan=False),
    op=st.sampled_from(OPS),
)
def test_the_margin_is_positive_exactly_when_a_strict_limit_holds(
    value: float, limit: float, op: str
) -> None:
    t = parse_threshold(f"throughput{op}{format_number(limit)}")
    result = evaluate(t, Figures(throughput_per_s=value))
    assert result.margin is not None
    if op in ("<", ">"):
        assert result.passed == (result.margin > 0)
    else:
        assert result.passed == (result.margin >= 0)
