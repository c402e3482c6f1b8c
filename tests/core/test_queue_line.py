"""A queue's line (`_Line`: two lists and the place where the line starts) keeps its
entries exactly as a double-ended queue of them would, through long runs that make it cut
off the entries taken."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.model import Task
from swarmperf.core.queueing import _Line

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 900)),
        st.tuples(st.just("pop"), st.integers(1, 900)),
        st.tuples(st.just("front"), st.integers(1, 3)),
        st.tuples(st.just("stale"), st.integers(0, 50)),
        st.tuples(st.just("remove"), st.integers(0, 50)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_a_line_keeps_its_entries_as_a_deque_would(ops: list[tuple[str, int]]) -> None:
    line = _Line()
    model: deque[tuple[int, Task]] = deque()
    popped: list[Task] = []
    seq = 0

    def live(task: Task, entry_seq: int) -> bool:
        return task.seq == entry_seq

    for op, n in ops:
        if op == "append":
            for _ in range(n):
                task = Task("k")
                task.seq = seq
                line.append(seq, task)
                model.append((seq, task))
                seq += 1
        elif op == "pop":
            for _ in range(n):
                expected = None
                while model:
                    s, task = model.popleft()
                    if live(task, s):
                        expected = task
                        break
                got = line.pop_live()
                assert got is expected
                if got is not None:
                    popped.append(got)
        elif op == "front":
            # Tasks taken a moment ago go back to the front, the last taken first.
            for _ in range(min(n, len(popped))):
                task = popped.pop()
                line.appendleft(task.seq, task)
                model.appendleft((task.seq, task))
        elif op == "stale" and model:
            # A task taken out of order (by aging): its entry stays, stale.
            s, task = model[n % len(model)]
            task.seq = -1
        elif op == "remove" and model:
            s, task = model[n % len(model)]
            line.remove(task)
            i = next(i for i, (_, t) in enumerate(model) if t is task)
            del model[i]
        assert len(line) == len(model)
        assert bool(line) == bool(model)
        assert line.entries() == list(model)
        assert line.live(10) == [t for s, t in model if live(t, s)][:10]
        if model:
            assert line.first() is model[0][1]
            assert line.first_seq() == model[0][0]
            assert line.first_is_stale() == (not live(model[0][1], model[0][0]))
