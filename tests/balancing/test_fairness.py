"""Long-run shares of the proportional-share strategies follow the agents' weights."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.balancing import get_strategy
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock


def _shares(
    name: str, weights: list[float], costs: list[float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Bind every task (all agents saturated), return each agent's share of tasks and of work."""
    c = Coordinator(get_strategy(name), clock=FakeClock())
    for i, w in enumerate(weights):
        c.add_agent(AgentSpec(f"a{i}", weight=w))
    count: dict[str, float] = {f"a{i}": 0.0 for i in range(len(weights))}
    work = dict(count)
    for cost in costs:
        c.submit(Task("noop", cost=cost))
    for agent, task in c.take_starts():
        count[agent.id] += 1
        work[agent.id] += task.est_cost
    for agent in c.agents.values():
        count[agent.id] += len(agent.backlog)
        work[agent.id] += sum(t.est_cost for t in agent.backlog)
    n, total = sum(count.values()), sum(work.values())
    return {k: v / n for k, v in count.items()}, {k: v / total for k, v in work.items()}


def _expected(weights: list[float]) -> dict[str, float]:
    total = sum(weights)
    return {f"a{i}": w / total for i, w in enumerate(weights)}


@given(
    weights=st.lists(st.sampled_from([1.0, 2.0, 3.0, 5.0]), min_size=2, max_size=5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=30, deadline=None)
def test_cfs_task_shares_within_5_percent_of_weights(weights: list[float], seed: int) -> None:
    rng = random.Random(seed)
    costs = [rng.paretovariate(1.5) * 0.001 for _ in range(5000)]
    count, _ = _shares("cfs", weights, costs)
    for agent, share in _expected(weights).items():
        assert count[agent] == pytest.approx(share, rel=0.05)


@given(
    weights=st.lists(st.sampled_from([1.0, 2.0, 3.0, 5.0]), min_size=2, max_size=5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=30, deadline=None)
def test_wfq_work_shares_within_5_percent_of_weights(weights: list[float], seed: int) -> None:
    rng = random.Random(seed)
    # Heavy-tailed but bounded, so that one task cannot be 5% of all work.
    costs = [min(rng.paretovariate(1.5), 20.0) * 0.001 for _ in range(5000)]
    _, work = _shares("weighted-fair-queuing", weights, costs)
    for agent, share in _expected(weights).items():
        assert work[agent] == pytest.approx(share, rel=0.05)


def test_round_robin_ignores_weights_and_wfq_does_not() -> None:
    # The contrast that makes the fairness tests meaningful.
    costs = [0.001] * 3000
    rr, _ = _shares("round-robin", [1.0, 3.0], costs)
    assert rr["a0"] == pytest.approx(0.5, rel=0.01)
    _, wfq = _shares("weighted-fair-queuing", [1.0, 3.0], costs)
    assert wfq["a0"] == pytest.approx(0.25, rel=0.05)


def test_weighted_round_robin_is_smooth() -> None:
    # Weights 5:1:1 -> every window of 7 consecutive choices holds each agent its share.
    c = Coordinator(get_strategy("weighted-round-robin"), clock=FakeClock())
    for name, w in (("a", 5.0), ("b", 1.0), ("c", 1.0)):
        c.add_agent(AgentSpec(name, weight=w))
    order: list[str] = []
    for _ in range(70):
        c.submit(Task("noop"))
        order.extend(agent.id for agent, _ in c.take_starts())
    # take_starts only reports started tasks; the rest wait in backlogs in bind order.
    bound = order + [t.id for a in c.agents.values() for t in a.backlog]
    assert len(bound) == 70
    chosen = [
        a.id for a in c.agents.values() for _ in range(len(a.backlog))
    ]  # per-agent counts are what matter for the share
    counts = {a: order.count(a) + chosen.count(a) for a in "abc"}
    assert counts == {"a": 50, "b": 10, "c": 10}


def test_new_cfs_agent_does_not_take_a_burst() -> None:
    # A newcomer starts at the minimum virtual runtime, so it gets its share, not a backlog.
    c = Coordinator(get_strategy("cfs"), clock=FakeClock())
    c.add_agent(AgentSpec("old"))
    for _ in range(100):
        c.submit(Task("noop"))
    c.take_starts()
    c.add_agent(AgentSpec("new"))
    for _ in range(100):
        c.submit(Task("noop"))
    c.take_starts()
    new = c.agent("new")
    assert new.in_flight + len(new.backlog) == pytest.approx(50, abs=1)
