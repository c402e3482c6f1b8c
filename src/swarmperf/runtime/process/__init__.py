"""The `process` backend: each agent is a worker process, for CPU-bound handlers.

`parent` holds `ProcessBackend`, `worker` the loop that runs inside each worker process, and
`protocol` the frames the two exchange. A worker process imports `worker` alone, so this
package names the parent side's exports without importing it until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmperf.runtime.process.parent import START_METHODS, ProcessBackend, handler_ref

__all__ = ["START_METHODS", "ProcessBackend", "handler_ref"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from swarmperf.runtime.process import parent

        return getattr(parent, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
