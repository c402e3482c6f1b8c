"""The results schema: exact JSON round trips, clear errors on bad files, the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from swarmperf.bench.environment import capture_environment, git_commit
from swarmperf.bench.results import (
    SCHEMA_VERSION,
    Environment,
    ErrorRecord,
    IterationResult,
    ScenarioResult,
    SuiteResult,
    load_result,
    save_result,
)
from swarmperf.core.errors import ConfigError
from swarmperf.core.latency import LatencySummary

ENV = Environment(
    machine="x86_64",
    cpu="Test CPU",
    cores=2,
    memory_bytes=8 * 2**30,
    os="Linux 6",
    python="CPython 3.11.7",
    packages={"numpy": "2.0"},
    git_commit=None,
    swarmperf_version="0.1.0",
)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe = st.one_of(st.none(), finite)


def _iteration(i: int, p99: float | None = 0.01) -> IterationResult:
    return IterationResult(
        index=i,
        started_at=1_700_000_000.5 + i,
        duration_s=1.0,
        asked=100,
        completed=99,
        succeeded=98,
        failed=1,
        dropped=1,
        throughput_per_s=98.0,
        error_rate=1 / 99,
        latency=LatencySummary(
            count=98, p50=0.001, p90=0.005, p95=0.007, p99=p99, max=0.1, mean=0.002, min=0.0001
        ),
        lag_p99_s=0.0004,
    )


def _result(summary: dict[str, float | None] | None = None, extra: Any = None) -> SuiteResult:
    scenario = ScenarioResult(
        name="steady",
        kind="load",
        target="swarm:demo:sleep",
        settings={"rate": 100.0, "ramp_up": "1s", "nested": {"a": [1, 2.5, None]}},
        iterations=[_iteration(0), _iteration(1, None)],
        summary=summary if summary is not None else {"throughput_per_s": 98.0, "x": None},
        samples={"throughput_per_s": [98.0, 97.5]},
        latency_samples_s=[0.1, 1e-7, 3.0000000000000004],
        errors=[
            ErrorRecord(type="TaskFailure", message="boom", count=1, first_seen=1.5, last_seen=1.5)
        ],
        extra=extra if extra is not None else {"breaking_point": None, "curve": [{"r": 1.0}]},
        notes=["could not hold the asked rate: 0.93 of 2000/s"],
    )
    return SuiteResult(
        schema_version=SCHEMA_VERSION,
        suite="quick",
        started_at=1_700_000_000.123456,
        finished_at=1_700_000_030.654321,
        environment=ENV,
        scenarios=[scenario],
    )


def test_a_result_round_trips_exactly(tmp_path: Path) -> None:
    result = _result()
    path = tmp_path / "r.json"
    save_result(result, path)
    again = load_result(path)
    assert again == result
    assert again.model_dump(mode="json") == result.model_dump(mode="json")
    assert again.scenario("steady").iterations[1].latency.p99 is None


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    summary=st.dictionaries(st.text(min_size=1, max_size=20), maybe, max_size=6),
    extra=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, st.text()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    ).map(lambda v: {"value": v}),
)
def test_any_finite_figures_round_trip(
    tmp_path: Path, summary: dict[str, float | None], extra: dict[str, Any]
) -> None:
    result = _result(summary, extra)
    path = tmp_path / "r.json"
    save_result(result, path)
    assert load_result(path) == result


def test_not_a_number_is_refused_when_the_result_is_built() -> None:
    with pytest.raises(ValidationError):
        _result({"throughput_per_s": float("nan")})


def test_saving_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "r.json"
    save_result(_result(), path)
    save_result(_result({"throughput_per_s": 1.0}), path)
    assert load_result(path).scenarios[0].summary == {"throughput_per_s": 1.0}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_a_path_that_cannot_be_written_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "r.json"
    with pytest.raises(ConfigError, match="results file") as raised:
        save_result(_result(), target)
    assert str(target) in str(raised.value)
    assert not target.exists()


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_bad_files_name_the_field_the_value_and_the_fix(tmp_path: Path) -> None:
    good = _result().model_dump(mode="json")
    with pytest.raises(ConfigError) as info:
        load_result(tmp_path / "missing.json")
    assert info.value.field == "results file"
    assert "benchmark-run" in info.value.fix
    with pytest.raises(ConfigError, match="not JSON"):
        load_result(_write(tmp_path, "{nope"))
    with pytest.raises(ConfigError, match="no JSON object"):
        load_result(_write(tmp_path, [1, 2]))
    with pytest.raises(ConfigError) as info:
        load_result(_write(tmp_path, {**good, "schema_version": 0}))
    assert info.value.field == "schema_version"
    assert info.value.value == 0
    assert "older" in info.value.fix
    assert "Run the suite again" in info.value.fix
    with pytest.raises(ConfigError) as info:
        load_result(_write(tmp_path, {**good, "schema_version": SCHEMA_VERSION + 1}))
    assert "newer" in info.value.fix
    broken = json.loads(json.dumps(good))
    broken["scenarios"][0]["iterations"][0]["asked"] = "many"
    with pytest.raises(ConfigError) as info:
        load_result(_write(tmp_path, broken))
    assert info.value.field == "scenarios.0.iterations.0.asked"
    assert info.value.value == "many"
    del broken["scenarios"][0]["kind"]
    with pytest.raises(ConfigError, match="2 problem"):
        load_result(_write(tmp_path, broken))


def test_a_missing_field_is_named_without_dumping_the_file(tmp_path: Path) -> None:
    good = _result().model_dump(mode="json")
    good["scenarios"][0]["latency_samples_s"] = [0.001 * i for i in range(20_000)]
    del good["scenarios"][0]["summary"]
    with pytest.raises(ConfigError) as info:
        load_result(_write(tmp_path, good))
    assert info.value.field == "scenarios.0.summary"
    assert "missing" in str(info.value).lower()
    assert len(str(info.value)) < 1000  # the message names the gap, not the whole scenario


def test_an_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="steady"):
        _result().scenario("nope")


def test_the_environment_is_captured() -> None:
    env = capture_environment()
    assert env.cores >= 1
    assert env.memory_bytes > 0
    assert env.python.startswith("CPython") or env.python
    assert "numpy" in env.packages
    assert "pydantic" in env.packages
    assert env.swarmperf_version != ""
    assert env.git_commit is None or len(env.git_commit) == 40


def test_outside_a_git_checkout_the_commit_is_none(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "does-not-exist") is None
