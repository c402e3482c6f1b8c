"""Message patterns: each sends what it says, from the agent that ran the task."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.messaging import CommunicationMatrix
from swarmperf.runtime.traffic import MessagePattern
from swarmperf.sim import Simulation

NAMES = [f"a{i}" for i in range(6)]


def simulate(pattern: MessagePattern, tasks: int) -> CommunicationMatrix:
    sim = Simulation(
        [AgentSpec(a) for a in NAMES],
        traffic=pattern.traffic(NAMES),
        strategy="round-robin",
    )
    assert sim.messages is not None
    sim.run([Task("sleep", 0.01, cost=0.01) for _ in range(tasks)])
    return sim.messages.matrix()


@settings(max_examples=20, deadline=None)
@given(
    tasks=st.integers(1, 60),
    to=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True),
)
def test_gather_sends_each_task_to_its_receivers_in_turn(tasks: int, to: list[str]) -> None:
    matrix = simulate(MessagePattern("gather", tuple(to), 10), tasks)
    received = matrix.messages.sum(axis=0)
    index = [matrix.agents.index(a) for a in to]
    assert received.sum() == tasks
    assert received[index].sum() == tasks
    assert received[index].max() - received[index].min() <= 1


def test_broadcast_sends_to_every_other_agent() -> None:
    matrix = simulate(MessagePattern("broadcast", (), 10), 12)
    assert matrix.messages.sum() == 12 * (len(NAMES) - 1)
    assert np.trace(matrix.messages) == 0


def test_a_pipeline_passes_every_item_down_its_stages() -> None:
    stages = ("a1", "a3", "a5")
    matrix = simulate(MessagePattern("pipeline", stages, 10), 9)
    index = {a: i for i, a in enumerate(matrix.agents)}
    assert matrix.messages[:, index["a1"]].sum() == 9
    assert matrix.messages[index["a1"], index["a3"]] == 9
    assert matrix.messages[index["a3"], index["a5"]] == 9
    assert matrix.messages.sum() == 27


def test_random_draws_the_same_receivers_for_the_same_seed() -> None:
    first = simulate(MessagePattern("random", (), 10, count=3, seed=5), 20)
    again = simulate(MessagePattern("random", (), 10, count=3, seed=5), 20)
    other = simulate(MessagePattern("random", (), 10, count=3, seed=6), 20)
    assert first.messages.sum() == 60
    assert (first.messages == again.messages).all()
    assert (first.messages != other.messages).any()


def test_every_message_carries_the_bytes_asked_for() -> None:
    matrix = simulate(MessagePattern("gather", ("a0",), 4096), 5)
    per_message = matrix.bytes.sum() / matrix.messages.sum()
    assert 4096 <= per_message <= 4096 + 32  # the payload pickled: the bytes and a header


def test_bad_patterns_name_the_field() -> None:
    with pytest.raises(UnknownName, match="gather"):
        MessagePattern("fan")
    with pytest.raises(ConfigError, match="needs its receivers"):
        MessagePattern("gather")
    with pytest.raises(ConfigError, match=r"messages\.count"):
        MessagePattern("random", count=0)
