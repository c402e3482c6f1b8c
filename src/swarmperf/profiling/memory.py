"""Memory over a profile's window: tracemalloc's top allocation sites and how they grew.

tracemalloc starts at the window's start (unless something traces already), a snapshot is
taken then and at the end, and the two are compared by source line: what grew over the
window is where memory is retained or leaks. Tracing slows every allocation down while it
runs, so it is on only with `--memory` and only for the window.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

TOP = 15
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class MemoryWindow:
    """`start()`, then `stop()` for the top sites and their growth over the window."""

    def __init__(self, top: int = TOP) -> None:
        self.top = top
        self._started_here = False
        self._before: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(1)
            self._started_here = True
        self._before = tracemalloc.take_snapshot().filter_traces(_IGNORED)

    def stop(self) -> dict[str, Any]:
        assert self._before is not None, "start() first"
        after = tracemalloc.take_snapshot().filter_traces(_IGNORED)
        traced, peak = tracemalloc.get_traced_memory()
        if self._started_here:
            tracemalloc.stop()
        growth = after.compare_to(self._before, "lineno")
        growth.sort(key=lambda s: (s.size_diff, s.size), reverse=True)
        largest = after.statistics("lineno")[: self.top]
        return {
            "traced_bytes": traced,
            "peak_bytes": peak,
            "growth_bytes": sum(s.size_diff for s in growth),
            "top_growth": [_diff_row(s) for s in growth[: self.top] if s.size_diff > 0],
            "top_sites": [_site_row(s) for s in largest],
            "note": None
            if self._started_here
            else "tracemalloc was on already: sizes include what it traced before the window",
        }


def _where(trace: tracemalloc.Traceback) -> tuple[str, int]:
    frame = trace[0]
    return frame.filename, frame.lineno


def _diff_row(stat: tracemalloc.StatisticDiff) -> dict[str, Any]:
    file, line = _where(stat.traceback)
    return {
        "file": file,
        "line": line,
        "size_bytes": stat.size,
        "size_diff_bytes": stat.size_diff,
        "count": stat.count,
        "count_diff": stat.count_diff,
    }


def _site_row(stat: tracemalloc.Statistic) -> dict[str, Any]:
    file, line = _where(stat.traceback)
    return {"file": file, "line": line, "size_bytes": stat.size, "count": stat.count}
