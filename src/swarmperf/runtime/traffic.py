"""Message patterns: the traffic a spec declares, sent alike on every backend.

A pattern says what each task of the workload sends when it finishes well, from the agent
that ran it, so that a spec's swarm talks without code of its own: the messages are real
(each hop a task on the backend, the payload real bytes) and the simulator runs the same
pattern in virtual time.

- `gather`: one message to one of `to`, taking turns task by task (map/reduce's shuffle to
  its reducers; scatter/gather's gather).
- `broadcast`: a message to each of `to` (every other agent when `to` is empty): gossip,
  all-to-all.
- `pipeline`: a message to `to[0]`; each agent of `to` passes what it receives to the next.
- `random`: `count` messages to agents of `to` (any agent when empty), drawn with `seed`.

Every message carries `bytes` bytes and runs the built-in `noop` where it arrives.

`MeasuredTraffic` is the other way to make traffic: from a swarm's measured communication
matrix, each agent sending to each other what it sent there per task it finished or
message it received, so that a simulation replays the traffic the swarm really had
(whatever its handlers sent) rather than what its spec declared.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError, UnknownName
from swarmperf.core.model import Task
from swarmperf.runtime.messaging import Send, Traffic

PATTERNS: Final = ("broadcast", "gather", "pipeline", "random")
MAX_MESSAGE_BYTES: Final = 64 << 20
ARRIVAL_KIND: Final = "noop"


@dataclass(frozen=True, slots=True)
class MessagePattern:
    """Which pattern, to which agents (`to`), how large each message is, how many
    (`count`, for `random`); `seed` draws `random`'s receivers."""

    pattern: str = "gather"
    to: tuple[str, ...] = ()
    bytes: int = 1024
    count: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise UnknownName("messages.pattern", self.pattern, PATTERNS)
        if not 0 <= self.bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(
                "messages.bytes", self.bytes, f"Use a size from 0 to {MAX_MESSAGE_BYTES} bytes."
            )
        if not 1 <= self.count <= 1000:
            raise ConfigError("messages.count", self.count, "Use an integer from 1 to 1000.")
        if self.pattern in ("gather", "pipeline") and not self.to:
            raise ConfigError(
                "messages.to",
                list(self.to),
                f"The {self.pattern} pattern needs its receivers: list agent ids, e.g. "
                "[reducer-0, reducer-1].",
            )

    def traffic(self, agents: Sequence[str]) -> Traffic:
        """The pattern as a `Traffic` function over a swarm of `agents`."""
        return _PatternTraffic(self, tuple(agents))


class _PatternTraffic:
    """A pattern's state while a swarm runs: whose turn it is, the random draws."""

    def __init__(self, pattern: MessagePattern, agents: tuple[str, ...]) -> None:
        self.pattern = pattern
        self.agents = agents
        self.payload = bytes(pattern.bytes)
        self.turn = 0
        self.rng = random.Random(pattern.seed)
        self.next_stage = dict(zip(pattern.to, pattern.to[1:], strict=False))

    def __call__(self, agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        p = self.pattern
        if delivered:
            if p.pattern == "pipeline" and agent_id in self.next_stage:
                return (Send(self.next_stage[agent_id], ARRIVAL_KIND, self.payload, None),)
            return ()
        if p.pattern == "gather":
            receiver = p.to[self.turn % len(p.to)]
            self.turn += 1
            return (Send(receiver, ARRIVAL_KIND, self.payload, None),)
        if p.pattern == "pipeline":
            return (Send(p.to[0], ARRIVAL_KIND, self.payload, None),)
        if p.pattern == "broadcast":
            receivers = p.to or tuple(a for a in self.agents if a != agent_id)
            return [Send(r, ARRIVAL_KIND, self.payload, None) for r in receivers]
        pool = p.to or self.agents
        return [
            Send(self.rng.choice(pool), ARRIVAL_KIND, self.payload, None) for _ in range(p.count)
        ]


@dataclass(frozen=True, slots=True, eq=False)
class MeasuredTraffic:
    """A swarm's measured communication: `messages[i, j]` and `bytes[i, j]` from
    `agents[i]` to `agents[j]` (by final receiver, as `CommunicationMatrix` counts them),
    and `events[i]`, the tasks `agents[i]` finished plus the messages it received: what
    may have made it send."""

    agents: tuple[str, ...]
    messages: npt.NDArray[np.int64]
    bytes: npt.NDArray[np.int64]
    events: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = len(self.agents)
        for name, array in (("messages", self.messages), ("bytes", self.bytes)):
            if array.shape != (n, n):
                raise ConfigError(name, list(array.shape), f"Use a {n} x {n} matrix.")
        if self.events.shape != (n,):
            raise ConfigError("events", list(self.events.shape), f"Use {n} counts.")

    @property
    def total(self) -> int:
        return int(self.messages.sum())

    def traffic(self) -> Traffic:
        """Each agent sends to each other, per task it finishes or message it receives,
        its measured messages there over its events: fractional rates carried over from
        one event to the next, so that the counts come out as measured (no draws)."""
        return _MeasuredTraffic(self)


class _MeasuredTraffic:
    """A measured matrix's state while a swarm runs: each pair's carried-over fraction."""

    def __init__(self, measured: MeasuredTraffic) -> None:
        self.agents = measured.agents
        self.index = {agent: i for i, agent in enumerate(measured.agents)}
        events = np.maximum(measured.events, 1).astype(float)[:, None]
        self.rates: npt.NDArray[np.float64] = measured.messages / events
        counts = np.maximum(measured.messages, 1)
        self.sizes: npt.NDArray[np.int64] = (measured.bytes // counts).astype(np.int64)
        self.credit = np.zeros_like(self.rates)
        self.receivers = [np.flatnonzero(row) for row in measured.messages]

    def __call__(self, agent_id: str, task: Task, delivered: bool) -> Iterable[Send]:
        i = self.index.get(agent_id)
        if i is None:
            return ()
        sends: list[Send] = []
        credit, rates = self.credit[i], self.rates[i]
        for j in self.receivers[i]:
            credit[j] += rates[j]
            count = math.floor(credit[j] + 1e-9)
            if count:
                credit[j] -= count
                size = int(self.sizes[i, j])
                sends.extend([Send(self.agents[j], ARRIVAL_KIND, None, size)] * count)
        return sends
