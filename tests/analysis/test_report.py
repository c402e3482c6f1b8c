"""Performance reports: SLA compliance, trends, cost models, and reports of a real stored run."""

from __future__ import annotations

import asyncio
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from swarmperf.analysis.figures import stored_series
from swarmperf.analysis.report import (
    NO_COST_MODEL,
    CostModel,
    PerformanceReport,
    SlaThresholds,
    build_report,
    load_cost_model,
    render_detailed,
    render_summary,
    sla_compliance,
    to_html,
    to_json,
    trend,
)
from swarmperf.app.run import RunOutcome, run_spec
from swarmperf.core.errors import ConfigError
from swarmperf.monitor.snapshot import flatten
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store

SPEC = """\
swarm_id: reported
strategy: round-robin
monitor: {enabled: false}
agents:
  - id: a
    count: 2
  - id: slow
    slowdown: 4
workload:
  tasks: 90
  kind: sleep
  size: {value: 4ms}
"""


def test_sla_compliance_counts_each_objective_and_all_together() -> None:
    good = {
        "swarm.availability": 1.0,
        "swarm.latency.p99": 0.2,
        "swarm.throughput_per_s": 150.0,
        "swarm.error_rate": 0.0,
    }
    slow = {**good, "swarm.latency.p99": 1.5}
    unknown = {**good, "swarm.error_rate": None}
    result = sla_compliance([good, slow, unknown, good])
    assert result["latency_p99"] == {
        "metric": "swarm.latency.p99",
        "objective": "<= 1",
        "threshold": 1.0,
        "measured": 4,
        "met": 3,
        "share": 0.75,
    }
    assert result["error_rate"]["measured"] == 3
    assert result["error_rate"]["share"] == 1.0
    assert result["all"] == {"measured": 3, "met": 2, "share": pytest.approx(2 / 3)}
    strict = sla_compliance([good], SlaThresholds(throughput_per_s=200.0))
    assert strict["throughput"]["met"] == 0
    assert sla_compliance([])["all"]["share"] is None


def test_trend_fits_the_slope() -> None:
    rising = [(1000.0 + t, 10.0 + 2.0 * t) for t in range(10)]
    fitted = trend(rising)
    assert fitted["direction"] == "rising"
    assert fitted["slope_per_hour"] == pytest.approx(2.0 * 3600)
    assert fitted["change"] == pytest.approx(18.0)
    assert trend([(float(t), 5.0) for t in range(5)])["direction"] == "flat"
    rng = np.random.default_rng(3)
    noise = trend([(float(t), float(v)) for t, v in enumerate(rng.normal(0, 1, 40))])
    assert noise["direction"] == "flat"
    assert trend([(1.0, 1.0), (2.0, 2.0)])["slope_per_hour"] is None


def test_cost_models_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "cost.yaml"
    path.write_text("per_agent_hour: 0.5\ncurrency: EUR\n")
    assert load_cost_model(path) == CostModel(0.5, None, "EUR")
    path.write_text(json.dumps({"per_task": 0.001}))
    assert load_cost_model(path) == CostModel(None, 0.001, "USD")
    for text, field in (
        ("per_agent_hour: -1", "cost model per_agent_hour"),
        ("per_task: lots", "cost model per_task"),
        # No cost-model key at all: likely the wrong file, named but not quoted.
        ("per_hour: 1", "--cost-model"),
        ("per_task: 1\nper_hour: 1", "cost model key"),
        ("currency: USD", "--cost-model"),
        ("- 1", "--cost-model"),
        ("{", "--cost-model"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_cost_model(path)
        assert caught.value.field == field, text


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome]:
    db = tmp_path_factory.mktemp("report") / "s.db"
    with Store.open(db) as store:
        outcome = asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
    return db, outcome


def _report(db: Path, **kwargs: object) -> PerformanceReport:
    with Store.open(db) as store:
        run = store.latest_run("reported")
        assert run is not None
        assert run.finished_at is not None
        built = build_report(
            store,
            "reported",
            since=run.started_at - 60,
            until=run.finished_at + 60,
            **kwargs,  # type: ignore[arg-type]
        )
    assert built is not None
    return built


def test_a_report_from_task_results_is_exact(stored: tuple[Path, RunOutcome]) -> None:
    db, outcome = stored
    report = _report(db)
    assert report.source == "task results"
    assert report.tasks["succeeded"] == 90
    assert report.latency.count == 90
    assert report.latency.p99 == pytest.approx(outcome.report.latency_p99)
    assert report.latency.p50 == pytest.approx(outcome.report.latency_p50)
    assert report.snapshots > 1
    assert set(report.agents) == {"a-0", "a-1", "slow"}
    assert report.agents["slow"]["tasks"] == 30
    slow_util = report.agents["slow"]["utilization"]
    fast_util = report.agents["a-0"]["utilization"]
    assert slow_util is not None
    assert fast_util is not None
    assert slow_util > fast_util
    assert report.cost == {"total": None, "reason": NO_COST_MODEL}
    top = next(f for f in report.findings if f.severity != "info")
    assert (top.type, top.component) == ("slow_agent", "slow")
    assert report.sla["throughput"]["measured"] == report.snapshots


def test_a_report_prefers_stored_snapshots_and_prices_the_run(
    stored: tuple[Path, RunOutcome], tmp_path: Path
) -> None:
    db, outcome = stored
    copy = tmp_path / "copy.db"
    with Store.open(db) as source, Store.open(copy) as target:
        run = source.get_run(outcome.run_id or 0)
        assert run is not None
        new_id = target.start_run("reported", run.spec, run.backend, run.strategy)
        target.record_results(new_id, source.iter_results(run.id))
        target.finish_run(new_id, run.report or {}, "completed")
        series = stored_series(target, new_id, 0.05)
        for figures in series:
            target.record_metrics("reported", new_id, figures.ts, flatten(figures, None))
        new_run = target.get_run(new_id)
    assert new_run is not None
    assert new_run.finished_at is not None
    report = _report(copy, cost_model=CostModel(per_agent_hour=3600.0, per_task=0.5))
    assert report.source == "metrics"
    assert report.snapshots == len(series)
    assert [p[1] for p in report.series["swarm.throughput_per_s"]] == [
        f.throughput_per_s for f in series
    ]
    seconds = new_run.finished_at - new_run.started_at
    assert report.cost["agent_hours"] == pytest.approx(3 * seconds / 3600)
    assert report.cost["agents_cost"] == pytest.approx(3 * seconds)
    assert report.cost["tasks_cost"] == pytest.approx(45.0)
    assert report.cost["total"] == pytest.approx(3 * seconds + 45.0)
    assert report.cost["per_1000_succeeded"] == pytest.approx(1000 * (3 * seconds + 45.0) / 90)
    assert 0 < report.cost["busy_share"] <= 1


def test_a_timeframe_without_data_has_no_report(stored: tuple[Path, RunOutcome]) -> None:
    db, _ = stored
    with Store.open(db) as store:
        run = store.latest_run("reported")
        assert run is not None
        assert run.finished_at is not None
        later = run.finished_at + 3600
        assert build_report(store, "reported", since=later, until=later + 60) is None
        assert build_report(store, "nobody", since=0.0, until=later) is None


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_is_one_self_contained_file_with_svg_charts(stored: tuple[Path, RunOutcome]) -> None:
    db, _ = stored
    text = to_html(_report(db))
    parser = _Tags()
    parser.feed(text)
    assert parser.tags.count("svg") == 3
    assert "script" not in parser.tags
    assert "link" not in parser.tags
    assert parser.urls == []
    assert parser.tags.count("polyline") == 4  # p50, p95, p99 and throughput
    assert parser.tags.count("rect") >= 3 + 4  # a bar per agent, a legend swatch per line
    assert "slow" in text


def test_json_and_rich_renderings(stored: tuple[Path, RunOutcome]) -> None:
    db, _ = stored
    report = _report(db, cost_model=CostModel(per_task=0.01))
    data = json.loads(to_json(report))
    assert data["swarm_id"] == "reported"
    assert data["tasks"]["succeeded"] == 90
    assert data["findings"][0]["score"] >= data["findings"][-1]["score"]
    assert data["cost"]["tasks_cost"] == pytest.approx(0.9)
    console = Console(record=True, width=160)
    render_summary(report, console)
    summary = console.export_text()
    assert "throughput" in summary
    assert "slow" in summary
    console = Console(record=True, width=160)
    render_detailed(report, console)
    detailed = console.export_text()
    assert "SLA compliance" in detailed
    assert "Trends" in detailed
    assert "fix:" in detailed


def test_availability_counts_tasks_that_failed_for_lack_of_an_agent(tmp_path: Path) -> None:
    from swarmperf.analysis.figures import run_figures
    from swarmperf.core.model import TaskResult, TaskStatus

    ok, failed = TaskStatus.SUCCEEDED, TaskStatus.FAILED
    with Store.open(tmp_path / "s.db") as store:
        spec = parse_spec_yaml(SPEC).to_data()
        run_id = store.start_run("reported", spec, "local", "round-robin")
        store.record_results(
            run_id,
            [
                TaskResult("t0", ok, "a-0", 1, 0.0, 0.1, 0.2),
                TaskResult("t1", ok, "a-1", 1, 0.1, 0.2, 0.3),
                TaskResult("t2", failed, "a-0", 1, 0.2, 0.3, 0.4),  # an agent's failure
                TaskResult("t3", failed, None, 1, 0.3, None, 0.5),  # no agent to run it
            ],
        )
        store.finish_run(run_id, {}, "finished")
        run = store.get_run(run_id)
        assert run is not None
        assert run.finished_at is not None
        report = build_report(
            store, "reported", since=run.started_at - 60, until=run.finished_at + 60
        )
        assert report is not None
        assert report.availability == pytest.approx(0.75)
        assert report.availability == pytest.approx(run_figures(store, run_id).availability)
