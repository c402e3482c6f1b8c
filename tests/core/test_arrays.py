"""Run as Python, the core's arrays are lists that answer as librt's `vec` does."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from librt import vecs

import swarmperf.core.arrays as arrays

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.floats(-1e9, 1e9)),
        st.tuples(st.just("set"), st.floats(-1e9, 1e9)),
    ),
    max_size=60,
)


def _apply(module: Any, ops: list[tuple[str, float]]) -> list[Any]:
    v = module.vec[float]()
    seen: list[Any] = []
    for op, x in ops:
        if op == "append":
            v = module.append(v, x)
        elif op == "set" and len(v):
            v[len(v) // 2] = x
        seen.append([v[i] for i in range(len(v))])
    return seen


@given(ops=_ops)
def test_lists_answer_as_vecs(ops: list[tuple[str, float]]) -> None:
    assert _apply(arrays, ops) == _apply(vecs, ops)


def test_as_python_they_are_lists() -> None:
    assert isinstance(arrays.vec[float](), list)
    assert arrays.i64 is int
