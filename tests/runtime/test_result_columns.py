"""Results kept as columns read back equal to the results made one object per task."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf import AgentSpec, Swarm, Task, TaskResult
from swarmperf.balancing.strategies import get_strategy
from swarmperf.core.model import TaskStatus
from swarmperf.runtime.coordinator import Coordinator, ResultColumns, unrun_result
from tests.conftest import FakeClock


def _fields(result: TaskResult) -> tuple[Any, ...]:
    return tuple(getattr(result, f.name) for f in dataclasses.fields(result))


_ops = st.lists(
    st.one_of(
        # (submit, cost or None, a fresh task or one that finished already)
        st.tuples(st.just("submit"), st.sampled_from([0.5, 1.0, None]), st.booleans()),
        # (finish, how many of the running tasks, which fail)
        st.tuples(st.just("finish"), st.integers(1, 4), st.sets(st.integers(0, 3))),
        st.tuples(st.just("reject"), st.just(None), st.just(None)),
    ),
    max_size=60,
)


def _run(ops: list[Any], columns: ResultColumns | None) -> list[TaskResult]:
    clock = FakeClock()
    c = Coordinator(get_strategy("round-robin"), clock=clock)
    for name in ("a", "b"):
        c.add_agent(AgentSpec(name, prefetch=1))
    running: dict[str, list[Task]] = {"a": [], "b": []}
    finished: list[Task] = []
    made: list[TaskResult] = []
    n = 0
    for op, x, y in ops:
        clock.now += 0.25
        if op == "submit":
            if y and finished:
                task = finished.pop(0)  # a task submitted again: its result must not change
            else:
                n += 1
                task = Task("k", id=f"t{n}", cost=x, tenant="x" if n % 3 else "y")
            c.submit(task)
        elif op == "reject":
            n += 1
            c.reject(Task("k", id=f"t{n}"), "no room")
            for result in c.take_results():
                made.append(result)
                if columns is not None:
                    columns.add_result(result)
        else:
            for agent, tasks in running.items():
                batch, running[agent] = tasks[:x], tasks[x:]
                done = [
                    (task, clock.now - 0.1, clock.now, "boom" if i in y else None, {"i": i})
                    for i, task in enumerate(batch)
                ]
                if done:
                    made += c.finish_many(agent, done, columns)
                    finished += batch
        for agent_state, task in c.take_starts():
            running[agent_state.id].append(task)
    if columns is None:
        return made
    return columns.results(range(len(columns)))


@settings(max_examples=200, deadline=None)
@given(ops=_ops)
def test_columns_read_back_as_the_results_made_per_task(ops: list[Any]) -> None:
    columns = ResultColumns()
    assert [_fields(r) for r in _run(ops, columns)] == [_fields(r) for r in _run(ops, None)]
    # Each read makes a new result, equal to the last.
    for i in range(len(columns)):
        again = columns.result(i)
        assert _fields(again) == _fields(columns.result(i))


def test_a_run_reads_as_a_run_with_a_listener() -> None:
    """A run nobody listens to keeps its results as columns; one with a listener makes
    them as they come. Both give the same results, in the order of the tasks."""

    async def run(listen: bool) -> tuple[list[tuple[Any, ...]], bool]:
        heard: list[TaskResult] = []
        agents = [AgentSpec("a", prefetch=4), AgentSpec("b", prefetch=4)]
        async with Swarm(agents, strategy="round-robin", seed=0) as swarm:
            if listen:
                swarm.on_result(heard.append)
            tasks = [
                Task("fail" if i % 7 == 0 else "echo", payload=i, id=f"t{i}") for i in range(300)
            ]
            results = await swarm.run(tasks)
            assert [r.task_id for r in results] == [t.id for t in tasks]
            # The swarm keeps the same results, in the order they finished.
            by_id = {r.task_id: _fields(r) for r in swarm.results}
            assert [_fields(r) for r in results] == [by_id[t.id] for t in tasks]
            assert results == [results[i] for i in range(len(results))]
            assert results != [*results][1:]
            assert results[5] in results
            assert results.index(results[5]) == 5
            assert results.count(results[5]) == 1
            rows = [
                (r.task_id, r.status, r.value, r.error is None, r.kind, r.attempts) for r in results
            ]
            return rows, len(heard) == (300 if listen else 0)

    quiet, heard_none = asyncio.run(run(False))
    loud, heard_all = asyncio.run(run(True))
    assert quiet == loud
    assert heard_none
    assert heard_all


def _in_order_by_id(columns: ResultColumns, tasks: list[Task], start: int) -> list[int]:
    """What `in_order` promises, worked out by id alone."""
    position = {task.id: i for i, task in enumerate(tasks)}
    slots: dict[int, int] = {}
    rest: list[int] = []
    for i in range(start, len(columns)):
        p = position.get(columns.task_id(i), -1)
        if p < 0 or p in slots:
            rest.append(i)
        else:
            slots[p] = i
    return [slots[p] for p in sorted(slots)] + rest


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 12),
    rows=st.lists(
        st.tuples(st.sampled_from(["task", "result", "other"]), st.integers(0, 11)), max_size=30
    ),
    start=st.integers(0, 5),
    twice=st.one_of(st.none(), st.integers(0, 11)),
    queued=st.one_of(st.none(), st.integers(0, 11)),
)
def test_rows_come_in_the_order_of_the_tasks_whatever_else_was_recorded(
    n: int, rows: list[tuple[str, int]], start: int, twice: int | None, queued: int | None
) -> None:
    """Rows of the run's tasks (some twice), results made already (found by id), tasks of
    other runs; a run that gives a task twice, or a task still queued elsewhere."""
    tasks = [Task("k", id=f"t{i}") for i in range(n)]
    others = [Task("k", id=f"o{i}") for i in range(12)]
    columns = ResultColumns()
    for kind, i in rows:
        if kind == "task" and i < n:
            columns.add(tasks[i], "a", 0.0, 1.0, None, i)
        elif kind == "result" and i < n:
            columns.add_result(unrun_result(tasks[i], TaskStatus.CANCELLED, "gone", 1.0))
        else:
            columns.add(others[i], "a", 0.0, 1.0, None, None)
    given_tasks = list(tasks)
    if twice is not None and twice < n:
        given_tasks.append(tasks[twice])
    if queued is not None and queued < n:
        tasks[queued].seq = 7  # as the queue numbers a task it holds
    seqs = [task.seq for task in given_tasks]
    start = min(start, len(columns))
    assert columns.in_order(given_tasks, start) == _in_order_by_id(columns, given_tasks, start)
    # Every task's place in the queue is as it was.
    assert [task.seq for task in given_tasks] == seqs
