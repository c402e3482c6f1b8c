"""SLA rules: parsing with clear errors, budget levels, the evaluator, and the sla-* commands."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from swarmperf.alerting.sla import (
    DEFAULT_RULES_YAML,
    RuleSet,
    SlaError,
    SlaRule,
    default_rules,
    evaluate,
    load_rules,
    parse_rules,
    parse_threshold,
    snapshots_from_rows,
)
from swarmperf.cli.main import app
from swarmperf.store import Store

runner = CliRunner()


def rule(**fields: Any) -> SlaRule:
    base: dict[str, Any] = {"name": "r", "metric": "swarm.latency.p99", "comparison": "<="}
    base.setdefault("threshold", "1000ms")
    return SlaRule.model_validate({**base, **fields})


def problems(data: dict[str, Any]) -> list[tuple[str, object, str, str]]:
    with pytest.raises(SlaError) as info:
        parse_rules(data, "test.yaml")
    return list(info.value.problems)


# -- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("1000ms", 1.0, "s"),
        ("1.5s", 1.5, "s"),
        ("99.9%", 0.999, "%"),
        ("0.1%", 0.001, "%"),
        ("100/s", 100.0, "/s"),
        ("30/m", 0.5, "/s"),
        ("0.25", 0.25, ""),
        (3, 3.0, ""),
    ],
)
def test_thresholds_are_read_with_their_units(text: object, value: float, unit: str) -> None:
    assert parse_threshold(text) == (value, unit)


def test_the_built_in_rules_state_the_seed_objectives() -> None:
    rules = {r.name: r for r in default_rules().rules}
    assert default_rules().evaluation_interval == 60.0
    assert all(r.window == 300.0 for r in rules.values())
    assert (rules["availability"].comparison, rules["availability"].threshold) == (">=", 0.999)
    assert (rules["response_time"].metric, rules["response_time"].threshold) == (
        "swarm.latency.p99",
        1.0,
    )
    assert rules["throughput"].threshold == 100.0
    assert rules["error_rate"].threshold == 0.001


@pytest.mark.parametrize(
    ("name", "warning", "critical"),
    [
        # A lower limit on a ratio: 80% of the 0.1% budget gone -> 99.92%.
        ("availability", 0.9992, 0.9991),
        # An upper limit: 80% and 90% of the threshold.
        ("response_time", 0.8, 0.9),
        # A lower limit with no ceiling: threshold / 0.8 and / 0.9.
        ("throughput", 125.0, 100 / 0.9),
        ("error_rate", 0.0008, 0.0009),
    ],
)
def test_levels_are_shares_of_the_error_budget(name: str, warning: float, critical: float) -> None:
    r = next(r for r in default_rules().rules if r.name == name)
    assert r.level_value("warning") == pytest.approx(warning)
    assert r.level_value("critical") == pytest.approx(critical)


def test_the_defaults_text_and_to_data_read_back_as_the_same_rules() -> None:
    rules = default_rules()
    assert parse_rules(yaml.safe_load(DEFAULT_RULES_YAML)) == rules
    assert parse_rules(yaml.safe_load(yaml.safe_dump(rules.to_data()))) == rules


def test_every_problem_is_named_with_its_field_value_and_a_fix() -> None:
    found = problems(
        {
            "rules": [
                {
                    "name": "x",
                    "metric": "swarm.latncy.p99",
                    "comparison": "=",
                    "threshold": "fast",
                    "for": "soon",
                    "colour": "red",
                }
            ]
        }
    )
    by_field = {path: (value, what, fix) for path, value, what, fix in found}
    assert set(by_field) == {
        "rules.0.metric",
        "rules.0.comparison",
        "rules.0.threshold",
        "rules.0.for",
        "rules.0.colour",
    }
    assert by_field["rules.0.metric"][0] == "swarm.latncy.p99"
    assert "Did you mean 'swarm.latency.p99'" in by_field["rules.0.metric"][2]
    assert by_field["rules.0.threshold"][0] == "fast"
    assert "99.9%" in by_field["rules.0.threshold"][2]
    assert "'<'" in by_field["rules.0.comparison"][2]


@pytest.mark.parametrize(
    ("fields", "where", "words"),
    [
        ({"warning_at": 0.95, "critical_at": 0.9}, "rules.0", "warning_at <= critical_at"),
        ({"annotations": {"summary": "{value} on {host}"}}, "rules.0.annotations", "{value}"),
        ({"annotations": {"summary": "{value:.2f}"}}, "rules.0.annotations", "bare"),
        ({"annotations": {"summary": "{value!r}"}}, "rules.0.annotations", "bare"),
        ({"annotations": {"summary": "{value.real}"}}, "rules.0.annotations", "{value}"),
        ({"annotations": {"summary": "50% {"}}, "rules.0.annotations", "{{"),
        ({"metric": "agent.*.colour"}, "rules.0.metric", "utilization"),
        ({"metric": "latency"}, "rules.0.metric", "swarm.availability"),
        ({"comparison": ">=", "threshold": 0, "metric": "swarm.queue_depth"}, "rules.0", "ideal"),
        ({"window": "0s"}, "rules.0.window", "30s"),
        ({"labels": {"severity": "page"}}, "rules.0.labels", "severity the level"),
    ],
)
def test_bad_rules_are_refused(fields: dict[str, Any], where: str, words: str) -> None:
    data = {"name": "r", "metric": "swarm.latency.p99", "comparison": "<=", "threshold": "1s"}
    found = problems({"rules": [{**data, **fields}]})
    assert found[0][0] == where
    assert words in found[0][3]


def test_rule_names_must_differ_and_a_rule_set_cannot_be_empty() -> None:
    data = {"name": "r", "metric": "swarm.latency.p99", "comparison": "<=", "threshold": "1s"}
    assert "own name" in problems({"rules": [data, data]})[0][3]
    assert problems({"rules": []})[0][0] == "rules"


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SlaError, match="is not a mapping"):
        load_rules(path)
    path.write_text("rules: [\n")
    with pytest.raises(SlaError, match="not valid YAML"):
        load_rules(path)


# -- evaluation -------------------------------------------------------------------------


def snaps(metric: str, values: list[float | None], step: float = 10.0) -> list[Any]:
    return [(i * step, {metric: v}) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("value", "state", "breached"),
    [
        (0.5, "ok", False),
        (0.8, "warning", False),
        (0.95, "critical", False),
        (1.2, "critical", True),
    ],
)
def test_an_upper_limit_is_judged_by_the_share_of_its_budget(
    value: float, state: str, breached: bool
) -> None:
    [result] = evaluate([rule()], snaps("swarm.latency.p99", [value] * 3))
    assert (result.state, result.breached) == (state, breached)
    assert result.value == pytest.approx(value)
    assert result.samples == 3


@pytest.mark.parametrize(
    ("value", "state"), [(0.9999, "ok"), (0.99915, "warning"), (0.999, "critical")]
)
def test_availability_warns_before_the_objective_is_broken(value: float, state: str) -> None:
    availability = next(r for r in default_rules().rules if r.name == "availability")
    [result] = evaluate([availability], snaps("swarm.availability", [value]))
    assert result.state == state
    assert result.breached is False


def test_a_rule_with_severity_warning_never_goes_critical() -> None:
    [result] = evaluate([rule(severity="warning")], snaps("swarm.latency.p99", [5.0]))
    assert (result.state, result.breached) == ("warning", True)


def test_only_snapshots_inside_the_window_count() -> None:
    # Window 30 s ending at t=60: t in (30, 60] -> values at 40, 50, 60.
    data = snaps("swarm.latency.p99", [9.0, 9.0, 9.0, 9.0, 0.1, 0.2, 0.3])
    [result] = evaluate([rule(window="30s", aggregation="max")], data, now=60.0)
    assert result.value == pytest.approx(0.3)
    assert result.samples == 3


def test_no_data_says_why_and_never_makes_up_a_value() -> None:
    r = rule()
    [empty] = evaluate([r], [])
    assert (empty.state, empty.value, empty.reason) == (
        "no_data",
        None,
        "no snapshot in the window",
    )
    [absent] = evaluate([r], snaps("swarm.availability", [1.0, 1.0]))
    assert absent.value is None
    assert "absent from all 2 snapshot(s)" in (absent.reason or "")
    [nones] = evaluate([r], snaps("swarm.latency.p99", [None, None, None]))
    assert nones.value is None
    assert "no value in any of the 3" in (nones.reason or "")
    [old] = evaluate([r], snaps("swarm.latency.p99", [0.5]), now=10_000.0)
    assert old.state == "no_data"
    assert old.reaches("warning") is None


def test_an_agent_wildcard_gives_one_labelled_result_per_agent() -> None:
    r = rule(name="busy", metric="agent.*.utilization", threshold="90%", labels={"team": "ops"})
    data = [
        (0.0, {"agent.a-1.utilization": 0.2, "agent.b.utilization": 0.74}),
        (10.0, {"agent.a-1.utilization": 0.3, "agent.b.utilization": 0.76, "agent.b.failed": 1.0}),
    ]
    results = {res.labels["agent"]: res for res in evaluate([r], data)}
    assert set(results) == {"a-1", "b"}
    assert results["a-1"].state == "ok"
    assert results["b"].state == "warning"
    assert results["b"].metric == "agent.b.utilization"
    assert results["b"].labels == {"team": "ops", "agent": "b"}
    [none] = evaluate([r], [(0.0, {"swarm.completed": 3.0})])
    assert none.state == "no_data"
    assert "no agent reported utilization" in (none.reason or "")


def test_annotations_are_filled_with_the_value_in_the_threshold_unit() -> None:
    r = rule(
        name="busy",
        metric="agent.*.utilization",
        threshold="90%",
        annotations={"summary": "{agent} at {value} ({state}, limit {threshold}, {window})"},
    )
    [result] = evaluate([r], [(0.0, {"agent.x.utilization": 0.75})])
    assert result.annotations["summary"] == "x at 75% (warning, limit 90%, 5m)"


finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), finite), min_size=1, max_size=30),
    how=st.sampled_from(["avg", "min", "max", "last", "p50", "p90", "p95", "p99", "count"]),
    comparison=st.sampled_from(["<", "<=", ">", ">="]),
    threshold=st.floats(min_value=0.01, max_value=1e5),
)
def test_evaluation_agrees_with_the_values_and_the_levels(
    values: list[float | None], how: str, comparison: str, threshold: float
) -> None:
    r = rule(aggregation=how, comparison=comparison, threshold=threshold)
    [result] = evaluate([r], snaps("swarm.latency.p99", values))
    present = [v for v in values if v is not None]
    if not present:
        assert result.state == "no_data"
        assert result.value is None
        return
    assert result.value is not None
    assert result.samples == len(present)
    if how == "count":
        assert result.value == len(present)
    elif how == "last":
        assert result.value == present[-1]
    else:
        assert min(present) - 1e-9 <= result.value <= max(present) + 1e-9
        if how == "avg":
            assert result.value == pytest.approx(float(np.mean(present)))
    used = r.budget_used(result.value)
    expected = "critical" if used >= 0.9 else "warning" if used >= 0.8 else "ok"
    assert result.state == expected
    # The state agrees with the level values a Prometheus rule would compare against.
    crit = r.level_value("critical")
    if not math.isclose(result.value, crit, rel_tol=1e-9):
        beyond = result.value > crit if r.is_upper_limit else result.value < crit
        assert (result.state == "critical") == beyond


def test_snapshots_read_back_from_the_store_evaluate_like_the_originals(tmp_path: Path) -> None:
    original: list[tuple[float, dict[str, float | None]]] = [
        (100.0, {"swarm.latency.p99": 0.7, "swarm.availability": 1.0}),
        (110.0, {"swarm.latency.p99": 0.95, "swarm.availability": None}),
    ]
    with Store.open(tmp_path / "s.db") as store:
        for ts, row in original:
            store.record_metrics("sw", None, ts, row)
        stored = snapshots_from_rows(store.metrics("sw"))
    assert [ts for ts, _ in stored] == [100.0, 110.0]
    assert evaluate(default_rules(), stored) == evaluate(default_rules(), original)


# -- commands ---------------------------------------------------------------------------


def test_sla_defaults_prints_rules_that_load(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sla-defaults"])
    assert result.exit_code == 0
    path = tmp_path / "sla.yaml"
    path.write_text(result.stdout)
    assert load_rules(path) == default_rules()


def _store_snapshots(data_dir: Path, swarm: str, p99: float, count: int = 5) -> None:
    with Store.open(data_dir / "swarmperf.db") as store:
        for i in range(count):
            store.record_metrics(
                swarm,
                None,
                1000.0 + 10 * i,
                {
                    "swarm.completed": 100.0,
                    "swarm.latency.p99": p99,
                    "swarm.availability": 1.0,
                    "swarm.error_rate": 0.0,
                    "swarm.throughput_per_s": 500.0,
                },
            )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    from swarmperf.store import database_path

    directory = tmp_path / "data"
    directory.mkdir()
    assert database_path(directory) == directory / "swarmperf.db"
    return directory


def test_sla_check_exits_0_when_no_rule_is_critical(data_dir: Path) -> None:
    _store_snapshots(data_dir, "good", p99=0.2)
    result = runner.invoke(
        app, ["sla-check", "--swarm-id", "good", "--data-dir", str(data_dir), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["critical"] is False
    assert {r["rule"]: r["state"] for r in report["results"]} == {
        "availability": "ok",
        "response_time": "ok",
        "throughput": "ok",
        "error_rate": "ok",
    }
    table = runner.invoke(app, ["sla-check", "--swarm-id", "good", "--data-dir", str(data_dir)])
    assert table.exit_code == 0
    assert "SLA check of swarm 'good'" in table.stdout


def test_sla_check_exits_1_when_a_rule_is_critical(data_dir: Path) -> None:
    _store_snapshots(data_dir, "slow", p99=2.0)
    args = ["sla-check", "--swarm-id", "slow", "--data-dir", str(data_dir), "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    states = {r["rule"]: r for r in json.loads(result.stdout)["results"]}
    assert states["response_time"]["state"] == "critical"
    assert states["response_time"]["breached"] is True
    assert states["response_time"]["value"] == pytest.approx(2.0)


def test_sla_check_window_and_rule_file_options(data_dir: Path, tmp_path: Path) -> None:
    _store_snapshots(data_dir, "sw", p99=0.85)
    sla = tmp_path / "sla.yaml"
    sla.write_text(
        "rules:\n  - {name: fast, metric: swarm.latency.p99, comparison: '<=', threshold: 2s}\n"
    )
    base = ["sla-check", "--swarm-id", "sw", "--data-dir", str(data_dir), "-o", "json"]
    result = runner.invoke(app, [*base, "--sla", str(sla), "--window", "15s"])
    assert result.exit_code == 0, result.output
    [only] = json.loads(result.stdout)["results"]
    assert (only["rule"], only["state"], only["samples"]) == ("fast", "ok", 2)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--window", "soon"], "--window"),
        (["--window", "0s"], "--window"),
        (["--sla", "/nonexistent/sla.yaml"], "--sla"),
    ],
)
def test_sla_check_bad_input_exits_2(data_dir: Path, extra: list[str], words: str) -> None:
    _store_snapshots(data_dir, "sw", p99=0.1)
    result = runner.invoke(
        app, ["sla-check", "--swarm-id", "sw", "--data-dir", str(data_dir), *extra]
    )
    assert result.exit_code == 2
    assert words in result.stderr
    assert "Traceback" not in result.output


def test_sla_check_of_an_unknown_swarm_exits_2(data_dir: Path) -> None:
    result = runner.invoke(app, ["sla-check", "--swarm-id", "ghost", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "no snapshots are stored for swarm 'ghost'" in result.stderr


def test_sla_check_reports_every_problem_of_a_bad_file(data_dir: Path, tmp_path: Path) -> None:
    _store_snapshots(data_dir, "sw", p99=0.1)
    sla = tmp_path / "sla.yaml"
    sla.write_text(
        "rules:\n  - {name: x, metric: swarm.latency.p99, comparison: '<=', threshold: 2 parsecs}\n"
        "alerting: {group_wait: later}\n"
        "sinks:\n  - {type: pigeon, name: p}\n"
    )
    result = runner.invoke(
        app, ["sla-check", "--swarm-id", "sw", "--data-dir", str(data_dir), "--sla", str(sla)]
    )
    assert result.exit_code == 2
    for where in ("rules.0.threshold", "alerting.group_wait", "sinks.0"):
        assert where in result.stderr


def test_a_stalled_swarm_is_critical_on_throughput_and_its_report_is_strict_json() -> None:
    throughput = next(r for r in default_rules().rules if r.name == "throughput")
    [result] = evaluate([throughput], snaps("swarm.throughput_per_s", [0.0, 0.0]))
    assert (result.state, result.breached, result.value) == ("critical", True, 0.0)
    assert result.budget_used == math.inf
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["budget_used"] is None
    assert isinstance(default_rules(), RuleSet)


def test_sla_check_shows_when_it_judged_as_a_readable_time(data_dir: Path) -> None:
    _store_snapshots(data_dir, "good", p99=0.2)
    table = runner.invoke(app, ["sla-check", "--swarm-id", "good", "--data-dir", str(data_dir)])
    assert table.exit_code == 0, table.output
    assert "UNIX time" not in table.stdout
    # ISO 8601 local time with its offset, and how long ago that was.
    text = " ".join(table.stdout.split())  # the line may wrap at the terminal's width
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \(.+ ago\)", text)
