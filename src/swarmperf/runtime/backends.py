"""The backend registry: names used in specs and on the command line, loaded lazily."""

from __future__ import annotations

from swarmperf.errors import UnknownName
from swarmperf.runtime.backend import Backend

BACKENDS = ("local", "process")


def make_backend(name: str) -> Backend:
    """Make the backend registered as `name`; its module is imported only now."""
    if name == "local":
        from swarmperf.runtime.local import LocalBackend

        return LocalBackend()
    if name == "process":
        from swarmperf.runtime.process import ProcessBackend

        return ProcessBackend()
    raise UnknownName("backend", name, BACKENDS)
