"""The backend registry: names used in specs and on the command line, loaded lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmperf.core.errors import UnknownName
from swarmperf.runtime.backend import Backend

if TYPE_CHECKING:
    from swarmperf.spec import SwarmSpec

BACKENDS = ("local", "process", "ray")


def make_backend(name: str, spec: SwarmSpec | None = None) -> Backend:
    """Make the backend registered as `name`; its module is imported only now.

    `spec` carries backend settings (the `ray:` section, task timeouts); None: the
    backend's defaults.
    """
    timeouts = spec.timeouts.task_timeouts() if spec is not None else None
    if name == "local":
        from swarmperf.runtime.local import LocalBackend

        return LocalBackend(timeouts)
    if name == "process":
        from swarmperf.runtime.process import ProcessBackend

        return ProcessBackend(timeouts=timeouts)
    if name == "ray":
        # Ray is an optional extra: without it, RayBackend says what to install.
        from swarmperf.runtime.ray_backend import RayBackend

        return RayBackend(spec.ray_settings() if spec is not None else None)
    raise UnknownName("backend", name, BACKENDS)
