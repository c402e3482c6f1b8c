"""Durations and rates as people write them (`250ms`, `1m30s`, `500/s`) and as float seconds."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from swarmperf.core.errors import ConfigError

DURATION_FIX = "Use a duration like 30s, 5m or 250ms."
NEGATIVE_DURATION_FIX = "Durations cannot be negative: use one like 30s, 5m or 250ms."
RATE_FIX = "Use a rate > 0 like 500/s, 30/m or 2/h (a bare number is per second)."

# Decimal, not float, so that `0.1ms` is the float nearest to 0.0001 and formatting
# a parsed value gives back the same text.
_UNITS: dict[str, Decimal] = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# "ms" before "m" and "s": the alternation takes the first unit that matches.
_UNIT = r"(?:ms|us|µs|h|m|s)"
_PART = re.compile(rf"\s*({_NUMBER})\s*({_UNIT})")
_DURATION = re.compile(rf"(?:\s*{_NUMBER}\s*{_UNIT})+\s*")
_RATE = re.compile(rf"\s*({_NUMBER})\s*/\s*(s|sec|m|min|h)\s*")
_PER = {
    "s": Decimal(1),
    "sec": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "h": Decimal(3600),
}
_MICROS_PER_SECOND = 1_000_000


def parse_duration(value: str | float | int, field: str) -> float:
    """Seconds from `value`: a number of seconds, or text like `250ms`, `30s`, `1m30s`, `1h`.

    Units: h, m, s, ms, us. Parts add up, so `1m30s` is 90 seconds. Raises `ConfigError`
    naming `field` for negative, empty, non-finite or unreadable values.
    """
    if isinstance(value, bool):  # YAML reads `yes` and `on` as booleans
        raise ConfigError(field, value, DURATION_FIX)
    if isinstance(value, int | float):
        return _non_negative(Decimal(value), field, value)
    if not isinstance(value, str):
        raise ConfigError(field, value, DURATION_FIX)
    text = value.strip()
    if text.startswith("-"):
        raise ConfigError(field, value, NEGATIVE_DURATION_FIX)
    if _DURATION.fullmatch(text):
        total = sum(
            (Decimal(number) * _UNITS[unit] for number, unit in _PART.findall(text)), Decimal(0)
        )
        return float(total)
    # A bare number in text, e.g. from a command-line flag, is seconds.
    return _non_negative(_decimal(text, field, value, DURATION_FIX), field, value)


def format_duration(seconds: float) -> str:
    """`seconds` as text that `parse_duration` reads back, rounded to the microsecond.

    >>> format_duration(0.25), format_duration(90), format_duration(1.5), format_duration(0)
    ('250ms', '1m30s', '1.5s', '0s')
    """
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"Cannot format {seconds!r} as a duration: it must be finite and >= 0.")
    micros = int((Decimal(seconds) * _MICROS_PER_SECOND).to_integral_value(ROUND_HALF_EVEN))
    if micros == 0:
        return "0s"
    if micros < _MICROS_PER_SECOND:
        return _with_fraction(micros, 1000, "ms")
    hours, rest = divmod(micros, 3600 * _MICROS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * _MICROS_PER_SECOND)
    parts = [f"{hours}h"] if hours else []
    if minutes:
        parts.append(f"{minutes}m")
    if rest:
        parts.append(_with_fraction(rest, _MICROS_PER_SECOND, "s"))
    return "".join(parts)


def parse_rate(value: str | float | int, field: str) -> float:
    """Events per second from `value`: a number (per second) or text like `500/s`, `30/m`."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(field, value, RATE_FIX)
    if isinstance(value, str) and (match := _RATE.fullmatch(value)):
        rate = Decimal(match.group(1)) / _PER[match.group(2)]
    elif isinstance(value, str):
        rate = _decimal(value.strip(), field, value, RATE_FIX)
    else:
        rate = Decimal(value)
    if not rate.is_finite() or rate <= 0:
        raise ConfigError(field, value, RATE_FIX)
    return float(rate)


def format_rate(per_second: float) -> str:
    """`per_second` as text that `parse_rate` reads back exactly: `500/s`, `30/m`, `2/h`."""
    if not per_second > 0 or per_second == float("inf"):
        raise ValueError(f"Cannot format {per_second!r} as a rate: it must be finite and > 0.")
    # Slow rates read better per minute or hour, if that is a whole number and exact.
    for unit in ("s", "m", "h"):
        count = per_second * float(_PER[unit])
        if count.is_integer() and float(Decimal(int(count)) / _PER[unit]) == per_second:
            return f"{int(count)}/{unit}"
    return f"{_plain(per_second)}/s"


def _decimal(text: str, field: str, value: object, fix: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ConfigError(field, value, fix) from None


def _non_negative(number: Decimal, field: str, value: object) -> float:
    if not number.is_finite():
        raise ConfigError(field, value, DURATION_FIX)
    if number < 0:
        raise ConfigError(field, value, NEGATIVE_DURATION_FIX)
    return float(number)


def _with_fraction(amount: int, per_unit: int, unit: str) -> str:
    whole, fraction = divmod(amount, per_unit)
    if not fraction:
        return f"{whole}{unit}"
    digits = len(str(per_unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0") + unit


def _plain(number: float) -> str:
    """The shortest decimal text that reads back as `number`, without an exponent."""
    if number.is_integer():
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def format_timestamp(ts: float, now: float | None = None) -> str:
    """UNIX time `ts` as people read it: ISO 8601 local time with its offset, to the second,
    and how long ago it was when `now` is given: `2026-01-31T12:00:03+01:00 (2 min ago)`."""
    import datetime as dt

    shown = dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
    if now is None:
        return shown
    return f"{shown} ({format_ago(now - ts)})"


def format_ago(seconds: float) -> str:
    """An age in the largest whole unit: `just now`, `42 s ago`, `2 min ago`, `3 h ago`,
    `5 days ago`; a negative age (a clock ahead of this one) reads `in the future`."""
    if seconds < 0:
        return "in the future"
    if seconds < 1:
        return "just now"
    for size, unit in ((86_400, "day"), (3_600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            count = int(seconds // size)
            if unit == "day":
                return f"{count} day{'s' if count != 1 else ''} ago"
            return f"{count} {unit} ago"
    return "just now"  # pragma: no cover - the loop ends at one second


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 pattern`, `2 patterns`, `1,234 failures`: a count with its noun agreeing."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"
