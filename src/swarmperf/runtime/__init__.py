"""The swarm runtime: the coordinator state machine, the backends and the async shell."""

from swarmperf.runtime.backend import Backend, CompletionSink
from swarmperf.runtime.coordinator import Coordinator
from swarmperf.runtime.swarm import Swarm

__all__ = ["Backend", "CompletionSink", "Coordinator", "Swarm"]
