"""Running suites: real load on a local swarm and on callables, figures, stress, spike, leaks."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.loadgen import RawIteration
from swarmperf.bench.results import SuiteResult
from swarmperf.bench.scenarios import SpikeScenario, parse_suite
from swarmperf.bench.suite import (
    SuiteProgress,
    _Reservoir,
    iteration_result,
    make_target_factory,
    recovery_time,
    run_suite,
    store_result,
)
from swarmperf.core.errors import ConfigError
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store

SPEC = parse_spec_yaml(
    """
swarm_id: tiny
agents:
  - {id: w, count: 2, concurrency: 4}
workload: {tasks: 10, kind: sleep, size: 1ms}
"""
)

# A target with a known capacity: one request at a time, 2 ms each (about 450/s here).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_leak: list[bytes] = []


async def one_at_a_time() -> None:
    lock = _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        await asyncio.sleep(0.002)


def leaky() -> None:
    _leak.append(b"x" * 200_000)


def tidy() -> None:
    return None


async def slow_answer() -> None:
    await asyncio.sleep(0.3)


def _suite(*scenarios: dict[str, Any], **defaults: Any) -> Any:
    return parse_suite({"suite": "t", "defaults": defaults, "scenarios": list(scenarios)})


def _run(suite: Any, target: str | None = None, **kw: Any) -> SuiteResult:
    make, description = make_target_factory(target, None if target else SPEC)
    result: SuiteResult = asyncio.run(run_suite(suite, make, target_description=description, **kw))
    return result


def test_the_swarm_target_draws_the_specs_workload_failures_included() -> None:
    spec = parse_spec_yaml(
        """
swarm_id: flaky
agents:
  - {id: w, count: 2, concurrency: 4}
workload: {tasks: 10, kind: sleep, size: 1ms, failure_rate: 0.3}
"""
    )
    suite = _suite(
        {"name": "steady", "kind": "load", "rate": "400/s"},
        duration="1s",
        iterations=1,
        warmup="0s",
        cooldown="0s",
    )
    make, description = make_target_factory(None, spec)
    result = asyncio.run(run_suite(suite, make, target_description=description))
    (it,) = result.scenarios[0].iterations
    assert it.completed > 200
    assert it.failed > 0
    assert 0.2 < it.failed / it.completed < 0.4  # the spec's 30%, drawn per task


def test_a_load_scenario_on_the_local_swarm_measures_every_iteration() -> None:
    progress: list[SuiteProgress] = []
    suite = _suite(
        {"name": "steady", "kind": "load", "rate": "200/s"},
        duration="600ms",
        iterations=2,
        warmup="200ms",
        cooldown="100ms",
    )
    result = _run(suite, on_progress=progress.append)
    (scenario,) = result.scenarios
    assert scenario.target == "swarm:tiny:sleep"
    assert [it.index for it in scenario.iterations] == [0, 1]
    for it in scenario.iterations:
        assert 60 <= it.asked <= 190  # Poisson count around 120
        assert it.completed == it.asked - it.dropped
        assert it.succeeded + it.failed == it.completed
        assert it.failed == 0
        assert it.latency.count == it.succeeded
        assert it.latency.min is not None
        assert it.latency.min >= 0.0009
        assert it.throughput_per_s is not None
        assert 80 < it.throughput_per_s < 320
    assert len(scenario.samples["throughput_per_s"]) == 2
    assert len(scenario.latency_samples_s) == sum(it.succeeded for it in scenario.iterations)
    assert scenario.summary["error_rate"] == 0.0
    assert scenario.settings["duration"] == 0.6
    assert scenario.settings["rate"] == "200/s"
    assert result.environment.cores >= 1
    assert result.finished_at >= result.started_at
    done = [p.done_s for p in progress]
    assert done == sorted(done)
    assert done[-1] == pytest.approx(progress[-1].total_s)
    assert {p.phase for p in progress} >= {"warm-up", "iteration 1/2", "iteration 2/2"}


def test_stress_finds_where_a_limited_target_breaks() -> None:
    suite = _suite(
        {
            "name": "limit",
            "kind": "stress",
            "start_rate": "100/s",
            "factor": 2,
            "max_rate": "3200/s",
            "step_duration": "400ms",
            "break_when": {"p99": "100ms", "error_rate": 0.05, "achieved_below": 0.5},
        },
        warmup="0s",
        cooldown="50ms",
    )
    (scenario,) = _run(suite, f"{__name__}:one_at_a_time").scenarios
    point = scenario.extra["breaking_point"]
    assert point is not None, scenario.extra
    # Capacity is about 450/s: 800/s and above cannot hold (a busy machine may break it
    # sooner, never later).
    assert 200 <= point["asked_rate_per_s"] <= 1600
    assert any("p99" in reason for reason in point["reasons"])
    held = scenario.extra["max_rate_held_per_s"]
    assert held == point["asked_rate_per_s"] / 2
    curve = scenario.extra["curve"]
    assert [row["asked_rate_per_s"] for row in curve][-1] == point["asked_rate_per_s"]
    assert curve[-1]["latency_p99_s"] > curve[0]["latency_p99_s"]
    assert len(scenario.iterations) == len(curve)
    assert scenario.summary["max_rate_held_per_s"] == held


def test_a_target_that_holds_up_does_not_break() -> None:
    suite = _suite(
        {
            "name": "easy",
            "kind": "stress",
            "start_rate": "50/s",
            "max_rate": "100/s",
            "step_duration": "300ms",
        },
        warmup="0s",
        cooldown="0s",
    )
    (scenario,) = _run(suite, f"{__name__}:tidy").scenarios
    assert scenario.extra["breaking_point"] is None
    assert scenario.extra["max_rate_held_per_s"] == 100.0
    assert any("did not break" in note for note in scenario.notes)


@pytest.mark.slow
def _endurance(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "endurance",
        "rate": "60/s",
        "duration": "1500ms",
        "iterations": 3,
        "memory_every": "100ms",
        "leak_min_growth": 4_000_000,
        "leak_min_relative": 0,
    }


def endurance_figures() -> dict[str, Any]:
    """The leaking and the clean endurance runs' figures (run in a process of their own)."""
    try:
        (leaking,) = _run(_suite(_endurance("leak"), warmup="0s"), f"{__name__}:leaky").scenarios
    finally:
        _leak.clear()
    (clean,) = _run(_suite(_endurance("clean"), warmup="0s"), f"{__name__}:tidy").scenarios
    return {
        "leaking": leaking.extra,
        "clean": clean.extra,
        "clean_iterations": len(clean.iterations),
    }


def test_endurance_suspects_a_leak_only_where_there_is_one() -> None:
    # In a fresh process: one that has freed a lot before (a whole suite ran in it) may
    # serve the leak from memory that is already resident, so that RSS does not grow.
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.bench.test_suite_runner import endurance_figures; "
        "print(json.dumps(endurance_figures()))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    leaking, clean = figures["leaking"], figures["clean"]
    assert leaking["leak_suspected"] is True, leaking
    assert leaking["rss_slope_bytes_per_s"] > 4_000_000  # ~12 MB/s were kept
    assert clean["leak_suspected"] is False, clean
    assert figures["clean_iterations"] == 3
    assert clean["latency_drift_s_per_s"] is not None


def test_endurance_windows_count_throughput_over_their_own_width() -> None:
    # Every answer takes 0.3 s: a window's late answers must not stretch it into the next
    # one's time, or a slow target's steady 100/s reads as about 100 * 0.5 / 0.8 = 62/s.
    scenario = {
        "name": "soak",
        "kind": "endurance",
        "rate": "100/s",
        "arrival": "constant",
        "duration": "2s",
        "iterations": 4,
        "memory_every": "500ms",
    }
    (soak,) = _run(_suite(scenario, warmup="0s"), f"{__name__}:slow_answer").scenarios
    assert sum(it.succeeded for it in soak.iterations) == 200
    for it in soak.iterations[:-1]:
        assert it.duration_s == pytest.approx(0.5)
        assert it.throughput_per_s == pytest.approx(100.0)
    assert soak.iterations[-1].duration_s > 0.5  # the last window waits for its answers
    # Over the whole run: 200 answers in the 2 s schedule plus the last answers' 0.3 s.
    assert soak.summary["throughput_per_s"] == pytest.approx(200 / 2.3, rel=0.1)


def _raw(
    intended: list[float],
    latency: list[float],
    failures: dict[int, Any] | None = None,
    scheduled: float = 10.0,
) -> RawIteration:
    i = np.array(intended)
    return RawIteration(
        model="open",
        started_at=1000.0,
        start=0.0,
        scheduled_s=scheduled,
        intended=i,
        sent=i.copy(),
        finished=i + np.array(latency),
        failures=failures or {},
        unanswered=0,
    )


def test_iteration_figures_are_computed_from_what_happened() -> None:
    raw = _raw([0.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, math.nan], {2: ("E", "m")}, scheduled=4.0)
    raw.sent[3] = math.nan  # dropped
    raw.finished[3] = math.nan
    it = iteration_result(raw, 7)
    assert (it.index, it.asked, it.completed, it.succeeded, it.failed, it.dropped) == (
        7,
        4,
        3,
        2,
        1,
        1,
    )
    assert it.error_rate == pytest.approx(1 / 3)
    assert it.throughput_per_s == pytest.approx(2 / 4.0)
    assert it.latency.count == 2
    assert it.latency.max == pytest.approx(0.2)
    assert it.lag_p99_s == 0.0


def test_spike_recovery_is_when_latency_is_back_in_the_band() -> None:
    scenario = SpikeScenario(
        name="s", baseline_rate=10, spike_rate=100, before=2, spike=1, after=3, window=0.5, band=0.5
    )
    times = np.arange(0, 6, 0.05)
    # 10 ms at baseline, 500 ms in the burst, decaying back to 10 ms 1.2 s after it ends.
    latency = np.where(times < 2, 0.01, np.where(times < 3, 0.5, np.where(times < 4.2, 0.3, 0.01)))
    recovered, detail = recovery_time(_raw(times.tolist(), latency.tolist()), scenario)
    assert detail["baseline_p95_s"] == pytest.approx(0.01)
    assert recovered == pytest.approx(1.5)  # the 4.0-4.5 s window is the last one above
    flat = np.full(len(times), 0.01)
    assert recovery_time(_raw(times.tolist(), flat.tolist()), scenario)[0] == 0.0
    never = np.where(times < 2, 0.01, 0.5)
    assert recovery_time(_raw(times.tolist(), never.tolist()), scenario)[0] is None


def test_spike_recovery_is_not_measured_when_nothing_succeeded_after_the_burst() -> None:
    scenario = SpikeScenario(
        name="s", baseline_rate=10, spike_rate=100, before=2, spike=1, after=3, window=0.5, band=0.5
    )
    times = np.arange(0, 6, 0.05)
    latency = np.where(times < 2, 0.01, 0.5)
    # Every request from the burst on failed: there is no latency to say it recovered.
    failures = {int(i): ("E", "down") for i in np.flatnonzero(times >= 2)}
    raw = _raw(times.tolist(), latency.tolist(), failures)
    assert recovery_time(raw, scenario)[0] is None


@settings(deadline=None)
@given(
    batches=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    size=st.integers(1, 200),
    seed=st.integers(0, 1000),
)
def test_the_latency_reservoir_is_a_bounded_seeded_sample(
    batches: list[int], size: int, seed: int
) -> None:
    def fill(s: int) -> Any:
        reservoir = _Reservoir(size, s)
        start = 0
        for n in batches:
            reservoir.add(np.arange(start, start + n, dtype=float))
            start += n
        return reservoir.values, start

    values, total = fill(seed)
    assert len(values) == min(size, total)
    assert len(set(values.tolist())) == len(values)  # without replacement
    assert all(0 <= v < total for v in values)
    again, _ = fill(seed)
    assert np.array_equal(values, again)


def test_results_go_to_the_store(tmp_path: Path) -> None:
    suite = _suite({"name": "v", "kind": "volume", "tasks": 50}, iterations=1, warmup="0s")
    result = _run(suite, f"{__name__}:tidy")
    with Store.open(tmp_path / "s.db") as store:
        row = store_result(store, result, "tiny")
        (record,) = store.benchmarks("suite:t")
    assert record.id == row
    assert record.swarm_id == "tiny"
    assert SuiteResult.model_validate(record.result) == result


def test_target_choices_are_checked_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="module:function"):
        make_target_factory("nonsense")
    with pytest.raises(ConfigError, match="cannot be imported"):
        make_target_factory("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="no attribute"):
        make_target_factory(f"{__name__}:missing")
    with pytest.raises(ConfigError, match="not both"):
        make_target_factory("http://127.0.0.1:1/", SPEC)
    sim = SPEC.model_copy(update={"backend": "sim"})
    with pytest.raises(ConfigError, match="real time"):
        make_target_factory(None, sim)
    _make, description = make_target_factory("http://127.0.0.1:1/x")
    assert "127.0.0.1" in description
    bad_kind = _suite({"name": "k", "kind": "volume", "tasks": 1, "task_kind": "nope"})
    with pytest.raises(ConfigError, match="task_kind"):
        _run(bad_kind)


def test_an_unknown_task_kind_is_refused_before_the_first_scenario_runs() -> None:
    suite = _suite(
        {"name": "first", "kind": "load", "rate": "50/s"},
        {"name": "later", "kind": "load", "rate": "50/s", "task_kind": "nosuch"},
    )
    with pytest.raises(ConfigError, match=r"later\.task_kind"):
        make_target_factory(None, SPEC, scenarios=suite.scenarios)


@pytest.mark.slow
def test_a_burst_beyond_capacity_takes_time_to_recover() -> None:
    suite = _suite(
        {
            "name": "burst",
            "kind": "spike",
            "baseline_rate": "50/s",
            "spike_rate": "2000/s",
            "before": "500ms",
            "spike": "300ms",
            "after": "8s",
            "window": "250ms",
        },
        iterations=1,
        warmup="0s",
    )
    (scenario,) = _run(suite, f"{__name__}:one_at_a_time").scenarios
    (recovered,) = scenario.extra["recovery_s"]
    # ~600 requests against ~450/s: the backlog takes about a second to clear (longer on a
    # loaded machine, where each 2 ms sleep takes more: hence the long tail after it).
    assert recovered is not None, scenario.notes
    assert 0.25 <= recovered < 8.0
    (detail,) = scenario.extra["windows"]
    assert detail["spike_p95_s"] > detail["limit_s"]
    assert scenario.summary["recovery_s"] == recovered
    assert scenario.samples["recovery_failed"] == [0.0]
    assert scenario.summary["recovery_failed"] == 0.0


def test_volume_with_payloads_on_the_swarm() -> None:
    suite = _suite(
        {"name": "big", "kind": "volume", "tasks": 200, "payload_bytes": 10_000},
        iterations=1,
        warmup="0s",
    )
    (scenario,) = _run(suite).scenarios
    assert scenario.target == "swarm:tiny:echo"
    (it,) = scenario.iterations
    assert it.asked == it.succeeded == 200
    assert scenario.extra["bytes_per_s"] == [it.throughput_per_s * 10_000]  # type: ignore[operator]
