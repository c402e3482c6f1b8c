"""Prometheus exposition: the text a scrape gets parses, and says what the swarm did."""

from __future__ import annotations

import asyncio
import math
import socket

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from swarmperf.core.errors import ConfigError
from swarmperf.core.events import Event
from swarmperf.core.model import AgentSpec, Task, TaskResult, TaskStatus
from swarmperf.monitor import names
from swarmperf.monitor.exposition import SwarmCollector, make_registry, serve
from swarmperf.monitor.metrics import Registry
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.resilience import BreakerSettings, ResilienceGuard, ResilienceSettings
from swarmperf.runtime.swarm import Swarm
from tests.conftest import FakeClock


def _samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def _scrape(collector: SwarmCollector) -> dict[str, list[Sample]]:
    return _samples(generate_latest(make_registry(collector, process=False)).decode())


def test_a_real_swarm_is_exposed_with_the_contract_names() -> None:
    async def main() -> tuple[SwarmMetrics, list[TaskResult]]:
        settings = ResilienceSettings(breaker=BreakerSettings(), retry=None)
        swarm = Swarm(
            [AgentSpec("a", concurrency=2), AgentSpec("b")], guard=ResilienceGuard(settings)
        )
        metrics = SwarmMetrics("sw1", window=60.0, clock=swarm.clock)
        metrics.attach(swarm)
        async with swarm:
            results = list(
                await swarm.run(
                    [Task("sleep", 0.002) for _ in range(30)] + [Task("fail") for _ in range(3)]
                )
            )
        return metrics, results

    metrics, results = asyncio.run(main())
    frozen = metrics.clock()
    metrics.clock = lambda: frozen  # the scrape and the check below see the same window
    samples = _scrape(SwarmCollector(metrics, net=None))
    # Every series carries the swarm label.
    assert all(s.labels[names.SWARM_LABEL] == "sw1" for ss in samples.values() for s in ss)
    # Counters match the results, per agent and status.
    counted = {
        (s.labels["agent"], s.labels["status"]): s.value
        for s in samples["swarmperf_tasks"]
        if s.name == names.TASKS_TOTAL
    }
    # The series of tasks that never reached an agent are there from the start, at 0.
    expected: dict[tuple[str, str], float] = {
        (names.NO_AGENT, "rejected"): 0.0,
        (names.NO_AGENT, "failed"): 0.0,
    }
    for r in results:
        key = (r.agent or names.NO_AGENT, r.status.value)
        expected[key] = expected.get(key, 0) + 1
    assert counted == expected
    # Quantiles are the window's; _count and _sum are every finished task's.
    figures = metrics.figures()
    latency = {s.labels.get("quantile"): s.value for s in samples[names.TASK_LATENCY] if s.labels}
    assert latency["0.99"] == pytest.approx(figures.latency.p99)
    count = [s for s in samples[names.TASK_LATENCY] if s.name.endswith("_count")]
    total = [s for s in samples[names.TASK_LATENCY] if s.name.endswith("_sum")]
    assert count[0].value == 33
    assert total[0].value == pytest.approx(sum(r.latency or 0.0 for r in results))
    service_agents = {s.labels["agent"] for s in samples[names.TASK_SERVICE]}
    assert service_agents == {"a", "b"}
    depths = {s.labels["priority"]: s.value for s in samples[names.QUEUE_DEPTH]}
    assert depths == {"critical": 0, "high": 0, "normal": 0, "low": 0}
    up = {s.labels["agent"]: s.value for s in samples[names.AGENT_UP]}
    assert up == {"a": 1.0, "b": 1.0}
    states = {(s.labels["agent"], s.labels["state"]): s.value for s in samples[names.BREAKER_STATE]}
    assert states[("a", "closed")] == 1.0
    assert states[("a", "open")] == 0.0
    utilization = {s.labels["agent"]: s.value for s in samples[names.AGENT_UTILIZATION]}
    assert utilization["a"] == pytest.approx(figures.agents["a"].utilization, rel=1e-6)


def test_breaker_state_and_empty_quantiles(clock: FakeClock) -> None:
    metrics = SwarmMetrics("sw2", clock=clock)
    metrics.observe_event(Event(0.0, "breaker-open", "x"))
    metrics.observe_event(Event(0.0, "agent-lost", "x"))
    samples = _scrape(SwarmCollector(metrics, net=None))
    # No task finished: a summary's quantiles are NaN, its count 0.
    quantiles = [s for s in samples[names.TASK_LATENCY] if "quantile" in s.labels]
    assert len(quantiles) == 4
    assert all(math.isnan(s.value) for s in quantiles)
    states = {s.labels["state"]: s.value for s in samples[names.BREAKER_STATE]}
    assert states == {"closed": 0.0, "half_open": 0.0, "open": 1.0}
    assert [s.value for s in samples[names.AGENT_UP]] == [0.0]


def test_a_registry_is_exposed_with_overflow_drops() -> None:
    registry = Registry()
    hist = registry.histogram("work_seconds", "Work.", ("kind",), max_series=1)
    for x in (1.0, 2.0, 3.0):
        hist.labels("a").observe(x)
    hist.labels("b").observe(10.0)  # over the limit: folded
    gauge = registry.gauge("temperature", "T.")
    gauge.set(21.5)
    samples = _scrape(SwarmCollector(swarm_id="sw3", registries=[registry], net=None))
    work = {(s.name, s.labels["kind"], s.labels.get("quantile")): s.value
            for s in samples["work_seconds"]}  # fmt: skip
    assert work[("work_seconds_count", "a", None)] == 3
    assert work[("work_seconds", "a", "0.5")] == pytest.approx(2.0, rel=0.005)
    assert work[("work_seconds_count", "__overflow__", None)] == 1
    assert samples["temperature"][0].value == 21.5
    dropped = samples["swarmperf_metric_series_dropped"]
    assert [(s.labels["metric"], s.value) for s in dropped] == [("work_seconds", 1.0)]


def test_system_figures_and_network_totals_are_exposed(clock: FakeClock) -> None:
    from swarmperf.monitor.collectors import SystemCollector

    figures = SystemCollector().sample()
    collector = SwarmCollector(swarm_id="sw4", system=lambda: figures, net=lambda: (123, 456))
    samples = _scrape(collector)
    assert samples["swarmperf_system_network_receive_bytes"][0].value == 123
    assert samples["swarmperf_system_network_transmit_bytes"][0].value == 456
    assert figures.memory_percent is not None
    memory = samples[names.SYSTEM_MEMORY][0].value
    assert memory == pytest.approx(figures.memory_percent / 100)


def test_serve_binds_a_free_port_and_answers() -> None:
    collector = SwarmCollector(SwarmMetrics("sw5"), net=None)
    server = serve(0, registry=make_registry(collector))
    try:
        assert server.port > 0
        text = httpx.get(server.url, timeout=5).text
        samples = _samples(text)
        assert names.TASK_LATENCY in samples
        assert "process_resident_memory_bytes" in samples  # the default process collector
    finally:
        server.close()


def test_serve_on_a_taken_port_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"metrics_port"):
            serve(port, registry=make_registry(SwarmCollector(swarm_id="x"), process=False))


def test_serve_refuses_a_port_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r"metrics_port"):
        serve(70000, registry=make_registry(SwarmCollector(swarm_id="x"), process=False))


def test_a_collector_needs_a_swarm_id() -> None:
    with pytest.raises(ConfigError, match=r"swarm_id"):
        SwarmCollector()
    assert SwarmCollector(swarm_id="y").swarm_id == "y"
    assert TaskStatus.SUCCEEDED.value in names.STATUSES
