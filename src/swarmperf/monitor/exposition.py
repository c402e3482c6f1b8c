"""Prometheus exposition: a collector read at scrape time, and an HTTP server for /metrics.

`SwarmCollector` turns `SwarmMetrics` (and any `Registry`) into metric families with the
names in `swarmperf.monitor.names`, every series labelled with the swarm id. Quantiles are
over the `SwarmMetrics` window; `_sum`/`_count` and counters are cumulative since attach.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import psutil
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary
from swarmperf.monitor import names
from swarmperf.monitor.metrics import Counter, Gauge, Histogram, Registry
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures
from swarmperf.monitor.swarm_metrics import SwarmMetrics, Totals

SystemSource = Callable[[], SystemFigures | None]
NetSource = Callable[[], tuple[int, int] | None]


def _net_totals() -> tuple[int, int] | None:
    counters = psutil.net_io_counters()
    if counters is None:
        return None
    return int(counters.bytes_recv), int(counters.bytes_sent)


def _summary(
    name: str, labels: dict[str, str], window: LatencySummary, totals: Totals | None
) -> Iterator[tuple[str, dict[str, str], float]]:
    values = (window.p50, window.p90, window.p95, window.p99)
    for q, value in zip(names.QUANTILES, values, strict=True):
        # No observation in the window: NaN, as Prometheus clients export an empty summary.
        yield name, {**labels, "quantile": str(q)}, math.nan if value is None else value
    yield f"{name}_count", labels, float(totals.count if totals is not None else 0)
    yield f"{name}_sum", labels, totals.sum if totals is not None else 0.0


class SwarmCollector(Collector):
    """Prometheus collector for one swarm's metrics (and optional extra registries).

    `system` gives the latest machine figures (e.g. from a `Monitor`); `net` gives the
    machine's total received and sent bytes (psutil by default).
    """

    def __init__(
        self,
        metrics: SwarmMetrics | None = None,
        *,
        swarm_id: str | None = None,
        registries: Sequence[Registry] = (),
        system: SystemSource | None = None,
        net: NetSource | None = _net_totals,
    ) -> None:
        if swarm_id is None:
            if metrics is None:
                raise ConfigError("swarm_id", None, "Give the swarm id, or SwarmMetrics.")
            swarm_id = metrics.swarm_id
        self.metrics = metrics
        self.swarm_id = swarm_id
        self.registries = list(registries)
        if metrics is not None:
            self.registries.insert(0, metrics.registry)
        self.system = system
        self.net = net

    def collect(self) -> Iterator[Metric]:
        swarm = {names.SWARM_LABEL: self.swarm_id}
        if self.metrics is not None:
            yield from self._swarm_families(self.metrics, swarm)
        for registry in self.registries:
            yield from _registry_families(registry, swarm)
        yield from self._system_families(swarm)

    def _swarm_families(self, metrics: SwarmMetrics, swarm: dict[str, str]) -> Iterator[Metric]:
        figures = metrics.figures()
        nodes = _nodes(metrics)
        yield from _summaries(figures, metrics, swarm, nodes)
        depth = GaugeMetricFamily(
            names.QUEUE_DEPTH, "Tasks queued or bound, not started, by priority.", labels=None
        )
        for priority, n in figures.queue_depth_by_priority.items():
            depth.add_sample(names.QUEUE_DEPTH, {**swarm, "priority": priority}, float(n))
        yield depth
        in_flight = GaugeMetricFamily(names.AGENT_IN_FLIGHT, "Tasks running on the agent.")
        utilization = GaugeMetricFamily(
            names.AGENT_UTILIZATION, "Busy slot-seconds / (slots x window) over the window."
        )
        up = GaugeMetricFamily(names.AGENT_UP, "1 if the agent is live, 0 if it was lost.")
        breaker = GaugeMetricFamily(
            names.BREAKER_STATE, "1 for the agent's current breaker state, else 0."
        )
        for agent in figures.agents.values():
            labels = _agent_labels(swarm, agent.agent_id, nodes)
            in_flight.add_sample(names.AGENT_IN_FLIGHT, labels, float(agent.in_flight))
            if agent.utilization is not None:
                utilization.add_sample(names.AGENT_UTILIZATION, labels, agent.utilization)
            up.add_sample(names.AGENT_UP, labels, 1.0 if agent.alive else 0.0)
            if agent.breaker is not None:
                for state in names.BREAKER_STATES:
                    value = 1.0 if agent.breaker == state else 0.0
                    breaker.add_sample(names.BREAKER_STATE, {**labels, "state": state}, value)
        yield from (in_flight, utilization, up, breaker)

    def _system_families(self, swarm: dict[str, str]) -> Iterator[Metric]:
        figures = self.system() if self.system is not None else None
        if figures is not None:
            for name, percent, doc in (
                (names.SYSTEM_CPU, figures.cpu_percent, "Machine CPU busy share, 0..1."),
                (names.SYSTEM_MEMORY, figures.memory_percent, "Machine memory used, 0..1."),
            ):
                if percent is not None:
                    gauge = GaugeMetricFamily(name, doc)
                    gauge.add_sample(name, swarm, percent / 100.0)
                    yield gauge
        totals = self.net() if self.net is not None else None
        if totals is not None:
            for name, value, doc in (
                (names.SYSTEM_NET_RECEIVE, totals[0], "Bytes the machine received."),
                (names.SYSTEM_NET_TRANSMIT, totals[1], "Bytes the machine sent."),
            ):
                counter = CounterMetricFamily(name, doc)
                counter.add_sample(name, swarm, float(value))
                yield counter


def _nodes(metrics: SwarmMetrics) -> dict[str, str]:
    """The node each agent runs on (or last ran on), where the backend places agents on
    nodes (Ray): agent -> node id."""
    swarm = metrics.swarm
    placed = swarm.nodes if swarm is not None else {}
    return {agent: ran[-1] for agent, ran in placed.items() if ran}


def _agent_labels(swarm: dict[str, str], agent: str, nodes: dict[str, str]) -> dict[str, str]:
    """A per-agent series' labels: the swarm, the agent and, when known, its `node` (a
    restart elsewhere starts a new series; an empty label would mean the same as none)."""
    node = nodes.get(agent)
    return {**swarm, "agent": agent} if node is None else {**swarm, "agent": agent, "node": node}


def _summaries(
    figures: SwarmFigures, metrics: SwarmMetrics, swarm: dict[str, str], nodes: dict[str, str]
) -> Iterator[Metric]:
    latency = Metric(names.TASK_LATENCY, "Queued to finished, seconds.", "summary")
    for sample in _summary(names.TASK_LATENCY, swarm, figures.latency, metrics.latency_total):
        latency.add_sample(*sample)
    wait = Metric(names.TASK_WAIT, "Queued to started, seconds.", "summary")
    for sample in _summary(names.TASK_WAIT, swarm, figures.wait, metrics.wait_total):
        wait.add_sample(*sample)
    service = Metric(names.TASK_SERVICE, "Started to finished, seconds, by agent.", "summary")
    totals = dict(metrics.service_total)
    for agent in figures.agents.values():
        agent_totals = totals.get(agent.agent_id)
        if agent_totals is None:
            continue  # nothing finished on it yet
        labels = _agent_labels(swarm, agent.agent_id, nodes)
        for sample in _summary(names.TASK_SERVICE, labels, agent.service, agent_totals):
            service.add_sample(*sample)
    yield from (latency, wait, service)


def _registry_families(registry: Registry, swarm: dict[str, str]) -> Iterator[Metric]:
    for metric in registry.metrics():
        if isinstance(metric, Counter):
            family: Metric = CounterMetricFamily(metric.name, metric.help)
            sample_name = family.name + "_total"
            for values, series in metric.series():
                labels = {**swarm, **dict(zip(metric.labelnames, values, strict=True))}
                family.add_sample(sample_name, labels, series.value)
        elif isinstance(metric, Gauge):
            family = GaugeMetricFamily(metric.name, metric.help)
            for values, gauge in metric.series():
                labels = {**swarm, **dict(zip(metric.labelnames, values, strict=True))}
                family.add_sample(metric.name, labels, gauge.value)
        else:
            family = _histogram_family(metric, swarm)
        yield family
    dropped = registry.dropped()
    if dropped:
        family = CounterMetricFamily(
            names.SERIES_DROPPED, "Label sets folded into __overflow__ at the series limit."
        )
        for name, n in dropped.items():
            family.add_sample(names.SERIES_DROPPED, {**swarm, "metric": name}, float(n))
        yield family


def _histogram_family(metric: Histogram, swarm: dict[str, str]) -> Metric:
    family = Metric(metric.name, metric.help, "summary")
    for values, sketch in metric.series():
        labels = {**swarm, **dict(zip(metric.labelnames, values, strict=True))}
        qs = sketch.quantiles(names.QUANTILES)
        for q, value in zip(names.QUANTILES, qs, strict=True):
            quantile = math.nan if value is None else value
            family.add_sample(metric.name, {**labels, "quantile": str(q)}, quantile)
        family.add_sample(f"{metric.name}_count", labels, float(sketch.count))
        family.add_sample(f"{metric.name}_sum", labels, sketch.sum)
    return family


def make_registry(collector: Collector, *, process: bool = True) -> CollectorRegistry:
    """A fresh prometheus_client registry with `collector` (and the process collector)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry


@dataclass(slots=True)
class MetricsServer:
    """A running /metrics endpoint; `close()` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(port: int, host: str = "127.0.0.1", *, registry: CollectorRegistry) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics on a daemon thread.

    Port 0 picks a free port; the server's `port` is the one bound.
    """
    if not (isinstance(port, int) and 0 <= port <= 65535):
        raise ConfigError("metrics_port", port, "Use a port in 0..65535 (0 picks a free one).")
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            "metrics_port",
            port,
            f"It could not be bound on {host} ({exc.strerror}). Choose a free port, or 0.",
        ) from exc
    return MetricsServer(host, int(server.server_port), server, thread)
