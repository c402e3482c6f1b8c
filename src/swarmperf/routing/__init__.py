"""Message routing: topologies as rules over a swarm's agents, and what they cost."""

from swarmperf.routing.topologies import TOPOLOGIES, Routes, TopologyLoad, TopologySettings

__all__ = ["TOPOLOGIES", "Routes", "TopologyLoad", "TopologySettings"]
