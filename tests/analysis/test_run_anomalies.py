"""Anomalies the monitor finds during a run become events of that run."""

from __future__ import annotations

import asyncio

import numpy as np

from swarmperf.app.run import anomaly_events
from swarmperf.core.model import AgentSpec
from swarmperf.runtime.swarm import Swarm
from tests.analysis.anomaly.test_feed import snapshot


def test_an_anomalous_latency_is_recorded_as_an_event() -> None:
    async def main() -> list[tuple[str, str]]:
        async with Swarm([AgentSpec("a")]) as swarm:
            observe = anomaly_events(swarm)
            rng = np.random.default_rng(1)
            for i in range(400):
                observe(snapshot(float(i), 0.05 + rng.normal(0, 0.002), 100.0), None)
            before = [e.subject for e in swarm.events if e.kind == "anomaly"]
            observe(snapshot(400.0, 0.5, 100.0), None)
            after = [
                (e.subject, str(e.detail["value"])) for e in swarm.events if e.kind == "anomaly"
            ]
            assert len(before) <= 2
            return after[len(before) :]

    assert asyncio.run(main()) == [("swarm.latency.p99", "0.5")]
