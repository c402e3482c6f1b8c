"""Prometheus rules (checked by promtool) and the Grafana dashboard, and their commands."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from swarmperf.alerting.exports import (
    dashboard_queries,
    grafana_dashboard,
    prometheus_rules,
    rule_expr,
    unexportable,
)
from swarmperf.alerting.sla import RuleSet, default_rules, parse_rules
from swarmperf.cli.main import app
from swarmperf.monitor import names
from tests.support import unavailable

runner = CliRunner()
PROMTOOL = shutil.which("promtool") or (
    "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
)

EXPORTED = {getattr(names, n) for n in dir(names) if isinstance(getattr(names, n), str)} | {
    "process_resident_memory_bytes"
}


def promtool() -> str:
    if PROMTOOL is None:
        unavailable("promtool is not installed (Debian package prometheus)")
    return PROMTOOL


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def every_kind_of_rule() -> RuleSet:
    metrics = [
        "swarm.availability",
        "swarm.error_rate",
        "swarm.throughput_per_s",
        "swarm.latency.p99",
        "swarm.wait.p50",
        "swarm.service.p95",
        "swarm.latency.mean",
        "swarm.queue_depth",
        "agent.*.utilization",
        "agent.*.in_flight",
        "agent.*.service.p90",
    ]
    aggregations = ["avg", "min", "max", "last", "p50", "p90", "p95", "p99", "count"]
    listed = []
    for i, metric in enumerate(metrics):
        listed.append(
            {
                "name": f"r{i}",
                "metric": metric,
                "aggregation": aggregations[i % len(aggregations)],
                "comparison": ["<=", ">=", "<", ">"][i % 4],
                "threshold": 0.5,
                "window": "2m",
                "for": "30s",
                "severity": "warning" if i == 3 else "critical",
                "labels": {"team": "swarm"},
                "annotations": {"summary": "{rule} on {agent}: {value} vs {threshold} {{x}}"},
            }
        )
    return parse_rules({"rules": listed})


def test_promtool_accepts_the_default_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(prometheus_rules(default_rules()))
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_accepts_every_metric_and_aggregation(tmp_path: Path) -> None:
    rules = every_kind_of_rule()
    assert unexportable(rules) == []
    path = tmp_path / "rules.yml"
    path.write_text(prometheus_rules(rules))
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_alert_at_the_evaluator_levels() -> None:
    rules = default_rules()
    exported = yaml.safe_load(prometheus_rules(rules))["groups"][0]
    assert exported["interval"] == "1m"
    by_name = {r.name: r for r in rules.rules}
    assert len(exported["rules"]) == 2 * len(rules.rules)
    for entry in exported["rules"]:
        rule = by_name[entry["alert"]]
        op = ">=" if rule.is_upper_limit else "<="
        level = float(entry["expr"].rsplit(f" {op} ", 1)[1])
        assert level == pytest.approx(rule.level_value(entry["labels"]["severity"]), rel=1e-9)
        assert entry["for"] == "1m"
    availability = [e for e in exported["rules"] if e["alert"] == "availability"]
    assert {e["labels"]["severity"] for e in availability} == {"warning", "critical"}
    assert 'status="rejected"' in availability[0]["expr"]
    assert 'status="failed",agent="none"' in availability[0]["expr"]


def test_annotation_templates_become_prometheus_templates() -> None:
    exported = yaml.safe_load(prometheus_rules(every_kind_of_rule()))["groups"][0]["rules"]
    summary = exported[0]["annotations"]["summary"]
    assert summary.startswith("r0 on {{ $labels.agent }}: {{ $value | humanize }} vs 0.5")
    assert exported[0]["labels"] == {"team": "swarm", "severity": "warning"}


def test_a_rule_without_a_prometheus_metric_is_left_out_with_a_comment() -> None:
    rules = parse_rules(
        {
            "rules": [
                {"name": "cv", "metric": "swarm.balance_cv", "comparison": "<=", "threshold": 0.3},
                *default_rules().to_data()["rules"],
            ]
        }
    )
    assert [r.name for r in unexportable(rules)] == ["cv"]
    text = prometheus_rules(rules)
    assert "# Not exported (no Prometheus metric): cv (swarm.balance_cv)" in text
    assert "cv" not in {r["alert"] for r in yaml.safe_load(text)["groups"][0]["rules"]}


def test_rule_expressions_use_only_exported_names() -> None:
    for rule in every_kind_of_rule().rules:
        expr = rule_expr(rule)
        assert expr is not None
        for metric in re.findall(r"\b(?:swarmperf|process)_[a-z_]+", expr):
            assert metric.removesuffix("_sum").removesuffix("_count") in EXPORTED, metric


# -- Grafana ----------------------------------------------------------------------------


def test_the_dashboard_is_valid_json_with_the_expected_panels() -> None:
    board = json.loads(json.dumps(grafana_dashboard()))
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["swarm"]["query"]["query"] == "label_values(swarmperf_tasks_total, swarm)"
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for wanted in (
        "throughput",
        "latency",
        "error rate",
        "availability",
        "queue depth",
        "utilisation",
        "breaker",
        "cpu",
        "memory",
    ):
        assert wanted in titles
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {t["refId"] for t in panel["targets"]} == {
            chr(ord("A") + i) for i in range(len(panel["targets"]))
        }


def test_dashboard_queries_reference_only_exported_names_and_filter_by_swarm() -> None:
    queries = dashboard_queries()
    assert queries
    used = set()
    for _, expr, _ in queries:
        assert 'swarm=~"$swarm"' in expr
        for metric in re.findall(r"\b(?:swarmperf|process)_[a-z_]+", expr):
            used.add(metric)
            assert metric in EXPORTED, metric
    assert {names.TASKS_TOTAL, names.TASK_LATENCY, names.QUEUE_DEPTH, names.BREAKER_STATE} <= used


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # promtool checks PromQL inside rule files: wrap each query as a recording rule, with the
    # dashboard variables replaced by what Grafana would substitute.
    rules = [
        {
            "record": f"swarmperf:dashboard_query_{i}",
            "expr": expr.replace("$swarm", ".*").replace("$__rate_interval", "1m"),
        }
        for i, (_, expr, _) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- commands ---------------------------------------------------------------------------


def test_export_prometheus_rules_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "prometheus-rules"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["groups"][0]["name"] == "swarmperf-sla"
    out = tmp_path / "rules.yml"
    result = runner.invoke(app, ["export", "prometheus-rules", "--out", str(out)])
    assert result.exit_code == 0
    assert out.read_text() == prometheus_rules(default_rules())
    assert [p.name for p in tmp_path.iterdir()] == ["rules.yml"]  # no temporary left


def test_export_prometheus_rules_from_an_alerting_file_warns_about_left_out_rules(
    tmp_path: Path,
) -> None:
    sla = tmp_path / "sla.yaml"
    sla.write_text(
        "rules:\n"
        "  - {name: cv, metric: swarm.balance_cv, comparison: '<=', threshold: 0.3}\n"
        "  - {name: depth, metric: swarm.queue_depth, comparison: '<=', threshold: 100}\n"
        "sinks:\n  - {type: webhook, name: h, url: 'http://127.0.0.1:9/'}\n"
    )
    result = runner.invoke(app, ["export", "prometheus-rules", "--sla", str(sla)])
    assert result.exit_code == 0, result.output
    assert "rule 'cv' is left out" in result.stderr
    alerts = {r["alert"] for r in yaml.safe_load(result.stdout)["groups"][0]["rules"]}
    assert alerts == {"depth"}


def test_export_with_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    sla = tmp_path / "sla.yaml"
    sla.write_text("rules: [{name: x, metric: swarm.nope, comparison: '<=', threshold: 1}]\n")
    out = tmp_path / "rules.yml"
    result = runner.invoke(
        app, ["export", "prometheus-rules", "--sla", str(sla), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "rules.0.metric" in result.stderr
    assert not out.exists()
    missing_dir = tmp_path / "no" / "such" / "rules.yml"
    result = runner.invoke(app, ["export", "grafana-dashboard", "--out", str(missing_dir)])
    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_export_grafana_dashboard(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "grafana-dashboard"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == grafana_dashboard()
    out = tmp_path / "board.json"
    assert runner.invoke(app, ["export", "grafana-dashboard", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["uid"] == "swarmperf"


def test_export_to_a_file_that_cannot_be_written_exits_2_naming_it(tmp_path: Path) -> None:
    out = tmp_path / ("r" * 300 + ".yml")  # longer than a file name may be
    result = runner.invoke(app, ["export", "grafana-dashboard", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--out" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
