"""What a hop costs in virtual time: link latency, bandwidth, and the relay's work.

No handler runs in a simulation, so a `Traffic` function (`runtime.messaging`) says what
each finished task sends, as a handler would with `agent.send`: it sees the coordinator's
tasks and delivered messages alike, so pipelines and request/reply chains unfold as they
would for real. A `LinkModel` says what each hop costs: `latency` seconds on the link plus
the bytes over `bandwidth`, and `relay_cost` seconds of work on each agent that forwards
(a `relay` task it serves in turn with its other work).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarmperf.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LinkModel:
    """What a hop costs: `latency` seconds, plus `size / bandwidth` (bytes per second;
    None: size costs nothing), plus `relay_cost` seconds of the forwarding agent's work."""

    latency: float = 0.0
    bandwidth: float | None = None
    relay_cost: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("latency", self.latency), ("relay_cost", self.relay_cost)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"links.{name}", value, "Use seconds >= 0, e.g. 0.001.")
        if self.bandwidth is not None and not (self.bandwidth > 0):
            raise ConfigError("links.bandwidth", self.bandwidth, "Use bytes per second > 0.")

    def delay(self, sender: str, receiver: str, size: int) -> float:
        """Seconds a message of `size` bytes takes on the link from `sender` to `receiver`."""
        if self.bandwidth is None:
            return self.latency
        return self.latency + size / self.bandwidth
