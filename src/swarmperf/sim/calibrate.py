"""Calibration: a recorded run turned into agent models and arrivals that replay it in simulation.

`calibrate` reads the results of a real run (any backend: `local`, `process`...) and fits,
for each agent, how long it takes per task: service ≈ slope × cost + residual for tasks
that carry a cost, with the residuals resampled, and the recorded times themselves for
tasks that do not. The arrivals are the recorded queue times. `Calibration.simulate` then
runs the same tasks in virtual time, and `run_figures` measures both runs the same way.

Why a fit and not the agents' declared slowdown: real service times carry overheads the
nominal size does not (a timer wakes up late, a hand-over between tasks takes a little
while), and those add up over thousands of tasks to a makespan several percent longer
than size × slowdown predicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from heapq import heappop, heappush
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from swarmperf.balancing.strategies import LoadBalancer
from swarmperf.core.errors import ConfigError
from swarmperf.core.handlers import Handler, HandlerRegistry
from swarmperf.core.model import AgentSpec, Task, TaskResult
from swarmperf.core.queueing import QueueSettings
from swarmperf.sim.models import AgentModel, Empirical, LinearService, ReplayArrivals
from swarmperf.sim.simulation import SimOutcome, Simulation

# Tasks with a cost an agent must have run for a fit of its own; with fewer, one noisy
# task could set its slope.
MIN_FIT = 20
# Residuals further than this many (normal-equivalent) MADs from the median are left out
# of the slope fit: a stall of the whole process landing on one big task would tilt it.
# They stay among the residuals that are resampled, so the time they cost is kept.
OUTLIER_MADS = 5.0
_MAD_TO_SIGMA = 1.4826

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RunFigures:
    """The figures a simulation of a run must reproduce, in seconds: the makespan (start
    to the last task's end) and latency percentiles over succeeded tasks (queued to
    finished), as `swarmperf.runtime.report.build_report` computes them."""

    makespan: float
    latency_p50: float
    latency_p99: float

    def errors(self, other: RunFigures) -> dict[str, float]:
        """|other − self| / self for each figure: how far `other` is from these."""
        return {
            "makespan": _relative(other.makespan, self.makespan),
            "latency_p50": _relative(other.latency_p50, self.latency_p50),
            "latency_p99": _relative(other.latency_p99, self.latency_p99),
        }


def _relative(value: float, reference: float) -> float:
    if reference == 0:
        return 0.0 if value == 0 else math.inf
    return abs(value - reference) / reference


def run_figures(results: Sequence[TaskResult], started: float) -> RunFigures:
    """Makespan and p50/p99 latency of `results`, for a run that started at `started`
    (on the results' clock)."""
    ends = [r.finished_at for r in results if r.finished_at is not None]
    latencies = [r.latency for r in results if r.ok and r.latency is not None]
    if not ends or not latencies:
        raise ConfigError(
            "results",
            f"{len(results)} results, {len(latencies)} succeeded",
            "Figures need at least one task that succeeded.",
        )
    p50, p99 = np.percentile(np.asarray(latencies, dtype=float), (50, 99))
    return RunFigures(max(ends) - started, float(p50), float(p99))


@dataclass(frozen=True, slots=True)
class AgentFit:
    """How one agent's service times were modelled (seconds)."""

    agent: str
    tasks: int  # succeeded tasks of its own that the model was drawn from
    slope: float | None  # seconds of service per second of cost; None: costs not used
    intercept: float  # mean time on top of slope × cost, the hand-over included
    handoff: float  # median gap between a slot freeing and its next waiting task starting
    source: str  # "own fit", "swarm-wide fit ×k", "own times", "swarm's times"


@dataclass(frozen=True, slots=True)
class Calibration:
    """A recorded run as a simulation model. Build it with `calibrate`.

    `agents` are the recorded agents without their fault windows (their effect is in the
    recorded times already); `models` gives each its service model; `workload` holds
    the recorded tasks (fresh copies, in arrival order) and `arrivals` when each came,
    in seconds after `started` (the recorded run's start, on its clock). `recorded` is
    what the run measured (None if no task succeeded); `notes` say where the model had to
    guess.
    """

    agents: tuple[AgentSpec, ...]
    models: Mapping[str, AgentModel]
    fits: tuple[AgentFit, ...]
    arrivals: ReplayArrivals
    workload: tuple[Task, ...]
    started: float
    recorded: RunFigures | None
    notes: tuple[str, ...]

    def simulate(
        self,
        strategy: str | LoadBalancer = "capacity-aware",
        *,
        seed: int = 0,
        tasks: Sequence[Task] | None = None,
        queue: QueueSettings | None = None,
        handlers: Mapping[str, Handler] | HandlerRegistry | None = None,
    ) -> SimOutcome:
        """Run the recorded workload (or `tasks`, in the order they were submitted: they
        take the recorded arrival times in turn) on the calibrated agents in virtual time.

        Every run gets fresh copies of the tasks, since tasks carry state. Deadlines of
        `tasks` are taken to be on the recorded run's clock and are moved to the
        simulation's, which starts at 0. Give `handlers` if the tasks have kinds of
        their own, and `queue` if the recorded run had queue settings.
        """
        shift = 0.0 if tasks is None else self.started
        fresh = [_fresh(task, shift) for task in (self.workload if tasks is None else tasks)]
        offsets = self.arrivals.offsets(len(fresh))
        sim = Simulation(
            self.agents,
            strategy=strategy,
            queue=queue,
            models=self.models,
            handlers=handlers,
            seed=seed,
        )
        return sim.run(fresh, offsets)

    def errors(self, outcome: SimOutcome) -> dict[str, float]:
        """How far a simulated run's figures are from the recorded ones (relative)."""
        if self.recorded is None:
            raise ConfigError(
                "recorded", None, "The recorded run has no succeeded task to compare with."
            )
        return self.recorded.errors(run_figures(outcome.results, outcome.started))


def _fresh(task: Task, shift: float) -> Task:
    """A copy of `task` as it was before it was submitted."""
    deadline = None if task.deadline is None else task.deadline - shift
    return Task(
        task.kind,
        task.payload,
        task.id,
        task.priority,
        task.rank,
        deadline,
        task.cost,
        task.tenant,
        task.idempotency_key,
        task.tokens,
    )


# -- calibrating ------------------------------------------------------------------------


def calibrate(
    results: Sequence[TaskResult],
    agents: Sequence[AgentSpec],
    *,
    tasks: Sequence[Task] | None = None,
    started: float | None = None,
) -> Calibration:
    """Turn a recorded run into a `Calibration`.

    `results` are the run's results, `agents` the specs of every agent that ran tasks.
    `tasks` (optional) are the submitted tasks, for their payloads, priorities and
    deadlines; without them the workload is rebuilt from the results (kind, cost, tenant).
    `started` is the run's start on the results' clock (default: the first arrival).
    Raises `ConfigError` for an empty recording or a result from an unknown agent.
    """
    specs = _check_agents(agents)
    _check_results(results, specs)
    first = min(r.queued_at for r in results)
    start = first if started is None else float(started)
    if not start <= first:
        raise ConfigError(
            "started", start, f"The run cannot start after its first arrival ({first!r})."
        )
    notes: list[str] = []
    models, fits = _fit_agents(results, specs, notes)
    workload, offsets = _workload(results, tasks, start)
    recorded = None
    if any(r.ok for r in results):
        recorded = run_figures(results, start)
    else:
        notes.append("No task succeeded, so there are no recorded figures to compare with.")
    calm = [spec if not spec.faults else _without_faults(spec, notes) for spec in specs.values()]
    return Calibration(
        agents=tuple(calm),
        models=MappingProxyType(models),
        fits=fits,
        arrivals=ReplayArrivals(offsets),
        workload=tuple(workload),
        started=start,
        recorded=recorded,
        notes=tuple(notes),
    )


def _check_agents(agents: Sequence[AgentSpec]) -> dict[str, AgentSpec]:
    if not agents:
        raise ConfigError("agents", [], "Give the AgentSpec of every agent in the recorded run.")
    specs: dict[str, AgentSpec] = {}
    for spec in agents:
        if spec.id in specs:
            raise ConfigError("agent.id", spec.id, "Agent ids must be unique in a swarm.")
        specs[spec.id] = spec
    return specs


def _check_results(results: Sequence[TaskResult], specs: Mapping[str, AgentSpec]) -> None:
    if not results:
        raise ConfigError("results", [], "Record a run first: calibration needs its results.")
    for i, r in enumerate(results):
        if r.agent is not None and r.agent not in specs:
            known = ", ".join(sorted(specs)[:5])
            raise ConfigError(
                f"results[{i}].agent",
                r.agent,
                f"Pass the AgentSpec of every agent that ran tasks (given: {known}).",
            )
        if not math.isfinite(r.queued_at):
            raise ConfigError(f"results[{i}].queued_at", r.queued_at, "Use a finite time.")
    if not any(_ran(r) for r in results):
        raise ConfigError(
            "results",
            f"{len(results)} results",
            "None ran to success on an agent, so there are no service times to fit.",
        )


def _ran(r: TaskResult) -> bool:
    return r.ok and r.agent is not None and r.service_time is not None


def _without_faults(spec: AgentSpec, notes: list[str]) -> AgentSpec:
    notes.append(
        f"Agent {spec.id!r} had fault windows: their slowness is in its recorded times, so "
        "the simulation does not apply them again (nor the failures they injected)."
    )
    return replace(spec, faults=())


# -- the workload -----------------------------------------------------------------------


def _workload(
    results: Sequence[TaskResult], tasks: Sequence[Task] | None, start: float
) -> tuple[list[Task], list[float]]:
    """Fresh tasks in arrival order and their offsets after `start`."""
    queued = {r.task_id: r.queued_at for r in results}
    if tasks is None:
        pairs = [(r.queued_at, _from_result(i, r)) for i, r in enumerate(results)]
    else:
        seen: set[str] = set()
        pairs = []
        for i, task in enumerate(tasks):
            if task.id not in queued or task.id in seen:
                why = "has no result" if task.id not in queued else "comes twice"
                raise ConfigError(
                    f"tasks[{i}].id", task.id, f"The task {why}; pass the tasks of the run."
                )
            seen.add(task.id)
            pairs.append((queued[task.id], _fresh(task, start)))
        if len(seen) != len(queued):
            missing = next(tid for tid in queued if tid not in seen)
            raise ConfigError("tasks", missing, "A result's task is missing from `tasks`.")
    pairs.sort(key=lambda pair: pair[0])  # stable: ties keep the order of submission
    return [task for _, task in pairs], [max(t - start, 0.0) for t, _ in pairs]


def _from_result(i: int, r: TaskResult) -> Task:
    if not r.kind:
        raise ConfigError(
            f"results[{i}].kind", r.kind, "Pass `tasks=` (the recorded tasks) to rebuild them."
        )
    # The payload of a timed kind is its nominal seconds; the service model decides the
    # time in simulation, so this only keeps the task well-formed.
    payload = r.cost if r.kind in ("sleep", "spin") else None
    return Task(r.kind, payload, r.task_id, cost=r.cost, tenant=r.tenant)


# -- the agents -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    """A fitted service line: slope × cost + a resampled residual (seconds)."""

    slope: float
    residuals: Floats


@dataclass(frozen=True, slots=True)
class _Swarm:
    """What the whole recording says, for agents whose own tasks say too little."""

    line: _Line | None  # fitted to every agent's tasks with a cost
    times: Floats  # every succeeded task's service time
    uncosted: Floats  # those of tasks without a cost


def _fit_agents(
    results: Sequence[TaskResult], specs: Mapping[str, AgentSpec], notes: list[str]
) -> tuple[dict[str, AgentModel], tuple[AgentFit, ...]]:
    ran = [r for r in results if _ran(r)]
    failed = sum(1 for r in results if not r.ok and r.service_time is not None)
    if failed:
        notes.append(f"{failed} failed tasks were left out of the fits.")
    costed = [r for r in ran if r.cost is not None]
    swarm = _Swarm(
        _fit_line(_costs(costed), _times(costed)),
        _times(ran),
        _times([r for r in ran if r.cost is None]),
    )
    by_agent: dict[str, list[TaskResult]] = {agent_id: [] for agent_id in specs}
    for r in results:
        if r.agent is not None:
            by_agent[r.agent].append(r)
    models: dict[str, AgentModel] = {}
    fits: list[AgentFit] = []
    for agent_id, spec in specs.items():
        own = [r for r in by_agent[agent_id] if _ran(r)]
        model, fit = _fit_agent(agent_id, own, swarm, _handoff(by_agent[agent_id], spec))
        if fit.source != "own fit":
            notes.append(_fallback_note(fit))
        models[agent_id] = model
        fits.append(fit)
    return models, tuple(fits)


def _fit_agent(
    agent_id: str, own: Sequence[TaskResult], swarm: _Swarm, handoff: float
) -> tuple[AgentModel, AgentFit]:
    costed = [r for r in own if r.cost is not None]
    costs, times = _costs(costed), _times(costed)
    line = _fit_line(costs, times)
    source = "own fit"
    if line is None and swarm.line is not None:
        # The swarm-wide line, at this agent's measured pace when it has one.
        pooled = swarm.line
        predicted = float(np.sum(pooled.slope * costs + float(np.mean(pooled.residuals))))
        scale = float(np.sum(times)) / predicted if predicted > 0 else 1.0
        line = _Line(pooled.slope * scale, pooled.residuals * scale)
        source = f"swarm-wide fit ×{scale:.3g}"
    if line is None:
        plain = Empirical(((_times(own) if own else swarm.times) + handoff).tolist())
        source = "own times" if own else "swarm's times"
        return AgentModel(service=plain), AgentFit(
            agent_id, len(own), None, plain.mean, handoff, source
        )
    residuals = line.residuals + handoff
    mean_cost = float(np.mean(costs)) if costs.size else 0.0
    linear = LinearService(
        line.slope, residuals.tolist(), _uncosted(own, swarm, handoff), mean_cost
    )
    fit = AgentFit(agent_id, len(own), line.slope, float(np.mean(residuals)), handoff, source)
    return AgentModel(service=linear), fit


def _uncosted(own: Sequence[TaskResult], swarm: _Swarm, handoff: float) -> Empirical:
    """Times for tasks without a cost: the agent's own such tasks, else the swarm's,
    else whatever the agent ran."""
    for times in (_times([r for r in own if r.cost is None]), swarm.uncosted, _times(own)):
        if times.size:
            return Empirical((times + handoff).tolist())
    return Empirical((swarm.times + handoff).tolist())


def _fallback_note(fit: AgentFit) -> str:
    if fit.source.startswith("swarm-wide"):
        return (
            f"Agent {fit.agent!r} ran {fit.tasks} tasks, too few with a cost for a fit of "
            f"its own (at least {MIN_FIT}): it gets the {fit.source}, scaled to its pace."
        )
    if fit.source == "own times":
        return (
            f"Agent {fit.agent!r}: too few tasks with a cost, in the whole swarm too, to "
            "fit a line: its own service times are resampled, whatever a task's cost."
        )
    return f"Agent {fit.agent!r} ran no task that succeeded: it gets the swarm's times."


def _costs(results: Sequence[TaskResult]) -> Floats:
    return np.asarray([r.cost for r in results], dtype=float)


def _times(results: Sequence[TaskResult]) -> Floats:
    return np.asarray([r.service_time for r in results], dtype=float)


def _fit_line(costs: Floats, times: Floats) -> _Line | None:
    """service ≈ slope × cost + residual, fitted with outliers left out; None with fewer
    than `MIN_FIT` tasks."""
    if costs.size < MIN_FIT:
        return None
    top = float(np.max(np.abs(costs)))
    slope: float | None = None
    if float(np.ptp(costs)) > 1e-9 * max(top, 1e-12):
        slope = _robust_slope(costs, times)
    if slope is None or slope < 0:
        # Costs that do not vary (or a fit that went the wrong way) say nothing about
        # the slope: take time to be proportional to cost, which is what cost means.
        total = float(np.sum(costs))
        slope = float(np.sum(times)) / total if total > 0 else 0.0
    return _Line(slope, times - slope * costs)


def _robust_slope(costs: Floats, times: Floats) -> float:
    """Least squares, refitted without the residuals more than `OUTLIER_MADS` MADs out."""
    keep = np.ones(costs.size, dtype=bool)
    slope = 0.0
    for _ in range(4):
        design = np.column_stack([costs[keep], np.ones(int(keep.sum()))])
        solution = np.linalg.lstsq(design, times[keep], rcond=None)[0]
        slope, intercept = float(solution[0]), float(solution[1])
        residuals = times - (slope * costs + intercept)
        centre = float(np.median(residuals))
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(residuals - centre)))
        inside = np.abs(residuals - centre) <= max(OUTLIER_MADS * spread, 1e-12)
        if int(inside.sum()) < MIN_FIT or bool(np.array_equal(inside, keep)):
            break
        keep = inside
    return slope


def _handoff(ran: Sequence[TaskResult], spec: AgentSpec) -> float:
    """The median time from one of the agent's slots freeing to the next task starting
    on it, over tasks that were already waiting: the hand-over a simulated agent would
    otherwise do for free. Gaps while the next task had not yet arrived are idleness,
    and the median keeps out those where a strategy held work back on purpose."""
    spans = sorted(
        (r.started_at, r.finished_at, r.queued_at)
        for r in ran
        if r.started_at is not None and r.finished_at is not None
    )
    free: list[float] = []  # when each busy slot frees, soonest first
    gaps: list[float] = []
    for began, ended, queued in spans:
        if len(free) >= spec.concurrency:
            freed = heappop(free)
            if queued <= freed <= began:
                gaps.append(began - freed)
        heappush(free, ended)
    return float(np.median(gaps)) if gaps else 0.0
