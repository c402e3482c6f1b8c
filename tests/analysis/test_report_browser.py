"""The HTML report's charts as a real browser (headless Chromium) lays them out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarmperf.analysis.report import PerformanceReport, bar_chart, build_report, to_html
from swarmperf.app.run import run_spec
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import Store
from tests.support import unavailable

# Agent names that are long and alike: a bar chart must keep them apart within its margin.
SPEC = """\
swarm_id: browsed
strategy: round-robin
monitor: {enabled: false}
agents:
  - id: a
  - id: inference-worker-eu-west-1-gpu-large-pool
    count: 2
  - id: inference-worker-eu-west-1-gpu-small-pool
    slowdown: 3
workload:
  tasks: 60
  kind: sleep
  size: {value: 2ms}
"""

# Widths of the window the report is laid out in: a desktop and a phone.
WIDTHS = (1024, 320)

# Measures, in each frame, every SVG text against its SVG's box, the text of one SVG against
# each other, and each SVG against the window; the findings go to <pre id="layout">, which
# --dump-dom prints. The report itself has no script: this harness page holds it.
HARNESS = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body style="margin:0">
<pre id="layout">pending</pre>
<script>
const report = %(report)s;
const widths = %(widths)s;
const slack = 0.5;
function measure(doc, width) {
  const problems = [];
  const charts = [];
  const view = doc.documentElement.clientWidth;
  for (const [n, svg] of [...doc.querySelectorAll("svg")].entries()) {
    const box = svg.getBoundingClientRect();
    const name = svg.getAttribute("aria-label");
    if (box.right > view + slack) {
      problems.push(`${width}px: chart '${name}' ends at ${box.right} beyond ${view}`);
    }
    const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim());
    charts.push({
      name: name,
      texts: texts.map(t => t.textContent),
      tips: [...svg.querySelectorAll("title")].map(t => t.textContent),
    });
    const rects = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      const r = rects[i];
      if (r.left < box.left - slack || r.right > box.right + slack ||
          r.top < box.top - slack || r.bottom > box.bottom + slack) {
        problems.push(`${width}px: '${t.textContent}' in '${name}' is cut at the edge`);
      }
      for (let j = 0; j < i; j++) {
        const o = rects[j];
        const w = Math.min(r.right, o.right) - Math.max(r.left, o.left);
        const h = Math.min(r.bottom, o.bottom) - Math.max(r.top, o.top);
        if (w > 1 && h > 1) {
          problems.push(`${width}px: '${t.textContent}' overlaps '${texts[j].textContent}'`);
        }
      }
    });
  }
  if (doc.documentElement.scrollWidth > view) {
    problems.push(`${width}px: the page is ${doc.documentElement.scrollWidth}px wide`);
  }
  return {width: width, view: view, charts: charts, problems: problems};
}
const results = [];
for (const width of widths) {
  const frame = document.createElement("iframe");
  frame.style.cssText = `width:${width}px;height:600px;border:0;display:block`;
  frame.onload = () => {
    results.push(measure(frame.contentDocument, width));
    if (results.length === widths.length) {
      document.getElementById("layout").textContent = JSON.stringify(results);
    }
  };
  frame.srcdoc = report;
  document.body.appendChild(frame);
}
</script></body></html>
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("Chromium is not installed (Debian package 'chromium')")
    return found


def _run_chromium(tmp: Path, *args: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    # No session bus here: without an address Chromium waits on D-Bus before it starts.
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> PerformanceReport:
    _chromium()  # before the run: a machine without a browser skips at once
    db = tmp_path_factory.mktemp("browser") / "s.db"
    with Store.open(db) as store:
        asyncio.run(run_spec(parse_spec_yaml(SPEC), store=store))
        run = store.latest_run("browsed")
        assert run is not None
        assert run.finished_at is not None
        built = build_report(
            store, "browsed", since=run.started_at - 60, until=run.finished_at + 60
        )
    assert built is not None
    return built


def _scaled(report: PerformanceReport, peak: float, name: str) -> list[tuple[float, float]]:
    points = report.series[name]
    top = max(v for _, v in points) or 1.0
    return [(t, v * peak / top) for t, v in points]


def _busy(report: PerformanceReport) -> PerformanceReport:
    """The same run, with the figures of a busy swarm: wide axis labels, an agent at 100%."""
    series = {
        **report.series,
        "swarm.throughput_per_s": _scaled(report, 2037.4, "swarm.throughput_per_s"),
        "swarm.latency.p50": _scaled(report, 0.0125, "swarm.latency.p50"),
        "swarm.latency.p95": _scaled(report, 0.240, "swarm.latency.p95"),
        "swarm.latency.p99": _scaled(report, 0.5163, "swarm.latency.p99"),
    }
    agents = {**report.agents, "a": {**report.agents["a"], "utilization": 1.0}}
    return dataclasses.replace(report, series=series, agents=agents)


def _layout(tmp: Path, page: str) -> list[dict[str, Any]]:
    harness = tmp / "harness.html"
    harness.write_text(
        HARNESS % {"report": json.dumps(page).replace("</", "<\\/"), "widths": list(WIDTHS)}
    )
    dom = _run_chromium(tmp, "--virtual-time-budget=5000", "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[:2000]
    assert found.group(1) != "pending", "the report did not load in the browser"
    results: list[dict[str, Any]] = json.loads(found.group(1))
    return sorted(results, key=lambda r: -int(r["width"]))


@pytest.mark.parametrize("figures", ["as run", "busy"])
def test_every_chart_label_shows_whole_on_a_desktop_and_a_phone(
    report: PerformanceReport, figures: str, tmp_path: Path
) -> None:
    shown = report if figures == "as run" else _busy(report)
    results = _layout(tmp_path, to_html(shown))
    assert [r["width"] for r in results] == list(WIDTHS)
    for result in results:
        # The latency and throughput charts, and the bars of four agents, all with labels.
        assert [len(c["texts"]) >= 4 for c in result["charts"]] == [True] * 3
        assert result["problems"] == []


def test_agent_names_cut_to_fit_stay_distinct(report: PerformanceReport, tmp_path: Path) -> None:
    (result, _) = _layout(tmp_path, to_html(report))
    bars = next(c for c in result["charts"] if c["name"] == "Utilisation per agent")
    names = [t for t in bars["texts"][1:] if not re.fullmatch(r"[\d.]+%|n/a", t)]
    assert len(names) == len(report.agents) == 4
    assert len(set(names)) == 4
    # A name cut short is whole in the tooltip of its label.
    assert sorted(bars["tips"]) == sorted(n for n in report.agents if n not in names)
    assert any("…" in name for name in names)


def test_the_screenshot_is_the_page_laid_out(report: PerformanceReport, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(to_html(_busy(report)))
    shot = tmp_path / "report.png"
    _run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1024,1400", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1024, 1400)
    if os.environ.get("SWARMPERF_KEEP_SCREENSHOT"):
        # For a person to look at: the charts as a reader sees them.
        shutil.copy(shot, os.environ["SWARMPERF_KEEP_SCREENSHOT"])


def test_a_swarm_of_many_agents_shows_its_busiest_and_idlest() -> None:
    values = {f"agent-{i:04d}": i / 299 for i in range(300)}
    svg = bar_chart(values, "Utilisation per agent")
    assert svg.count("<rect ") == 40
    assert "agent-0299" in svg
    assert "agent-0000" in svg
    assert "agent-0150" not in svg
    assert "260 agents between these" in svg
