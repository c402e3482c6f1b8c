"""swarmperf: fast, balanced and resilient swarms of agents, with measurements to prove it."""

from swarmperf.balancing import STRATEGIES, AgentState, LoadBalancer, get_strategy
from swarmperf.core.errors import (
    Backpressure,
    ConfigError,
    NoAgents,
    QuotaExceeded,
    SwarmError,
    UnknownName,
)
from swarmperf.core.handlers import AgentContext, HandlerRegistry
from swarmperf.core.model import AgentSpec, Priority, Task, TaskResult, TaskStatus
from swarmperf.core.queueing import QueueSettings
from swarmperf.runtime import Backend, Coordinator, Swarm, compiled

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
    "compiled",
    "get_strategy",
]
