"""A minimal discrete-event engine: a heap of timed actions and the virtual clock they move.

Entries hold `(when, seq, action, arg)`. `seq` grows with every schedule call, so actions
due at the same instant run in the order they were scheduled: a run is a pure function of
what was scheduled, never of how the heap happens to break ties.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

Action = Callable[[Any], object]  # its return value is ignored


class Entry:
    """One scheduled action, ordered by time, then by when it was scheduled.

    An object rather than a tuple: compiled, its time is a double inside it, so a heap of
    thousands of them compares without chasing a pointer to a float for each comparison
    (the cache misses that dominate a large simulation's heap).
    """

    __slots__ = ("action", "arg", "seq", "when")

    def __init__(self, when: float, seq: int, action: Action, arg: Any) -> None:
        self.when = when
        self.seq = seq
        self.action = action
        self.arg = arg

    def __lt__(self, other: Entry) -> bool:
        return self.when < other.when or (self.when == other.when and self.seq < other.seq)

    def __repr__(self) -> str:
        return f"Entry({self.when!r}, {self.seq!r}, {self.action!r}, {self.arg!r})"


class VirtualClock:
    """Seconds of simulated time. Call it to read the time: it fits wherever a
    `Callable[[], float]` clock is injected (the coordinator, a guard, a breaker)."""

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now!r})"


class Engine:
    """Runs actions in time order; time jumps from one action to the next."""

    __slots__ = ("_heap", "_seq", "_stopped", "clock", "processed")

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        self._stopped = False
        self.processed = 0  # actions run so far

    @property
    def now(self) -> float:
        return self.clock.now

    def __len__(self) -> int:
        """Actions scheduled and not yet run."""
        return len(self._heap)

    def at(self, when: float, action: Action, arg: Any = None) -> None:
        """Run `action(arg)` at virtual time `when` (not before now)."""
        if not when >= self.clock.now:  # also refuses NaN
            raise ValueError(
                f"Cannot schedule at {when!r}: it is before now ({self.clock.now!r}). "
                "Schedule at now or later."
            )
        heapq.heappush(self._heap, Entry(when, next(self._seq), action, arg))

    def after(self, delay: float, action: Action, arg: Any = None) -> None:
        """Run `action(arg)` `delay` seconds from now."""
        self.at(self.clock.now + delay, action, arg)

    def next_time(self) -> float | None:
        """When the next action is due; None when nothing is scheduled."""
        return self._heap[0].when if self._heap else None

    def stop(self) -> None:
        """Make `run` return after the action that is running now."""
        self._stopped = True

    def run(self, until: float = math.inf) -> int:
        """Run actions in time order until none is left, one is due after `until`, or
        `stop` is called. Returns how many ran. With a finite `until` and nothing left
        before it, the clock ends at `until`."""
        heap = self._heap
        clock = self.clock
        pop = heapq.heappop
        self._stopped = False
        n = 0
        if until == math.inf:
            # The usual case, without the comparison against `until`.
            while heap and not self._stopped:
                entry = pop(heap)
                clock.now = entry.when
                entry.action(entry.arg)
                n += 1
        else:
            while heap and not self._stopped:
                entry = heap[0]
                if entry.when > until:
                    break
                pop(heap)
                clock.now = entry.when
                entry.action(entry.arg)
                n += 1
        self.processed += n
        if not self._stopped and until != math.inf and clock.now < until:
            clock.now = until
        return n
