"""Collectors (psutil, store) and exact swarm figures computed from task results."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis.figures import (
    AgentShape,
    Columns,
    StoreAgentsCollector,
    compute_figures,
    figure_series,
    run_figures,
    snapshots,
    system_from_rows,
)
from swarmperf.app.run import run_spec
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.monitor.collectors import NEEDS_TWO, SystemCollector
from swarmperf.monitor.snapshot import SwarmFigures, flatten
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store

PSI = (
    "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 avg60=0 avg300=0 total=1\n"
)


def test_first_sample_has_no_rates_and_says_why(tmp_path: Path) -> None:
    collector = SystemCollector(psi_path=tmp_path / "absent")
    first = collector.sample(now=100.0)
    assert first.ts == 100.0
    assert first.cpu_percent is None
    assert first.cpu_per_core == ()
    assert first.net_sent_bytes_per_s is None
    assert first.disk_read_bytes_per_s is None
    assert first.reasons["cpu_percent"] == NEEDS_TWO
    assert first.reasons["net_errors_per_s"] == NEEDS_TWO
    # Levels need no history.
    assert first.memory_percent is not None
    assert 0 <= first.memory_percent <= 100
    assert first.process_rss_bytes is not None
    assert first.process_rss_bytes > 0
    assert first.process_threads is not None
    assert first.process_threads >= 1


def test_second_sample_measures_rates_from_deltas() -> None:
    collector = SystemCollector()
    collector.sample()
    deadline = time.perf_counter() + 0.15
    while time.perf_counter() < deadline:  # keep a core busy so the CPU figure is not idle
        sum(range(1000))
    second = collector.sample()
    assert second.cpu_percent is not None
    assert 0.0 < second.cpu_percent <= 100.0
    assert len(second.cpu_per_core) == psutil.cpu_count()
    assert all(0.0 <= c <= 100.0 for c in second.cpu_per_core)
    assert second.net_sent_bytes_per_s is not None
    assert second.net_sent_bytes_per_s >= 0
    assert second.net_errors_per_s is not None
    assert second.net_errors_per_s >= 0
    assert "cpu_percent" not in second.reasons


@pytest.mark.skipif(not psutil.LINUX, reason="guest CPU time is a Linux counter")
@settings(max_examples=50, deadline=None)
@given(
    user=st.floats(0, 1e4),
    guest=st.floats(0, 1),
    idle=st.floats(0, 1e4),
    iowait=st.floats(0, 1e3),
)
def test_cpu_share_counts_guest_time_once_as_psutil_does(
    user: float, guest: float, idle: float, iowait: float
) -> None:
    # Linux counts the time a core runs a VM both in `user` and in `guest`.
    fields = psutil.cpu_times()._fields
    zero = dict.fromkeys(fields, 0.0)
    after = {**zero, "user": user, "idle": idle, "iowait": iowait, "guest": guest * user}
    before = type(psutil.cpu_times())(**zero)
    reading = iter([[before], [type(before)(**after)]])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psutil, "cpu_times", lambda percpu=False: next(reading))
        collector = SystemCollector()
        collector.sample(now=1.0)
        second = collector.sample(now=2.0)
    total = user + idle + iowait
    expected = 100.0 * user / total if total > 0 else 0.0
    assert second.cpu_percent == pytest.approx(expected, abs=1e-6)


def test_no_time_between_samples_gives_no_rate() -> None:
    collector = SystemCollector()
    collector.sample(now=5.0)
    again = collector.sample(now=5.0)
    assert again.cpu_percent is None
    assert "no time passed" in again.reasons["cpu_percent"]


def test_memory_pressure_is_read_from_psi_or_explained(tmp_path: Path) -> None:
    psi = tmp_path / "memory"
    psi.write_text(PSI)
    assert SystemCollector(psi_path=psi).sample().memory_pressure == 12.5
    psi.write_text("nothing useful\n")
    odd = SystemCollector(psi_path=psi).sample()
    assert odd.memory_pressure is None
    assert "no 'some avg10'" in odd.reasons["memory_pressure"]
    missing = SystemCollector(psi_path=tmp_path / "nope").sample()
    assert missing.memory_pressure is None
    assert "not readable" in missing.reasons["memory_pressure"]


def test_system_rows_come_back_as_figures() -> None:
    collector = SystemCollector()
    collector.sample(now=1.0)
    figures = collector.sample(now=2.0)
    back = system_from_rows(2.0, flatten(None, figures))
    assert back is not None
    assert back.cpu_percent == figures.cpu_percent
    assert back.cpu_per_core == figures.cpu_per_core
    assert back.memory_available_bytes == figures.memory_available_bytes
    assert back.load_avg is None
    assert "1-minute" in back.reasons["load_avg"]
    assert system_from_rows(2.0, {"swarm.completed": 1.0}) is None


# -- figures from results ---------------------------------------------------------------------


def result(
    i: int, agent: str | None, queued: float, wait: float, service: float, status: TaskStatus
) -> TaskResult:
    started = None if agent is None else queued + wait
    finished = queued + wait + (service if agent is not None else 0.0)
    return TaskResult(f"t{i}", status, agent, 1, queued, started, finished)


tasks = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.floats(0.0, 10.0),
        st.floats(0.0, 2.0),
        st.floats(0.001, 1.0),
        st.sampled_from([TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED, TaskStatus.FAILED]),
    ),
    min_size=1,
    max_size=60,
)
SHAPES = {"a": AgentShape(1), "b": AgentShape(2), "c": AgentShape(1)}


def _results(spec: list[tuple[str | None, float, float, float, TaskStatus]]) -> list[TaskResult]:
    out = []
    for i, (agent, queued, wait, service, status) in enumerate(spec):
        out.append(
            result(
                i, agent, queued, wait, service, TaskStatus.REJECTED if agent is None else status
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(tasks, st.floats(0.5, 12.0))
def test_two_halves_add_up_to_the_whole(
    spec: list[tuple[str | None, float, float, float, TaskStatus]], cut: float
) -> None:
    cols = Columns.of(_results(spec))
    lo, hi = -1.0, 15.0
    whole = compute_figures(cols, SHAPES, lo, hi, ts=0.0)
    left = compute_figures(cols, SHAPES, lo, cut, ts=0.0)
    right = compute_figures(cols, SHAPES, cut, hi, ts=0.0)
    assert left.completed + right.completed == whole.completed
    assert left.failed + right.failed == whole.failed
    for name in SHAPES:
        busy = [_busy(f, name) for f in (left, right)]
        assert sum(busy) == pytest.approx(_busy(whole, name), abs=1e-9)
        assert 0.0 <= _busy(whole, name) <= whole.window_s * SHAPES[name].slots


def _busy(figures: SwarmFigures, name: str) -> float:
    """Busy slot-seconds of agent `name` in the window."""
    agent = figures.agents[name]
    assert agent.utilization is not None
    return agent.utilization * figures.window_s * agent.slots


@settings(max_examples=40, deadline=None)
@given(tasks, st.floats(0.0, 12.0))
def test_queue_depth_and_in_flight_are_counted_at_the_window_end(
    spec: list[tuple[str | None, float, float, float, TaskStatus]], end: float
) -> None:
    results = _results(spec)
    figures = compute_figures(Columns.of(results), SHAPES, end - 1.0, end, ts=0.0)
    waiting = sum(1 for r in results if r.queued_at <= end < _began(r))
    assert figures.queue_depth == waiting
    for name in SHAPES:
        running = sum(
            1
            for r in results
            if r.agent == name and r.started_at is not None and r.started_at <= end < _ended(r)
        )
        assert figures.agents[name].in_flight == running


def _began(r: TaskResult) -> float:
    began = r.started_at if r.started_at is not None else r.finished_at
    assert began is not None
    return began


def _ended(r: TaskResult) -> float:
    assert r.finished_at is not None
    return r.finished_at


def test_known_figures_of_a_small_run() -> None:
    results = [
        result(0, "a", 0.0, 0.0, 1.0, TaskStatus.SUCCEEDED),
        result(1, "a", 0.0, 1.0, 1.0, TaskStatus.FAILED),
        result(2, "b", 0.0, 0.0, 4.0, TaskStatus.SUCCEEDED),
        result(3, None, 1.0, 0.0, 0.0, TaskStatus.REJECTED),
    ]
    figures = compute_figures(
        Columns.of(results),
        {"a": AgentShape(1), "b": AgentShape(2)},
        0.0,
        4.0,
        ts=9.0,
        include_start=True,
    )
    assert (figures.completed, figures.failed) == (3, 1)
    assert figures.throughput_per_s == 3 / 4
    assert figures.error_rate == pytest.approx(1 / 3)
    assert figures.availability == pytest.approx(1 - 1 / 4)
    assert figures.latency.count == 3
    assert figures.latency.max == 4.0
    assert figures.wait.mean == pytest.approx(1 / 3)
    assert figures.agents["a"].utilization == pytest.approx(2 / 4)
    assert figures.agents["b"].utilization == pytest.approx(4 / 8)
    assert figures.balance_cv == pytest.approx(0.0)
    assert "queue_depth_by_priority" in figures.reasons


SPEC = """\
swarm_id: watched
strategy: least-loaded
agents:
  - id: a
    count: 2
    concurrency: 2
workload:
  tasks: 80
  kind: sleep
  size: {value: 5ms}
"""


def test_figures_of_a_stored_run_and_the_agents_collector(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        assert StoreAgentsCollector(store, "watched", 1.0).sample() is None
        outcome = asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
        assert outcome.run_id is not None
        whole = run_figures(store, outcome.run_id)
        sampled = StoreAgentsCollector(store, "watched", 0.05).sample()
        series = figure_series(
            Columns.of(store.iter_results(outcome.run_id)), {"a-0": AgentShape(2)}, 0.05
        )
    assert whole.completed == 80
    assert whole.failed == 0
    assert whole.latency.count == 80
    assert whole.service.p50 is not None
    assert whole.service.p50 >= 0.005
    assert set(whole.agents) == {"a-0", "a-1"}
    assert all(a.slots == 2 and a.utilization is not None for a in whole.agents.values())
    report = outcome.report
    assert report.latency_p99 is not None
    assert whole.latency.max == pytest.approx(report.latency_max)
    assert sampled is not None
    assert sampled[0] == outcome.run_id
    assert sampled[1].window_s == pytest.approx(0.05)
    assert sum(f.completed for f in series) == 80
    assert np.isclose(sum(f.window_s for f in series), whole.window_s)


def test_snapshots_group_rows_and_leave_out_downsampling_companions(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.record_metrics("s", None, 1.0, {"a": 1.0, "b": None})
        store.record_metrics("s", None, 2.0, {"a": 2.0, "a#max": 3.0})
        grouped = snapshots(store.metrics("s"))
    assert grouped == {1.0: {"a": 1.0, "b": None}, 2.0: {"a": 2.0}}
