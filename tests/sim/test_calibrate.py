"""Calibration: a recorded run becomes agent models that replay it in simulation, close
enough that makespan and latency percentiles land within 10% of the real run's."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence

import numpy as np
import pytest

from swarmperf import AgentSpec, Swarm, Task, TaskStatus
from swarmperf.app.workload import draw_sizes
from swarmperf.core.errors import ConfigError
from swarmperf.core.model import Fault, TaskResult
from swarmperf.sim import AgentModel, Empirical, Simulation
from swarmperf.sim.calibrate import MIN_FIT, Calibration, RunFigures, calibrate, run_figures
from swarmperf.sim.models import LinearService, TaskServiceModel
from swarmperf.spec import ParetoSize

# -- a recorded run, on the local backend -------------------------------------------------


async def record(
    agents: Sequence[AgentSpec], tasks: Sequence[Task], strategy: str
) -> tuple[list[TaskResult], float]:
    async with Swarm(agents, strategy=strategy, seed=3) as swarm:
        started = time.perf_counter()
        results = list(await swarm.run(tasks))
    return results, started


def test_a_calibrated_simulation_reproduces_a_recorded_run() -> None:
    # ~0.8 s of real work: long enough that one late timer does not move the figures.
    sizes = draw_sizes(ParetoSize(mean=0.005, alpha=1.5), 600, np.random.default_rng(11))
    agents = [AgentSpec(f"a{i}", slowdown=3.0 if i == 4 else 1.0) for i in range(5)]
    tasks = [Task("sleep", payload=float(x), cost=float(x)) for x in sizes]
    results, started = asyncio.run(record(agents, tasks, "capacity-aware"))

    calibration = calibrate(results, agents, tasks=tasks, started=started)
    outcome = calibration.simulate("capacity-aware", seed=3)

    assert len(outcome.results) == len(tasks)
    assert all(r.status is TaskStatus.SUCCEEDED for r in outcome.results)
    real = run_figures(results, started)
    assert calibration.recorded == real
    errors = calibration.errors(outcome)
    assert errors["makespan"] <= 0.10, (real, errors)
    assert errors["latency_p50"] <= 0.10, (real, errors)
    assert errors["latency_p99"] <= 0.10, (real, errors)
    # The slow agent's own fit sees its slowness, which its weight does not declare.
    slopes = {fit.agent: fit.slope for fit in calibration.fits}
    assert slopes["a4"] == pytest.approx(3.0, rel=0.15)
    assert slopes["a0"] == pytest.approx(1.0, rel=0.15)


# -- fits, on recordings made up to be exact ----------------------------------------------


def made_up(
    agent: str,
    costs: Sequence[float | None],
    *,
    pace: float = 1.0,
    overhead: float = 0.001,
    gap: float = 0.0001,
    stall: dict[int, float] | None = None,
) -> list[TaskResult]:
    """One agent running `costs` back to back, all queued at 0: each takes pace × cost
    + overhead (`stall` adds to some), with `gap` between one's end and the next start."""
    out: list[TaskResult] = []
    now = 0.0
    for i, cost in enumerate(costs):
        begin = now + gap
        took = pace * (cost if cost is not None else 0.002) + overhead + (stall or {}).get(i, 0.0)
        now = begin + took
        out.append(
            TaskResult(
                f"{agent}-{i}",
                TaskStatus.SUCCEEDED,
                agent,
                1,
                0.0,
                begin,
                now,
                kind="sleep",
                cost=cost,
            )
        )
    return out


def spread_costs(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [0.001 + rng.paretovariate(1.5) * 0.002 for _ in range(n)]


def test_each_agent_gets_its_pace_and_overheads() -> None:
    results = made_up("fast", spread_costs(200)) + made_up(
        "slow", spread_costs(60, seed=1), pace=4.0, overhead=0.002
    )
    calibration = calibrate(results, [AgentSpec("fast"), AgentSpec("slow", slowdown=4.0)])
    fits = {fit.agent: fit for fit in calibration.fits}
    assert fits["fast"].slope == pytest.approx(1.0)
    assert fits["slow"].slope == pytest.approx(4.0)
    assert fits["fast"].handoff == pytest.approx(0.0001)
    # The intercept holds the overhead and the hand-over between tasks.
    assert fits["fast"].intercept == pytest.approx(0.0011)
    assert fits["slow"].intercept == pytest.approx(0.0021)
    assert {fit.source for fit in fits.values()} == {"own fit"}
    assert calibration.notes == ()


def test_a_stall_on_a_big_task_does_not_tilt_the_slope_but_still_costs_its_time() -> None:
    costs = spread_costs(300)
    biggest = max(range(len(costs)), key=costs.__getitem__)
    results = made_up("a", costs, stall={biggest: 0.05})
    (fit,) = calibrate(results, [AgentSpec("a")]).fits
    assert fit.slope == pytest.approx(1.0, rel=1e-6)
    # 50 ms spread over 300 tasks: resampled, the stall adds its time on average.
    assert fit.intercept == pytest.approx(0.0011 + 0.05 / 300)


def test_an_agent_with_too_few_tasks_gets_the_swarm_fit_at_its_own_pace() -> None:
    results = made_up("busy", spread_costs(100)) + made_up(
        "rare", spread_costs(MIN_FIT - 1, seed=2), pace=2.0, overhead=0.002
    )
    calibration = calibrate(results, [AgentSpec("busy"), AgentSpec("rare"), AgentSpec("idle")])
    fits = {fit.agent: fit for fit in calibration.fits}
    assert fits["rare"].source.startswith("swarm-wide fit ×")
    rare = [r for r in results if r.agent == "rare"]
    model = calibration.models["rare"].service
    assert isinstance(model, LinearService)
    # Scaled so that the tasks it did run take, in all, what they took.
    recorded = sum(r.service_time or 0.0 for r in rare)
    modelled = sum(model.slope * (r.cost or 0.0) + statistics.fmean(model.residuals) for r in rare)
    assert modelled == pytest.approx(recorded + len(rare) * fits["rare"].handoff)
    # An agent that ran nothing gets the swarm's fit as it is; both say so.
    assert fits["idle"].source == "swarm-wide fit ×1"
    assert any("'rare'" in note and "too few" in note for note in calibration.notes)
    assert any("'idle'" in note for note in calibration.notes)


def test_tasks_without_a_cost_take_the_agents_recorded_times() -> None:
    results = made_up("a", [None] * 30, overhead=0.0)
    calibration = calibrate(results, [AgentSpec("a")])
    (fit,) = calibration.fits
    assert fit.slope is None
    assert fit.source == "own times"
    service = calibration.models["a"].service
    assert isinstance(service, Empirical)
    assert service.samples == pytest.approx((0.0021,) * 30)
    outcome = calibration.simulate()
    assert run_figures(outcome.results, 0.0).makespan == pytest.approx(30 * 0.0021)


def test_fault_windows_are_not_applied_twice() -> None:
    spec = AgentSpec("a", faults=(Fault(start=0.0, slowdown=3.0),))
    calibration = calibrate(made_up("a", spread_costs(40), pace=3.0), [spec])
    assert calibration.agents[0].faults == ()
    assert "fault windows" in calibration.notes[0]


# -- simulating ---------------------------------------------------------------------------


def test_runs_are_repeatable_and_leave_the_workload_as_it_was() -> None:
    results = made_up("a", spread_costs(50)) + made_up("b", spread_costs(50, seed=4), pace=2.0)
    calibration = calibrate(results, [AgentSpec("a"), AgentSpec("b")])
    first = calibration.simulate("least-loaded", seed=5)
    again = calibration.simulate("least-loaded", seed=5)
    assert [(r.task_id, r.agent, r.finished_at) for r in first.results] == [
        (r.task_id, r.agent, r.finished_at) for r in again.results
    ]
    assert all(task.attempts == 0 for task in calibration.workload)
    assert calibration.arrivals.times == (0.0,) * 100


def test_given_tasks_take_the_recorded_arrivals_and_deadlines_move_to_virtual_time() -> None:
    tasks = [Task("sleep", payload=0.001, cost=0.001, deadline=105.0) for _ in range(3)]
    results = [
        TaskResult(t.id, TaskStatus.SUCCEEDED, "a", 1, 100.0 + i, 100.0 + i, 100.001 + i)
        for i, t in enumerate(tasks)
    ]
    calibration = calibrate(results, [AgentSpec("a")], tasks=tasks, started=99.0)
    assert calibration.arrivals.times == (1.0, 2.0, 3.0)
    assert [t.deadline for t in calibration.workload] == [6.0] * 3
    outcome = calibration.simulate(tasks=tasks)
    assert [r.queued_at for r in outcome.results] == [1.0, 2.0, 3.0]


def test_a_service_model_that_sees_the_task_follows_its_cost() -> None:
    model = LinearService(2.0, [0.001], Empirical([0.5]), mean_cost=0.01)
    assert isinstance(model, TaskServiceModel)
    assert model.mean == pytest.approx(0.021)
    assert model.sample(random.Random(0)) == pytest.approx(0.021)
    sim = Simulation([AgentSpec("a", slowdown=9.0)], models={"a": AgentModel(service=model)})
    outcome = sim.run([Task("sleep", payload=1.0, cost=0.1), Task("sleep", payload=1.0)])
    times = sorted(r.service_time or 0.0 for r in outcome.results)
    assert times == [pytest.approx(0.201), pytest.approx(0.5)]


def test_residuals_never_make_a_time_negative() -> None:
    model = LinearService(1.0, [-1.0], Empirical([0.0]))
    assert model.sample_task(Task("sleep", cost=0.5), random.Random(0)) == 0.0


def test_figures_measure_from_the_start() -> None:
    results = made_up("a", [0.001] * 4, overhead=0.0, gap=0.0)
    figures = run_figures(results, -1.0)
    assert figures.makespan == pytest.approx(1.004)
    assert figures.errors(RunFigures(1.004 * 1.1, figures.latency_p50, 0.0)) == {
        "makespan": pytest.approx(0.1),
        "latency_p50": 0.0,
        "latency_p99": 1.0,
    }


# -- bad input ----------------------------------------------------------------------------


def test_an_empty_recording_is_refused() -> None:
    with pytest.raises(ConfigError, match="Record a run first") as info:
        calibrate([], [AgentSpec("a")])
    assert info.value.field == "results"


def test_a_result_from_an_unknown_agent_is_refused_naming_it() -> None:
    results = made_up("a", [0.001]) + made_up("ghost", [0.001])
    with pytest.raises(ConfigError, match="ghost") as info:
        calibrate(results, [AgentSpec("a")])
    assert info.value.field == "results[1].agent"


@pytest.mark.parametrize(
    ("results", "agents", "field"),
    [
        (made_up("a", [0.001]), [], "agents"),
        (made_up("a", [0.001]), [AgentSpec("a"), AgentSpec("a")], "agent.id"),
        (
            [TaskResult("t", TaskStatus.FAILED, "a", 1, 0.0, 0.0, 0.1, error="boom")],
            [AgentSpec("a")],
            "results",
        ),
    ],
    ids=["no agents", "twice the same agent", "nothing succeeded"],
)
def test_bad_input_names_the_field(
    results: list[TaskResult], agents: list[AgentSpec], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        calibrate(results, agents)
    assert info.value.field == field


def test_a_start_after_the_first_arrival_is_refused() -> None:
    with pytest.raises(ConfigError, match="first arrival"):
        calibrate(made_up("a", [0.001]), [AgentSpec("a")], started=1.0)


def test_tasks_must_be_those_of_the_run() -> None:
    results = made_up("a", [0.001, 0.002])
    stranger = Task("sleep", cost=0.001, id="stranger")
    with pytest.raises(ConfigError, match="has no result"):
        calibrate(results, [AgentSpec("a")], tasks=[stranger])
    with pytest.raises(ConfigError, match="missing"):
        calibrate(results, [AgentSpec("a")], tasks=[Task("sleep", id="a-0")])


@pytest.mark.parametrize(
    ("slope", "residuals", "field"),
    [
        (-1.0, [0.0], "linear.slope"),
        (1.0, [], "linear.residuals"),
        (1.0, [0.0, float("nan")], "linear.residuals[1]"),
    ],
)
def test_bad_linear_service_parameters_are_refused(
    slope: float, residuals: list[float], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        LinearService(slope, residuals, Empirical([0.1]))
    assert info.value.field == field


def test_a_calibration_is_frozen() -> None:
    calibration = calibrate(made_up("a", [0.001]), [AgentSpec("a")])
    assert isinstance(calibration, Calibration)
    with pytest.raises(AttributeError):
        calibration.started = 1.0  # type: ignore[misc]
