"""Bottleneck detection: planted bottlenecks rank first; a real swarm's slow agent is found."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis.bottleneck import (
    Finding,
    analyze,
    detect_correlations,
    detect_recurring,
    record_findings,
    robust_z,
)
from swarmperf.analysis.figures import Columns, agent_shapes, compute_figures
from swarmperf.app.run import run_spec
from swarmperf.core.latency import LatencySummary
from swarmperf.monitor.snapshot import AgentFigures, SwarmFigures, SystemFigures
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import DecisionRecord, Store

WINDOW = 10.0


def q(mean: float, count: int = 200) -> LatencySummary:
    return LatencySummary(count, mean, 1.5 * mean, 1.8 * mean, 2.5 * mean, 3 * mean, mean)


def agent(
    name: str,
    rng: np.random.Generator,
    *,
    util: float = 0.5,
    service: float = 0.01,
    failed: int = 0,
    breaker: str | None = "closed",
) -> AgentFigures:
    jitter = rng.uniform(0.95, 1.05)
    done = int(util * WINDOW / service)
    return AgentFigures(
        agent_id=name,
        completed=max(done, failed),
        failed=failed,
        in_flight=1 if util > 0.5 else 0,
        slots=1,
        utilization=min(1.0, util * rng.uniform(0.97, 1.03)),
        service=q(service * jitter, max(done, 5)),
        breaker=breaker,
    )


def swarm(
    rng: np.random.Generator,
    *,
    util: float = 0.5,
    wait: float = 0.002,
    queue_depth: int = 0,
    special: dict[str, AgentFigures] | None = None,
) -> SwarmFigures:
    agents = {f"a{i}": agent(f"a{i}", rng, util=util) for i in range(6)}
    agents.update(special or {})
    completed = sum(a.completed for a in agents.values())
    failed = sum(a.failed for a in agents.values())
    return SwarmFigures(
        ts=1000.0,
        window_s=WINDOW,
        completed=completed,
        failed=failed,
        throughput_per_s=completed / WINDOW,
        error_rate=failed / completed,
        availability=1.0,
        latency=q(wait + 0.01),
        wait=q(wait),
        service=q(0.01),
        queue_depth=queue_depth,
        queue_depth_by_priority={},
        balance_cv=None,
        agents=agents,
    )


def system(
    rng: np.random.Generator,
    *,
    cpu: float = 30.0,
    load1: float = 0.6,
    mem: float = 40.0,
    psi: float | None = 0.0,
    swap: float = 0.0,
) -> SystemFigures:
    cpu = min(100.0, cpu * rng.uniform(0.97, 1.03))
    return SystemFigures(
        ts=1000.0,
        cpu_percent=cpu,
        cpu_per_core=(cpu, cpu),
        load_avg=(load1, load1, load1),
        memory_percent=mem,
        memory_available_bytes=int((100 - mem) * 1e8),
        memory_pressure=psi,
        swap_percent=swap,
        disk_read_bytes_per_s=0.0,
        disk_write_bytes_per_s=0.0,
        net_sent_bytes_per_s=1e4,
        net_recv_bytes_per_s=1e4,
        net_errors_per_s=0.0,
        net_drops_per_s=0.0,
        process_rss_bytes=10**8,
        process_threads=4,
        process_fds=12,
    )


def scenario(name: str, seed: int) -> tuple[SwarmFigures, SystemFigures]:
    rng = np.random.default_rng(seed)
    if name == "cpu":
        return swarm(rng, util=0.6), system(rng, cpu=98.0, load1=3.5)
    if name == "slow agent":
        slow = agent("a3", rng, util=0.9, service=0.04)
        return swarm(rng, special={"a3": slow}), system(rng)
    if name == "saturated queue":
        return swarm(rng, util=0.98, wait=0.5, queue_depth=400), system(rng, cpu=45.0)
    if name == "memory":
        return swarm(rng), system(rng, mem=96.0, psi=35.0, swap=70.0)
    if name == "failing agent":
        bad = agent("a2", rng, util=0.3, failed=40, breaker="open")
        return swarm(rng, special={"a2": bad}), system(rng)
    raise AssertionError(name)


PLANTED = {
    "cpu": ("use", "cpu"),
    "slow agent": ("slow_agent", "a3"),
    "saturated queue": ("queueing", "queue"),
    "memory": ("use", "memory"),
    "failing agent": ("failing_agent", "a2"),
}


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_planted_bottleneck_ranks_first(name: str, seed: int) -> None:
    figures, machine = scenario(name, seed)
    findings = analyze(figures, machine)
    assert findings, "a planted bottleneck must be found"
    top = findings[0]
    assert (top.type, top.component) == PLANTED[name], [(f.type, f.component) for f in findings]
    assert top.severity in ("warning", "critical")
    assert top.evidence
    assert top.root_cause
    assert top.recommendation


@pytest.mark.parametrize("seed", range(10))
def test_a_healthy_swarm_has_no_diagnosis(seed: int) -> None:
    rng = np.random.default_rng(seed)
    findings = analyze(swarm(rng), system(rng))
    assert all(f.severity == "info" for f in findings), findings


def test_findings_are_ranked_by_score() -> None:
    figures, machine = scenario("slow agent", 0)
    machine = system(np.random.default_rng(1), cpu=97.0, load1=3.0)
    findings = analyze(figures, machine)
    scores = [f.score for f in findings]
    assert scores == sorted(scores, reverse=True)
    assert {(f.type, f.component) for f in findings} >= {("use", "cpu"), ("slow_agent", "a3")}


@settings(max_examples=40)
@given(
    st.lists(st.integers(0, 10_000), min_size=3, max_size=30),
    st.integers(-1000, 1000),
    st.sampled_from([0.5, 2.0, 10.0]),
)
def test_robust_z_ignores_shift_and_scale(values: list[int], shift: int, scale: float) -> None:
    # Integers, and scales that keep them exact: the property is about the statistic, not
    # about float rounding that can make two nearly equal values equal after a shift.
    base = robust_z([float(v) for v in values])
    moved = robust_z([shift + scale * v for v in values])
    assert np.allclose(base, moved, rtol=1e-9, atol=1e-9)


def test_robust_z_sees_one_outlier_among_ties() -> None:
    scores = robust_z([1.0, 1.0, 1.0, 1.0, 5.0])
    assert scores[-1] > 3.5
    assert all(s <= 0 for s in scores[:-1])
    assert robust_z([2.0, 2.0, 2.0]) == [0.0, 0.0, 0.0]


def test_latency_that_follows_a_resource_is_a_correlation() -> None:
    rng = np.random.default_rng(7)
    ts = [float(t) for t in range(30)]
    cpu = rng.uniform(10, 100, size=30)
    noise = rng.normal(0, 0.05, size=30)
    memory = rng.uniform(10, 90, size=30)
    history = {
        "swarm.latency.p99": list(zip(ts, (0.01 * cpu + noise).tolist(), strict=True)),
        "system.cpu_percent": list(zip(ts, cpu.tolist(), strict=True)),
        "system.memory_percent": list(zip(ts, memory.tolist(), strict=True)),
        "system.cpu_percent#max": list(zip(ts, cpu.tolist(), strict=True)),
    }
    found = detect_correlations(history)
    assert [f.component for f in found] == ["system.cpu_percent"]
    assert found[0].evidence["spearman_rho"] > 0.8
    assert found[0].evidence["samples"] == 30


def test_too_short_a_history_proves_nothing() -> None:
    history = {
        "swarm.latency.p99": [(float(t), float(t)) for t in range(5)],
        "system.cpu_percent": [(float(t), float(t)) for t in range(5)],
    }
    assert detect_correlations(history) == []


def _decision(i: int, at: float, run_id: int | None, component: str = "a3") -> DecisionRecord:
    return DecisionRecord(
        i,
        "s",
        at,
        "bottleneck",
        {"type": "slow_agent", "component": component, "run_id": run_id},
        "",
    )


def test_recurring_findings_count_runs_and_expect_the_next() -> None:
    finding = Finding("slow_agent", "critical", "a3", {}, "", "", 3.5)
    past = [
        _decision(1, 100.0, 1),
        _decision(2, 150.0, 1),  # the same run again: not a new occurrence
        _decision(3, 300.0, 2),
        _decision(4, 500.0, 3),
        _decision(5, 505.0, 4, component="a1"),  # another agent
        _decision(6, 550.0, 5),  # the run under analysis
    ]
    found = detect_recurring([finding], past, now=700.0, run_id=5)
    assert len(found) == 1
    evidence = found[0].evidence
    assert evidence["occurrences"] == 4  # runs 1, 2, 3 and now
    assert evidence["first_seen"] == 100.0
    assert evidence["last_seen"] == 500.0
    assert evidence["mean_interval_s"] == pytest.approx(200.0)
    assert evidence["expected_next"] == pytest.approx(900.0)
    assert detect_recurring([finding], [], now=700.0) == []


def test_findings_are_recorded_as_decisions(tmp_path: object) -> None:
    from pathlib import Path

    figures, machine = scenario("failing agent", 0)
    findings = analyze(figures, machine)
    with Store.open(Path(str(tmp_path)) / "s.db") as store:
        ids = record_findings(store, "s", findings, run_id=9)
        stored = store.decisions("s", "bottleneck")
    diagnoses = [f for f in findings if f.type not in ("critical_path", "recurring")]
    assert len(ids) == len(stored) == len(diagnoses)
    assert stored[0].decision["component"] == "a2"
    assert stored[0].decision["run_id"] == 9


SLOW_SPEC = """\
swarm_id: slowpoke
strategy: round-robin
agents:
  - id: a
    count: 4
  - id: slow
    slowdown: 4
workload:
  tasks: 150
  kind: sleep
  size: {value: 4ms}
"""


def test_a_real_swarm_with_a_slowed_agent_names_it(tmp_path: object) -> None:
    from pathlib import Path

    spec = parse_spec_yaml(SLOW_SPEC)
    with Store.open(Path(str(tmp_path)) / "s.db") as store:
        outcome = asyncio.run(run_spec(spec, store=store))
        assert outcome.run_id is not None
        run = store.get_run(outcome.run_id)
        assert run is not None
        shapes = agent_shapes(run)
    cols = Columns.of(outcome.results)
    assert cols.first is not None
    assert cols.last is not None
    figures = compute_figures(cols, shapes, cols.first, cols.last, ts=0.0, include_start=True)
    findings = analyze(figures, weights={k: v.weight for k, v in shapes.items()})
    top = findings[0]
    assert (top.type, top.component) == ("slow_agent", "slow"), findings
    assert top.evidence["times_peer_median"] > 2.0


def test_stored_evidence_comes_from_the_run_the_timeframe_and_the_past(tmp_path: object) -> None:
    import time
    from pathlib import Path

    from swarmperf.analysis.bottleneck import analyze_stored

    machine = {"cpu", "memory", "network"}
    with Store.open(Path(str(tmp_path)) / "s.db") as store:
        outcome = asyncio.run(run_spec(parse_spec_yaml(SLOW_SPEC), store=store))
        assert outcome.run_id is not None
        run = store.get_run(outcome.run_id)
        assert run is not None
        # Judged two hours on, the run's own snapshots are out of any shorter timeframe; a
        # busy CPU ten minutes before is inside an hour's, outside a minute's.
        now = time.time() + 7200
        store.record_metrics("slowpoke", run.id, now - 600, {"system.cpu_percent": 99.0})

        minute = analyze_stored(store, "slowpoke", run, window_s=60.0, now=now)
        hour = analyze_stored(store, "slowpoke", run, window_s=3600.0, now=now)
        assert (minute[0].type, minute[0].component) == ("slow_agent", "slow"), minute
        assert not [f for f in minute if f.component in machine], minute
        assert [f.component for f in hour if f.component in machine] == ["cpu"], hour

        # Seen before, outside this run: the same diagnosis now recurs.
        record_findings(store, "slowpoke", minute, run_id=None)
        again = analyze_stored(store, "slowpoke", run, window_s=60.0, now=now + 1)
        recurring = [f.component for f in again if f.type == "recurring"]
        assert "slow_agent/slow" in recurring, again


def test_without_a_run_only_the_machine_is_judged(tmp_path: object) -> None:
    import time
    from pathlib import Path

    from swarmperf.analysis.bottleneck import analyze_stored

    with Store.open(Path(str(tmp_path)) / "s.db") as store:
        now = time.time()
        store.record_metrics("idle", None, now - 1, {"system.cpu_percent": 99.0})
        findings = analyze_stored(store, "idle", None, window_s=60.0, now=now)
    assert [(f.type, f.component) for f in findings] == [("use", "cpu")]
