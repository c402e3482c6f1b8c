"""Topologies as routing rules: the route of each message, relays, connections kept open.

A topology is laid over a swarm's agents in the order they joined (`Routes`). Each rule is
a pure function of the agents' positions:

- `mesh`: every agent talks to every other directly (one hop).
- `star`: every message goes through one hub (at most two hops).
- `hierarchical`: a tree of coordinators with fan-out `fanout`; the first agent is the
  root and agent i's parent is agent (i - 1) // fanout. A message climbs to the lowest
  common ancestor and descends (at most 2 x the tree's depth).
- `ring`: each agent talks to its two neighbours (one, if not `bidirectional`); a message
  goes round the shorter way (clockwise on a tie, or always clockwise).
- `hybrid`: meshed clusters of `cluster_size` consecutive agents, whose first agents are
  hubs meshed with each other; a message between clusters goes sender, its hub, the
  receiver's hub, receiver.

Every route runs along the topology's connections, and routing is consistent hop by hop:
the route from a route's second agent is the rest of that route. A message can therefore
be forwarded by asking at each agent for the next hop only, which is what lets a swarm
change topology while messages are on their way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from swarmperf.core.errors import ConfigError, UnknownName

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

TOPOLOGIES: Final = ("hierarchical", "hybrid", "mesh", "ring", "star")


@dataclass(frozen=True, slots=True)
class TopologySettings:
    """Which topology, and its shape. `hub` is the star's hub (None: the first agent);
    `fanout` is the hierarchy's children per coordinator; `bidirectional` lets a ring
    go both ways; `cluster_size` is the number of agents in each of hybrid's clusters."""

    kind: str = "mesh"
    hub: str | None = None
    fanout: int = 4
    bidirectional: bool = True
    cluster_size: int = 4

    def __post_init__(self) -> None:
        if self.kind not in TOPOLOGIES:
            raise UnknownName("topology.kind", self.kind, TOPOLOGIES)
        if self.fanout < 1:
            raise ConfigError("topology.fanout", self.fanout, "Use an integer >= 1.")
        if self.cluster_size < 1:
            raise ConfigError("topology.cluster_size", self.cluster_size, "Use an integer >= 1.")
        if self.hub is not None and not self.hub:
            raise ConfigError("topology.hub", self.hub, "Name an agent, or leave it out.")

    def describe(self) -> str:
        """The kind with the setting that shapes it, e.g. `hierarchical(fanout=4)`."""
        shape = {
            "hierarchical": f"(fanout={self.fanout})",
            "hybrid": f"(cluster_size={self.cluster_size})",
            "ring": "" if self.bidirectional else "(one-way)",
            "star": "" if self.hub is None else f"(hub={self.hub})",
        }
        return self.kind + shape.get(self.kind, "")


class Routes:
    """A topology laid over `agents` (in the order they joined): routes and their costs.

    Made again whenever the agents or the topology change; each route is computed on
    demand from positions, in time proportional to its length.
    """

    __slots__ = ("_hub", "_index", "_n", "agents", "settings")

    def __init__(self, settings: TopologySettings, agents: Sequence[str]) -> None:
        self.settings = settings
        self.agents: tuple[str, ...] = tuple(agents)
        self._index = {agent: i for i, agent in enumerate(self.agents)}
        if len(self._index) != len(self.agents):
            raise ConfigError("agents", list(agents), "Agent ids must be unique in a swarm.")
        self._n = len(self.agents)
        hub = settings.hub
        self._hub = self._index.get(hub, 0) if hub is not None else 0

    def __contains__(self, agent: object) -> bool:
        return agent in self._index

    @property
    def hub(self) -> str | None:
        """The star's hub: the named agent while it is a member, else the first."""
        return self.agents[self._hub] if self._n else None

    # -- routes -------------------------------------------------------------------------

    def route(self, sender: str, receiver: str) -> tuple[str, ...]:
        """Every agent a message passes, sender first and receiver last (one agent when
        they are the same). Raises `KeyError` for an agent that is not a member."""
        i, j = self._index[sender], self._index[receiver]
        if i == j:
            return (sender,)
        kind = self.settings.kind
        if kind == "mesh":
            path = [i, j]
        elif kind == "star":
            path = [i, j] if self._hub in (i, j) else [i, self._hub, j]
        elif kind == "ring":
            path = self._ring(i, j)
        elif kind == "hierarchical":
            path = self._tree(i, j)
        else:
            path = self._hybrid(i, j)
        agents = self.agents
        return tuple(agents[k] for k in path)

    def next_hop(self, at: str, receiver: str) -> str:
        """Where a message for `receiver` goes from `at` (`receiver` itself when direct).
        Asked at every hop of every message: a mesh and a star answer without a route."""
        kind = self.settings.kind
        if kind == "mesh" or kind == "star":
            i, j = self._index[at], self._index[receiver]
            if kind == "mesh" or i == j or self._hub in (i, j):
                return receiver
            return self.agents[self._hub]
        route = self.route(at, receiver)
        return route[1] if len(route) > 1 else receiver

    def hops(self, sender: str, receiver: str) -> int:
        return len(self.route(sender, receiver)) - 1

    def relays(self, sender: str, receiver: str) -> tuple[str, ...]:
        """The agents that forward a message: its route's interior."""
        return self.route(sender, receiver)[1:-1]

    def _ring(self, i: int, j: int) -> list[int]:
        n = self._n
        forward = (j - i) % n
        if self.settings.bidirectional and (i - j) % n < forward:
            return [(i - step) % n for step in range((i - j) % n + 1)]
        return [(i + step) % n for step in range(forward + 1)]

    def _ancestors(self, i: int) -> list[int]:
        """`i`, its parent, ..., the root."""
        k = self.settings.fanout
        chain = [i]
        while i:
            i = (i - 1) // k
            chain.append(i)
        return chain

    def _tree(self, i: int, j: int) -> list[int]:
        up, down = self._ancestors(i), self._ancestors(j)
        on_down = set(down)
        climb: list[int] = []
        for node in up:
            climb.append(node)
            if node in on_down:
                break
        meet = climb[-1]
        descend = down[: down.index(meet)]
        return climb + descend[::-1]

    def _cluster_hub(self, i: int) -> int:
        return i - i % self.settings.cluster_size

    def _hybrid(self, i: int, j: int) -> list[int]:
        hi, hj = self._cluster_hub(i), self._cluster_hub(j)
        if hi == hj:
            return [i, j]
        path = [i]
        for node in (hi, hj, j):
            if node != path[-1]:
                path.append(node)
        return path

    # -- costs --------------------------------------------------------------------------

    def depth(self) -> int:
        """The hierarchy's depth: hops from the root to the deepest agent (0 alone)."""
        return len(self._ancestors(self._n - 1)) - 1 if self._n else 0

    def links(self) -> frozenset[tuple[str, str]]:
        """The connections kept open, each an (agent, agent) pair in joining order."""
        n, agents, kind = self._n, self.agents, self.settings.kind
        pairs: set[tuple[int, int]] = set()
        if kind == "mesh":
            pairs = {(i, j) for i in range(n) for j in range(i + 1, n)}
        elif kind == "star":
            pairs = {(min(i, self._hub), max(i, self._hub)) for i in range(n) if i != self._hub}
        elif kind == "ring":
            pairs = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n) if n > 1}
        elif kind == "hierarchical":
            pairs = {((i - 1) // self.settings.fanout, i) for i in range(1, n)}
        else:
            hubs = range(0, n, self.settings.cluster_size)
            pairs = {(a, b) for a in hubs for b in hubs if a < b}
            for hub in hubs:
                members = range(hub, min(hub + self.settings.cluster_size, n))
                pairs |= {(a, b) for a in members for b in members if a < b}
        return frozenset((agents[a], agents[b]) for a, b in pairs)

    def connections(self) -> int:
        """How many connections the topology keeps open (heartbeats, buffers): `links()`
        counted without listing them, for a mesh of many agents."""
        n, kind = self._n, self.settings.kind
        if n < 2:
            return 0
        if kind == "mesh":
            return n * (n - 1) // 2
        if kind == "ring":
            return n if n > 2 else 1
        if kind in ("star", "hierarchical"):
            return n - 1
        size = self.settings.cluster_size
        sizes = [min(size, n - start) for start in range(0, n, size)]
        hubs = len(sizes)
        return sum(s * (s - 1) // 2 for s in sizes) + hubs * (hubs - 1) // 2

    def load(self, traffic: npt.ArrayLike) -> TopologyLoad:
        """What carrying `traffic` (messages from agent i to agent j, in `agents` order)
        costs under this topology: hop-messages, and the messages each agent forwards."""
        # Imported here: a swarm imports this module, and numpy would be half the time
        # `import swarmperf` takes (`tests/test_public_api.py`).
        import numpy as np

        matrix = np.asarray(traffic, dtype=float)
        n = self._n
        if matrix.shape != (n, n):
            raise ConfigError(
                "traffic", matrix.shape, f"Use a {n} x {n} matrix, one row per agent."
            )
        relayed = np.zeros(n)
        hop_messages = 0.0
        index, agents = self._index, self.agents
        for i, j in zip(*np.nonzero(matrix), strict=True):
            if i == j:
                continue
            route = self.route(agents[i], agents[j])
            hop_messages += matrix[i, j] * (len(route) - 1)
            for relay in route[1:-1]:
                relayed[index[relay]] += matrix[i, j]
        return TopologyLoad(
            messages=float(matrix.sum() - np.trace(matrix)),
            hop_messages=hop_messages,
            relayed=relayed,
            connections=self.connections(),
        )


@dataclass(frozen=True, slots=True)
class TopologyLoad:
    """What a traffic matrix costs under a topology (`Routes.load`)."""

    messages: float  # messages between distinct agents
    hop_messages: float  # sum over messages of their hops: each hop is one transfer
    relayed: npt.NDArray[np.float64]  # messages each agent forwards, in `agents` order
    connections: int

    @property
    def mean_hops(self) -> float | None:
        return self.hop_messages / self.messages if self.messages else None
