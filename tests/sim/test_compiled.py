"""The compiled core decides exactly as the pure-Python source does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import swarmperf
from tests.support import unavailable

SOURCE = Path(__file__).resolve().parents[2] / "src"

# Every strategy, on a workload with tenants, levels, aging, unknown costs and a crash: a
# digest of every result's timing and placement.
FINGERPRINT = """
import hashlib, random
from swarmperf import STRATEGIES, AgentSpec, QueueSettings, Task, compiled
from swarmperf.core.model import Priority
from swarmperf.sim import PoissonArrivals, Simulation

digests = []
for strategy in sorted(STRATEGIES):
    rng = random.Random(7)
    agents = [
        AgentSpec(f"a{i}", concurrency=1 + i % 2, prefetch=i % 3, slowdown=1.0 + i % 3)
        for i in range(6)
    ]
    tasks = [
        Task(
            "sleep",
            payload=(size := rng.paretovariate(1.5) * 0.05),
            cost=size if rng.random() < 0.8 else None,
            priority=Priority(rng.choice([2, 2, 3, 1, 0])),
            tenant=rng.choice("xyz"),
            deadline=rng.random() * 50,
            id=f"t{i}",
        )
        for i in range(1500)
    ]
    queue = QueueSettings(max_wait=1.0, tenant_weights={"x": 2.0})
    sim = Simulation(agents, strategy=strategy, queue=queue, seed=3)
    sim.crash_agent_at(4.0, "a1", repair_after=2.0)
    outcome = sim.run(tasks, PoissonArrivals(110.0, seed=3).offsets(len(tasks)))
    rows = [
        (r.task_id, r.agent, r.attempts, r.queued_at, r.started_at, r.finished_at)
        for r in outcome.results
    ]
    digests.append(hashlib.sha256(repr(rows).encode()).hexdigest())
print(compiled(), hashlib.sha256(" ".join(digests).encode()).hexdigest())
"""


def _need_compiled() -> None:
    if swarmperf.compiled():
        return
    unavailable(
        "the installed swarmperf is pure Python (an editable install, SWARMPERF_PURE=1 or no "
        "C compiler): install it with `pip install .` to test the compiled core"
    )


def _fingerprint(env: dict[str, str]) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", FINGERPRINT], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], out[1]


def test_the_installed_core_is_compiled() -> None:
    _need_compiled()
    from swarmperf.runtime import coordinator
    from swarmperf.sim import simulation

    assert not coordinator.__file__.endswith(".py")
    assert not simulation.__file__.endswith(".py")


@pytest.mark.slow
def test_compiled_and_pure_simulations_are_identical() -> None:
    _need_compiled()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    compiled, fast = _fingerprint(env)
    pure, slow = _fingerprint({**env, "PYTHONPATH": str(SOURCE)})  # the source comes first
    assert (compiled, pure) == ("True", "False")
    assert fast == slow
