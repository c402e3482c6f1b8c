"""Looking past held tasks in place, and skipping those the strategy would hold anyway,
decides exactly as popping each task, asking about it and pushing it back does; binding a
run of tasks where they stand decides as popping and binding each; admitting a batch in
one call decides as admitting its tasks one by one."""

from __future__ import annotations

from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf import STRATEGIES, AgentSpec, Task
from swarmperf.balancing.agents import AgentState
from swarmperf.balancing.strategies import LoadBalancer, get_strategy
from swarmperf.core.errors import Backpressure
from swarmperf.core.model import Priority
from swarmperf.core.queueing import QueueSettings
from swarmperf.runtime.coordinator import Coordinator


class _AskEveryTime:
    """A strategy whose `choose` works each answer out in full: it forgets what it held
    before every question, and offers no rule to skip questions."""

    name: ClassVar[str] = ""
    late_binding: ClassVar[bool] = False
    steals: ClassVar[bool] = False

    def __init__(self, inner: LoadBalancer) -> None:
        self.inner = inner

    @property
    def transfer_cost(self) -> float:
        return self.inner.transfer_cost

    @transfer_cost.setter
    def transfer_cost(self, value: float) -> None:
        self.inner.transfer_cost = value

    def attach(self, swarm: Any) -> None:
        self.inner.attach(swarm)

    def add(self, agent: AgentState, now: float) -> None:
        self.inner.add(agent, now)

    def remove(self, agent: AgentState) -> None:
        self.inner.remove(agent)

    def choose(self, task: Task, now: float) -> AgentState | None:
        if hasattr(self.inner, "_held"):
            self.inner._held = None
        return self.inner.choose(task, now)

    def refused_from(self, now: float) -> float:
        return float("inf")

    def assigned(self, agent: AgentState, task: Task) -> None:
        self.inner.assigned(agent, task)

    def changed(self, agent: AgentState, now: float) -> None:
        self.inner.changed(agent, now)

    def steal_from(self, thief: AgentState, now: float) -> AgentState | None:
        return self.inner.steal_from(thief, now)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# Mostly normal work from one tenant, where the queue is one line; the rest makes the
# other levels and a second tenant come and go around it.
_submit = st.tuples(
    st.just("submit"),
    st.sampled_from([*([Priority.NORMAL] * 6), *Priority]),
    st.sampled_from(["a"] * 5 + ["b"]),
    st.sampled_from([0.05, 0.5, 1.0, 5.0, 50.0]),
    st.integers(0, 2),
    st.integers(1, 6),
)
_tick = st.tuples(st.just("tick"), st.sampled_from([0.0, 0.01, 0.2, 2.0]))
_finish = st.tuples(st.just("finish"), st.booleans())
_ops = st.lists(st.one_of(_submit, _submit, _tick, _finish), max_size=120)


def _run(
    strategy: str,
    agents: list[tuple[int, float]],
    ops: list[tuple[Any, ...]],
    lookahead: int,
    reference: bool,
    max_queued: int = 100_000,
    quotas: dict[str, int] | None = None,
) -> list[Any]:
    clock = _Clock()
    queue = QueueSettings(
        max_queued=max_queued,
        max_wait=4.0,
        urgent_within=0.5,
        tenant_weights={"b": 2.0},
        tenant_quotas=quotas or {},
    )
    chosen: LoadBalancer = get_strategy(strategy, seed=3)
    if reference:
        inner = chosen

        class Kind(_AskEveryTime):
            name = inner.name
            late_binding = inner.late_binding
            steals = inner.steals

        chosen = Kind(inner)
    c = Coordinator(chosen, queue, clock=clock, lookahead=lookahead)
    c.in_place = not reference
    for i, (concurrency, weight) in enumerate(agents):
        c.add_agent(AgentSpec(f"a{i}", concurrency=concurrency, weight=weight))
    log: list[Any] = []
    weights = {f"a{i}": w for i, (_, w) in enumerate(agents)}
    # (end, agent, task, started): an agent runs a task in cost / weight seconds, so the
    # strategies that measure speeds see the agents differ.
    running: list[tuple[float, str, Task, float]] = []
    n = 0
    for op in ops:
        if op[0] == "submit":
            _, priority, tenant, cost, rank, count = op
            deadline = clock.now + cost if priority is Priority.CRITICAL else None
            batch = [
                Task(
                    "k",
                    id=f"t{n + i}",
                    priority=priority,
                    tenant=tenant,
                    cost=cost * (1 + (n + i) % 3),
                    rank=rank,
                    deadline=deadline,
                )
                for i in range(count)
            ]
            n += count
            # The reference admits one by one until a task is refused; the other admits
            # the batch in one call.
            admitted = 0
            if reference:
                for task in batch:
                    try:
                        c.submit(task)
                    except Backpressure:
                        break
                    admitted += 1
            else:
                admitted = c.submit_many(batch)
            log.append(("admitted", admitted))
        elif op[0] == "tick":
            clock.now += op[1]
        elif running:
            running.sort(key=lambda r: (r[0], r[2].id))
            end, agent, task, started = running.pop(0)
            clock.now = max(clock.now, end)
            error = "boom" if op[1] else None
            result = c.finish(agent, task, started, clock.now, error)
            log.append(("done", task.id, None if result is None else result.status))
        for agent_state, task in c.take_starts():
            end = clock.now + (task.cost or 0.0) / weights[agent_state.id]
            running.append((end, agent_state.id, task, clock.now))
            log.append(("start", task.id, agent_state.id, clock.now))
    log.append(("left", [t.id for t in c.queue.drain()]))
    return log


@settings(max_examples=500, deadline=None)
@given(
    # The strategy that holds tasks back is the one this is about; the others never do.
    strategy=st.sampled_from(["capacity-aware"] * 8 + sorted(STRATEGIES)),
    agents=st.lists(
        st.tuples(st.integers(1, 2), st.sampled_from([0.5, 1.0, 3.0])), min_size=1, max_size=5
    ),
    ops=_ops,
    lookahead=st.integers(0, 8),
    max_queued=st.sampled_from([100_000, 100_000, 12]),
    quotas=st.sampled_from([None, None, {"b": 3}]),
)
def test_in_place_decides_as_asking_about_every_task(
    strategy: str,
    agents: list[tuple[int, float]],
    ops: list[tuple[Any, ...]],
    lookahead: int,
    max_queued: int,
    quotas: dict[str, int] | None,
) -> None:
    args = (strategy, agents, ops, lookahead)
    assert _run(*args, False, max_queued, quotas) == _run(*args, True, max_queued, quotas)


def test_a_held_task_is_looked_past_without_being_taken_out() -> None:
    """The first task waits for the fast agent; the small one behind it goes to the slow
    agent that is free, and the big one keeps its place at the head of the line."""
    clock = _Clock()
    c = Coordinator(get_strategy("capacity-aware", seed=0), clock=clock)
    c.add_agent(AgentSpec("fast", weight=10.0))
    c.add_agent(AgentSpec("slow", weight=1.0))
    c.submit(Task("k", id="warm", cost=1.0))
    started = c.take_starts()
    assert [(a.id, t.id) for a, t in started] == [("fast", "warm")]
    c.submit(Task("k", id="big", cost=100.0))
    c.submit(Task("k", id="small", cost=0.01))
    assert [(a.id, t.id) for a, t in c.take_starts()] == [("slow", "small")]
    assert [t.id for t in c.queue.drain()] == ["big"]
