"""The Monitor loop: snapshots into a real SQLite store, observers, and `swarmperf run` wiring."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmperf.app.run import run_spec
from swarmperf.core.errors import ConfigError
from swarmperf.core.model import AgentSpec, Task
from swarmperf.monitor.exposition import MetricsServer
from swarmperf.monitor.monitor import Monitor
from swarmperf.monitor.snapshot import SwarmFigures, SystemFigures
from swarmperf.monitor.swarm_metrics import SwarmMetrics
from swarmperf.runtime.swarm import Swarm
from swarmperf.spec import SpecError, parse_spec_yaml
from swarmperf.store import Store

SPEC = """\
swarm_id: watched
strategy: round-robin
agents:
  - id: a
    count: 2
workload:
  tasks: 300
  kind: sleep
  size: {value: 2ms}
monitor:
  interval: 50ms
"""


async def _work(swarm: Swarm, seconds: float) -> None:
    """Keep the swarm busy for about `seconds`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await swarm.run([Task("sleep", 0.002) for _ in range(4)])


def test_the_monitor_writes_snapshots_to_the_store_and_calls_observers(tmp_path: Path) -> None:
    seen: list[tuple[SwarmFigures, SystemFigures | None]] = []

    async def main(store: Store) -> Monitor:
        swarm = Swarm([AgentSpec("a"), AgentSpec("b")])
        metrics = SwarmMetrics("m1", clock=swarm.clock)
        metrics.attach(swarm)
        monitor = Monitor(metrics, interval=0.05, store=store, run_id=None, system=False)
        monitor.add_observer(lambda sw, sy: seen.append((sw, sy)))
        async with swarm:
            await monitor.start()
            await _work(swarm, 0.4)
            await monitor.stop()
        return monitor

    with Store.open(tmp_path / "s.db") as store:
        monitor = asyncio.run(main(store))
        rows = store.metrics("m1", "swarm.completed")
        latency = store.metrics("m1", "swarm.latency.p50")
    assert monitor.samples >= 4
    assert len(rows) == monitor.samples == len(seen) == len(monitor.history)
    assert [r.ts for r in rows] == sorted(r.ts for r in rows)
    assert rows[-1].value == seen[-1][0].completed > 0
    assert latency[-1].value == pytest.approx(seen[-1][0].latency.p50)
    assert all(system is None for _, system in seen)
    assert not monitor.running


def test_a_failing_observer_is_recorded_and_the_loop_goes_on(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken(swarm: SwarmFigures, system: SystemFigures | None) -> None:
        raise RuntimeError("observer bug")

    async def main() -> tuple[Monitor, Swarm]:
        swarm = Swarm([AgentSpec("a")])
        metrics = SwarmMetrics("m2", clock=swarm.clock)
        metrics.attach(swarm)
        monitor = Monitor(metrics, interval=0.03, system=False)
        monitor.add_observer(broken)
        monitor.add_observer(lambda sw, sy: calls.append(sw.completed))
        async with swarm:
            await monitor.start()
            await _work(swarm, 0.25)
            await monitor.stop()
            await swarm.run([Task("noop")])  # lets the swarm pass on the monitor's events
        return monitor, swarm

    monitor, swarm = asyncio.run(main())
    assert monitor.samples >= 3
    assert len(calls) == monitor.samples  # the next observer still ran every time
    failures = [e for e in monitor.events if e.kind == "monitor-observer-failed"]
    assert len(failures) == monitor.samples
    assert "observer bug" in failures[0].detail["error"]
    assert swarm.event_counts["monitor-observer-failed"] == monitor.samples


def test_a_failing_sample_is_recorded_and_the_sampling_goes_on() -> None:
    from swarmperf.monitor.collectors import SystemCollector

    class FlakyMachine:
        """Fails its first reading after the priming one (a /proc hiccup), then reads for real."""

        def __init__(self) -> None:
            self.calls = 0
            self.real = SystemCollector()

        def sample(self, now: float | None = None) -> SystemFigures:
            self.calls += 1
            if self.calls == 2:
                raise OSError("transient read failure")
            return self.real.sample(now)

    async def main() -> tuple[Monitor, Swarm]:
        swarm = Swarm([AgentSpec("a")])
        metrics = SwarmMetrics("m3", clock=swarm.clock)
        metrics.attach(swarm)
        monitor = Monitor(metrics, interval=0.03, system=FlakyMachine())
        async with swarm:
            await monitor.start()
            await _work(swarm, 0.25)
            await monitor.stop()
        return monitor, swarm

    monitor, swarm = asyncio.run(main())
    assert monitor.samples >= 3  # the loop went on after the failed reading
    assert swarm.event_counts["monitor-tick-failed"] == 1


def test_the_monitor_samples_the_machine_too(tmp_path: Path) -> None:
    async def main(store: Store) -> Monitor:
        swarm = Swarm([AgentSpec("a")])
        metrics = SwarmMetrics("m3", clock=swarm.clock)
        metrics.attach(swarm)
        monitor = Monitor(metrics, interval=0.05, store=store, system=True)
        async with swarm:
            await monitor.start()
            await _work(swarm, 0.15)
            await monitor.stop()
        return monitor

    with Store.open(tmp_path / "s.db") as store:
        monitor = asyncio.run(main(store))
        rss = store.metrics("m3", "system.process_rss_bytes")
    latest = monitor.latest
    assert latest is not None
    assert latest.system is not None
    assert rss
    assert rss[-1].value == latest.system.process_rss_bytes


def test_after_stop_no_more_samples_are_taken() -> None:
    async def main() -> tuple[int, int]:
        monitor = Monitor(SwarmMetrics("m4"), interval=0.01, system=False)
        await monitor.stop()  # never started: nothing to do, no sample
        await monitor.start()
        await asyncio.sleep(0.05)
        await monitor.stop()
        stopped_at = monitor.samples
        await asyncio.sleep(0.05)
        return stopped_at, monitor.samples

    stopped_at, later = asyncio.run(main())
    assert stopped_at >= 2
    assert later == stopped_at


@pytest.mark.parametrize("interval", [0.0, -1.0, float("inf")])
def test_a_bad_interval_names_the_field(interval: float) -> None:
    with pytest.raises(ConfigError, match=r"monitor\.interval"):
        Monitor(SwarmMetrics("x"), interval=interval, system=False)


def test_run_stores_snapshots_under_the_run_and_serves_metrics(tmp_path: Path) -> None:
    spec = parse_spec_yaml(SPEC.replace("interval: 50ms", "interval: 50ms\n  metrics_port: 0"))
    scraped: list[str] = []

    def on_monitor(monitor: Monitor, server: MetricsServer | None) -> None:
        assert server is not None
        scraped.append(httpx.get(server.url, timeout=5).text)

    with Store.open(tmp_path / "s.db") as store:
        outcome = asyncio.run(run_spec(spec, store=store, on_monitor=on_monitor))
        rows = store.metrics("watched", "swarm.completed")
    assert rows
    assert all(r.run_id == outcome.run_id for r in rows)
    # The last snapshot is taken after the drain: every task is in the window.
    assert rows[-1].value == 300
    families = {f.name: f for f in text_string_to_metric_families(scraped[0])}
    assert "swarmperf_task_latency_seconds" in families
    assert all(s.labels["swarm"] == "watched" for f in families.values() for s in f.samples
               if f.name.startswith("swarmperf_"))  # fmt: skip


def test_run_without_the_monitor_stores_no_snapshots(tmp_path: Path) -> None:
    spec = parse_spec_yaml(SPEC.replace("interval: 50ms", "enabled: false"))
    with Store.open(tmp_path / "s.db") as store:
        asyncio.run(run_spec(spec, store=store))
        assert store.metrics("watched") == []


def test_a_bad_metrics_port_in_the_spec_names_the_field() -> None:
    with pytest.raises(SpecError, match=r"monitor\.metrics_port"):
        parse_spec_yaml(SPEC.replace("interval: 50ms", "metrics_port: 70000"))


def test_a_taken_metrics_port_fails_the_run_naming_the_field(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = parse_spec_yaml(SPEC.replace("interval: 50ms", f"metrics_port: {port}"))
        with Store.open(tmp_path / "s.db") as store:
            with pytest.raises(ConfigError, match=r"monitor\.metrics_port"):
                asyncio.run(run_spec(spec, store=store))
            run = store.latest_run("watched")
    assert run is not None
    assert run.status == "failed"
