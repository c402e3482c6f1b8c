"""The discrete-event engine: time order, ties in scheduling order, stopping."""

from __future__ import annotations

import math

import pytest

from swarmperf.sim import Engine, VirtualClock


def test_actions_run_in_time_order_and_ties_in_scheduling_order() -> None:
    engine = Engine()
    seen: list[tuple[float, str]] = []

    def note(label: str) -> None:
        seen.append((engine.now, label))

    engine.at(2.0, note, "late")
    engine.at(1.0, note, "first")
    engine.at(1.0, note, "second")
    engine.after(0.5, note, "earliest")
    assert engine.run() == 4
    assert seen == [(0.5, "earliest"), (1.0, "first"), (1.0, "second"), (2.0, "late")]
    assert engine.processed == 4
    assert len(engine) == 0


def test_actions_may_schedule_more_and_time_only_moves_forward() -> None:
    engine = Engine()
    times: list[float] = []

    def tick(left: int) -> None:
        times.append(engine.now)
        if left:
            engine.after(0.25, tick, left - 1)

    engine.at(0.0, tick, 4)
    engine.run()
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_run_until_leaves_later_actions_and_moves_the_clock_to_the_limit() -> None:
    engine = Engine()
    ran: list[float] = []
    engine.at(1.0, ran.append, 1.0)
    engine.at(5.0, ran.append, 5.0)
    assert engine.run(until=3.0) == 1
    assert engine.now == 3.0
    assert engine.next_time() == 5.0
    engine.run()
    assert ran == [1.0, 5.0]


def test_stop_returns_after_the_running_action() -> None:
    engine = Engine()
    ran: list[int] = []

    def stop(i: int) -> None:
        ran.append(i)
        engine.stop()

    engine.at(1.0, stop, 1)
    engine.at(2.0, ran.append, 2)
    engine.run()
    assert ran == [1]
    engine.run()
    assert ran == [1, 2]


@pytest.mark.parametrize("when", [-1.0, math.nan])
def test_scheduling_in_the_past_is_refused(when: float) -> None:
    engine = Engine(VirtualClock(0.0))
    with pytest.raises(ValueError, match="before now"):
        engine.at(when, print)


def test_the_clock_is_an_injectable_callable() -> None:
    clock = VirtualClock(3.5)
    engine = Engine(clock)
    assert clock() == engine.now == 3.5
    assert "3.5" in repr(clock)
