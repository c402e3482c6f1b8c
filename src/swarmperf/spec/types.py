"""Field types shared by the spec's sections: durations, rates, names, fractions."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError

from swarmperf.core.durations import format_duration, format_rate, parse_duration, parse_rate
from swarmperf.core.errors import ConfigError


def problem(kind: str, problem: str, fix: str, **extra: Any) -> PydanticCustomError:
    """A validation error that carries its own wording; `value=` overrides the shown input."""
    return PydanticCustomError(kind, "{problem}", {"problem": problem, "fix": fix, **extra})


def _duration_or_error(value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem("duration", "is not a duration", "Use a duration like 30s, 5m or 250ms.")
    try:
        seconds = parse_duration(value, "duration")
    except ConfigError as exc:
        raise problem("duration", "is not a valid duration", exc.fix) from None
    if positive and seconds == 0:
        raise problem("duration", "must be longer than 0", "Use a duration like 30s or 250ms.")
    return seconds


def _rate_or_error(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem("rate", "is not a rate", "Use a rate like 500/s or 30/m.")
    try:
        return parse_rate(value, "rate")
    except ConfigError as exc:
        raise problem("rate", "is not a valid rate", exc.fix) from None


def _duration_text(seconds: float) -> str | float:
    # Text when it reads back exactly; otherwise the float, so a dump always round-trips.
    text = format_duration(seconds)
    return text if parse_duration(text, "duration") == seconds else seconds


Duration = Annotated[
    float,
    BeforeValidator(lambda v: _duration_or_error(v, positive=False)),
    PlainSerializer(_duration_text, when_used="json"),
]
PositiveDuration = Annotated[
    float,
    BeforeValidator(lambda v: _duration_or_error(v, positive=True)),
    PlainSerializer(_duration_text, when_used="json"),
]
Rate = Annotated[
    float, BeforeValidator(_rate_or_error), PlainSerializer(format_rate, when_used="json")
]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
PositiveFloat = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0)]
PriorityName = Literal["critical", "high", "normal", "low"]


Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """A spec section: unknown keys are errors, values are frozen, no inf or NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def _bytes_or_error(value: object) -> int:
    fix = "Use a size like 512MiB, 2GiB or 1.5GB (or a number of bytes)."
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem("size", "is not a size", fix)
    match = _SIZE.match(str(value))
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise problem("size", "is not a valid size", fix)
    size = int(float(match.group(1)) * unit)
    if size <= 0:
        raise problem("size", "must be larger than 0", fix)
    return size


# A number of bytes, written as bytes or with a unit (512MiB, 2GB).
ByteSize = Annotated[int, BeforeValidator(_bytes_or_error)]
