"""The swarm spec: one YAML file that describes the agents, the queue and the workload of a run.

Every problem in a spec is reported at once, each as
`<field.path>: <bad value> — <what is wrong>. <fix>`, so a spec is fixed in one pass.
Durations are written like `30s`, `5m` or `250ms` and held as float seconds; rates like
`500/s` or `30/m` and held as events per second.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

if typing.TYPE_CHECKING:
    from swarmperf.runtime.ray_backend import RaySettings

from swarmperf.balancing.strategies import STRATEGIES
from swarmperf.errors import ConfigError, preview
from swarmperf.model import AgentSpec
from swarmperf.queueing import QueueSettings
from swarmperf.resilience.guard import ResilienceGuard
from swarmperf.safe_yaml import (
    BoundedSafeLoader,
    YamlProblem,
    kind_of,
    load_yaml_text,
    looks_like,
    read_text,
)
from swarmperf.spec_resilience import FaultSpec, ResilienceSpec
from swarmperf.spec_types import (
    ByteSize,
    Duration,
    Name,
    PositiveDuration,
    PositiveFloat,
    PriorityName,
    Rate,
    Section,
    Share,
    problem,
)

AUTO = "auto"  # not a strategy: "run every strategy and compare"; only the CLI acts on it
_QUEUE_DEFAULTS = QueueSettings()
_NAME_FIX = "Use letters, digits, '.', '_' and '-', starting with a letter or digit."
_SHARES_TOLERANCE = 1e-6

# Limits on every count, generous for real use (the README simulates 10,000 agents and a
# million tasks) and far below what would exhaust memory before the run could say so.
MAX_AGENTS = 100_000  # in one group, and in the whole swarm
MAX_CONCURRENCY = 10_000  # tasks one agent runs at once
MAX_SLOTS = 1_000_000  # agents times their concurrency: one worker each on most backends
MAX_TASKS = 10_000_000  # tasks in a workload: each is drawn up front
MAX_QUEUED = 1_000_000_000  # queue and quota sizes
MAX_SEED = 2**63 - 1
MAX_WINDOW_SLOTS = 10_000_000  # breaker window slots, over every agent


def _closest(name: str, choices: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def _choose(name: object, choices: Sequence[str]) -> str:
    """'Did you mean …? Choose one of: …' for a name that is not among `choices`."""
    listed = f"Choose one of: {', '.join(choices)}."
    guess = _closest(name, choices) if isinstance(name, str) else None
    return f"Did you mean {guess!r}? {listed}" if guess else listed


def _check_shares(shares: Mapping[Any, float], example: str) -> None:
    total = sum(shares.values())
    if abs(total - 1.0) > _SHARES_TOLERANCE:
        raise problem(
            "shares",
            f"the shares add up to {total:g}, not 1",
            f"Make them add up to 1, e.g. {example}.",
            value=dict(shares),
        )


# -- agents -----------------------------------------------------------------------------


class AgentGroupSpec(Section):
    """One agent, or with `count: N` a group of N alike agents named `<id>-0` … `<id>-(N-1)`."""

    id: Name
    count: Annotated[int, Field(ge=1, le=MAX_AGENTS)] | None = None
    weight: PositiveFloat = 1.0
    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] = 1
    queue_limit: Annotated[int, Field(ge=0, le=MAX_QUEUED)] | None = None
    prefetch: Annotated[int, Field(ge=0, le=MAX_CONCURRENCY)] = 0
    slowdown: PositiveFloat = 1.0
    tags: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    rate_limits: tuple[Name, ...] = ()  # names under resilience.rate_limits it draws from

    def ids(self) -> list[str]:
        if self.count is None:
            return [self.id]
        return [f"{self.id}-{i}" for i in range(self.count)]

    def expand(self) -> list[AgentSpec]:
        return [
            AgentSpec(
                id=agent_id,
                weight=self.weight,
                concurrency=self.concurrency,
                tags=frozenset(self.tags),
                queue_limit=self.queue_limit,
                prefetch=self.prefetch,
                slowdown=self.slowdown,
                faults=tuple(f.fault() for f in self.faults),
            )
            for agent_id in self.ids()
        ]


# -- queue ------------------------------------------------------------------------------


class QueueSpec(Section):
    """The central queue's settings; see `swarmperf.queueing.QueueSettings`."""

    max_queued: Annotated[int, Field(ge=1, le=MAX_QUEUED)] = _QUEUE_DEFAULTS.max_queued
    level_weights: tuple[PositiveFloat, ...] = _QUEUE_DEFAULTS.level_weights
    max_wait: PositiveDuration = _QUEUE_DEFAULTS.max_wait
    urgent_within: Duration = _QUEUE_DEFAULTS.urgent_within
    tenant_weights: dict[Name, PositiveFloat] = Field(default_factory=dict)
    tenant_quotas: dict[Name, Annotated[int, Field(ge=1, le=MAX_QUEUED)]] = Field(
        default_factory=dict
    )

    @field_validator("level_weights")
    @classmethod
    def _four_levels(cls, weights: tuple[float, ...]) -> tuple[float, ...]:
        if len(weights) != 4:
            raise problem(
                "levels",
                f"has {len(weights)} weights, not 4",
                "Give four weights, for critical, high, normal and low: [0.4, 0.3, 0.2, 0.1].",
            )
        return weights

    def settings(self) -> QueueSettings:
        w = self.level_weights
        return QueueSettings(
            max_queued=self.max_queued,
            level_weights=(w[0], w[1], w[2], w[3]),
            max_wait=self.max_wait,
            urgent_within=self.urgent_within,
            tenant_weights=dict(self.tenant_weights),
            tenant_quotas=dict(self.tenant_quotas),
        )


# -- workload ---------------------------------------------------------------------------


class ConstantSize(Section):
    """Every task is `value` seconds of work."""

    distribution: Literal["constant"] = "constant"
    value: Duration = 0.0


class ExponentialSize(Section):
    distribution: Literal["exponential"] = "exponential"
    mean: PositiveDuration


class ParetoSize(Section):
    """Heavy-tailed sizes: Pareto with shape `alpha` (> 1, so the mean exists) and `mean`."""

    distribution: Literal["pareto"] = "pareto"
    mean: PositiveDuration
    alpha: float

    @field_validator("alpha")
    @classmethod
    def _mean_exists(cls, alpha: float) -> float:
        if not alpha > 1:
            raise problem(
                "alpha",
                "must be greater than 1, or the Pareto mean is infinite",
                "Use e.g. alpha: 1.5 (smaller is more heavy-tailed).",
            )
        return alpha

    @property
    def scale(self) -> float:
        """The smallest size: the scale that gives this mean for this shape."""
        return self.mean * (self.alpha - 1) / self.alpha


class LognormalSize(Section):
    """Log-normal sizes with the given `mean`; `sigma` is the spread of the log."""

    distribution: Literal["lognormal"] = "lognormal"
    mean: PositiveDuration
    sigma: Annotated[float, Field(ge=0)]


class BatchArrival(Section):
    """Every task arrives at the start."""

    process: Literal["batch"] = "batch"


class PoissonArrival(Section):
    process: Literal["poisson"] = "poisson"
    rate: Rate


class ConstantArrival(Section):
    process: Literal["constant"] = "constant"
    rate: Rate


_SIZES = ("constant", "exponential", "lognormal", "pareto")
_ARRIVALS = ("batch", "constant", "poisson")


def _size_shorthand(value: object) -> object:
    # `size: 5ms` and `size: {value: 5ms}` both mean a constant size.
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"distribution": "constant", "value": value}
    if isinstance(value, Mapping) and "distribution" not in value:
        if set(value) <= {"value"}:
            return {"distribution": "constant", **value}
        raise problem(
            "distribution",
            "has no distribution",
            f"Add distribution: one of {', '.join(_SIZES)}.",
        )
    return value


def _arrival_shorthand(value: object) -> object:
    # `arrival: batch` and `arrival: {}` name the process alone.
    if isinstance(value, str):
        return {"process": value}
    if isinstance(value, Mapping) and "process" not in value:
        if not value:
            return {"process": "batch"}
        raise problem("process", "has no process", f"Add process: one of {', '.join(_ARRIVALS)}.")
    return value


SizeSpec = Annotated[
    ConstantSize | ExponentialSize | ParetoSize | LognormalSize,
    Field(discriminator="distribution"),
    BeforeValidator(_size_shorthand),
]
ArrivalSpec = Annotated[
    BatchArrival | PoissonArrival | ConstantArrival,
    Field(discriminator="process"),
    BeforeValidator(_arrival_shorthand),
]


def _all_normal() -> dict[PriorityName, float]:
    return {"normal": 1.0}


class WorkloadSpec(Section):
    """The synthetic tasks of a run; `swarmperf.workload.generate_tasks` draws them."""

    tasks: Annotated[int, Field(ge=1, le=MAX_TASKS)] = 1000
    kind: Annotated[str, Field(min_length=1)] = "noop"
    size: SizeSpec = ConstantSize()
    arrival: ArrivalSpec = BatchArrival()
    failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    priorities: dict[PriorityName, Share] = Field(default_factory=_all_normal)
    tenants: dict[Name, Share] = Field(default_factory=lambda: {"default": 1.0})
    deadline: PositiveDuration | None = None
    cost_estimates: bool = True

    @field_validator("priorities")
    @classmethod
    def _priorities_add_up(cls, shares: dict[PriorityName, float]) -> dict[PriorityName, float]:
        _check_shares(shares, "{normal: 0.9, critical: 0.1}")
        return shares

    @field_validator("tenants")
    @classmethod
    def _tenants_add_up(cls, shares: dict[str, float]) -> dict[str, float]:
        _check_shares(shares, "{a: 0.5, b: 0.5}")
        return shares


# -- ray --------------------------------------------------------------------------------

PlacementName = Literal["pack", "spread", "strict-pack", "strict-spread"]


class RayGroupSpec(Section):
    """What the actors of one agent group ask Ray for, and where they may run.

    `node` pins them to a Ray node id (`node_soft`: elsewhere if it cannot take them);
    `placement` puts the group in one placement group, a bundle per agent.
    """

    num_cpus: Annotated[float, Field(ge=0)] | None = None
    memory: ByteSize | None = None
    resources: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict
    )
    node: Annotated[str, Field(min_length=1)] | None = None
    node_soft: bool = False
    placement: PlacementName | None = None

    @model_validator(mode="after")
    def _one_way_to_place(self) -> RayGroupSpec:
        if self.node is not None and self.placement is not None:
            raise problem(
                "placement",
                "pins to a node and asks for a placement group at once",
                "Drop node or placement: an actor is placed one way.",
                value={"node": self.node, "placement": self.placement},
            )
        if self.placement is not None and not (
            self.num_cpus or self.memory or any(self.resources.values())
        ):
            raise problem(
                "placement",
                "reserves nothing",
                "A placement group reserves resources: give the group num_cpus (e.g. 1), "
                "memory or resources too.",
                value=self.placement,
            )
        return self


class RaySpec(Section):
    """Where the Ray cluster is (`address`: ray://<head>:10001 or auto; none: a local Ray
    started with the run) and what each agent group's actors ask for, by group id."""

    address: Annotated[str, Field(min_length=1)] | None = None
    namespace: Name | None = None
    start_timeout: PositiveDuration = 60.0
    groups: dict[Name, RayGroupSpec] = Field(default_factory=dict)


# -- monitor ----------------------------------------------------------------------------


class MonitorSpec(Section):
    """The Performance Monitor during `swarmperf run`: a snapshot every `interval`, stored
    under the run, and with `metrics_port` a Prometheus /metrics endpoint (0: a free port).
    `alerting` names an alerting file (SLA rules, routing, sinks; see docs/alerting.md) whose
    rules are evaluated on the snapshots while the run lasts. `anomalies` runs the streaming
    anomaly detectors on the swarm's key figures and records what they find as events.
    The `sim` backend runs in virtual time and has no live monitor."""

    enabled: bool = True
    interval: PositiveDuration = 1.0
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    alerting: Path | None = None
    anomalies: bool = True


# -- timeouts ---------------------------------------------------------------------------


class TimeoutsSpec(Section):
    """How long tasks and the run's end may take. `default` bounds every task's run time
    and `kinds` one kind's (over `default`); a task that runs longer fails with a
    `TimeoutError` (retried like any other when `resilience.retry` says so). None: no
    bound. `grace` is how long tasks still running when `duration` is up may go on before
    they are cancelled; `drain` how long they may go on after SIGTERM or SIGINT."""

    default: PositiveDuration | None = None
    kinds: dict[Name, PositiveDuration] = Field(default_factory=dict)
    grace: Duration = 5.0
    drain: Duration = 10.0

    def task_timeouts(self) -> dict[str, float] | None:
        """Seconds per task kind (`""`: any other kind); None when nothing is bounded."""
        if self.default is None and not self.kinds:
            return None
        bounds = dict(self.kinds)
        if self.default is not None:
            bounds[""] = self.default
        return bounds


# -- the spec ---------------------------------------------------------------------------


class SwarmSpec(Section):
    """A whole run: which agents, which strategy and backend, what queue, what workload."""

    swarm_id: Name = "default"
    backend: Literal["local", "process", "ray", "sim"] = "local"
    strategy: str = "capacity-aware"
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    duration: PositiveDuration | None = None
    agents: tuple[AgentGroupSpec, ...]
    queue: QueueSpec = QueueSpec()
    workload: WorkloadSpec = WorkloadSpec()
    resilience: ResilienceSpec = ResilienceSpec()
    ray: RaySpec = RaySpec()
    monitor: MonitorSpec = MonitorSpec()
    timeouts: TimeoutsSpec = TimeoutsSpec()

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        if name != AUTO and name not in STRATEGIES:
            raise problem(
                "strategy", "is not a known strategy", _choose(name, [*sorted(STRATEGIES), AUTO])
            )
        return name

    @field_validator("agents")
    @classmethod
    def _unique_ids(cls, groups: tuple[AgentGroupSpec, ...]) -> tuple[AgentGroupSpec, ...]:
        # Checked here, not with min_length: pydantic would also report a list whose
        # items are invalid as too short.
        if not groups:
            raise problem("agents", "is empty", _MISSING_FIXES["agents"])
        # Checked before the ids are listed: that alone would take the memory to refuse.
        total = sum(group.count or 1 for group in groups)
        if total > MAX_AGENTS:
            raise problem(
                "agents",
                f"has {total} agents in all, more than the limit of {MAX_AGENTS}",
                f"Use at most {MAX_AGENTS} agents; `simulate` runs large swarms in virtual time.",
                value=total,
            )
        slots = sum((group.count or 1) * group.concurrency for group in groups)
        if slots > MAX_SLOTS:
            raise problem(
                "agents",
                f"runs {slots} tasks at once (agents times concurrency), more than the limit "
                f"of {MAX_SLOTS}",
                f"Lower count or concurrency so that they multiply to at most {MAX_SLOTS}.",
                value=slots,
            )
        counts = Counter(agent_id for group in groups for agent_id in group.ids())
        repeated = [agent_id for agent_id, n in counts.items() if n > 1]
        if repeated:
            raise problem(
                "unique",
                "gives more than one agent the same id",
                "Give every agent its own id; a group with count: N uses <id>-0 … <id>-(N-1).",
                value=sorted(repeated),
            )
        return groups

    @model_validator(mode="after")
    def _breaker_windows_fit(self) -> SwarmSpec:
        # Each agent's breaker keeps a slot per call or second of its window, up front.
        breaker = self.resilience.breaker
        agents = sum(group.count or 1 for group in self.agents)
        if breaker is not None and agents * breaker.window_size > MAX_WINDOW_SLOTS:
            raise problem(
                "window_size",
                f"times {agents} agents makes {agents * breaker.window_size:.0f} breaker "
                f"window slots, more than the limit of {MAX_WINDOW_SLOTS}",
                "Use a smaller resilience.breaker.window_size, or fewer agents.",
                value=breaker.window_size,
            )
        return self

    @model_validator(mode="after")
    def _known_rate_limits(self) -> SwarmSpec:
        defined = self.resilience.rate_limits
        for group in self.agents:
            for name in group.rate_limits:
                if name not in defined:
                    raise problem(
                        "rate_limits",
                        f"agent {group.id!r} draws from rate limit {name!r}, which is not defined",
                        _choose(name, sorted(defined))
                        if defined
                        else "Define it under resilience.rate_limits.",
                    )
        return self

    @field_validator("ray")
    @classmethod
    def _known_ray_groups(cls, ray: RaySpec, info: ValidationInfo) -> RaySpec:
        agents = info.data.get("agents")
        if agents is None:  # invalid, and reported as such
            return ray
        ids = [group.id for group in agents]
        for name in ray.groups:
            if name not in ids:
                raise problem(
                    "ray_groups",
                    f"ray.groups names {name!r}, which is not an agent group",
                    _choose(name, ids),
                    value=name,
                )
        return ray

    def ray_settings(self) -> RaySettings:
        """The `ray` backend's settings: the `ray:` section with agent groups expanded."""
        from swarmperf.runtime.ray_backend import (
            ActorOptions,
            PlacementGroupSettings,
            RaySettings,
        )

        agents: dict[str, ActorOptions] = {}
        groups: dict[str, PlacementGroupSettings] = {}
        for group in self.agents:
            ray_group = self.ray.groups.get(group.id)
            if ray_group is None:
                continue
            placed = ray_group.placement is not None
            for bundle, agent_id in enumerate(group.ids()):
                agents[agent_id] = ActorOptions(
                    num_cpus=ray_group.num_cpus,
                    memory=ray_group.memory,
                    resources=dict(ray_group.resources),
                    node_id=ray_group.node,
                    soft=ray_group.node_soft,
                    placement_group=group.id if placed else None,
                    bundle=bundle if placed else 0,
                )
            if ray_group.placement is not None:
                groups[group.id] = PlacementGroupSettings(
                    strategy=ray_group.placement.upper().replace("-", "_"),
                    bundles=tuple(agents[i].bundle_resources() for i in group.ids()),
                )
        return RaySettings(
            address=self.ray.address,
            namespace=self.ray.namespace,
            agents=agents,
            placement_groups=groups,
            start_timeout=self.ray.start_timeout,
        )

    def agent_rate_limits(self) -> dict[str, tuple[str, ...]]:
        return {
            agent_id: group.rate_limits
            for group in self.agents
            if group.rate_limits
            for agent_id in group.ids()
        }

    def guard(self, clock: Callable[[], float]) -> ResilienceGuard:
        """The resilience guard this spec asks for."""
        return self.resilience.guard(self.agent_rate_limits(), self.seed, clock)

    def agent_specs(self) -> list[AgentSpec]:
        """Every agent, with groups expanded."""
        return [spec for group in self.agents for spec in group.expand()]

    def queue_settings(self) -> QueueSettings:
        return self.queue.settings()

    def strategy_names(self) -> list[str]:
        """The strategies to run: every registered one for `auto`, else the one named."""
        return sorted(STRATEGIES) if self.strategy == AUTO else [self.strategy]

    def to_data(self) -> dict[str, Any]:
        """Plain data (durations as text) that `parse_spec` turns back into an equal spec."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True)


# -- errors -----------------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Any = _Missing()
NOT_SHOWN: Any = object()  # a problem whose value is better left out of the message
MAX_PROBLEMS_LISTED = 20


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One thing wrong with a spec: where, the bad value, what is wrong and how to fix it."""

    path: str
    value: object
    problem: str
    fix: str

    def __str__(self) -> str:
        if self.value is NOT_SHOWN:
            return f"{self.path} — {self.problem}. {self.fix}"
        return f"{self.path}: {preview(self.value)} — {self.problem}. {self.fix}"


class SpecError(ConfigError):
    """A swarm spec is invalid. The message lists every problem; `problems` holds them."""

    def __init__(self, problems: Sequence[SpecProblem], source: str = "swarm spec") -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem.")
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        listed = problems[:MAX_PROBLEMS_LISTED]
        lines = [f"Invalid swarm spec {source} ({count}):", *(f"  - {p}" for p in listed)]
        if len(problems) > len(listed):
            # A file of thousands of mistakes is likely no spec at all: the first ones say so.
            lines.append(f"  … and {len(problems) - len(listed)} more")
        # ConfigError's one-problem wording does not fit a list; set its fields directly.
        Exception.__init__(self, "\n".join(lines))
        first = problems[0]
        self.field = first.path
        self.value = first.value
        self.fix = first.fix
        self.problems = tuple(problems)
        self.source = source


_MISSING_FIXES = {
    "agents": "Add a list of agents, e.g. agents: [{id: worker, count: 4}].",
    "id": "Give every agent an id, e.g. id: worker.",
    "mean": "Add a mean, e.g. mean: 5ms.",
    "alpha": "Add a shape, e.g. alpha: 1.5.",
    "sigma": "Add a spread, e.g. sigma: 0.5.",
    "rate": "Add a rate, e.g. rate: 500/s.",
}
_TYPE_FIXES = {
    "int_type": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_parsing": ("must be a whole number", "Use a whole number, e.g. 4."),
    "int_from_float": ("must be a whole number", "Use a whole number, e.g. 4."),
    "float_type": ("must be a number", "Use a number, e.g. 1.5."),
    "float_parsing": ("must be a number", "Use a number, e.g. 1.5."),
    "finite_number": ("must be a finite number", "Use a finite number, e.g. 1.5."),
    "bool_type": ("must be true or false", "Use true or false."),
    "bool_parsing": ("must be true or false", "Use true or false."),
    "string_type": ("must be text", "Use text, e.g. worker."),
    "string_too_short": ("must not be empty", "Use non-empty text."),
    "string_pattern_mismatch": ("is not a valid name", _NAME_FIX),
    "list_type": ("must be a list", "Use a list, e.g. [a, b]."),
    "tuple_type": ("must be a list", "Use a list: one '- ' line per item, or [a, b]."),
    "dict_type": ("must be a mapping", "Use 'key: value' lines, e.g. {a: 1}."),
    "model_type": ("must be a mapping", "Use 'key: value' lines, like the demo spec."),
    "model_attributes_type": ("must be a mapping", "Use 'key: value' lines, like the demo spec."),
}


def _plain_number(number: object) -> object:
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _bound_fix(err: ErrorDetails) -> tuple[str, str] | None:
    ctx = err.get("ctx", {})
    for kind, op, words in (
        ("greater_than", ">", "greater than"),
        ("greater_than_equal", ">=", "at least"),
        ("less_than", "<", "less than"),
        ("less_than_equal", "<=", "at most"),
    ):
        if err["type"] == kind:
            bound = _plain_number(next(iter(ctx.values())))
            return f"must be {words} {bound}", f"Use a number {op} {bound}."
    if err["type"] in ("too_short", "too_long"):
        size = ctx.get("min_length", ctx.get("max_length"))
        words = "at least" if err["type"] == "too_short" else "at most"
        return f"must have {words} {size} item(s)", f"Give {words} {size} item(s)."
    return None


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type, without `Annotated` and `None`."""
    if typing.get_origin(tp) is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(tp) for alt in _unwrap(arg)]
    return [] if tp is type(None) else [tp]


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tag(model: type[BaseModel]) -> object:
    for info in model.model_fields.values():
        if typing.get_origin(info.annotation) is Literal:
            return typing.get_args(info.annotation)[0]
    return None


def _item_type(container: Any) -> Any:
    args = typing.get_args(container)
    if not args:
        return None
    return args[1] if typing.get_origin(container) is dict else args[0]


def _walk(loc: Sequence[int | str]) -> tuple[str, type[BaseModel] | None]:
    """The path people read for a pydantic `loc`, and the model found at its end.

    Pydantic puts union tags (`pareto`) and `[key]` markers in `loc`; they are not keys
    in the file, so they are left out of the path.
    """
    text = ""
    current: list[Any] = [SwarmSpec]
    for part in loc:
        models = [m for m in map(_model, current) if m is not None]
        by_tag = {_tag(m): m for m in models} if len(models) > 1 else {}
        if part in by_tag:
            current = [by_tag[part]]
            continue
        if part == "[key]":
            continue
        if len(models) == 1 and isinstance(part, str) and part in models[0].model_fields:
            current = _unwrap(models[0].model_fields[part].annotation)
        else:  # an item of a list or a value of a mapping
            current = [alt for tp in current for alt in _unwrap(_item_type(tp))]
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    models = [m for m in map(_model, current) if m is not None]
    return text or "(spec)", models[0] if len(models) == 1 else None


def _to_problem(err: ErrorDetails) -> SpecProblem:
    loc = err["loc"]
    ctx: dict[str, Any] = dict(err.get("ctx", {}))
    path, _ = _walk(loc)
    value: object = ctx.get("value", err["input"])
    kind = err["type"]
    if "problem" in ctx:
        return SpecProblem(path, value, ctx["problem"], ctx["fix"])
    if kind == "missing":
        fix = _MISSING_FIXES.get(str(loc[-1]) if loc else "", "Add it.")
        return SpecProblem(path, MISSING, "is required", fix)
    if kind == "extra_forbidden":
        # The key is in the path; its value is not shown, as it may be a secret misplaced.
        _, holder = _walk(loc[:-1])
        return SpecProblem(path, NOT_SHOWN, "is not a known key", _key_fix(str(loc[-1]), holder))
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return SpecProblem(path, value, "is not one of the choices", _choose(value, choices))
    if kind == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        key = str(ctx.get("discriminator", "")).strip("'")
        return SpecProblem(
            f"{path}.{key}",
            ctx.get("tag"),
            "is not one of the choices",
            _choose(ctx["tag"], choices),
        )
    words = _TYPE_FIXES.get(kind) or _bound_fix(err)
    if words is not None:
        return SpecProblem(path, value, *words)
    return SpecProblem(path, value, err["msg"], "Compare with the demo spec.")


def _key_fix(key: str, holder: type[BaseModel] | None) -> str:
    if holder is None:
        return "Remove it."
    valid = list(holder.model_fields)
    guess = _closest(key, valid)
    listed = f"Valid keys here: {', '.join(valid)}."
    return f"Did you mean {guess!r}? {listed}" if guess else f"Remove it. {listed}"


# -- loading ----------------------------------------------------------------------------


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _SpecLoader(BoundedSafeLoader):
    """Safe, bounded YAML that refuses a key given twice instead of silently keeping the last."""


def _mapping_without_duplicates(loader: _SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            if key in seen:
                where = key_node.start_mark
                raise _DuplicateKey(None, None, f"found the key {preview(key)} twice", where)
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_spec(path: Path) -> SwarmSpec:
    """Read and validate the spec at `path`; raise `SpecError` listing every problem."""
    source = str(path)
    try:
        text = read_text(path)
    except YamlProblem as exc:
        raise SpecError([SpecProblem("(file)", source, exc.problem, exc.fix)], source) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = SpecProblem("(file)", source, f"cannot be read: {reason}", "Check the path.")
        raise SpecError([problem], source) from exc
    except UnicodeDecodeError as exc:
        problem = SpecProblem("(file)", source, "is not UTF-8 text", "Save it as UTF-8.")
        raise SpecError([problem], source) from exc
    return parse_spec_yaml(text, source)


def parse_spec_yaml(text: str, source: str = "<text>") -> SwarmSpec:
    """Validate a spec given as YAML text; `source` names it in messages."""
    try:
        data = load_yaml_text(text, source, _SpecLoader)
    except YamlProblem as exc:
        raise SpecError([_yaml_problem(exc, text)], source) from None
    if data is None:
        problem = SpecProblem("(spec)", NOT_SHOWN, "is empty", "Start from the demo spec.")
        raise SpecError([problem], source)
    _require_mapping(data, source)
    if not isinstance(data, dict) or not looks_like(data, list(SwarmSpec.model_fields)):
        # Most likely a path given by mistake: name it, and do not list what it holds.
        problem = SpecProblem(
            "(spec)",
            source,
            "is not a swarm spec: none of its keys is a spec key such as agents or workload",
            "Give the path of a swarm spec; `swarmperf demo-spec` prints one to start from.",
        )
        raise SpecError([problem], source)
    return parse_spec(data, source)


def _yaml_problem(exc: YamlProblem, text: str) -> SpecProblem:
    if exc.line is None or exc.limit:
        return SpecProblem(exc.where, NOT_SHOWN, exc.problem, exc.fix)
    # The spec is the file the user asked about: its offending line helps, cut short.
    # At the end of the text the mark points past the last line; show the last one then.
    lines = [*text.splitlines()[: exc.line + 1]]
    line = next((ln for ln in reversed(lines) if ln.strip()), "")
    if isinstance(exc.__cause__, _DuplicateKey):
        return SpecProblem(
            exc.where, line.strip(), str(exc.__cause__.problem), "Keep only one of them."
        )
    return SpecProblem(exc.where, line.strip(), exc.problem, exc.fix)


def _require_mapping(data: object, source: str) -> None:
    # Checked at run time as well: YAML may hold a list or a scalar at the top.
    if not isinstance(data, Mapping):
        problem = SpecProblem(
            "(spec)",
            source,
            f"holds {kind_of(data)}, not a mapping",
            "Write it as 'key: value' lines; `swarmperf demo-spec` prints a spec to start from.",
        )
        raise SpecError([problem], source)


def parse_spec(data: Mapping[str, Any], source: str = "swarm spec") -> SwarmSpec:
    """Validate spec data (as read from YAML or JSON); raise `SpecError` listing every problem."""
    _require_mapping(data, source)
    try:
        return SwarmSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_to_problem(err) for err in exc.errors(include_url=False)]
        raise SpecError(problems, source) from exc


DEMO_SPEC_YAML = """\
# A demo swarm: eight agents of different kinds, heavy-tailed work, a few failing tasks,
# and one agent that breaks down for a while: its breaker trips, then it recovers.
swarm_id: demo
backend: local             # local | process | ray | sim (virtual time)
strategy: capacity-aware   # a strategy name, or auto to compare them all
seed: 42
duration: 30s              # stop the run after this long, whatever is left
agents:
  - id: fast               # two agents that are twice as quick, and say so
    count: 2
    weight: 2.0
    slowdown: 0.5
  - id: std                # three ordinary agents, std-0 … std-2
    count: 3
  - id: flaky              # fails every call from 0.1 s to 0.5 s into the run
    faults:
      - {start: 100ms, end: 500ms, error_rate: 1.0}
  - id: wide               # one agent that runs four tasks at once
    concurrency: 4
  - id: slow               # four times slower than it says; only measuring finds out
    slowdown: 4
queue:
  max_queued: 100000
  max_wait: 30s            # a task queued this long goes next, whatever its level
workload:
  tasks: 2000
  kind: sleep              # wait size seconds (times the agent's slowdown)
  size: {distribution: pareto, mean: 5ms, alpha: 1.5}
  arrival: {process: batch}
  failure_rate: 0.01       # about 1% of the tasks fail on purpose
  priorities: {normal: 1.0}
  cost_estimates: true     # tasks tell the strategy their true size
resilience:
  breaker:                 # per agent: trip after 3 failures in a row, rest 200 ms
    failure_threshold: 3
    open_for: 200ms
    half_open_calls: 1     # then one trial call at a time
    success_threshold: 2   # two good trials close it again
  retry:                   # retry agent trouble elsewhere; a task's own bug is final
    max_attempts: 3
    base_delay: 5ms
    retry_on: [InjectedFault, TimeoutError, RateLimited, AgentCrashed]
"""


def demo_spec() -> SwarmSpec:
    """The demo spec (`DEMO_SPEC_YAML`), validated."""
    return parse_spec_yaml(DEMO_SPEC_YAML, "demo")
