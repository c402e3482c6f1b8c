"""`Restarts`: which restart attempt comes next for a lost agent; one attempt, one count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarmperf.resilience.restart import RestartPolicy, Restarts

POLICY = RestartPolicy(max_restarts=3, base_delay=0.5, max_delay=1.5, reset_after=60.0)


def test_a_loss_then_failed_attempts_count_once_each_then_give_up() -> None:
    r = Restarts(POLICY)
    assert r.lost("a", 0.0) == (1, 0.5)
    assert r.failed("a", 1.0) == (2, 1.0)
    assert r.failed("a", 2.0) == (3, 1.5)  # capped at max_delay
    assert r.failed("a", 3.0) is None
    assert r.given_up("a")
    assert r.attempts("a") == 3
    # Nothing after giving up, whatever is reported next.
    assert r.lost("a", 100.0) is None
    assert r.failed("a", 101.0) is None
    assert not r.given_up("b")


def test_an_agent_that_stays_up_long_enough_counts_from_zero_again() -> None:
    r = Restarts(POLICY)
    assert r.lost("a", 0.0) == (1, 0.5)
    r.started("a", 1.0)
    assert r.lost("a", 10.0) == (2, 1.0)  # up for 9 s: the same run of losses
    r.started("a", 11.0)
    assert r.lost("a", 71.0) == (1, 0.5)  # up for 60 s: a fresh start


@given(
    st.lists(st.sampled_from(["lost", "failed", "started"]), max_size=40),
    st.integers(min_value=0, max_value=5),
)
def test_attempts_are_numbered_one_by_one_and_never_pass_the_policy(
    ops: list[str], max_restarts: int
) -> None:
    r = Restarts(RestartPolicy(max_restarts=max_restarts, reset_after=1e9))
    numbers: list[int] = []
    for i, op in enumerate(ops):
        if op == "started":
            r.started("a", float(i))
            continue
        decision = r.lost("a", float(i)) if op == "lost" else r.failed("a", float(i))
        if decision is not None:
            numbers.append(decision[0])
        elif not r.given_up("a"):
            raise AssertionError("None without giving up")
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) <= max_restarts
    assert r.attempts("a") == len(numbers)
