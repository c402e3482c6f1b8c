"""The worker side of the process backend: what a worker process loads to start."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from swarmperf.core.handlers import HandlerRegistry
from swarmperf.core.model import AgentSpec, Task
from swarmperf.runtime.process import START_METHODS, ProcessBackend
from tests.runtime.process.handlers import loaded
from tests.runtime.test_process import RecordingSink


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_worker_process_never_imports_the_parent_side(start_method: str) -> None:
    async def test() -> None:
        backend = ProcessBackend(start_method=start_method)
        sink = RecordingSink()
        await backend.start(sink, HandlerRegistry({"loaded": loaded}))
        try:
            await backend.add_agent(AgentSpec("a"))
            backend.run([("a", Task("loaded"))])
            await sink.until(lambda: len(sink.done["a"]) == 1)
        finally:
            await backend.stop()
        _, _, _, error, modules = sink.done["a"][0]
        assert error is None
        assert "swarmperf.runtime.process.worker" in modules
        assert "swarmperf.runtime.process.parent" not in modules

    asyncio.run(asyncio.wait_for(test(), 30.0))


def test_the_package_names_the_backend_without_importing_it_first() -> None:
    code = (
        "import sys, swarmperf.runtime.process as p\n"
        "assert 'swarmperf.runtime.process.parent' not in sys.modules\n"
        "from swarmperf.runtime.process import ProcessBackend\n"
        "assert ProcessBackend.name == 'process'\n"
        "assert p.START_METHODS == ('forkserver', 'spawn')\n"
        "try:\n    p.nothing\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
