"""`Coordinator.finish` (one task) decides exactly as `finish_many` does, on any swarm."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf import STRATEGIES, AgentSpec, Task
from swarmperf.balancing.strategies import get_strategy
from swarmperf.core.model import TaskResult
from swarmperf.runtime.coordinator import Coordinator


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _state(c: Coordinator) -> tuple[Any, ...]:
    agents = tuple(
        (
            a.id,
            a.in_flight,
            a.speed,
            a.busy_time,
            a.completed,
            a.failed,
            a.running_work,
            a.backlog_work,
            len(a.backlog),
            a.version,
            a.mean_service,
        )
        for a in c.all_agents()
    )
    return (agents, c.statistics(), c.horizon, c.unknown_cost, c._free_slots)


def _row(r: TaskResult | None) -> tuple[Any, ...] | None:
    if r is None:
        return None
    return (r.task_id, r.status, r.agent, r.attempts, r.queued_at, r.started_at, r.finished_at)


def _run(
    strategy: str,
    agents: list[tuple[int, int, float]],
    tasks: list[tuple[float | None, bool]],
    picks: list[int],
    one_by_one: bool,
) -> list[Any]:
    clock = _Clock()
    c = Coordinator(get_strategy(strategy, seed=1), clock=clock)
    for i, (concurrency, prefetch, weight) in enumerate(agents):
        c.add_agent(AgentSpec(f"a{i}", concurrency=concurrency, prefetch=prefetch, weight=weight))
    trace: list[Any] = []
    running: list[tuple[str, Task, float]] = []
    failing = {f"t{i}" for i, (_, fails) in enumerate(tasks) if fails}
    for i, (cost, _) in enumerate(tasks):
        c.submit(Task("sleep", cost=cost, id=f"t{i}"))
    for pick in [*picks, *([0] * (2 * len(tasks)))]:
        for agent, task in c.take_starts():
            running.append((agent.id, task, clock.now))
            trace.append(("start", agent.id, task.id))
        if not running:
            break
        clock.now += 0.25 + (pick % 7) / 10
        agent_id, task, started = running.pop(pick % len(running))
        error = "boom" if task.id in failing else None
        if one_by_one:
            result = c.finish(agent_id, task, started, clock.now, error)
            trace.append(_row(result))
        else:
            results = c.finish_many(agent_id, [(task, started, clock.now, error, None)])
            trace.append(_row(results[0]) if results else None)
        trace.append(_state(c))
    return trace


@settings(max_examples=60, deadline=None)
@given(
    strategy=st.sampled_from(sorted(STRATEGIES)),
    agents=st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 2), st.sampled_from([0.5, 1.0, 2.0])),
        min_size=1,
        max_size=4,
    ),
    tasks=st.lists(
        st.tuples(st.one_of(st.none(), st.floats(0.0, 3.0)), st.booleans()),
        min_size=1,
        max_size=25,
    ),
    picks=st.lists(st.integers(0, 1000), max_size=40),
)
def test_finishing_one_task_matches_finishing_a_batch_of_one(
    strategy: str,
    agents: list[tuple[int, int, float]],
    tasks: list[tuple[float | None, bool]],
    picks: list[int],
) -> None:
    one = _run(strategy, agents, tasks, picks, one_by_one=True)
    batch = _run(strategy, agents, tasks, picks, one_by_one=False)
    assert one == batch
    assert sum(1 for step in one if isinstance(step, tuple) and step[:1] == ("start",)) >= 1


def test_a_start_not_yet_handed_out_goes_elsewhere_when_its_agent_leaves() -> None:
    # "a" finishes t0, which starts t2 from its backlog; "a" dies before `take_starts`
    # hands t2 out. Its backend never heard of t2 and would refuse it: t2 must go to "b".
    for leave in ("lost", "removed"):
        clock = _Clock()
        c = Coordinator(get_strategy("round-robin"), clock=clock)
        c.add_agent(AgentSpec("a"))
        c.add_agent(AgentSpec("b"))
        tasks = [Task("noop", cost=1.0, id=f"t{i}") for i in range(4)]
        for task in tasks:
            c.submit(task)
        assert [(a.id, t.id) for a, t in c.take_starts()] == [("a", "t0"), ("b", "t1")]
        clock.now = 1.0
        c.finish("a", tasks[0], 0.0, 1.0)
        if leave == "lost":
            assert [t.id for t in c.agent_lost("a", [], "killed")] == ["t2"]
        else:
            assert [t.id for t in c.remove_agent("a")] == ["t2"]
        assert c.take_starts() == []
        stats = c.statistics()
        assert (stats.running, stats.pending) == (1, 2)
        assert tasks[2].attempts == 0  # it never ran
        # Bound to "b" (early binding), behind the task "b" held already.
        assert [t.id for t in c.agent("b").backlog] == ["t3", "t2"]
