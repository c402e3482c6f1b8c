"""The swarm spec: one YAML file that describes the agents, the queue and the workload of a run.

Every problem in a spec is reported at once, each as
`<field.path>: <bad value> — <what is wrong>. <fix>`, so a spec is fixed in one pass.
Durations are written like `30s`, `5m` or `250ms` and held as float seconds; rates like
`500/s` or `30/m` and held as events per second.
"""

from __future__ import annotations

import difflib
import typing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

if typing.TYPE_CHECKING:
    from swarmperf.runtime.ray_backend import RaySettings

from swarmperf.balancing.strategies import STRATEGIES
from swarmperf.core.model import AgentSpec
from swarmperf.core.queueing import QueueSettings
from swarmperf.resilience.guard import ResilienceGuard
from swarmperf.spec.autoscale import AutoscaleSpec
from swarmperf.spec.messages import MessagesSpec, TopologySpec
from swarmperf.spec.resilience import FaultSpec, ResilienceSpec
from swarmperf.spec.types import (
    FROM_SETTINGS,
    ByteSize,
    Duration,
    Name,
    PositiveDuration,
    PositiveFloat,
    PriorityName,
    Rate,
    Section,
    SettingsSection,
    Share,
    problem,
)

AUTO = "auto"  # not a strategy: "run every strategy and compare"; only the CLI acts on it
NAME_FIX = "Use letters, digits, '.', '_' and '-', starting with a letter or digit."
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


def closest_name(name: str, choices: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def choose_name(name: object, choices: Sequence[str]) -> str:
    """'Did you mean …? Choose one of: …' for a name that is not among `choices`."""
    listed = f"Choose one of: {', '.join(choices)}."
    guess = closest_name(name, choices) if isinstance(name, str) else None
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
    # Unset: the backend's default (0, or on Ray `RayBackend.default_prefetch`).
    prefetch: Annotated[int, Field(ge=0, le=MAX_CONCURRENCY)] | None = None
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
                faults=tuple(f.to_settings() for f in self.faults),
            )
            for agent_id in self.ids()
        ]


# -- queue ------------------------------------------------------------------------------


class QueueSpec(SettingsSection, settings=QueueSettings):
    """The central queue's settings; see `swarmperf.core.queueing.QueueSettings`."""

    max_queued: Annotated[int, Field(ge=1, le=MAX_QUEUED)] = FROM_SETTINGS
    level_weights: tuple[PositiveFloat, ...] = FROM_SETTINGS
    max_wait: PositiveDuration = FROM_SETTINGS
    urgent_within: Duration = FROM_SETTINGS
    tenant_weights: dict[Name, PositiveFloat] = FROM_SETTINGS
    tenant_quotas: dict[Name, Annotated[int, Field(ge=1, le=MAX_QUEUED)]] = FROM_SETTINGS

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

    def to_settings(self) -> QueueSettings:
        return QueueSettings(**self.settings_arguments())


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
    """The synthetic tasks of a run; `swarmperf.app.workload.generate_tasks` draws them."""

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
    autoscale: AutoscaleSpec | None = None
    topology: TopologySpec = TopologySpec()
    messages: MessagesSpec | None = None

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        if name != AUTO and name not in STRATEGIES:
            raise problem(
                "strategy",
                "is not a known strategy",
                choose_name(name, [*sorted(STRATEGIES), AUTO]),
            )
        return name

    @field_validator("agents")
    @classmethod
    def _unique_ids(cls, groups: tuple[AgentGroupSpec, ...]) -> tuple[AgentGroupSpec, ...]:
        # Checked here, not with min_length: pydantic would also report a list whose
        # items are invalid as too short.
        if not groups:
            raise problem(
                "agents",
                "is empty",
                "Add a list of agents, e.g. agents: [{id: worker, count: 4}].",
            )
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
                        choose_name(name, sorted(defined))
                        if defined
                        else "Define it under resilience.rate_limits.",
                    )
        return self

    @model_validator(mode="after")
    def _messages_name_agents(self) -> SwarmSpec:
        ids = [spec.id for spec in self.agent_specs()]
        known = set(ids)
        named = [("topology.hub", self.topology.hub)]
        if self.messages is not None:
            named += [("messages.to", agent_id) for agent_id in self.messages.to]
        for where, agent_id in named:
            if agent_id is not None and agent_id not in known:
                raise problem(
                    "agent_id",
                    f"{where} names {agent_id!r}, which is not an agent",
                    choose_name(agent_id, ids) if len(ids) <= 20 else "Name an agent id.",
                    value=agent_id,
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
                    choose_name(name, ids),
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
        return self.queue.to_settings()

    def strategy_names(self) -> list[str]:
        """The strategies to run: every registered one for `auto`, else the one named."""
        return sorted(STRATEGIES) if self.strategy == AUTO else [self.strategy]

    def to_data(self) -> dict[str, Any]:
        """Plain data (durations as text) that `parse_spec` turns back into an equal spec."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True)
