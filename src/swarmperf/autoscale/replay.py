"""Trace replay: a swarm under a scaling policy, in virtual time, and what it cost and missed.

The replay is a queue with one FIFO line and a changing number of agents (one slot each):
tasks arrive as the trace says, a policy decides every `policy.period` seconds from what it
can observe (utilisation, queue, arrivals), agents it adds serve `startup` seconds later
(and are paid for from the moment they are asked for), agents it removes finish the task
they run and leave (draining; starting agents are cancelled first, then idle ones go).

Why not `swarmperf.sim.Simulation` with the real coordinator for every run: it replays what
the queue here replays (one line, agents that join and drain), but the oracle's search runs
several trials per interval and the NASA trace holds 3.46 million tasks, so the replay runs
this dedicated loop. `validate_against_simulation` replays a slice through the real
`Simulation` with the same tasks and the same agent schedule, and
`benchmarks/autoscale_traces.py` reports both the difference and the simulator's speed.

The figures (as the design defines them): a task violates the SLO when its latency (wait
plus service) exceeds `slo_factor` times its mean service time (the mean for a counts trace,
the mean times the task's size for a requests trace); a minute is a violation minute
when more than 5% of the tasks that arrived in it violate; agent-hours integrate the agents
asked for (starting, serving and draining); a scale event is a change of the target size.
The mean service time is set so that the trace's busiest interval keeps `peak_agents` agents
at the HPA's target utilisation (0.7): `service = peak_agents * 0.7 * interval / peak`.
Counts traces get arrivals spread uniformly at random within their interval and the mean
service time each; request traces keep their timestamps, and a task's service time is the
mean times its size (from its token columns). Service times do not vary at random around
that: with exponential ones, 13.5% of tasks would take over twice the mean on an idle swarm,
and every minute would violate whatever the policy did.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swarmperf.autoscale.forecast import make_forecaster, scaling_forecaster
from swarmperf.autoscale.learned import (
    DEFAULT_MODEL,
    Learned,
    feed_forecaster,
    predictive_feed,
    weights_for,
)
from swarmperf.autoscale.policies import (
    HPA,
    Decision,
    Keda,
    Observation,
    Policy,
    Predictive,
    StaticPeak,
)
from swarmperf.autoscale.traces import Trace
from swarmperf.core.errors import ConfigError, UnknownName

VIOLATION_SHARE = 0.05  # a minute violates when more than this share of its tasks did
TARGET = 0.7  # the HPA's target utilisation, which also sizes the service time
POLICIES = ("hpa", "keda", "predictive", "rl", "static-peak", "oracle")
DEFAULT_POLICY = "predictive"

Task = tuple[float, float]  # (arrival, service seconds)


@dataclass(frozen=True)
class ReplaySettings:
    interval: float = 60.0
    peak_agents: int = 50
    slo_factor: float = 2.0
    startup: float = 60.0
    max_agents: int | None = None  # None: twice peak_agents
    min_agents: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ConfigError("--interval", self.interval, "Use a duration > 0, like 60s.")
        if self.peak_agents < 1:
            raise ConfigError("--peak-agents", self.peak_agents, "Use a number >= 1.")
        if not (self.slo_factor > 1 and math.isfinite(self.slo_factor)):
            raise ConfigError("--slo-factor", self.slo_factor, "Use a factor > 1, like 2.0.")
        if not (self.startup >= 0 and math.isfinite(self.startup)):
            raise ConfigError("--startup", self.startup, "Use a duration >= 0, like 60s.")
        if self.min_agents < 1:
            raise ConfigError("min_agents", self.min_agents, "Use a number >= 1.")

    @property
    def top(self) -> int:
        return self.max_agents if self.max_agents is not None else 2 * self.peak_agents


@dataclass
class PolicyFigures:
    """What one policy did on one trace."""

    policy: str
    violation_minutes: int
    agent_hours: float
    scale_events: int
    tasks: int
    violating_tasks: int
    minutes: int
    peak_agents: int
    decisions: int
    wall_seconds: float = 0.0
    forecast_log: list[tuple[float, float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "violation_minutes": self.violation_minutes,
            "agent_hours": round(self.agent_hours, 3),
            "scale_events": self.scale_events,
            "tasks": self.tasks,
            "violating_tasks": self.violating_tasks,
            "minutes": self.minutes,
            "max_agents_used": self.peak_agents,
            "decisions": self.decisions,
        }


def service_time(trace: Trace, settings: ReplaySettings) -> float:
    """Mean seconds per task: the busiest interval keeps `peak_agents` at the target."""
    peak = int(trace.counts.max())
    if peak <= 0:
        raise ConfigError(str(trace.name), "no tasks", "The trace has no arrivals to replay.")
    return settings.peak_agents * TARGET * trace.interval / peak


def interval_tasks(trace: Trace, mean: float, seed: int) -> Iterator[list[Task]]:
    """Each interval's tasks, in arrival order, drawn the same way for every policy."""
    rng = np.random.default_rng(seed)
    start = 0
    for i, n in enumerate(trace.counts.tolist()):
        if trace.offsets is None:
            times = np.sort(rng.uniform(0.0, trace.interval, n)) + i * trace.interval
            services = np.full(n, mean)
        else:
            times = trace.offsets[start : start + n]
            services = mean * (
                trace.sizes[start : start + n] if trace.sizes is not None else np.ones(n)
            )
            start += n
        yield list(zip(times.tolist(), services.tolist(), strict=True))


class Fleet:
    """The queue and its agents: the state of one replay, which the oracle can copy."""

    def __init__(self, agents: int, slo_factor: float, startup: float) -> None:
        self.slack = slo_factor - 1.0  # a task may wait this many times its service time
        self.startup = startup
        self.now = 0.0
        self.waiting: deque[Task] = deque()
        self.completions: list[float] = []  # heap of finishing times of running tasks
        self.joins: list[float] = []  # heap of times starting agents will serve
        self.idle = agents
        self.ready = agents
        self.retiring = 0  # busy agents that leave when their task finishes
        self.busy_area = 0.0  # integral of busy agents over time
        self.ready_area = 0.0
        self.agent_area = 0.0  # integral of agents asked for (billed)
        self.tasks: dict[int, list[int]] = {}  # minute -> [tasks, violating]
        # What was done to the agents, (time, action, count), when asked for: the schedule
        # `validate_against_simulation` gives the real simulator.
        self.actions: list[tuple[float, str, int]] | None = None

    def copy(self) -> Fleet:
        other = Fleet.__new__(Fleet)
        other.__dict__.update(self.__dict__)
        other.waiting = deque(self.waiting)
        other.completions = list(self.completions)
        other.joins = list(self.joins)
        other.tasks = {}
        other.actions = None
        return other

    def _log(self, when: float, action: str, count: int) -> None:
        if self.actions is not None and count:
            self.actions.append((when, action, count))

    @property
    def replicas(self) -> int:
        return self.ready - self.retiring + len(self.joins)

    def _advance_areas(self, t: float) -> None:
        dt = t - self.now
        if dt > 0:
            busy = len(self.completions)
            self.busy_area += busy * dt
            self.ready_area += self.ready * dt
            self.agent_area += (self.ready + len(self.joins)) * dt
            self.now = t

    def _start(self, task: Task, at: float) -> None:
        arrival, service = task
        heapq.heappush(self.completions, at + service)
        counts = self.tasks.get(int(arrival // 60.0))
        if counts is None:
            counts = self.tasks[int(arrival // 60.0)] = [0, 0]
        counts[0] += 1
        # The SLO scales with the task's own service time: a task of twice the mean size
        # may take twice as long (otherwise large requests would violate on an idle swarm).
        if at - arrival > self.slack * service:
            counts[1] += 1

    def events_until(self, t: float) -> None:
        """Run completions and joins due up to `t` (inclusive), in time order."""
        completions, joins = self.completions, self.joins
        while True:
            c = completions[0] if completions else math.inf
            j = joins[0] if joins else math.inf
            if c <= j:
                if c > t:
                    break
                self._advance_areas(c)
                heapq.heappop(completions)
                if self.retiring:
                    self.retiring -= 1
                    self.ready -= 1
                elif self.waiting:
                    self._start(self.waiting.popleft(), c)
                else:
                    self.idle += 1
            else:
                if j > t:
                    break
                self._advance_areas(j)
                heapq.heappop(joins)
                self.ready += 1
                if self.waiting:
                    self._start(self.waiting.popleft(), j)
                else:
                    self.idle += 1
        self._advance_areas(t)

    def arrive(self, task: Task) -> None:
        self.events_until(task[0])
        if self.idle:
            self.idle -= 1
            self._start(task, task[0])
        else:
            self.waiting.append(task)

    def scale_to(self, desired: int, now: float, startup: float | None = None) -> None:
        """Ask for `desired` agents: start new ones, or cancel, release and drain."""
        self.events_until(now)
        delay = self.startup if startup is None else startup
        current = self.replicas
        if desired > current:
            more = desired - current
            undo = min(self.retiring, more)  # a draining agent that stays costs nothing
            self.retiring -= undo
            self._log(now, "keep", undo)
            for _ in range(more - undo):
                heapq.heappush(self.joins, now + delay)
            self._log(now + delay, "start", more - undo)
            if delay == 0:
                self.events_until(now)
        elif desired < current:
            fewer = current - desired
            if self.joins:
                # The newest starting agents go first, as Kubernetes deletes unready pods first.
                cancel = min(fewer, len(self.joins))
                self.joins = sorted(self.joins)[: len(self.joins) - cancel]
                heapq.heapify(self.joins)
                fewer -= cancel
                self._log(now, "cancel", cancel)
            release = min(fewer, self.idle)
            self.idle -= release
            self.ready -= release
            self.retiring += fewer - release
            self._log(now, "remove", fewer)


def _minute_stats(tasks: dict[int, list[int]]) -> tuple[int, int, int]:
    violation_minutes = sum(1 for n, v in tasks.values() if n and v > VIOLATION_SHARE * n)
    total = sum(n for n, _ in tasks.values())
    violating = sum(v for _, v in tasks.values())
    return violation_minutes, total, violating


def make_policy(
    name: str, settings: ReplaySettings, forecaster: str = "default", *, model: str | None = None
) -> Policy:
    """Policy `name` at the replay's settings; for `rl`, the shipped `model` (the default: the
    one trained on every dev trace)."""
    top = settings.top
    low = settings.min_agents
    if name == "hpa":
        return HPA(target=TARGET, min_agents=low, max_agents=top)
    if name == "keda":
        # A target of one task waiting-or-running per agent at the HPA's utilisation.
        return Keda(target=TARGET, min_agents=low, max_agents=top)
    if name == "predictive":
        return Predictive(
            make_forecaster(scaling_forecaster(forecaster)),
            interval=settings.interval,
            startup=settings.startup,
            slo_factor=settings.slo_factor,
            min_agents=low,
            max_agents=top,
        )
    if name == "rl":
        feed, inner = predictive_feed(
            make_forecaster(feed_forecaster(forecaster)),
            interval=settings.interval,
            startup=settings.startup,
        )
        chosen = model or DEFAULT_MODEL
        return Learned(
            weights_for(chosen),
            feed,
            interval=settings.interval,
            slo_factor=settings.slo_factor,
            min_agents=low,
            max_agents=top,
            model=chosen,
            forecast_log=inner.record_log,
        )
    if name == "static-peak":
        return StaticPeak(settings.peak_agents)
    raise UnknownName("--policy", name, POLICIES)


def replay(
    trace: Trace,
    policy: Policy,
    settings: ReplaySettings,
    *,
    on_decision: Callable[[Decision], None] | None = None,
    actions: list[tuple[float, str, int]] | None = None,
) -> PolicyFigures:
    """Replay `trace` under `policy` (a policy object, not the oracle); with `actions`, what
    was done to the agents is appended to it."""
    import time

    wall = time.perf_counter()
    mean = service_time(trace, settings)
    start_agents = _initial_agents(trace, mean, settings)
    fleet = Fleet(start_agents, settings.slo_factor, settings.startup)
    if actions is not None:
        fleet.actions = actions
    period = policy.period
    next_tick = period
    arrivals = 0
    last_tick = 0.0
    last_busy = last_ready = 0.0
    events = 0
    decisions = 0
    most = start_agents
    end = trace.duration

    def tick(at: float) -> None:
        nonlocal arrivals, last_tick, last_busy, last_ready, events, decisions, most
        fleet.events_until(at)
        ready_area = fleet.ready_area - last_ready
        utilisation = (fleet.busy_area - last_busy) / ready_area if ready_area > 0 else None
        observation = Observation(
            replicas=fleet.replicas,
            ready=fleet.ready - fleet.retiring,
            utilisation=utilisation,
            queue=len(fleet.waiting),
            arrivals=arrivals,
            elapsed=at - last_tick,
            service_time=mean,
        )
        decision = policy.decide(observation, at)
        decisions += 1
        if on_decision is not None:
            on_decision(decision)
        if decision.acts and decision.desired != observation.replicas:
            events += 1
            fleet.scale_to(decision.desired, at)
            most = max(most, fleet.replicas)
        arrivals = 0
        last_tick, last_busy, last_ready = at, fleet.busy_area, fleet.ready_area

    for tasks in interval_tasks(trace, mean, settings.seed):
        for task in tasks:
            while next_tick <= task[0] and next_tick <= end:
                tick(next_tick)
                next_tick += period
            fleet.arrive(task)
            arrivals += 1
    while next_tick <= end:
        tick(next_tick)
        next_tick += period
    # Agents are paid for until the trace ends; tasks still queued then finish after it.
    fleet.events_until(end)
    agent_area = fleet.agent_area
    _drain(fleet)
    vm, total, violating = _minute_stats(fleet.tasks)
    log = list(getattr(policy, "record_log", []))
    return PolicyFigures(
        policy=policy.name,
        violation_minutes=vm,
        agent_hours=agent_area / 3600.0,
        scale_events=events,
        tasks=total,
        violating_tasks=violating,
        minutes=len(fleet.tasks),
        peak_agents=most,
        decisions=decisions,
        wall_seconds=time.perf_counter() - wall,
        forecast_log=log,
    )


def _drain(fleet: Fleet) -> None:
    """Finish every queued task (no more arrivals) with the agents there are."""
    if fleet.ready - fleet.retiring <= 0 and not fleet.joins and fleet.waiting:
        fleet.scale_to(1, fleet.now)
    while fleet.waiting or fleet.completions:
        nxt = min(
            fleet.completions[0] if fleet.completions else math.inf,
            fleet.joins[0] if fleet.joins else math.inf,
        )
        if nxt == math.inf:
            break
        fleet.events_until(nxt)


def _initial_agents(trace: Trace, mean: float, settings: ReplaySettings) -> int:
    """Start as the first interval needs at the target, as a swarm already running would."""
    first = float(trace.counts[0])
    need = math.ceil(first * mean / (TARGET * trace.interval))
    return min(max(need, settings.min_agents), settings.top)


def oracle(trace: Trace, settings: ReplaySettings) -> PolicyFigures:
    """Perfect foresight: each interval, the fewest agents for which no minute of the
    interval's arrivals violates, agents started `startup` ahead so they are ready in time
    (and paid for from then)."""
    import time

    wall = time.perf_counter()
    mean = service_time(trace, settings)
    agents = _initial_agents(trace, mean, settings)
    fleet = Fleet(agents, settings.slo_factor, 0.0)
    events = 0
    extra = 0.0  # agent-seconds of start-up paid ahead of each increase
    most = agents
    top = settings.top
    for i, tasks in enumerate(interval_tasks(trace, mean, settings.seed)):
        start = i * trace.interval
        end = start + trace.interval

        def meets(c: int, tasks: list[Task] = tasks, start: float = start) -> bool:
            trial = fleet.copy()
            trial.scale_to(c, start, 0.0)
            for task in tasks:
                trial.arrive(task)
            _drain(trial)
            # Tasks still waiting from earlier minutes count with what those minutes had.
            for minute, (n, v) in trial.tasks.items():
                n0, v0 = fleet.tasks.get(minute, (0, 0))
                if v + v0 > VIOLATION_SHARE * (n + n0):
                    return False
            return True

        c = fleet.replicas
        if meets(c):
            while c > settings.min_agents and meets(c - 1):
                c -= 1
        else:
            c += 1
            while c < top and not meets(c):
                c += 1
        if c != fleet.replicas:
            if c > fleet.replicas:
                extra += (c - fleet.replicas) * settings.startup
            events += 1
            fleet.scale_to(c, start, 0.0)
            most = max(most, c)
        for task in tasks:
            fleet.arrive(task)
        fleet.events_until(end)
    agent_area = fleet.agent_area + extra
    _drain(fleet)
    vm, total, violating = _minute_stats(fleet.tasks)
    return PolicyFigures(
        policy="oracle",
        violation_minutes=vm,
        agent_hours=agent_area / 3600.0,
        scale_events=events,
        tasks=total,
        violating_tasks=violating,
        minutes=len(fleet.tasks),
        peak_agents=most,
        decisions=len(trace.counts),
        wall_seconds=time.perf_counter() - wall,
    )


def run_policy(
    trace: Trace,
    name: str,
    settings: ReplaySettings,
    *,
    forecaster: str = "default",
    model: str | None = None,
) -> PolicyFigures:
    if name == "oracle":
        return oracle(trace, settings)
    return replay(trace, make_policy(name, settings, forecaster, model=model), settings)


def evaluate(
    trace: Trace,
    settings: ReplaySettings,
    policies: tuple[str, ...] = POLICIES,
    *,
    forecaster: str = "default",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every policy on `trace`: the figures `autoscale-eval` prints."""
    out: dict[str, Any] = {}
    for name in policies:
        if progress is not None:
            progress(name)
        out[name] = run_policy(trace, name, settings, forecaster=forecaster)
    mean = service_time(trace, settings)
    return {
        "trace": trace.name,
        "policies": {name: figures.as_dict() for name, figures in out.items()},
        "default_policy": DEFAULT_POLICY,
        "service_time": mean,
        "slo_seconds": settings.slo_factor * mean,
        "settings": {
            "interval": settings.interval,
            "peak_agents": settings.peak_agents,
            "slo_factor": settings.slo_factor,
            "startup": settings.startup,
            "min_agents": settings.min_agents,
            "max_agents": settings.top,
            "seed": settings.seed,
        },
        "wall_seconds": {name: round(f.wall_seconds, 3) for name, f in out.items()},
    }


@dataclass(frozen=True)
class Validation:
    """One policy's slice replayed here and in `swarmperf.sim.Simulation`, side by side."""

    policy: str
    tasks: int
    replay_violation_minutes: int
    sim_violation_minutes: int
    replay_violating_tasks: int
    sim_violating_tasks: int
    replay_wall_seconds: float
    sim_wall_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "tasks": self.tasks,
            "violation_minutes": [self.replay_violation_minutes, self.sim_violation_minutes],
            "violating_tasks": [self.replay_violating_tasks, self.sim_violating_tasks],
            "wall_seconds": [round(self.replay_wall_seconds, 3), round(self.sim_wall_seconds, 3)],
        }


def validate_against_simulation(trace: Trace, name: str, settings: ReplaySettings) -> Validation:
    """Replay `trace` under policy `name`, then run the same tasks with the same agent schedule
    through the real coordinator in the simulator (capacity-aware, one slot per agent), and
    compare what violated. Agent-hours follow from the schedule, so they are equal."""
    import time

    from swarmperf.core.model import AgentSpec, Task, TaskStatus
    from swarmperf.sim import Simulation

    actions: list[tuple[float, str, int]] = []
    figures = replay(trace, make_policy(name, settings), settings, actions=actions)
    mean = service_time(trace, settings)
    first = _initial_agents(trace, mean, settings)
    wall = time.perf_counter()
    sim = Simulation(
        [AgentSpec(f"a{i}") for i in range(first)], strategy="capacity-aware", pause_gc=True
    )
    serial = iter(range(first, 10**9))
    pending: list[tuple[float, str]] = []  # agents asked for and not yet serving
    cancelled: set[str] = set()

    def join(spec: AgentSpec) -> None:
        pending[:] = [p for p in pending if p[1] != spec.id]
        if spec.id not in cancelled:
            sim.add_agent_at(sim.clock.now, spec)

    def remove(count: int) -> None:
        # Idle agents first, then the busy ones, which finish their task and leave.
        agents = sorted(sim.coordinator.agents.values(), key=lambda a: a.in_flight)
        for agent in agents[:count]:
            sim.remove_agent_at(sim.clock.now, agent.id)

    for when, action, count in actions:
        if action == "start":
            for _ in range(count):
                spec = AgentSpec(f"a{next(serial)}")
                pending.append((when, spec.id))
                sim.engine.at(when, join, spec)
        elif action == "keep":
            # A draining agent kept on: in the simulator it has left, so one joins at once.
            for _ in range(count):
                sim.add_agent_at(when, AgentSpec(f"a{next(serial)}"))
        elif action == "cancel":
            for _, agent_id in sorted(pending)[-count:]:
                cancelled.add(agent_id)
        else:
            sim.engine.at(when, remove, count)
    tasks: list[Task] = []
    offsets: list[float] = []
    for chunk in interval_tasks(trace, mean, settings.seed):
        for arrival, service in chunk:
            tasks.append(Task("sleep", service))
            offsets.append(arrival)
    outcome = sim.run(tasks, offsets)
    slack = settings.slo_factor - 1.0
    per_minute: dict[int, list[int]] = {}
    for result in outcome.results:
        if result.status is not TaskStatus.SUCCEEDED or result.started_at is None:
            continue
        assert result.finished_at is not None
        service = result.finished_at - result.started_at
        counts = per_minute.setdefault(int(result.queued_at // 60.0), [0, 0])
        counts[0] += 1
        counts[1] += int(result.started_at - result.queued_at > slack * service + 1e-9)
    sim_wall = time.perf_counter() - wall
    vm, _, violating = _minute_stats(per_minute)
    return Validation(
        policy=name,
        tasks=figures.tasks,
        replay_violation_minutes=figures.violation_minutes,
        sim_violation_minutes=vm,
        replay_violating_tasks=figures.violating_tasks,
        sim_violating_tasks=violating,
        replay_wall_seconds=figures.wall_seconds,
        sim_wall_seconds=sim_wall,
    )
