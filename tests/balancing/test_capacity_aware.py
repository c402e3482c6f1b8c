"""Capacity-aware: big tasks stay off slow agents at the end; stale estimates get probed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.balancing import get_strategy
from swarmperf.balancing.strategies import CapacityAware
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock


def _swarm(clock: FakeClock) -> Coordinator:
    c = Coordinator(get_strategy("capacity-aware"), clock=clock)
    c.add_agent(AgentSpec("fast"))
    c.add_agent(AgentSpec("slow"))
    return c


def _set_speed(c: Coordinator, agent_id: str, speed: float) -> None:
    agent = c.agent(agent_id)
    agent.speed = speed
    agent.version += 1
    c.strategy.changed(agent, c.clock())


def _teach_slowness(c: Coordinator, clock: FakeClock) -> None:
    # As measured after a while: the slow agent does a tenth of the fast one's work.
    _set_speed(c, "fast", 1.0)
    _set_speed(c, "slow", 0.1)


def test_big_last_task_waits_for_the_fast_agent() -> None:
    clock = FakeClock()
    c = _swarm(clock)
    _teach_slowness(c, clock)
    c.submit(Task("noop", cost=0.05))
    [(first, small)] = c.take_starts()
    assert first.id == "fast"
    # The slow agent is free, but a 1 s task would take it 10 s, while the fast agent
    # frees up in 0.05 s: the task waits for the fast one.
    c.submit(Task("noop", cost=1.0))
    assert c.take_starts() == []
    clock.advance(0.05)
    c.finish("fast", small, 0.0, clock.now)
    [(agent, _)] = c.take_starts()
    assert agent.id == "fast"


def test_slow_agent_helps_while_there_is_work_to_overlap() -> None:
    clock = FakeClock()
    c = _swarm(clock)
    _teach_slowness(c, clock)
    # Plenty of queued work: the horizon is long, so the slow agent takes tasks too.
    for _ in range(100):
        c.submit(Task("noop", cost=0.01))
    assert {agent.id for agent, _ in c.take_starts()} == {"fast", "slow"}


def _fast_busy_slow_idle(clock: FakeClock) -> Coordinator:
    """The fast agent running a small task; the slow one idle, its estimate stale and
    hopeless, so that a big task waits for the fast one unless the slow one is probed."""
    c = _swarm(clock)
    _teach_slowness(c, clock)
    _set_speed(c, "slow", 1e-6)
    c.submit(Task("noop", cost=0.05))
    [(agent, _)] = c.take_starts()
    assert agent.id == "fast"
    return c


def test_an_agent_idle_for_long_is_probed_despite_a_low_estimate() -> None:
    clock = FakeClock()
    c = _fast_busy_slow_idle(clock)
    c.submit(Task("noop", cost=0.5))
    assert c.take_starts() == []  # held for the fast agent
    clock.advance(1.0)  # PROBE_AFTER
    c.submit(Task("noop", cost=0.5))
    started = c.take_starts()
    assert [a.id for a, _ in started] == ["slow"]


def test_idle_time_runs_from_when_the_agent_fell_idle_not_from_its_latest_change() -> None:
    clock = FakeClock()
    c = _fast_busy_slow_idle(clock)
    clock.advance(0.6)
    _set_speed(c, "slow", 1e-6)  # changed while idle: still idle since before
    clock.advance(0.4)
    c.submit(Task("noop", cost=0.5))
    assert [a.id for a, _ in c.take_starts()] == ["slow"]


def test_a_newcomer_with_the_number_of_an_idle_agent_that_left_is_not_idle_for_its_time() -> None:
    clock = FakeClock()
    c = _fast_busy_slow_idle(clock)
    clock.advance(1.0)
    c.remove_agent("slow")  # idle for 1 s when it left
    newcomer = c.add_agent(AgentSpec("newcomer"))
    _set_speed(c, "newcomer", 1e-6)
    clock.advance(0.5)  # the newcomer has been idle for 0.5 s, not 1.5
    c.submit(Task("noop", cost=0.5))
    assert c.take_starts() == []  # held for the fast agent, no probe yet
    clock.advance(0.5)
    c.submit(Task("noop", cost=0.5))
    assert [a.id for a, _ in c.take_starts()] == [newcomer.id]


@given(
    speeds=st.lists(st.floats(0.05, 2.0), min_size=2, max_size=6),
    busy=st.lists(st.booleans(), min_size=6, max_size=6),
    costs=st.lists(st.floats(0.001, 5.0), min_size=1, max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_remembered_holds_decide_as_a_full_look_would(
    speeds: list[float], busy: list[bool], costs: list[float]
) -> None:
    clock = FakeClock()
    c = Coordinator(get_strategy("capacity-aware"), clock=clock)
    for i, speed in enumerate(speeds):
        c.add_agent(AgentSpec(f"a{i}"))
        _set_speed(c, f"a{i}", speed)
    for i in range(len(speeds)):
        if busy[i]:
            c.submit(Task("noop", cost=1.0))
            c.take_starts()
    strategy = c.strategy
    assert isinstance(strategy, CapacityAware)
    for cost in costs:
        task = Task("noop", cost=cost)
        task.est_cost = cost
        remembered = strategy.choose(task, clock.now)
        strategy._held = None  # forget, and look again from scratch
        assert strategy.choose(task, clock.now) is remembered
