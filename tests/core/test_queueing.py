"""The central queue: priority order, tenant fairness, aging bound and admission control."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from swarmperf.balancing import get_strategy
from swarmperf.core.errors import Backpressure, ConfigError, QuotaExceeded
from swarmperf.core.model import AgentSpec, Priority, Task
from swarmperf.core.queueing import QueueSettings, TaskQueue
from swarmperf.runtime.coordinator import Coordinator
from tests.conftest import FakeClock

MAX_WAIT = 10.0
URGENT = 1.0


class QueueMachine(RuleBasedStateMachine):
    """Checks every pop against a plain model of what may legally come out next."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.queue = TaskQueue(QueueSettings(max_wait=MAX_WAIT, urgent_within=URGENT))
        self.model: list[Task] = []  # queued tasks in arrival order

    @rule(
        priority=st.sampled_from(list(Priority)),
        tenant=st.sampled_from(["a", "b", "c"]),
        rank=st.integers(0, 3),
        deadline_in=st.one_of(st.none(), st.floats(0.0, 20.0)),
    )
    def push(self, priority: Priority, tenant: str, rank: int, deadline_in: float | None) -> None:
        deadline = None if deadline_in is None else self.now + deadline_in
        task = Task("noop", priority=priority, tenant=tenant, rank=rank, deadline=deadline)
        task.est_cost = 1.0
        self.queue.push(task, self.now)
        self.model.append(task)

    @rule(dt=st.floats(0.0, 6.0))
    def wait(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: bool(self.model))
    @rule()
    def pop(self) -> None:
        task = self.queue.pop(self.now)
        assert task is not None
        oldest = self.model[0]
        if self.now - oldest.enqueued_at >= MAX_WAIT:
            # Aging: a task that waited max_wait goes before anything else.
            assert task is oldest
        elif (
            task.priority is Priority.CRITICAL
            and task.deadline is not None
            and (task.deadline - self.now <= URGENT)
        ):
            critical = [t for t in self.model if t.priority is Priority.CRITICAL]
            earliest = min(t.deadline if t.deadline is not None else float("inf") for t in critical)
            assert task.deadline == earliest
        same_line = [
            t for t in self.model if t.priority is task.priority and t.tenant == task.tenant
        ]
        if task.priority is Priority.HIGH:
            same = [t for t in self.model if t.priority is Priority.HIGH]
            if task is not oldest:
                assert task.rank == max(t.rank for t in same)
        elif task.priority in (Priority.NORMAL, Priority.LOW):
            # First in, first out within a tenant's line.
            assert task is same_line[0]
        self.model.remove(task)

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.queue) == len(self.model)
        counts = Counter(t.priority.name.lower() for t in self.model)
        assert self.queue.counts() == {
            p.name.lower(): counts.get(p.name.lower(), 0) for p in Priority
        }


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)


def _backlogged_order(n: int) -> list[Priority]:
    q = TaskQueue(QueueSettings(max_wait=1e9))
    for level in Priority:
        for _ in range(n):
            q.push(Task("noop", priority=level), 0.0)
    return [task.priority for task in (q.pop(0.0) for _ in range(n)) if task is not None]


def test_levels_are_served_in_proportion_to_their_weights() -> None:
    served = Counter(_backlogged_order(1000))
    total = sum(served.values())
    assert served[Priority.CRITICAL] / total == pytest.approx(0.4, abs=0.01)
    assert served[Priority.HIGH] / total == pytest.approx(0.3, abs=0.01)
    assert served[Priority.NORMAL] / total == pytest.approx(0.2, abs=0.01)
    assert served[Priority.LOW] / total == pytest.approx(0.1, abs=0.01)


def test_tenants_share_the_normal_level_by_weight() -> None:
    q = TaskQueue(QueueSettings(tenant_weights={"big": 3.0}))
    for _ in range(400):
        q.push(Task("noop", tenant="big"), 0.0)
        q.push(Task("noop", tenant="small"), 0.0)
    first = [t.tenant for t in (q.pop(0.0) for _ in range(400)) if t is not None]
    assert Counter(first) == {"big": 300, "small": 100}


def test_urgent_critical_task_jumps_the_line() -> None:
    q = TaskQueue(QueueSettings(urgent_within=1.0))
    for _ in range(10):
        q.push(Task("noop", priority=Priority.LOW), 0.0)
    urgent = Task("noop", priority=Priority.CRITICAL, deadline=0.5)
    q.push(urgent, 0.0)
    assert q.pop(0.0) is urgent


def test_aged_task_goes_first() -> None:
    q = TaskQueue(QueueSettings(max_wait=5.0))
    old = Task("noop", priority=Priority.LOW)
    q.push(old, 0.0)
    for _ in range(50):
        q.push(Task("noop", priority=Priority.CRITICAL), 4.0)
    assert q.pop(4.5) is not old
    assert q.pop(5.0) is old


def test_aging_bounds_the_wait_under_a_flood_of_urgent_work() -> None:
    # Critical work arrives twice as fast as it is served; a low task still gets out
    # within max_wait plus one service interval.
    q = TaskQueue(QueueSettings(max_wait=5.0))
    low = Task("noop", priority=Priority.LOW)
    q.push(low, 0.0)
    served_at = None
    now = 0.0
    while served_at is None and now < 100.0:
        for _ in range(2):
            q.push(Task("noop", priority=Priority.CRITICAL, deadline=now + 0.5), now)
        if q.pop(now) is low:
            served_at = now
        now += 0.1
    assert served_at is not None
    assert 5.0 <= served_at <= 5.0 + 0.1 + 1e-9


def test_full_queue_rejects_with_a_clear_error_and_keeps_nothing() -> None:
    c = Coordinator(get_strategy("round-robin"), QueueSettings(max_queued=3), clock=FakeClock())
    for _ in range(3):
        c.submit(Task("noop"))
    rejected = Task("noop")
    with pytest.raises(Backpressure, match="max_queued") as info:
        c.submit(rejected)
    assert info.value.limit == 3
    assert c.pending == 3
    assert len(c.queue) == 3


def test_tenant_quota_is_enforced_per_tenant() -> None:
    c = Coordinator(
        get_strategy("round-robin"),
        QueueSettings(tenant_quotas={"noisy": 2}),
        clock=FakeClock(),
    )
    c.submit(Task("noop", tenant="noisy"))
    c.submit(Task("noop", tenant="noisy"))
    with pytest.raises(QuotaExceeded, match="noisy"):
        c.submit(Task("noop", tenant="noisy"))
    c.submit(Task("noop", tenant="quiet"))  # others are not affected
    # Once a noisy task starts, the tenant has room again.
    c.add_agent(AgentSpec("a"))
    c.take_starts()
    c.submit(Task("noop", tenant="noisy"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_queued": 0}, "queue.max_queued"),
        ({"level_weights": (1.0, 1.0, 1.0)}, "queue.level_weights"),
        ({"max_wait": 0.0}, "queue.max_wait"),
        ({"tenant_quotas": {"t": 0}}, "queue.tenant_quotas[t]"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        QueueSettings(**kwargs)  # type: ignore[arg-type]
