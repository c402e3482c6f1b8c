"""The backend registry: one entry per name used in specs and on the command line.

Each entry makes its backend lazily (its module, and any engine it needs, is imported
only then) and says what callers must know about it: a one-line description, and whether
it runs in virtual time. Callers ask the entry, never compare names, so a new backend is
one entry here (and its name in the spec's `backend` field).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from swarmperf.core.errors import UnknownName
from swarmperf.core.model import AgentSpec
from swarmperf.runtime.backend import Backend

if TYPE_CHECKING:
    from swarmperf.spec import SwarmSpec


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """A registered backend.

    `make(spec)` builds it, with the spec's backend settings (the `ray:` section, task
    timeouts) or, for None, its defaults. A `virtual_time` backend has no wall clock: its
    runs go through `swarmperf.sim.Simulation` (`app.simulate.simulate_spec`), which jumps
    from event to event, so there is nothing for a signal to interrupt.
    """

    name: str
    description: str
    make: Callable[[SwarmSpec | None], Backend]
    virtual_time: bool = False
    # The prefetch an agent whose spec leaves it unset gets there (its module imported only
    # when asked), so that a simulation of the spec binds tasks as the backend would.
    default_prefetch: Callable[[], int] = lambda: 0


def _local(spec: SwarmSpec | None) -> Backend:
    from swarmperf.runtime.local import LocalBackend

    return LocalBackend(spec.timeouts.task_timeouts() if spec is not None else None)


def _process(spec: SwarmSpec | None) -> Backend:
    from swarmperf.runtime.process import ProcessBackend

    return ProcessBackend(timeouts=spec.timeouts.task_timeouts() if spec is not None else None)


def _ray(spec: SwarmSpec | None) -> Backend:
    # Ray is an optional extra: without it, RayBackend says what to install.
    from swarmperf.runtime.ray_backend import RayBackend

    if spec is None:
        return RayBackend()
    return RayBackend(spec.ray_settings(), spec.timeouts.task_timeouts())


def _ray_prefetch() -> int:
    from swarmperf.runtime.ray_backend import RayBackend

    return RayBackend.default_prefetch


def _sim(spec: SwarmSpec | None) -> Backend:
    from swarmperf.sim.backend import SimBackend

    return SimBackend(seed=spec.seed if spec is not None else 0)


BACKENDS: Final[Mapping[str, BackendEntry]] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            BackendEntry("local", "coroutines in this process", _local),
            BackendEntry(
                "process", "one worker process per agent, for CPU-bound handlers", _process
            ),
            BackendEntry(
                "ray",
                "one Ray actor per agent, on one machine or a cluster",
                _ray,
                default_prefetch=_ray_prefetch,
            ),
            BackendEntry("sim", "virtual time, for scale", _sim, virtual_time=True),
        )
    }
)


def backend_entry(name: str) -> BackendEntry:
    """The entry registered as `name`; `UnknownName` (listing the choices) if none is."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise UnknownName("backend", name, BACKENDS)
    return entry


def make_backend(name: str, spec: SwarmSpec | None = None) -> Backend:
    """Make the backend registered as `name`; its module is imported only now.

    `spec` carries backend settings (the `ray:` section, task timeouts); None: the
    backend's defaults.
    """
    return backend_entry(name).make(spec)


def backend_choices() -> str:
    """The names, for help texts: 'local, process, ray or sim (virtual time)'."""
    names = [f"{e.name} (virtual time)" if e.virtual_time else e.name for e in BACKENDS.values()]
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def agents_as_run(spec: SwarmSpec) -> list[AgentSpec]:
    """The spec's agents as its backend runs them: an unset prefetch is the backend's."""
    default = backend_entry(spec.backend).default_prefetch()
    return [
        agent if agent.prefetch is not None else replace(agent, prefetch=default)
        for agent in spec.agent_specs()
    ]
