"""The benchmark suite's results schema: what a run measured, as JSON that round-trips exactly.

A results file holds one `SuiteResult`: the environment it ran in and, per scenario, every
iteration's figures, a summary over all iterations, one sample per iteration per metric (what
a regression gate compares), a bounded reservoir of raw latencies, the errors seen, and what
each kind of scenario adds (a stress test's breaking point, a spike's recovery time...).
Figures that could not be measured are None, with the reason in `notes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from swarmperf.core.errors import ConfigError
from swarmperf.core.files import write_atomic
from swarmperf.core.latency import LatencySummary

SCHEMA_VERSION = 1
ScenarioKind = Literal["load", "stress", "volume", "endurance", "spike"]
SCENARIO_KINDS: tuple[ScenarioKind, ...] = ("load", "stress", "volume", "endurance", "spike")


class _Model(BaseModel):
    # No NaN or infinity: JSON has neither, and a file must read back equal to what was written.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class IterationResult(_Model):
    """One measured iteration of a scenario.

    `asked` requests were scheduled; `completed` = `succeeded` + `failed` were sent and
    settled (answered, or given up on: see the errors); `dropped` could not be sent on time.
    `lag_p99_s` is the open model's scheduling lag (actual send - intended send), p99.
    """

    index: int
    started_at: float
    duration_s: float
    asked: int
    completed: int
    succeeded: int
    failed: int
    dropped: int
    throughput_per_s: float | None
    error_rate: float | None
    latency: LatencySummary
    lag_p99_s: float | None


class ErrorRecord(_Model):
    """Errors of one type and message: how many, and when first and last seen (UNIX time).

    For the error's trend, `counts_by_slice` holds how many fell in each of equal time
    slices of the scenario and `tasks_by_slice` how many requests settled in each (see
    `swarmperf.bench.error_patterns.Slices`); both are empty in files written before them.
    """

    type: str
    message: str
    count: int
    first_seen: float
    last_seen: float
    counts_by_slice: list[int] = []
    tasks_by_slice: list[int] = []


class ScenarioResult(_Model):
    """Everything measured for one scenario."""

    name: str
    kind: ScenarioKind
    target: str
    settings: dict[str, Any]
    iterations: list[IterationResult]
    summary: dict[str, float | None]
    samples: dict[str, list[float]]
    latency_samples_s: list[float]
    errors: list[ErrorRecord]
    extra: dict[str, Any]
    notes: list[str]


class Environment(_Model):
    """Where a suite ran: the machine, the interpreter and the versions that matter."""

    machine: str
    cpu: str
    cores: int
    memory_bytes: int
    os: str
    python: str
    packages: dict[str, str]
    git_commit: str | None
    swarmperf_version: str


class SuiteResult(_Model):
    """One run of a suite: a results file holds exactly one."""

    schema_version: int
    suite: str
    started_at: float
    finished_at: float
    environment: Environment
    scenarios: list[ScenarioResult]

    def scenario(self, name: str) -> ScenarioResult:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        names = ", ".join(s.name for s in self.scenarios) or "(none)"
        raise ConfigError("scenario", name, f"Choose one of this result's scenarios: {names}.")


def load_result(path: Path) -> SuiteResult:
    """Read a results file; a missing, unreadable, old or malformed file raises `ConfigError`
    naming the field, the bad value and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "results file", str(path), "It does not exist: give the path benchmark-run printed."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "results file", str(path), f"It cannot be read ({exc}). Check the path."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "results file",
            str(path),
            f"It is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            "Use a file written by `swarmperf benchmark-run`.",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "results file", str(path), "It holds no JSON object. Use a benchmark-run result."
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        when = (
            "newer"
            if isinstance(version, int)
            and not isinstance(version, bool)
            and version > SCHEMA_VERSION
            else "older or foreign"
        )
        raise ConfigError(
            "schema_version",
            version,
            f"{path} uses an {when} results format; this swarmperf reads version "
            f"{SCHEMA_VERSION}. Run the suite again with this version.",
        )
    try:
        return SuiteResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(file)"
        # For a missing field pydantic gives the enclosing object: show the gap, not it.
        value = _Shown("(missing)") if first["type"] == "missing" else _short(first.get("input"))
        raise ConfigError(
            field,
            value,
            f"{first['msg']} in {path} ({exc.error_count()} problem(s)). "
            "Use a file written by `swarmperf benchmark-run`, unedited.",
        ) from None


class _Shown:
    """A value as an error message shows it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _short(value: object, limit: int = 200) -> object:
    text = repr(value)
    return value if len(text) <= limit else _Shown(text[:limit] + "...")


def save_result(result: SuiteResult, path: Path) -> None:
    """Write `result` to `path` atomically: a reader sees the old file or the new, never half."""
    try:
        write_atomic(path, result.model_dump_json(indent=1), durable=True)
    except OSError as exc:
        raise ConfigError(
            "results file", str(path), f"It cannot be written ({exc.strerror or exc})."
        ) from None
