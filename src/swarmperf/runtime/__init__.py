"""The swarm runtime: the coordinator state machine, the backends and the async shell."""

from swarmperf.runtime.backend import Backend, CompletionSink
from swarmperf.runtime.coordinator import Coordinator
from swarmperf.runtime.swarm import Swarm


def compiled() -> bool:
    """Whether the coordinator and simulation core run compiled to C (a regular install
    builds them with mypyc where a C compiler is found) or as pure Python (an editable
    install, `SWARMPERF_PURE=1`, or no compiler). Both behave the same; compiled is faster."""
    from swarmperf.runtime import coordinator

    return not (coordinator.__file__ or "").endswith(".py")


__all__ = ["Backend", "CompletionSink", "Coordinator", "Swarm", "compiled"]
