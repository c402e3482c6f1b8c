"""Handlers for worker processes, in a module that imports nothing of the parent side."""

from __future__ import annotations

import sys
from typing import Any

from swarmperf.core.handlers import AgentContext


def loaded(payload: Any, agent: AgentContext) -> list[str]:
    """The modules of the process backend this worker process has imported."""
    return sorted(name for name in sys.modules if name.startswith("swarmperf.runtime.process"))
