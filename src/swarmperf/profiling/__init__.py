"""Profiling a running swarm: stack samples folded by agent and handler, flame graphs, memory."""

from swarmperf.profiling.memory import MemoryWindow
from swarmperf.profiling.sampler import MAX_RATE, MIN_RATE, Sampler
from swarmperf.profiling.stacks import COMPONENT_CHOICES, Profile, check_components
from swarmperf.profiling.writers import FORMATS, render

__all__ = [
    "COMPONENT_CHOICES",
    "FORMATS",
    "MAX_RATE",
    "MIN_RATE",
    "MemoryWindow",
    "Profile",
    "Sampler",
    "check_components",
    "render",
]
