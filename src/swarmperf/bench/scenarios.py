"""Benchmark scenarios and suites: what load to put on a target, written in YAML or Python.

Five kinds of scenario:
- `load`: ramp up to a rate, hold it, ramp down (open model), or N users (closed model).
- `stress`: raise the rate step by step until a breaking criterion holds (p99 latency,
  error rate, or the share of the asked rate that could be held); report where it broke.
- `volume`: many tasks at once (or at a rate), optionally with large payloads.
- `endurance`: one long run at a steady rate, watched for latency drift and memory growth.
- `spike`: a steady baseline, a sudden burst, and how long latency takes to come back.

A suite is a list of scenarios with defaults for `duration`, `iterations`, `warmup` and
`cooldown` (300 s, 10, 30 s and 10 s unless the suite or the scenario says otherwise; the
command line overrides both). Every problem in a suite file is reported at once, each naming
the field, the bad value and the fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from swarmperf.bench.loadgen import Stage, steady
from swarmperf.core.errors import ConfigError, preview
from swarmperf.core.safe_yaml import YamlProblem, kind_of, load_yaml_text, looks_like, read_text
from swarmperf.spec.types import Duration, Fraction, Name, PositiveDuration, Rate, Section, problem

DEFAULT_DURATION = 300.0
DEFAULT_ITERATIONS = 10
DEFAULT_WARMUP = 30.0
DEFAULT_COOLDOWN = 10.0


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Any = _Missing()


class _Scenario(Section):
    """What every scenario has. Unset run settings come from the suite's defaults."""

    name: Name
    description: str = ""
    duration: PositiveDuration | None = None
    iterations: Annotated[int, Field(ge=1)] | None = None
    warmup: Duration | None = None
    cooldown: Duration | None = None
    model: Literal["open", "closed"] = "open"
    arrival: Literal["constant", "poisson"] = "poisson"
    users: Annotated[int, Field(ge=1)] | None = None
    think: Duration = 0.0
    think_distribution: Literal["constant", "exponential"] = "exponential"
    task_kind: Annotated[str, Field(min_length=1)] | None = None
    payload_bytes: Annotated[int, Field(ge=0)] | None = None
    max_lag: PositiveDuration | None = 1.0
    drain_timeout: PositiveDuration = 30.0
    seed: Annotated[int, Field(ge=0)] = 0
    # precise: sub-millisecond send times, at the cost of a busy core at high rates;
    # relaxed: up to ~1 ms late, nearly idle between sends.
    pacing: Literal["precise", "relaxed"] = "precise"

    def _open_only(self) -> None:
        if self.model != "open":
            raise problem(
                "model",
                f"a {self.kind_name()} scenario paces requests by rate, so it needs the open model",
                "Remove model: closed (use a load scenario for virtual users).",
                value=self.model,
            )

    def kind_name(self) -> str:
        kind: str = getattr(self, "kind", "scenario")
        return kind


class LoadScenario(_Scenario):
    """Ramp up to `rate` over `ramp_up`, hold it for `duration`, ramp down over `ramp_down`.
    With `model: closed`, `users` virtual users instead, each thinking `think` between calls."""

    kind: Literal["load"] = "load"
    rate: Rate | None = None
    ramp_up: Duration = 0.0
    ramp_down: Duration = 0.0

    @model_validator(mode="after")
    def _rate_or_users(self) -> LoadScenario:
        if self.model == "open" and self.rate is None:
            raise problem(
                "rate",
                "is required for the open model",
                "Add a rate, e.g. rate: 200/s.",
                value=MISSING,
            )
        if self.model == "closed" and self.users is None:
            raise problem(
                "users",
                "is required for the closed model",
                "Add users, e.g. users: 16.",
                value=MISSING,
            )
        return self

    def stages(self, duration: float) -> list[Stage]:
        assert self.rate is not None
        return [
            Stage(self.ramp_up, 0.0, self.rate),
            Stage(duration, self.rate, self.rate),
            Stage(self.ramp_down, self.rate, 0.0),
        ]


class BreakWhen(Section):
    """A stress step breaks the target when any of these holds."""

    p99: PositiveDuration | None = None
    error_rate: Fraction | None = 0.05
    achieved_below: Fraction | None = 0.9

    @model_validator(mode="after")
    def _some_criterion(self) -> BreakWhen:
        if self.p99 is None and self.error_rate is None and self.achieved_below is None:
            raise problem(
                "break_when",
                "has no criterion, so nothing could ever break",
                "Set at least one of p99, error_rate, achieved_below.",
            )
        return self


class StressScenario(_Scenario):
    """From `start_rate`, add `step` (or multiply by `factor`) every `step_duration` (default:
    the scenario's duration) until `break_when` holds or `max_rate` has been run."""

    kind: Literal["stress"] = "stress"
    start_rate: Rate
    max_rate: Rate
    step: Rate | None = None
    factor: Annotated[float, Field(gt=1)] | None = None
    step_duration: PositiveDuration | None = None
    break_when: BreakWhen = BreakWhen()

    @model_validator(mode="after")
    def _steps(self) -> StressScenario:
        self._open_only()
        if self.step is not None and self.factor is not None:
            raise problem(
                "step", "and factor are both set", "Keep one: step adds, factor multiplies."
            )
        if self.max_rate < self.start_rate:
            raise problem(
                "max_rate",
                f"is below start_rate ({self.start_rate:g}/s)",
                "Use a max_rate >= start_rate.",
                value=self.max_rate,
            )
        return self

    def rates(self) -> list[float]:
        """The asked rate of each step, from `start_rate` up to `max_rate` (included)."""
        rates = [self.start_rate]
        factor = self.factor if self.factor is not None else (None if self.step else 2.0)
        while True:
            last = rates[-1]
            following = last * factor if factor is not None else last + (self.step or 0.0)
            if following > self.max_rate * (1 + 1e-9):
                if last < self.max_rate:
                    rates.append(self.max_rate)
                return rates
            rates.append(following)


class VolumeScenario(_Scenario):
    """`tasks` requests per iteration, all at once (no `rate`) or at `rate`; with
    `payload_bytes`, each carries that many bytes."""

    kind: Literal["volume"] = "volume"
    tasks: Annotated[int, Field(ge=1)]
    rate: Rate | None = None
    max_lag: PositiveDuration | None = None

    @model_validator(mode="after")
    def _open(self) -> VolumeScenario:
        self._open_only()
        return self

    def stages(self) -> list[Stage] | None:
        """The rate profile, or None for all tasks at once."""
        return None if self.rate is None else steady(self.tasks / self.rate, self.rate)


class EnduranceScenario(_Scenario):
    """One run of `duration` at `rate`, measured in `iterations` consecutive windows: latency
    drift (slope of the windows' median latency), and the resident memory of this process and
    its children sampled every `memory_every`. A leak is suspected when memory grows
    significantly (p < 0.01) by more than `leak_min_growth` bytes and by more than
    `leak_min_relative` of the memory at the start (default 5%) over the run."""

    kind: Literal["endurance"] = "endurance"
    rate: Rate
    memory_every: PositiveDuration = 1.0
    leak_min_growth: Annotated[int, Field(ge=0)] = 16 * 1024 * 1024
    leak_min_relative: Annotated[float, Field(ge=0)] = 0.05

    @model_validator(mode="after")
    def _open(self) -> EnduranceScenario:
        self._open_only()
        return self


class SpikeScenario(_Scenario):
    """`before` at `baseline_rate`, `spike` at `spike_rate`, then `after` at the baseline
    again; recovery is the time from the end of the burst until every later `window` has a
    p95 latency within (1 + `band`) x the baseline's."""

    kind: Literal["spike"] = "spike"
    baseline_rate: Rate
    spike_rate: Rate
    before: PositiveDuration = 10.0
    spike: PositiveDuration = 5.0
    after: PositiveDuration = 30.0
    band: Annotated[float, Field(gt=0)] = 0.5
    window: PositiveDuration = 0.25

    @model_validator(mode="after")
    def _a_spike(self) -> SpikeScenario:
        self._open_only()
        if self.spike_rate <= self.baseline_rate:
            raise problem(
                "spike_rate",
                f"is not above baseline_rate ({self.baseline_rate:g}/s)",
                "Use a spike_rate above the baseline, e.g. 10x.",
                value=self.spike_rate,
            )
        return self

    def stages(self) -> list[Stage]:
        return [
            Stage(self.before, self.baseline_rate, self.baseline_rate),
            Stage(self.spike, self.spike_rate, self.spike_rate),
            Stage(self.after, self.baseline_rate, self.baseline_rate),
        ]


Scenario = Annotated[
    LoadScenario | StressScenario | VolumeScenario | EnduranceScenario | SpikeScenario,
    Field(discriminator="kind"),
]


class SuiteDefaults(Section):
    duration: PositiveDuration = DEFAULT_DURATION
    iterations: Annotated[int, Field(ge=1)] = DEFAULT_ITERATIONS
    warmup: Duration = DEFAULT_WARMUP
    cooldown: Duration = DEFAULT_COOLDOWN


class SuiteSpec(Section):
    """A named list of scenarios, run one after the other."""

    suite: Name
    description: str = ""
    defaults: SuiteDefaults = SuiteDefaults()
    scenarios: tuple[Scenario, ...]

    @field_validator("scenarios")
    @classmethod
    def _unique(cls, scenarios: tuple[Any, ...]) -> tuple[Any, ...]:
        if not scenarios:
            raise problem(
                "scenarios",
                "is empty",
                "Add at least one scenario, e.g. {name: a, kind: load, rate: 100/s}.",
            )
        repeated = [n for n, c in Counter(s.name for s in scenarios).items() if c > 1]
        if repeated:
            raise problem(
                "unique",
                "gives more than one scenario the same name",
                "Give every scenario its own name.",
                value=repeated,
            )
        return scenarios


@dataclass(frozen=True, slots=True)
class Overrides:
    """Run settings given on the command line: they win over the suite's and scenarios'."""

    duration: float | None = None
    iterations: int | None = None
    warmup: float | None = None
    cooldown: float | None = None

    def __post_init__(self) -> None:
        if self.duration is not None and not self.duration > 0:
            raise ConfigError("--duration", self.duration, "Use a duration > 0, e.g. 30s.")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError("--iterations", self.iterations, "Use an integer >= 1.")
        for name, value in (("--warmup", self.warmup), ("--cooldown", self.cooldown)):
            if value is not None and value < 0:
                raise ConfigError(name, value, "Use a duration >= 0, e.g. 5s.")


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The settings a scenario runs with, once defaults and overrides are applied."""

    duration: float
    iterations: int
    warmup: float
    cooldown: float


def run_settings(scenario: Any, defaults: SuiteDefaults, overrides: Overrides) -> RunSettings:
    def pick(name: str) -> Any:
        for source in (getattr(overrides, name), getattr(scenario, name)):
            if source is not None:
                return source
        return getattr(defaults, name)

    return RunSettings(pick("duration"), pick("iterations"), pick("warmup"), pick("cooldown"))


# -- built-in suites ---------------------------------------------------------------------------

QUICK_SUITE_YAML = """\
# Small and short: every kind of scenario once, in about 25 s on the local backend.
suite: quick
description: A smoke test of every scenario kind, short enough for every commit.
# Five iterations: the fewest with which the regression gate (Mann-Whitney at alpha 0.01)
# can judge a metric.
defaults: {duration: 1s, iterations: 5, warmup: 500ms, cooldown: 200ms}
scenarios:
  - name: steady-load
    kind: load
    rate: 200/s
    ramp_up: 500ms
    ramp_down: 500ms
  - name: find-the-limit
    kind: stress
    start_rate: 250/s
    factor: 2
    max_rate: 4000/s
    step_duration: 500ms
    warmup: 0s
    break_when: {p99: 250ms, error_rate: 0.05, achieved_below: 0.9}
  - name: many-tasks
    kind: volume
    tasks: 2000
    iterations: 2
  - name: long-run
    kind: endurance
    rate: 200/s
    duration: 4s
    iterations: 6
    warmup: 0s
    memory_every: 250ms
  - name: burst
    kind: spike
    baseline_rate: 100/s
    spike_rate: 2500/s
    before: 500ms
    spike: 500ms
    after: 1500ms
    iterations: 2
    warmup: 0s
"""

COMPREHENSIVE_SUITE_YAML = """\
# The full picture: long enough for stable medians and for drift and leaks to show.
suite: comprehensive
description: Every scenario kind at full length (about two and a half hours).
defaults: {duration: 300s, iterations: 10, warmup: 30s, cooldown: 10s}
scenarios:
  - name: steady-load
    kind: load
    rate: 500/s
    ramp_up: 30s
    ramp_down: 10s
  - name: users
    kind: load
    model: closed
    users: 32
    think: 50ms
    duration: 60s
    iterations: 5
  - name: find-the-limit
    kind: stress
    start_rate: 100/s
    step: 100/s
    max_rate: 10000/s
    step_duration: 20s
    break_when: {p99: 500ms, error_rate: 0.01, achieved_below: 0.95}
  - name: many-tasks
    kind: volume
    tasks: 100000
    iterations: 5
  - name: large-payloads
    kind: volume
    tasks: 5000
    rate: 500/s
    payload_bytes: 1048576
    task_kind: echo
    iterations: 5
  - name: soak
    kind: endurance
    rate: 300/s
    duration: 1800s
    iterations: 30
    warmup: 30s
  - name: burst
    kind: spike
    baseline_rate: 100/s
    spike_rate: 2000/s
    before: 30s
    spike: 10s
    after: 60s
    iterations: 5
"""

BUILTIN_SUITES = {"quick": QUICK_SUITE_YAML, "comprehensive": COMPREHENSIVE_SUITE_YAML}


class SuiteError(ConfigError):
    """A suite is invalid; the message lists every problem, each with its field and fix."""

    def __init__(self, problems: Sequence[tuple[str, object, str]], source: str) -> None:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        lines = [f"Invalid suite {source} ({count}):"]
        lines += [f"  - {field}: {_show(value)} — {text}" for field, value, text in problems]
        Exception.__init__(self, "\n".join(lines))
        self.field, self.value, self.fix = problems[0]
        self.problems = list(problems)
        self.source = source


def _show(value: object) -> str:
    return preview(value)


_KINDS = ("load", "stress", "volume", "endurance", "spike")


def _problem_of(err: Any) -> tuple[str, object, str]:
    loc = [p for p in err["loc"] if p not in _KINDS]
    field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    ctx = err.get("ctx") or {}
    value = ctx.get("value", err.get("input"))
    kind = err["type"]
    if "problem" in ctx:
        if not loc or not isinstance(loc[-1], str):
            # A check across fields, raised on the scenario: name the field it is about.
            field = f"{field}.{kind}" if field else kind
        return field, value, f"{ctx['problem']}. {ctx['fix']}"
    if kind == "missing":
        return field, MISSING, "is required. Add it; see `swarmperf benchmark-suites`."
    if kind == "extra_forbidden":
        return field, value, "is not a known key. Remove it or check its spelling."
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return field, value, f"is not one of the choices. Use one of: {expected}."
    if kind == "union_tag_invalid":
        return (
            f"{field}.kind",
            ctx.get("tag"),
            f"is not a scenario kind. Use one of: {', '.join(_KINDS)}.",
        )
    if kind == "union_tag_not_found":
        return f"{field}.kind", MISSING, f"is required. Use one of: {', '.join(_KINDS)}."
    bound = _BOUNDS.get(kind)
    if bound is not None:
        limit = next(iter(ctx.values()), "?")
        return field, value, f"must be {bound[0]} {limit}. Use a number {bound[1]} {limit}."
    if kind in _TYPES:
        return field, value, _TYPES[kind]
    return field or "(suite)", value, f"{err['msg']}. Compare with `swarmperf benchmark-suites`."


_BOUNDS = {
    "greater_than": ("greater than", ">"),
    "greater_than_equal": ("at least", ">="),
    "less_than": ("less than", "<"),
    "less_than_equal": ("at most", "<="),
}
_TYPES = {
    "int_type": "must be a whole number. Use e.g. 4.",
    "int_parsing": "must be a whole number. Use e.g. 4.",
    "int_from_float": "must be a whole number. Use e.g. 4.",
    "float_type": "must be a number. Use e.g. 1.5.",
    "float_parsing": "must be a number. Use e.g. 1.5.",
    "finite_number": "must be a finite number. Use e.g. 1.5.",
    "string_type": "must be text. Use e.g. steady-load.",
    "string_too_short": "must not be empty. Use non-empty text.",
    "string_pattern_mismatch": "is not a valid name. Use letters, digits, '.', '_' and '-'.",
    "literal_error": "is not one of the choices. Use one of the values in the docs.",
    "tuple_type": "must be a list. Use one '- ' line per item.",
    "list_type": "must be a list. Use one '- ' line per item.",
    "dict_type": "must be a mapping. Use 'key: value' lines.",
    "model_type": "must be a mapping. Use 'key: value' lines.",
    "model_attributes_type": "must be a mapping. Use 'key: value' lines.",
}


def parse_suite(data: object, source: str = "suite") -> SuiteSpec:
    """Validate suite data (from YAML or Python); raise `SuiteError` listing every problem."""
    if not isinstance(data, Mapping):
        raise SuiteError(
            [("(suite)", data, "is not a mapping. Write 'suite: NAME' and 'scenarios: [...]'.")],
            source,
        )
    try:
        return SuiteSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SuiteError([_problem_of(e) for e in exc.errors(include_url=False)], source) from None


def parse_suite_yaml(text: str, source: str = "<text>") -> SuiteSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems = [("(file)", source, f"is not valid YAML: {exc}. Fix the syntax.")]
        raise SuiteError(problems, source) from None
    return parse_suite(data, source)


def builtin_suites() -> dict[str, SuiteSpec]:
    return {name: parse_suite_yaml(text, name) for name, text in BUILTIN_SUITES.items()}


def load_suite(name_or_path: str) -> SuiteSpec:
    """A built-in suite by name, or a suite YAML file by path."""
    if name_or_path in BUILTIN_SUITES:
        return parse_suite_yaml(BUILTIN_SUITES[name_or_path], name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            "--suite",
            name_or_path,
            f"It is neither a built-in suite ({', '.join(BUILTIN_SUITES)}) nor a file. "
            "Give one of those names or the path of a suite YAML file.",
        )
    source = str(path)
    try:
        data = load_yaml_text(read_text(path), source)
    except YamlProblem as exc:
        raise SuiteError([(exc.where, source, f"{exc.problem}. {exc.fix}")], source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--suite", name_or_path, f"It cannot be read ({exc}).") from None
    if not isinstance(data, dict) or not looks_like(data, list(SuiteSpec.model_fields)):
        # Most likely a path given by mistake: name it, never list what it holds.
        what = (
            "has none of the keys suite and scenarios"
            if isinstance(data, dict)
            else (f"holds {kind_of(data)}, not 'key: value' lines")
        )
        problems = [
            (
                "(suite)",
                source,
                f"is not a suite file: it {what}. Give a built-in suite's "
                f"name ({', '.join(BUILTIN_SUITES)}) or the path of a suite YAML file.",
            )
        ]
        raise SuiteError(problems, source)
    return parse_suite(data, source)
