"""Durations and rates: parsing, formatting, and that formatting reads back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.core.durations import format_duration, format_rate, parse_duration, parse_rate
from swarmperf.core.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h 2m 3s", 3723.0),
        ("0.1ms", 0.0001),
        ("500us", 0.0005),
        (".5s", 0.5),
        ("0s", 0.0),
        ("30", 30.0),
        (" 2.5 ", 2.5),
        (3, 3.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parses_numbers_and_text(value: str | float, seconds: float) -> None:
    assert parse_duration(value, "queue.max_wait") == seconds


@pytest.mark.parametrize(
    "value", ["", "   ", "abc", "5x", "5 s s", "1m-30s", "ms", "inf", "nan", math.inf, math.nan]
)
def test_rejects_garbage_naming_field_value_and_fix(value: str | float) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "queue.max_wait")
    message = str(info.value)
    assert message.startswith("queue.max_wait: ")
    assert repr(value) in message
    assert "Use a duration like 30s, 5m or 250ms." in message
    assert info.value.field == "queue.max_wait"


@pytest.mark.parametrize("value", ["-5s", "-1", -1, -0.5])
def test_rejects_negative_durations(value: str | float) -> None:
    with pytest.raises(ConfigError, match="cannot be negative"):
        parse_duration(value, "workload.deadline")


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}])
def test_rejects_values_that_are_not_numbers_or_text(value: object) -> None:
    with pytest.raises(ConfigError, match="Use a duration like"):
        parse_duration(value, "duration")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (0.0015, "1.5ms"),
        (0.000001, "0.001ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400.1, "1h30m0.1s"),
        (119.9999999, "2m"),
    ],
)
def test_formats_compactly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan])
def test_format_refuses_what_is_not_a_duration(seconds: float) -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        format_duration(seconds)


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False))
def test_format_reads_back_to_the_microsecond(seconds: float) -> None:
    text = format_duration(seconds)
    assert abs(parse_duration(text, "d") - seconds) <= 5e-7 + seconds * 1e-15
    # The text is canonical: formatting what it reads back gives the same text.
    assert format_duration(parse_duration(text, "d")) == text


@given(
    st.integers(0, 99),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(0, 999),
)
def test_parts_add_up(hours: int, minutes: int, seconds: int, millis: int) -> None:
    text = f"{hours}h{minutes}m{seconds}s{millis}ms"
    expected = hours * 3600 + minutes * 60 + seconds + millis / 1000
    assert parse_duration(text, "d") == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("value", "per_second"),
    [
        ("500/s", 500.0),
        ("30/m", 0.5),
        ("30/min", 0.5),
        ("2/h", 2 / 3600),
        (" 10 / s ", 10.0),
        (7, 7.0),
        (0.5, 0.5),
        ("12", 12.0),
    ],
)
def test_parses_rates(value: str | float, per_second: float) -> None:
    assert parse_rate(value, "workload.arrival.rate") == pytest.approx(per_second, rel=1e-15)


@pytest.mark.parametrize("value", ["0/s", "-1", 0, -3, "abc", "5/d", "5/", True, math.inf])
def test_rejects_bad_rates(value: str | float) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rate(value, "workload.arrival.rate")
    assert str(info.value).startswith(f"workload.arrival.rate: {value!r} is not valid.")
    assert "500/s" in info.value.fix


@pytest.mark.parametrize(
    ("per_second", "text"), [(500.0, "500/s"), (0.5, "30/m"), (2 / 3600, "2/h"), (0.3, "18/m")]
)
def test_formats_rates_in_the_readable_unit(per_second: float, text: str) -> None:
    assert format_rate(per_second) == text


@given(st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_rate_text_reads_back_exactly(per_second: float) -> None:
    assert parse_rate(format_rate(per_second), "rate") == per_second
