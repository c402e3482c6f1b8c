"""The regression gate: baseline comparisons and history checks, with directions per metric."""

from __future__ import annotations

import numpy as np
import pytest

from swarmperf.bench.gate import (
    compare_results,
    gate_history,
    iterations_needed,
    metric_direction,
    min_p_value,
)
from swarmperf.bench.results import SuiteResult
from swarmperf.core.errors import ConfigError
from tests.bench.test_quality import scenario, suite


def _run(
    latency: float,
    throughput: float = 200.0,
    *,
    n: int = 8,
    seed: int = 0,
    started: float = 1000.0,
    name: str = "steady",
) -> SuiteResult:
    rng = np.random.default_rng(seed)
    lat = (latency * (1 + 0.02 * rng.standard_normal(n))).tolist()
    thr = (throughput * (1 + 0.01 * rng.standard_normal(n))).tolist()
    samples = {"latency_p95_s": lat, "throughput_per_s": thr, "error_rate": [0.0] * n}
    summary: dict[str, float | None] = {
        "latency_p95_s": float(np.median(lat)),
        "throughput_per_s": float(np.median(thr)),
        "error_rate": 0.0,
    }
    return suite(scenario(name, samples=samples, summary=summary), started=started)


@pytest.mark.parametrize(
    ("metric", "higher"),
    [
        ("throughput_per_s", True),
        ("availability", True),
        ("latency_p95_s", False),
        ("error_rate", False),
        ("achieved_ratio", None),
        ("dropped", False),
        ("recovery_s", False),
        ("memory_growth_bytes", False),
        ("jain_index", None),
    ],
)
def test_metric_directions(metric: str, higher: bool | None) -> None:
    assert metric_direction(metric) is higher


def test_the_load_generators_own_figures_are_shown_not_gated() -> None:
    base, now = _run(0.1, seed=1), _run(0.1, seed=2)
    base.scenarios[0].samples["lag_p99_s"] = [0.001] * 8
    now.scenarios[0].samples["lag_p99_s"] = [0.2] * 8
    gate = compare_results(base, now)
    lag = next(c for c in gate.checks if c.metric == "lag_p99_s")
    assert lag.status == "skipped"
    assert "load generator" in lag.message
    assert gate.passed


def test_the_smallest_p_value_and_the_iterations_it_takes() -> None:
    assert min_p_value(3, 3) == pytest.approx(0.1)
    assert min_p_value(5, 5) == pytest.approx(2 / 252)
    assert iterations_needed(0.01) == 5
    assert iterations_needed(0.05) == 4


def test_a_planted_slowdown_fails_with_the_worse_direction() -> None:
    base, slow = _run(0.100, seed=1), _run(0.120, seed=2)  # latency 20% up
    gate = compare_results(base, slow)
    assert not gate.passed
    (regression,) = gate.regressions
    assert (regression.scenario, regression.metric) == ("steady", "latency_p95_s")
    assert regression.comparison is not None
    assert regression.comparison.direction == "worse"
    assert regression.comparison.change == pytest.approx(0.2, abs=0.03)
    assert gate.to_check_report().exit_code == 1


def test_higher_throughput_is_better_not_a_regression() -> None:
    gate = compare_results(_run(0.1, 200.0, seed=1), _run(0.1, 260.0, seed=2))
    assert gate.passed
    throughput = next(c for c in gate.checks if c.metric == "throughput_per_s")
    assert throughput.comparison is not None
    assert throughput.comparison.direction == "better"


def test_lower_throughput_is_a_regression() -> None:
    gate = compare_results(_run(0.1, 200.0, seed=1), _run(0.1, 150.0, seed=2))
    assert [c.metric for c in gate.regressions] == ["throughput_per_s"]


@pytest.mark.parametrize("seed", range(10))
def test_an_unchanged_rerun_passes(seed: int) -> None:
    gate = compare_results(_run(0.1, seed=seed), _run(0.1, seed=seed + 100))
    assert gate.passed, [c.message for c in gate.checks if c.status != "pass"]


def test_too_few_iterations_are_not_judged_and_a_gate_that_judged_nothing_fails() -> None:
    gate = compare_results(_run(0.1, n=3, seed=1), _run(0.5, n=3, seed=2))
    latency = next(c for c in gate.checks if c.metric == "latency_p95_s")
    assert latency.status == "skipped"
    assert "not judged" in latency.message
    assert "run at least 5 iterations" in latency.message
    assert not gate.passed
    assert gate.checks[-1].status == "no data"
    assert "no metric could be judged" in gate.checks[-1].message


def test_one_unjudged_metric_does_not_fail_a_gate_that_judged_others() -> None:
    base, now = _run(0.1, seed=1), _run(0.1, seed=2)
    base.scenarios[0].samples["recovery_s"] = [0.3]
    now.scenarios[0].samples["recovery_s"] = [0.9]
    gate = compare_results(base, now)
    recovery = next(c for c in gate.checks if c.metric == "recovery_s")
    assert recovery.status == "skipped"
    assert gate.passed


def test_missing_and_new_scenarios() -> None:
    base = _run(0.1, seed=1)
    renamed = _run(0.1, seed=2, name="other")
    gate = compare_results(base, renamed)
    statuses = {(c.scenario, c.status) for c in gate.checks}
    assert statuses == {("steady", "no data"), ("other", "skipped"), ("(suite)", "no data")}
    assert not gate.passed


def test_a_metric_gone_from_the_current_run_is_no_data() -> None:
    base = _run(0.1, seed=1)
    now = _run(0.1, seed=2)
    del now.scenarios[0].samples["latency_p95_s"]
    gate = compare_results(base, now)
    latency = next(c for c in gate.checks if c.metric == "latency_p95_s")
    assert latency.status == "no data"


def test_bad_settings_name_the_option() -> None:
    with pytest.raises(ConfigError, match="--alpha"):
        compare_results(_run(0.1), _run(0.1), alpha=1.5)
    with pytest.raises(ConfigError, match="history"):
        gate_history([], _run(0.1))


def _history(latencies: list[float]) -> list[SuiteResult]:
    return [_run(lat, seed=i, started=1000.0 + 100 * i) for i, lat in enumerate(latencies)]


def test_history_passes_a_run_like_the_ones_before() -> None:
    history = _history([0.1] * 8)
    gate = gate_history(history, _run(0.1, seed=99, started=5000.0))
    assert gate.passed, [c.message for c in gate.checks if c.status != "pass"]
    kinds = {c.kind for c in gate.checks if c.metric == "latency_p95_s"}
    assert kinds == {"changepoint", "history"}


def test_history_fails_a_slow_current_run_against_the_stable_stretch() -> None:
    gate = gate_history(_history([0.1] * 8), _run(0.13, seed=99, started=5000.0))
    failed = {(c.metric, c.kind) for c in gate.regressions}
    assert ("latency_p95_s", "history") in failed


def test_history_flags_a_recent_worse_shift_by_change_point() -> None:
    # The slowdown arrived two runs ago and is still there.
    history = _history([0.1] * 10 + [0.15, 0.15])
    gate = gate_history(history, _run(0.15, seed=99, started=9000.0))
    changepoint = next(
        c for c in gate.checks if c.metric == "latency_p95_s" and c.kind == "changepoint"
    )
    assert changepoint.status == "fail"
    assert changepoint.change_points
    assert changepoint.change_points[-1].direction == "up"
    assert "2 run(s) before this one" in changepoint.message


def test_history_compares_against_the_runs_after_the_last_change() -> None:
    # An old slowdown, long accepted: the current run matches the new normal.
    history = _history([0.1] * 6 + [0.15] * 8)
    gate = gate_history(history, _run(0.15, seed=99, started=9000.0))
    assert gate.passed, [c.message for c in gate.checks if c.status != "pass"]


def test_a_spike_the_target_no_longer_recovers_from_is_a_regression() -> None:
    def spike(failed: float) -> SuiteResult:
        return suite(scenario("burst", kind="spike", samples={"recovery_failed": [failed] * 5}))

    gate = compare_results(spike(0.0), spike(1.0))
    assert [(c.scenario, c.metric) for c in gate.regressions] == [("burst", "recovery_failed")]
    assert compare_results(spike(0.0), spike(0.0)).passed
