"""Load balancing: agent state, strategies and their registry."""

from swarmperf.balancing.agents import AgentState
from swarmperf.balancing.strategies import STRATEGIES, LoadBalancer, get_strategy

__all__ = ["STRATEGIES", "AgentState", "LoadBalancer", "get_strategy"]
