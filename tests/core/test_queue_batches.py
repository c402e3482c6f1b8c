"""The queue's batch calls leave it exactly as the one-task calls do: `push_many` as a
`push` per task, `line` then `take_first` as a `pop` per task taken."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.model import Priority, Task
from swarmperf.core.queueing import QueueSettings, TaskQueue

_SETTINGS = QueueSettings(max_wait=3.0, urgent_within=0.5, tenant_weights={"b": 2.0})

# Mostly normal work of one tenant (where the queue is one line), with the other levels and
# a second tenant coming and going around it.
_push = st.tuples(
    st.just("push"),
    st.lists(
        st.tuples(
            st.sampled_from([*([Priority.NORMAL] * 6), *Priority]),
            st.sampled_from(["a"] * 5 + ["b"]),
            st.sampled_from([0.5, 1.0, 4.0]),
        ),
        min_size=1,
        max_size=8,
    ),
)
_ops = st.lists(
    st.one_of(
        _push,
        _push,
        st.tuples(st.just("run"), st.integers(1, 6)),
        st.tuples(st.just("pop"), st.integers(1, 3)),
        st.tuples(st.just("tick"), st.sampled_from([0.0, 0.4, 2.0])),
    ),
    max_size=60,
)


def _state(queue: TaskQueue) -> tuple[Any, ...]:
    """What decides the order of later pops: turns charged to levels and tenants."""
    rotations = (queue._normal, queue._low)
    return (
        len(queue),
        queue.counts(),
        list(queue._level_pass),
        queue._level_vt,
        [(r._vt, dict(r._pass), [(p, t) for p, _, t in sorted(r._heap)]) for r in rotations],
    )


def _replay(ops: list[tuple[Any, ...]], batched: bool) -> list[Any]:
    queue = TaskQueue(_SETTINGS)
    now = 0.0
    n = 0
    log: list[Any] = []
    for op in ops:
        if op[0] == "push":
            tasks = []
            for priority, tenant, cost in op[1]:
                task = Task("k", id=f"t{n}", priority=priority, tenant=tenant, cost=cost)
                task.est_cost = cost
                deadline = now + cost if priority is Priority.CRITICAL else None
                task.deadline = deadline
                tasks.append(task)
                n += 1
            if batched:
                queue.push_many(tasks, now)
            else:
                for task in tasks:
                    queue.push(task, now)
        elif op[0] == "run":
            line = queue.line(op[1]) if batched else None
            if line is not None:
                queue.take_first(line, len(line), now)
                log.append(("run", [t.id for t in line]))
            elif batched:
                log.append(("run", None))
            else:
                # The one-task calls: pop as many as `line` would have shown, if it would.
                shown = queue.line(op[1])
                log.append(("run", None if shown is None else [_pop(queue, now) for _ in shown]))
        elif op[0] == "pop":
            log.append(("pop", [_pop(queue, now) for _ in range(op[1])]))
        else:
            now += op[1]
        log.append(_state(queue))
    log.append(("drain", [t.id for t in queue.drain()]))
    return log


def _pop(queue: TaskQueue, now: float) -> str | None:
    task = queue.pop(now)
    return None if task is None else task.id


@settings(max_examples=400, deadline=None)
@given(ops=_ops)
def test_batch_calls_leave_the_queue_as_one_task_calls_do(ops: list[tuple[Any, ...]]) -> None:
    assert _replay(ops, batched=True) == _replay(ops, batched=False)


def test_a_run_is_taken_in_order_and_charged_a_turn_each() -> None:
    queue = TaskQueue(_SETTINGS)
    queue.push_many([Task("k", id=f"t{i}") for i in range(5)], 0.0)
    line = queue.line(3)
    assert line is not None
    assert [t.id for t in line] == ["t0", "t1", "t2"]
    queue.take_first(line, 3, 0.0)
    assert len(queue) == 2
    assert queue._normal._pass["default"] == 3.0
    assert [t.id for t in queue.drain()] == ["t3", "t4"]
