"""What a hop costs in virtual time: link latency, bandwidth, and the relay's work.

No handler runs in a simulation, so a `Traffic` function (`runtime.messaging`) says what
each finished task sends, as a handler would with `agent.send`: it sees the coordinator's
tasks and delivered messages alike, so pipelines and request/reply chains unfold as they
would for real. A `LinkModel` says what each hop costs: `latency` seconds on the link plus
the bytes over `bandwidth`, `relay_cost` seconds of work on each agent that forwards
(a `relay` task it serves in turn with its other work), and `receive_cost` seconds of
work on each agent a hop reaches, relay or receiver, before it handles the message: on
one machine's `process` backend an arrival is read from a socket and unpickled in the
agent's own process, in turn with its tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarmperf.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LinkModel:
    """What a hop costs: `latency` seconds, plus `size / bandwidth` (bytes per second;
    None: size costs nothing), plus `relay_cost` seconds of the forwarding agent's work,
    plus `receive_cost` seconds of the work of the agent it reaches."""

    latency: float = 0.0
    bandwidth: float | None = None
    relay_cost: float = 0.0
    receive_cost: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (
            ("latency", self.latency),
            ("relay_cost", self.relay_cost),
            ("receive_cost", self.receive_cost),
        ):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"links.{name}", value, "Use seconds >= 0, e.g. 0.001.")
        if self.bandwidth is not None and not (self.bandwidth > 0):
            raise ConfigError("links.bandwidth", self.bandwidth, "Use bytes per second > 0.")

    def delay(self, sender: str, receiver: str, size: int) -> float:
        """Seconds a message of `size` bytes takes on the link from `sender` to `receiver`."""
        if self.bandwidth is None:
            return self.latency
        return self.latency + size / self.bandwidth


@dataclass(frozen=True, slots=True)
class PlacedLinks(LinkModel):
    """A `LinkModel` over agents placed on slots: each hop also costs the latency between
    the sender's slot and the receiver's (`slot_latency[slot_of[sender]][slot_of[receiver]]`
    seconds); an agent without a slot adds nothing."""

    slot_of: Mapping[str, int] = field(default_factory=dict)
    slot_latency: Sequence[Sequence[float]] = ()

    def delay(self, sender: str, receiver: str, size: int) -> float:
        # slots=True remakes the class, which breaks zero-argument super().
        base = LinkModel.delay(self, sender, receiver, size)
        i, j = self.slot_of.get(sender), self.slot_of.get(receiver)
        if i is None or j is None:
            return base
        return base + self.slot_latency[i][j]
