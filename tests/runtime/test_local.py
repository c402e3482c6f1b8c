"""The local backend and the async swarm shell, end to end on a real event loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from swarmperf import STRATEGIES, AgentContext, AgentSpec, NoAgents, Swarm, Task, TaskStatus
from swarmperf.core.errors import UnknownName


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_task_runs_exactly_once(strategy: str) -> None:
    async def main() -> None:
        agents = [AgentSpec(f"a{i}", concurrency=1 + i % 2, prefetch=i % 3) for i in range(4)]
        async with Swarm(agents, strategy=strategy, seed=7) as swarm:
            tasks = [Task("echo", payload=i, cost=0.001) for i in range(500)]
            results = await swarm.run(tasks)
        assert sorted(r.value for r in results) == list(range(500))
        assert len({r.task_id for r in results}) == 500
        assert all(r.ok and r.attempts == 1 for r in results)

    run(main())


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_agents_join_and_leave_while_tasks_run(strategy: str) -> None:
    async def main() -> None:
        rng = random.Random(1)
        agents = [AgentSpec(f"a{i}") for i in range(3)]
        async with Swarm(agents, strategy=strategy, seed=1) as swarm:
            tasks = [Task("sleep", payload=rng.uniform(0, 0.002), cost=0.001) for _ in range(400)]
            submitting = asyncio.create_task(swarm.submit_all(tasks))
            await asyncio.sleep(0.01)
            await swarm.add_agent(AgentSpec("late-1", concurrency=2))
            await swarm.remove_agent("a0")
            await asyncio.sleep(0.01)
            await swarm.add_agent(AgentSpec("late-2"))
            await swarm.remove_agent("a1")
            await submitting
            await swarm.drain()
            results = swarm.results
        assert len(results) == 400
        assert {r.task_id for r in results} == {t.id for t in tasks}
        # Removed agents finish what they had started, then get nothing more.
        assert any(r.agent in ("late-1", "late-2") for r in results)

    run(main())


def test_failing_handler_fails_its_task_not_the_swarm() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a")]) as swarm:
            bad = await swarm.execute(Task("fail", payload="no luck"))
            good = await swarm.execute(Task("echo", payload=3))
        assert bad.status is TaskStatus.FAILED
        assert bad.error == "TaskFailure: no luck"
        assert good.ok
        assert good.value == 3

    run(main())


def test_unknown_kind_is_a_failed_task_naming_the_choices() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a")]) as swarm:
            result = await swarm.execute(Task("teleport"))
        assert result.status is TaskStatus.FAILED
        assert result.error is not None
        assert "teleport" in result.error
        assert "noop" in result.error

    run(main())


def test_custom_async_handler_sees_its_agent() -> None:
    async def who(payload: Any, agent: AgentContext) -> str:
        await asyncio.sleep(0)
        return agent.id

    async def main() -> None:
        async with Swarm([AgentSpec("solo")], handlers={"who": who}) as swarm:
            result = await swarm.execute(Task("who"))
        assert result.value == "solo"

    run(main())


def test_slow_agent_gets_less_work_under_capacity_aware() -> None:
    async def main() -> None:
        agents = [AgentSpec("fast-0"), AgentSpec("fast-1"), AgentSpec("slow", slowdown=8.0)]
        async with Swarm(agents, strategy="capacity-aware") as swarm:
            tasks = [Task("sleep", payload=0.002, cost=0.002) for _ in range(300)]
            results = await swarm.run(tasks)
        per_agent = {a: sum(r.agent == a for r in results) for a in ("fast-0", "fast-1", "slow")}
        assert per_agent["slow"] < per_agent["fast-0"] / 2
        assert per_agent["slow"] < per_agent["fast-1"] / 2

    run(main())


def test_submit_without_agents_says_so() -> None:
    async def main() -> None:
        async with Swarm([]) as swarm:
            with pytest.raises(NoAgents, match="no agents"):
                swarm.submit(Task("noop"))

    run(main())


def test_unknown_strategy_is_rejected_before_anything_starts() -> None:
    with pytest.raises(UnknownName, match="capacity-aware"):
        Swarm([AgentSpec("a")], strategy="random-walk")


def test_latency_includes_queueing() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a")]) as swarm:
            results = await swarm.run([Task("sleep", payload=0.005) for _ in range(5)])
        last = max(results, key=lambda r: r.finished_at or 0.0)
        assert last.latency is not None
        assert last.service_time is not None
        assert last.latency >= 4 * 0.005  # waited behind four others

    run(main())


def test_run_returns_results_in_the_order_the_tasks_were_given() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a", concurrency=8)], strategy="round-robin") as swarm:
            # The first tasks take longest, so they finish last.
            tasks = [Task("sleep", payload=0.002 * (8 - i)) for i in range(8)]
            results = await swarm.run(tasks)
            finished = list(swarm.results)
        assert [r.task_id for r in results] == [t.id for t in tasks]
        # They did finish out of order.
        assert [r.task_id for r in finished] != [t.id for t in tasks]

    run(main())


def test_run_can_return_results_as_they_finished() -> None:
    async def main() -> None:
        async with Swarm([AgentSpec("a", concurrency=8)], strategy="round-robin") as swarm:
            tasks = [Task("sleep", payload=0.002 * (8 - i)) for i in range(8)]
            results = await swarm.run(tasks, ordered=False)
            assert [r.task_id for r in results] == [r.task_id for r in swarm.results]
            assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)

    run(main())
