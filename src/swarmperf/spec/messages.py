"""The spec's `topology` and `messages` sections: how agents' messages route, what they send."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from swarmperf.routing import TopologySettings
from swarmperf.runtime.traffic import MAX_MESSAGE_BYTES, MessagePattern
from swarmperf.sim.messaging import LinkModel
from swarmperf.spec.types import (
    FROM_SETTINGS,
    ByteSize,
    Duration,
    Name,
    Section,
    SettingsSection,
    checked,
)


class TopologySpec(SettingsSection, settings=TopologySettings):
    """How agents' messages are routed (see `swarmperf.routing`): `kind` is star,
    hierarchical, ring, mesh or hybrid; `hub`, `fanout`, `bidirectional` and
    `cluster_size` shape them."""

    kind: Literal["hierarchical", "hybrid", "mesh", "ring", "star"] = FROM_SETTINGS
    hub: Name | None = FROM_SETTINGS
    fanout: Annotated[int, Field(ge=1, le=1000)] = FROM_SETTINGS
    cluster_size: Annotated[int, Field(ge=1, le=100_000)] = FROM_SETTINGS

    def to_settings(self) -> TopologySettings:
        return TopologySettings(**self.settings_arguments())


class MessagesSpec(Section):
    """The messages the workload's tasks send when they finish (`swarmperf.runtime.traffic`),
    and, for the `sim` backend, what a hop costs: `latency` on the link, `bandwidth` in
    bytes per second (None: size costs no time), `relay_cost` of work on each agent
    that forwards, and `receive_cost` of work on each agent a hop reaches (relay or
    receiver) before it handles the message."""

    pattern: Literal["broadcast", "gather", "pipeline", "random"] = "gather"
    to: tuple[Name, ...] = ()
    bytes: Annotated[ByteSize, Field(ge=0, le=MAX_MESSAGE_BYTES)] = 1024
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    latency: Duration = 0.0
    bandwidth: Annotated[float, Field(gt=0)] | None = None
    relay_cost: Duration = 0.0
    receive_cost: Duration = 0.0

    @model_validator(mode="after")
    def _pattern_valid(self) -> Self:
        checked(lambda: self.message_pattern(0))
        return self

    def message_pattern(self, seed: int) -> MessagePattern:
        return MessagePattern(self.pattern, self.to, self.bytes, self.count, seed)

    def link_model(self) -> LinkModel:
        return LinkModel(self.latency, self.bandwidth, self.relay_cost, self.receive_cost)
