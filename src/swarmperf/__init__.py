"""swarmperf: fast, balanced and resilient swarms of agents, with measurements to prove it."""

from swarmperf.balancing import STRATEGIES, AgentState, LoadBalancer, get_strategy
from swarmperf.errors import (
    Backpressure,
    ConfigError,
    NoAgents,
    QuotaExceeded,
    SwarmError,
    UnknownName,
)
from swarmperf.handlers import AgentContext, HandlerRegistry
from swarmperf.model import AgentSpec, Priority, Task, TaskResult, TaskStatus
from swarmperf.queueing import QueueSettings
from swarmperf.runtime import Backend, Coordinator, Swarm

__version__ = "0.1.0"

__all__ = [
    "STRATEGIES",
    "AgentContext",
    "AgentSpec",
    "AgentState",
    "Backend",
    "Backpressure",
    "ConfigError",
    "Coordinator",
    "HandlerRegistry",
    "LoadBalancer",
    "NoAgents",
    "Priority",
    "QueueSettings",
    "QuotaExceeded",
    "Swarm",
    "SwarmError",
    "Task",
    "TaskResult",
    "TaskStatus",
    "UnknownName",
    "__version__",
    "get_strategy",
]
