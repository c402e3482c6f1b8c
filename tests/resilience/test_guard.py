"""The resilience guard on a real swarm: trips and recoveries, retries, rate limits,
shedding, fallbacks and bulkheads, with no task lost or recorded twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from swarmperf import AgentContext, AgentSpec, Swarm, Task, TaskStatus
from swarmperf.core.errors import Backpressure, RateLimited
from swarmperf.core.model import Fault, Priority
from swarmperf.core.queueing import QueueSettings
from swarmperf.resilience.breaker import BreakerSettings
from swarmperf.resilience.bulkheads import BulkheadSettings
from swarmperf.resilience.guard import SUGGESTED_SHED_AT, ResilienceGuard, ResilienceSettings
from swarmperf.resilience.ratelimit import RateLimit
from swarmperf.resilience.retry import RetryPolicies, RetryPolicy

QUICK_BREAKER = BreakerSettings(
    failure_threshold=3,
    window="count",
    window_size=20,
    minimum_calls=20,
    open_for=0.15,
    half_open_calls=1,
    success_threshold=2,
)
RETRY_FAILURES = RetryPolicies(RetryPolicy(max_attempts=5, base_delay=0.001, retry_on="failure"))


def _exactly_once(results: list[Any], tasks: list[Task]) -> None:
    assert sorted(r.task_id for r in results) == sorted(t.id for t in tasks)


def test_a_failing_agent_trips_recovers_and_no_task_is_lost() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        agents = [
            AgentSpec("a"),
            AgentSpec("b"),
            AgentSpec("flaky", faults=(Fault(start=0.0, end=0.3, error_rate=1.0),)),
        ]
        guard = ResilienceGuard(
            ResilienceSettings(breaker=QUICK_BREAKER, retry=RETRY_FAILURES, retry_budget=None)
        )
        async with Swarm(agents, strategy="least-loaded", guard=guard) as swarm:
            tasks = [Task("sleep", payload=0.003, cost=0.003) for _ in range(600)]
            results = list(await swarm.run(tasks))
            _exactly_once(results, tasks)
            return results, list(swarm.events)

    results, events = asyncio.run(main())
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    flaky = [e.kind for e in events if e.subject == "flaky" and e.kind.startswith("breaker-")]
    assert flaky[0] == "breaker-open"
    assert "breaker-half-open" in flaky
    assert flaky[-1] == "breaker-closed"  # faults end at 0.3 s: it recovers
    assert any(e.kind == "retry" for e in events)
    assert any(r.agent == "flaky" for r in results)  # back at work after recovery


def test_retries_go_to_another_agent() -> None:
    async def main() -> list[Any]:
        agents = [AgentSpec("bad", faults=(Fault(error_rate=1.0),)), AgentSpec("good")]
        guard = ResilienceGuard(
            ResilienceSettings(breaker=None, retry=RETRY_FAILURES, retry_budget=None)
        )
        async with Swarm(agents, strategy="round-robin", guard=guard) as swarm:
            return list(await swarm.run([Task("echo") for _ in range(50)]))

    results = asyncio.run(main())
    assert all(r.ok and r.agent == "good" for r in results)
    assert max(r.attempts for r in results) == 2


def test_shared_rate_limit_is_never_exceeded() -> None:
    starts: list[float] = []

    def stamp(payload: Any, agent: AgentContext) -> None:
        starts.append(asyncio.get_running_loop().time())

    limit = RateLimit(requests_per_minute=6000, burst=0.05)  # 100/s, 5 at once

    async def main() -> list[Any]:
        agents = [AgentSpec(f"a{i}") for i in range(4)]
        guard = ResilienceGuard(
            ResilienceSettings(
                breaker=None,
                rate_limits={"provider": limit},
                agent_rate_limits={f"a{i}": ("provider",) for i in range(4)},
            )
        )
        async with Swarm(agents, guard=guard, handlers={"stamp": stamp}) as swarm:
            return list(await swarm.run([Task("stamp") for _ in range(60)]))

    results = asyncio.run(main())
    assert all(r.ok for r in results)
    starts.sort()
    # Over any window of w seconds: at most burst + rate * w calls (+1 for rounding).
    for i, t0 in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= 5 + 100 * (starts[j] - t0) + 1
    assert starts[-1] - starts[0] >= (60 - 5) / 100 * 0.9


def test_throttled_agent_is_paused_and_its_task_retried() -> None:
    calls: dict[str, int] = {}

    def throttled_once(payload: Any, agent: AgentContext) -> str:
        calls[agent.id] = calls.get(agent.id, 0) + 1
        if calls[agent.id] == 1:
            raise RateLimited(retry_after=0.2, provider="llm")
        return agent.id

    async def main() -> tuple[list[Any], list[Any]]:
        guard = ResilienceGuard(
            ResilienceSettings(breaker=None, rate_limits={"llm": RateLimit(6000)})
        )
        agents = [AgentSpec("x"), AgentSpec("y")]
        async with Swarm(agents, guard=guard, handlers={"call": throttled_once}) as swarm:
            results = list(await swarm.run([Task("call") for _ in range(20)]))
            return results, list(swarm.events)

    results, events = asyncio.run(main())
    assert len(results) == 20
    assert all(r.ok for r in results)
    paused = [e for e in events if e.kind == "agent-paused"]
    assert paused
    assert all("throttled" in str(e.detail["reason"]) for e in paused)


def test_overload_sheds_low_priority_work_with_a_reason() -> None:
    async def main() -> list[Any]:
        guard = ResilienceGuard(ResilienceSettings(breaker=None, shed_at=SUGGESTED_SHED_AT))
        swarm = Swarm([AgentSpec("only")], guard=guard, queue=QueueSettings(max_queued=100))
        async with swarm:
            for _ in range(100):
                swarm.submit(Task("sleep", payload=0.001, priority=Priority.LOW))
            for _ in range(20):
                swarm.submit(Task("sleep", payload=0.001, priority=Priority.CRITICAL))
            await swarm.drain()
            return swarm.results

    results = asyncio.run(main())
    assert len(results) == 120
    shed = [r for r in results if r.status is TaskStatus.REJECTED]
    assert len(shed) >= 40  # past half-full, low work is shed
    assert all(r.error is not None and "shed under overload" in r.error for r in shed)
    critical_ok = [r for r in results if r.ok and r.queued_at is not None]
    assert len(critical_ok) >= 20


def test_exhausted_retries_fall_back_to_the_cheaper_handler() -> None:
    def primary(payload: Any, agent: AgentContext) -> str:
        raise TimeoutError("upstream too slow")

    def cached(payload: Any, agent: AgentContext) -> str:
        return "cached answer"

    async def main() -> list[Any]:
        guard = ResilienceGuard(
            ResilienceSettings(
                breaker=None,
                retry=RetryPolicies(RetryPolicy(max_attempts=2, base_delay=0.001)),
                retry_budget=None,
                fallbacks={"primary": "cached"},
            )
        )
        handlers = {"primary": primary, "cached": cached}
        async with Swarm([AgentSpec("a"), AgentSpec("b")], guard=guard, handlers=handlers) as s:
            return list(await s.run([Task("primary") for _ in range(5)]))

    results = asyncio.run(main())
    assert [r.value for r in results] == ["cached answer"] * 5
    assert all(r.fallback_from == "primary" and r.kind == "cached" for r in results)
    assert all(r.attempts == 3 for r in results)  # two tries, then the fallback


def test_a_flooding_kind_cannot_take_every_agent() -> None:
    running = {"flood": 0}
    peak = {"flood": 0}

    async def flood(payload: Any, agent: AgentContext) -> None:
        running["flood"] += 1
        peak["flood"] = max(peak["flood"], running["flood"])
        await asyncio.sleep(0.02)
        running["flood"] -= 1

    async def main() -> list[Any]:
        agents = [AgentSpec("a"), AgentSpec("b"), AgentSpec("c")]
        bulkheads = {"flood": BulkheadSettings(max_concurrent=1)}
        async with Swarm(
            agents, strategy="least-loaded", bulkheads=bulkheads, handlers={"flood": flood}
        ) as swarm:
            await swarm.submit_all([Task("flood") for _ in range(30)])
            others = [Task("noop") for _ in range(30)]
            await swarm.submit_all(others)
            await swarm.drain()
            return swarm.results

    results = asyncio.run(main())
    assert len(results) == 60
    assert peak["flood"] == 1
    start = min(r.queued_at for r in results)
    flood_end = max(r.finished_at or 0 for r in results if r.kind == "flood") - start
    others_end = max(r.finished_at or 0 for r in results if r.kind == "noop") - start
    assert flood_end >= 30 * 0.02  # one at a time
    assert others_end < flood_end / 4  # the others did not queue behind the flood


def test_a_repeated_idempotency_key_runs_and_records_once() -> None:
    runs: list[str] = []

    def once(payload: Any, agent: AgentContext) -> str:
        runs.append(payload)
        return str(payload)

    async def main() -> tuple[Any, Any, list[Any]]:
        async with Swarm([AgentSpec("a")], handlers={"once": once}) as swarm:
            first = await swarm.execute(Task("once", payload="x", idempotency_key="k1"))
            again = await swarm.execute(Task("once", payload="x", idempotency_key="k1"))
            await swarm.submit_all([Task("once", payload="x", idempotency_key="k1")])
            await swarm.drain()
            return first, again, swarm.results

    first, again, results = asyncio.run(main())
    assert runs == ["x"]
    assert again is first
    assert len(results) == 1


def test_a_keyed_task_the_full_queue_refused_can_be_submitted_again() -> None:
    async def main() -> list[str]:
        queue = QueueSettings(max_queued=1)
        async with Swarm([AgentSpec("a")], queue=queue) as swarm:
            swarm.submit(Task("sleep", payload=0.05, id="busy"))  # takes the only slot
            swarm.submit(Task("noop", id="waiting"))  # fills the queue
            with pytest.raises(Backpressure):
                swarm.submit(Task("noop", id="refused", idempotency_key="k1"))
            await swarm.drain()
            # The refused task never ran: a task with its key is the first, not a duplicate.
            swarm.submit(Task("noop", id="again", idempotency_key="k1"))
            await swarm.drain()
            assert swarm.event_counts["duplicate-submission"] == 0
            return sorted(r.task_id for r in swarm.results)

    assert asyncio.run(main()) == ["again", "busy", "waiting"]


def test_an_open_kind_breaker_sends_new_tasks_to_the_fallback() -> None:
    def api(payload: Any, agent: AgentContext) -> str:
        raise ConnectionError("upstream down")

    def cached(payload: Any, agent: AgentContext) -> str:
        return "stale but useful"

    async def main() -> tuple[list[Any], list[Any]]:
        guard = ResilienceGuard(
            ResilienceSettings(
                breaker=None,
                kind_breaker=BreakerSettings(failure_threshold=3, open_for=60.0),
                retry=None,
                fallbacks={"api": "cached"},
            )
        )
        handlers = {"api": api, "cached": cached}
        async with Swarm([AgentSpec("a")], guard=guard, handlers=handlers) as swarm:
            first = [await swarm.execute(Task("api")) for _ in range(3)]
            later = list(await swarm.run([Task("api") for _ in range(10)]))
            return first + later, list(swarm.events)

    results, events = asyncio.run(main())
    # The first three fail and fall back one by one; then the kind's breaker is open and
    # new tasks go straight to the fallback, without touching the failing handler.
    assert all(r.ok and r.value == "stale but useful" for r in results)
    assert any(e.kind == "breaker-open" and e.subject == "kind:api" for e in events)
    assert all(r.attempts == 1 for r in results[3:])
