"""End to end on the local swarm: benchmark-run, then quality-assess and detect-regression,
which pass an unchanged rerun and fail (exit 1, latency worse) a planted slowdown."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from swarmperf.bench.scenarios import QUICK_SUITE_YAML
from swarmperf.cli.main import app

pytestmark = pytest.mark.slow

runner = CliRunner()

# Four agents running eight 20 ms tasks at a time: the quick suite's 200 tasks/s keep them an
# eighth busy. The planted slowdown makes the same work take five times longer on the same
# agents (under two thirds busy): queueing stays bounded, and the median latency is several
# times the baseline's, well clear of what a busy machine adds to either.
SPEC = """\
swarm_id: e2e
backend: local
strategy: least-loaded
seed: 7
agents:
  - id: w
    count: 4
    concurrency: 8
    slowdown: {slowdown}
workload:
  tasks: 100
  kind: sleep
  size: {{distribution: constant, value: 20ms}}
"""
# This machine is shared and noisy: an unchanged rerun can move a percentile by tens of per
# cent. The planted slowdown moves the median several-fold, so a 100% floor separates them.
MIN_CHANGE = "100%"


def _quick_load_suite(path: Path) -> Path:
    """The quick suite's load scenario alone, so that three runs fit in well under a minute."""
    data = yaml.safe_load(QUICK_SUITE_YAML)
    data["scenarios"] = [s for s in data["scenarios"] if s["kind"] == "load"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _benchmark(tmp_path: Path, name: str, slowdown: float) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(slowdown=slowdown), encoding="utf-8")
    out = tmp_path / f"{name}.json"
    result = runner.invoke(
        app,
        [
            "benchmark-run", "--suite", str(tmp_path / "suite.yaml"), "--spec", str(spec),
            "--iterations", "5", "--duration", "500ms", "--warmup", "200ms", "--cooldown", "0s",
            "--data-dir", str(tmp_path / "data"), "--out", str(out), "--output", "json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_the_gate_passes_an_unchanged_rerun_and_fails_a_planted_slowdown(tmp_path: Path) -> None:
    _quick_load_suite(tmp_path / "suite.yaml")
    baseline = _benchmark(tmp_path, "baseline", 1)
    rerun = _benchmark(tmp_path, "rerun", 1)
    slow = _benchmark(tmp_path, "slow", 5)

    quality = runner.invoke(app, ["quality-assess", "--target", str(baseline), "-o", "json"])
    assert quality.exit_code == 0, quality.output
    assessed = json.loads(quality.stdout)
    assert assessed["passed"] is True
    assert {c["status"] for c in assessed["criteria"]} == {"pass"}

    same = runner.invoke(
        app,
        ["detect-regression", "--current", str(rerun), "--historical", str(baseline),
         "--min-change", MIN_CHANGE, "-o", "json"],
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["regressions"] == []

    junit = tmp_path / "gate.xml"
    worse = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow), "--historical", str(baseline),
         "--min-change", MIN_CHANGE, "--junit", str(junit), "-o", "json"],
    )  # fmt: skip
    assert worse.exit_code == 1, worse.output
    gate = json.loads(worse.stdout)
    assert "steady-load/latency_p50_s" in gate["regressions"]
    median = next(c for c in gate["checks"] if c["metric"] == "latency_p50_s")
    assert median["comparison"]["direction"] == "worse"
    assert median["comparison"]["change"] > 1.0
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert any("latency_p50_s" in (f.get("message") or "") for f in failures)

    # The same verdict from the store's history of this swarm (baseline and rerun).
    history = runner.invoke(
        app,
        ["detect-regression", "--current", str(slow), "--history", "e2e",
         "--data-dir", str(tmp_path / "data"), "--min-change", MIN_CHANGE, "-o", "json"],
    )  # fmt: skip
    assert history.exit_code == 1, history.output
    assert "steady-load/latency_p50_s" in json.loads(history.stdout)["regressions"]
