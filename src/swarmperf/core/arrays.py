"""Unboxed arrays for the compiled core (librt's `vec`), and plain lists where it runs as Python.

Compiled with mypyc, `vec[float]` and `vec[i64]` hold their numbers unboxed and in one
block, where a list holds pointers to objects spread over the heap; the strategies keep
their heaps in them (`swarmperf.balancing.strategies`). Run as Python, a `vec` is slower
than a list at everything, and growing one makes a new object each time: there the same
names stand for lists. The type checker, and so the compiler, sees librt's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from librt.vecs import append, vec
    from mypy_extensions import i64
else:
    i64 = int

    class _ListOf:
        """`vec[T]`: a constructor of lists."""

        def __getitem__(self, item_type: Any) -> Any:
            return _new

    def _new(items: Any = (), *, capacity: int = 0) -> list[Any]:
        return list(items)

    def append(v: list[Any], o: Any, /) -> list[Any]:
        v.append(o)
        return v

    vec = _ListOf()

__all__ = ["append", "i64", "vec"]
