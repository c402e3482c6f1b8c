"""Field types shared by the spec's sections, and sections made from settings classes."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
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
PositiveFraction = Annotated[float, Field(gt=0, le=1)]


class Section(BaseModel):
    """A spec section: unknown keys are errors, values are frozen, no inf or NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- sections made from settings classes ------------------------------------------------

T = TypeVar("T")


class _FromSettings:
    def __repr__(self) -> str:
        return "FROM_SETTINGS"


# The default of a field a settings section declares: always its settings class's own, so
# the two cannot drift apart.
FROM_SETTINGS: Any = _FromSettings()


def checked(build: Callable[[], T]) -> T:
    """Build a settings object; its own validation error becomes a spec problem."""
    try:
        return build()
    except ConfigError as exc:
        raise PydanticCustomError(
            "invalid",
            "{problem}",
            {"problem": f"{exc.field} is not valid", "fix": exc.fix, "value": exc.value},
        ) from None


class SettingsSection(Section):
    """A spec section that is a settings class written for YAML: one source for both.

    `class RestartSpec(SettingsSection, settings=RestartPolicy)` has every field of
    `RestartPolicy`, in its order and with its default, so a field added to the settings
    class can be set from YAML at once. The section declares only the fields whose YAML
    form differs, giving a type (a duration, a bound) and `= FROM_SETTINGS` for the default;
    the others keep the settings class's own type. `exclude` names fields the spec sets
    another way (a rate limit's name is its key). The settings class's own checks run when
    the section is validated, unless `checked=False` (when they need more than the section).
    A settings class compiled with mypyc keeps no field types, so its section declares every
    field.
    """

    settings_class: ClassVar[type[Any]]
    settings_excluded: ClassVar[frozenset[str]] = frozenset()
    settings_declared: ClassVar[frozenset[str]] = frozenset()  # fields with a YAML type
    settings_checked: ClassVar[bool] = True

    def __init_subclass__(
        cls,
        *,
        settings: type[Any] | None = None,
        exclude: Iterable[str] = (),
        checked: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        # Pydantic collects a model's fields after this hook: what is set here is a field.
        if settings is not None:
            cls.settings_class = settings
            cls.settings_excluded = frozenset(exclude)
            cls.settings_checked = checked
            _derive_fields(cls, settings, cls.settings_excluded)

    @model_validator(mode="after")
    def _settings_valid(self) -> Self:
        if self.settings_checked:
            checked(lambda: self.settings_class(**self.settings_arguments()))
        return self

    @classmethod
    def settings_fields(cls) -> list[str]:
        """The settings class's fields that the section sets, in their order."""
        return [
            f.name
            for f in dataclasses.fields(cls.settings_class)
            if f.init and f.name not in cls.settings_excluded
        ]

    def settings_arguments(self) -> dict[str, Any]:
        """Keyword arguments for the settings class; mappings are copied, so the settings
        object never shares one with the spec."""
        values = {name: getattr(self, name) for name in self.settings_fields()}
        return {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}


def _derive_fields(
    cls: type[SettingsSection], settings: type[Any], excluded: frozenset[str]
) -> None:
    """Give `cls` the fields of the settings dataclass `settings` (see `SettingsSection`)."""
    where = f"{cls.__name__} (from {settings.__name__})"
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"{where}: settings must be a dataclass.")
    fields = [f for f in dataclasses.fields(settings) if f.init]
    unknown = excluded - {f.name for f in fields}
    if unknown:
        raise TypeError(f"{where}: excludes {sorted(unknown)}, which it does not have.")
    declared: dict[str, Any] = dict(inspect.get_annotations(cls))
    cls.settings_declared = frozenset(declared)
    annotations: dict[str, Any] = {}
    hints: dict[str, Any] | None = None
    for f in fields:
        if f.name in excluded:
            if f.name in declared:
                raise TypeError(f"{where}: {f.name} is excluded and declared at once.")
            continue
        if f.name in declared:
            annotations[f.name] = declared.pop(f.name)
            if cls.__dict__.get(f.name, FROM_SETTINGS) is not FROM_SETTINGS:
                raise TypeError(
                    f"{where}: {f.name} takes its default from the settings class; "
                    "write `= FROM_SETTINGS`."
                )
        else:
            if hasattr(settings, "__mypyc_attrs__"):
                raise TypeError(f"{where}: compiled, it keeps no type for {f.name}; declare it.")
            if hints is None:
                hints = typing.get_type_hints(settings)
            annotations[f.name] = hints[f.name]
        if f.default is not dataclasses.MISSING:
            setattr(cls, f.name, Field(default=f.default))
        elif f.default_factory is not dataclasses.MISSING:
            setattr(cls, f.name, Field(default_factory=f.default_factory))
        elif f.name in cls.__dict__:
            delattr(cls, f.name)  # required, as in the settings class
    for name in declared:
        if cls.__dict__.get(name) is FROM_SETTINGS:
            raise TypeError(f"{where}: {name} is not a field of {settings.__name__}.")
    # Settings fields first, in their order; then the section's own.
    cls.__annotations__ = {**annotations, **declared}


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
