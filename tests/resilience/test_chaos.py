"""Chaos on real worker processes (SIGKILL) and overload on a bounded queue."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil

from swarmperf import AgentSpec, QueueSettings, Swarm, Task, TaskResult, TaskStatus
from swarmperf.core.errors import Backpressure
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.guard import SUGGESTED_SHED_AT, ResilienceGuard, ResilienceSettings
from swarmperf.resilience.restart import RestartPolicy
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy
from swarmperf.runtime.process import ProcessBackend


def test_killed_workers_lose_nothing_and_come_back_on_probation() -> None:
    async def main() -> tuple[list[TaskResult], list[str], list[Task]]:
        backend = ProcessBackend()
        guard = ResilienceGuard(
            ResilienceSettings(
                breaker=BreakerSettings(half_open_calls=1, success_threshold=2),
                retry=RetryPolicies(RetryPolicy(retry_on=("AgentCrashed",))),
            )
        )
        swarm = Swarm(
            [AgentSpec(f"w{i}", prefetch=2) for i in range(3)],
            strategy="least-loaded",
            backend=backend,
            guard=guard,
            restart=RestartPolicy(base_delay=0.05),
        )
        tasks = [Task("sleep", payload=0.003, cost=0.003) for _ in range(600)]
        async with swarm:
            run = asyncio.create_task(swarm.run(tasks))
            while swarm.coordinator.completed < 100:
                await asyncio.sleep(0.01)
            os.kill(backend.pid("w0"), signal.SIGKILL)
            results = list(await run)
            kinds = [e.kind for e in swarm.events if e.subject == "w0"]
        return results, kinds, tasks

    results, kinds, tasks = asyncio.run(main())
    ids = [r.task_id for r in results]
    assert len(ids) == len(set(ids)) == 600  # none twice
    assert set(ids) == {t.id for t in tasks}  # none lost
    assert all(r.ok for r in results)
    assert kinds.index("agent-lost") < kinds.index("agent-restarted")
    assert "agent-probation" in kinds
    assert "agent-reinstated" in kinds
    assert any(r.agent == "w0" and r.attempts >= 1 for r in results)


def test_overload_keeps_memory_flat_and_gives_every_refusal_a_reason() -> None:
    finished: list[TaskStatus] = []
    reasons: list[str] = []

    def record(result: TaskResult) -> None:
        finished.append(result.status)
        if result.status in (TaskStatus.REJECTED, TaskStatus.CANCELLED):
            reasons.append(result.error or "")

    async def main() -> tuple[int, int, float, float]:
        guard = ResilienceGuard(
            ResilienceSettings(
                breaker=None, retry=None, retry_budget=None, shed_at=SUGGESTED_SHED_AT
            )
        )
        swarm = Swarm(
            [AgentSpec("a"), AgentSpec("b")],
            guard=guard,
            queue=QueueSettings(max_queued=500),
            keep_results=False,
        )
        swarm.on_result(record)
        offered = refused = 0
        refusals: list[str] = []
        process = psutil.Process()
        async with swarm:
            await asyncio.sleep(0)
            before = process.memory_info().rss
            for _ in range(100):  # 20,000 offered in about a second: 50x what 2 agents do
                for _ in range(200):
                    offered += 1
                    try:
                        swarm.submit(Task("sleep", payload=0.005))
                    except Backpressure as exc:
                        refusals.append(str(exc))
                        refused += 1
                await asyncio.sleep(0.01)
            after = process.memory_info().rss
            swarm.cancel_pending("test over")
            await swarm.drain()
        assert all("max_queued" in message for message in refusals)
        return offered, refused, before / 2**20, after / 2**20

    offered, refused, before_mb, after_mb = asyncio.run(main())
    assert offered == len(finished) + refused  # every task accounted for
    assert all(reasons)  # every shed or cancelled task says why
    assert finished.count(TaskStatus.REJECTED) > 10_000  # low-priority work was shed
    assert after_mb - before_mb < 50
