"""Run reports: figures on hand-made results, and honest gaps where a figure cannot be had."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest
from rich.console import Console

from swarmperf.app.workload import feed, generate_tasks
from swarmperf.balancing.agents import AgentState
from swarmperf.core.model import AgentSpec, TaskResult, TaskStatus
from swarmperf.runtime import Swarm
from swarmperf.runtime.report import RunReport, build_report, work_lower_bound
from swarmperf.spec import parse_spec

OK, FAILED = TaskStatus.SUCCEEDED, TaskStatus.FAILED


def result(
    agent: str | None,
    queued: float,
    started: float | None,
    finished: float | None,
    status: TaskStatus = OK,
) -> TaskResult:
    return TaskResult("t", status, agent, 1, queued, started, finished)


def report(
    results: list[TaskResult],
    agents: list[AgentSpec],
    started: float = 0.0,
    finished: float = 10.0,
    lower_bound: float | None = None,
) -> RunReport:
    return build_report(
        results, agents, started, finished, "round-robin", "local", "t", lower_bound
    )


def test_latency_percentiles_are_numpy_linear_percentiles() -> None:
    # Latencies 1 .. 100 s: queued at 0, started at once, finished at i.
    results = [result("a", 0.0, 0.0, float(i)) for i in range(1, 101)]
    r = report(results, [AgentSpec("a")], finished=100.0)
    assert r.latency_p50 == pytest.approx(50.5)
    assert r.latency_p90 == pytest.approx(90.1)
    assert r.latency_p95 == pytest.approx(95.05)
    assert r.latency_p99 == pytest.approx(99.01)
    assert r.latency_max == 100.0


def test_counts_throughput_and_queue_wait() -> None:
    results = [
        result("a", 0.0, 1.0, 2.0),
        result("a", 0.0, 2.0, 3.0),
        result("a", 0.0, 3.0, 4.0, FAILED),
        result(None, 0.0, None, None, TaskStatus.REJECTED),
    ]
    r = report(results, [AgentSpec("a")], finished=4.0)
    assert (r.tasks_total, r.tasks_succeeded, r.tasks_failed, r.tasks_rejected) == (4, 2, 1, 1)
    assert r.throughput == pytest.approx(3 / 4)  # three tasks ran to an end in 4 s
    assert r.queue_wait_p50 == pytest.approx(2.0)
    assert r.queue_wait_p99 == pytest.approx(2.98)
    assert r.latency_max == 3.0  # the failed task's 4 s is not a success's latency
    assert r.makespan == 4.0


def test_per_agent_rows() -> None:
    agents = [AgentSpec("a", concurrency=2), AgentSpec("b"), AgentSpec("idle")]
    results = [
        result("a", 0.0, 0.0, 4.0),
        result("a", 0.0, 0.0, 2.0, FAILED),
        result("b", 0.0, 1.0, 6.0),
    ]
    rows = {row.id: row for row in report(results, agents).agents}
    assert (rows["a"].tasks, rows["a"].failed, rows["a"].busy_seconds) == (2, 1, 6.0)
    assert rows["a"].utilisation == pytest.approx(6.0 / (10.0 * 2))
    assert rows["a"].mean_service == pytest.approx(3.0)
    assert rows["b"].utilisation == pytest.approx(0.5)
    assert (rows["idle"].tasks, rows["idle"].utilisation, rows["idle"].mean_service) == (
        0,
        0.0,
        None,
    )


def test_equal_loads_are_perfectly_fair() -> None:
    agents = [AgentSpec(name) for name in "abcd"]
    results = [result(name, 0.0, 0.0, 5.0) for name in "abcd"]
    r = report(results, agents)
    assert r.jain_index == pytest.approx(1.0)
    assert r.load_balance_variance == pytest.approx(0.0)


def test_one_loaded_agent_of_n_has_jain_index_one_over_n() -> None:
    agents = [AgentSpec(name) for name in "abcd"]
    r = report([result("a", 0.0, 0.0, 8.0)], agents)
    assert r.jain_index == pytest.approx(1 / 4)
    # Utilisations 0.8, 0, 0, 0: mean 0.2, population variance (0.36 + 3 * 0.04) / 4.
    assert r.load_balance_variance == pytest.approx(0.12)


def test_agent_states_are_accepted_like_specs() -> None:
    states = [AgentState(AgentSpec("a"), 0), AgentState(AgentSpec("b"), 1)]
    results = [result("a", 0.0, 0.0, 2.0), result("b", 0.0, 0.0, 2.0)]
    r = build_report(results, states, 0.0, 4.0, "cfs", "local", "s")
    assert [row.utilisation for row in r.agents] == [0.5, 0.5]


def test_makespan_ratio_against_a_given_bound() -> None:
    r = report([result("a", 0.0, 0.0, 8.0)], [AgentSpec("a")], lower_bound=4.0)
    assert r.makespan_ratio == pytest.approx(2.0)
    assert r.makespan_ratio_reason is None
    assert "makespan_ratio" not in r.missing


@pytest.mark.parametrize(
    ("bound", "reason"), [(None, "no lower bound was given"), (0.0, "not a positive time")]
)
def test_makespan_ratio_without_a_usable_bound_says_why(bound: float | None, reason: str) -> None:
    r = report([result("a", 0.0, 0.0, 8.0)], [AgentSpec("a")], lower_bound=bound)
    assert r.makespan_ratio is None
    assert r.makespan_ratio_reason is not None
    assert reason in r.makespan_ratio_reason


def test_no_successful_task_means_no_latency_and_says_why() -> None:
    r = report([result("a", 0.0, 1.0, 2.0, FAILED)], [AgentSpec("a")])
    assert r.latency_p50 is None
    assert r.latency_max is None
    assert r.missing["latency_p50"] == "no task succeeded"
    assert r.queue_wait_p50 == 1.0  # the failed task did wait


def test_every_missing_figure_has_a_reason() -> None:
    r = report([], [], started=5.0, finished=5.0, lower_bound=None)
    for f in dataclasses.fields(r):
        if getattr(r, f.name) is None:
            assert f.name in r.missing, f.name
    assert r.tasks_total == 0
    assert r.agents == ()
    assert "throughput" in r.missing


def test_a_task_on_an_unknown_agent_has_no_utilisation() -> None:
    r = report([result("gone", 0.0, 0.0, 1.0)], [AgentSpec("a")])
    gone = next(row for row in r.agents if row.id == "gone")
    assert gone.utilisation is None
    assert "concurrency is unknown" in r.missing["agents.gone.utilisation"]


def test_a_run_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it started"):
        report([], [AgentSpec("a")], started=2.0, finished=1.0)


def test_to_dict_is_json() -> None:
    r = report([result("a", 0.0, 0.0, 1.0)], [AgentSpec("a")])
    data = json.loads(json.dumps(r.to_dict()))
    assert data["agents"][0]["id"] == "a"
    assert data["latency_p50"] == 1.0
    assert data["makespan_ratio"] is None
    assert data["missing"]["makespan_ratio"] == "no lower bound was given"


def test_to_dict_keeps_the_flat_latency_keys_where_stored_runs_have_them() -> None:
    results = [result("a", 0.0, 0.0, float(t)) for t in (1, 2, 3, 4)]
    r = report(results, [AgentSpec("a")])
    keys = list(r.to_dict())
    assert "latency" not in keys
    at = keys.index("throughput")
    assert keys[at : at + 7] == [
        "throughput",
        "latency_p50",
        "latency_p90",
        "latency_p95",
        "latency_p99",
        "latency_max",
        "queue_wait_p50",
    ]
    assert r.to_dict()["latency_max"] == r.latency_max == r.latency.max == 4.0


def test_the_latency_summary_has_the_count_mean_and_extremes() -> None:
    results = [result("a", 0.0, 0.0, float(t)) for t in (1, 2, 3, 6)]
    summary = report(results, [AgentSpec("a")]).latency
    assert (summary.count, summary.mean, summary.min, summary.max) == (4, 3.0, 1.0, 6.0)
    assert report([], [AgentSpec("a")]).latency.count == 0


def test_render_shows_figures_agents_and_gaps() -> None:
    console = Console(record=True, width=120)
    report([result("a", 0.0, 0.0, 1.0)], [AgentSpec("a"), AgentSpec("b")]).render(console)
    text = console.export_text()
    assert "Jain's fairness index" in text
    assert "1.000 s" in text
    assert "n/a: no lower bound was given" in text
    assert "│ b " in text


def test_steals_are_counted_in_the_dict_and_shown_for_a_stealing_strategy() -> None:
    results = [result("a", 0.0, 0.0, 1.0)]
    stealing = build_report(
        results, [AgentSpec("a")], 0.0, 10.0, "work-stealing", "local", "t", stolen=7
    )
    assert json.loads(json.dumps(stealing.to_dict()))["stolen"] == 7
    console = Console(record=True, width=120)
    stealing.render(console)
    assert re.search(r"│ tasks stolen +│ +7 │", console.export_text())
    # A strategy that never steals gets no such row, and its count is 0.
    plain = report(results, [AgentSpec("a")])
    assert plain.to_dict()["stolen"] == 0
    console = Console(record=True, width=120)
    plain.render(console)
    assert "stolen" not in console.export_text()


def test_a_work_stealing_run_reports_its_steals() -> None:
    from swarmperf.app.run import run_spec

    # Round robin leaves half the batch queued on the slow agent; the fast one takes some.
    spec = parse_spec(
        {
            "strategy": "work-stealing",
            "agents": [{"id": "fast"}, {"id": "slow", "slowdown": 4}],
            "workload": {"tasks": 60, "kind": "sleep", "size": "2ms"},
        }
    )
    outcome = asyncio.run(run_spec(spec, handle_signals=False))
    data = outcome.report.to_dict()
    assert data["stolen"] == outcome.report.stolen > 0
    ran = {row.id: row.tasks for row in outcome.report.agents}
    assert ran["fast"] > 30  # more than its round-robin half


# -- the lower bound ----------------------------------------------------------------------


def test_lower_bound_is_total_work_over_total_capacity() -> None:
    # Agent "slow" takes twice as long: its 4 s of service are 2 s of work at slowdown 1.
    # Capacity: 1/1 + 1/2 = 1.5 work-seconds per second. Work: 3 + 2 = 5. Bound 5 / 1.5.
    agents = [AgentSpec("fast"), AgentSpec("slow", slowdown=2.0)]
    results = [result("fast", 0.0, 0.0, 1.0)] * 3 + [result("slow", 0.0, 0.0, 4.0)]
    assert work_lower_bound(results, agents) == pytest.approx(5 / 1.5)


def test_lower_bound_counts_concurrency_as_capacity() -> None:
    agents = [AgentSpec("wide", concurrency=4)]
    results = [result("wide", 0.0, 0.0, 1.0)] * 8
    assert work_lower_bound(results, agents) == pytest.approx(2.0)


def test_lower_bound_is_at_least_the_largest_task_on_the_fastest_agent() -> None:
    # One 3 s task (at slowdown 1) among idle agents: total work / capacity is only 1 s.
    agents = [AgentSpec("a"), AgentSpec("b"), AgentSpec("c")]
    assert work_lower_bound([result("a", 0.0, 0.0, 3.0)], agents) == pytest.approx(3.0)


def test_lower_bound_is_unknown_without_work_or_with_unknown_agents() -> None:
    assert work_lower_bound([], [AgentSpec("a")]) is None
    assert work_lower_bound([result("a", 0.0, 0.0, 1.0)], []) is None
    assert work_lower_bound([result("x", 0.0, 0.0, 1.0)], [AgentSpec("a")]) is None


def test_a_real_run_never_beats_its_lower_bound() -> None:
    # busy <= concurrency * makespan on every agent, so work / capacity <= makespan: the
    # ratio is at least 1 for any real run, whatever the timing.
    spec = parse_spec(
        {
            "agents": [{"id": "a", "count": 2}, {"id": "s", "slowdown": 3, "concurrency": 2}],
            "workload": {"tasks": 60, "kind": "sleep", "size": "0.5ms", "failure_rate": 0.1},
        }
    )

    async def run() -> RunReport:
        async with Swarm(spec.agent_specs(), strategy="least-loaded") as swarm:
            started = swarm.clock()
            await feed(swarm, generate_tasks(spec.workload, 3), swarm.clock)
            await swarm.drain()
            finished = swarm.clock()
            agents = list(swarm.coordinator.all_agents())
            bound = work_lower_bound(swarm.results, agents)
            return build_report(
                swarm.results, agents, started, finished, "least-loaded", "local", "e2e", bound
            )

    r = asyncio.run(run())
    assert r.tasks_total == 60
    assert r.tasks_failed == sum(t.kind == "fail" for _, t in generate_tasks(spec.workload, 3))
    assert sum(row.tasks for row in r.agents) == 60
    assert r.makespan_ratio is not None
    assert r.makespan_ratio >= 1.0
    assert all(row.utilisation is not None and 0 <= row.utilisation <= 1 for row in r.agents)


def test_the_report_names_the_nodes_each_agent_ran_on() -> None:
    head, far = "5c1e0b2f" + "0" * 48, "9a07d1c3" + "1" * 48
    results = [result("a", 0, 1, 2), result("b", 0, 1, 3), result("c", 0, 1, 2)]
    r = build_report(
        results,
        [AgentSpec("a"), AgentSpec("b"), AgentSpec("c")],
        0.0,
        10.0,
        "round-robin",
        "ray",
        "t",
        nodes={"a": [head], "b": [far, head]},  # b was restarted on the head
    )
    rows = {row["id"]: row["nodes"] for row in json.loads(json.dumps(r.to_dict()))["agents"]}
    assert rows == {"a": [head], "b": [far, head], "c": []}
    console = Console(record=True, width=160)
    r.render(console)
    text = console.export_text()
    assert "node" in text
    assert "9a07d1c3 -> 5c1e0b2f" in text
    assert head not in text  # people read the short id; JSON keeps the whole one


def test_a_report_of_agents_on_no_node_has_no_node_column() -> None:
    r = report([result("a", 0, 1, 2)], [AgentSpec("a")])
    console = Console(record=True, width=160)
    r.render(console)
    assert " node " not in console.export_text()
    assert r.to_dict()["agents"][0]["nodes"] == []
