"""Message patterns: each sends what it says, from the agent that ran the task."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.messaging import CommunicationMatrix
from swarmperf.runtime.traffic import MeasuredTraffic, MessagePattern
from swarmperf.sim import Simulation

NAMES = [f"a{i}" for i in range(6)]


def simulate(
    pattern: MessagePattern | MeasuredTraffic, tasks: int, completed: dict[str, int] | None = None
) -> CommunicationMatrix:
    traffic = pattern.traffic(NAMES) if isinstance(pattern, MessagePattern) else pattern.traffic()
    sim = Simulation([AgentSpec(a) for a in NAMES], traffic=traffic, strategy="round-robin")
    assert sim.messages is not None
    outcome = sim.run([Task("sleep", 0.01, cost=0.01) for _ in range(tasks)])
    if completed is not None:
        for result in outcome.results:
            completed[result.agent or ""] = completed.get(result.agent or "", 0) + 1
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


@settings(max_examples=15, deadline=None)
@given(
    pattern=st.sampled_from(["gather", "broadcast", "pipeline", "random"]),
    to=st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True),
    size=st.integers(0, 5000),
)
def test_measured_traffic_replays_the_matrix_it_was_measured_from(
    pattern: str, to: list[str], size: int
) -> None:
    """A swarm's matrix, replayed on the same tasks, sends the same messages between the
    same agents, with their sizes: from the tasks that ran (gather, broadcast, random)
    and from the messages that arrived (a pipeline's stages)."""
    completed: dict[str, int] = {}
    measured = simulate(MessagePattern(pattern, tuple(to), size, 2, 5), 60, completed)
    agents = list(measured.agents)
    received = measured.messages.sum(axis=0)
    events = np.array([completed.get(a, 0) for a in agents]) + received
    replay = MeasuredTraffic(tuple(agents), measured.messages, measured.bytes, events)
    replayed = simulate(replay, 60)
    order = [replayed.agents.index(a) for a in agents]
    again = replayed.messages[np.ix_(order, order)]
    assert (again > 0).sum() <= (measured.messages > 0).sum()
    assert np.all(again[measured.messages == 0] == 0)
    # Each pair's count, within what the carried-over fractions and the tasks' spread
    # over agents (round-robin: the same) leave.
    assert np.abs(again - measured.messages).max() <= max(2, 0.1 * measured.messages.max())
    # Each message as large as those measured (the payload of `size` bytes, pickled).
    each = measured.bytes[again > 0] // measured.messages[again > 0]
    assert np.all(each >= size)
    assert np.all(replayed.bytes[np.ix_(order, order)][again > 0] == again[again > 0] * each)


def test_measured_traffic_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ConfigError, match="messages"):
        MeasuredTraffic(
            ("a", "b"),
            np.zeros((3, 3), np.int64),
            np.zeros((2, 2), np.int64),
            np.zeros(2, np.int64),
        )
    with pytest.raises(ConfigError, match="events"):
        MeasuredTraffic(
            ("a", "b"),
            np.zeros((2, 2), np.int64),
            np.zeros((2, 2), np.int64),
            np.zeros(3, np.int64),
        )
