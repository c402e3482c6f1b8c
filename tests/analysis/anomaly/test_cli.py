"""`swarmperf anomaly-eval` and `anomaly-detectors` on a tiny NAB-layout corpus on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from tests.analysis.anomaly.conftest import seasonal_series, write_corpus

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    spiky = seasonal_series(400, seed=1)
    spiky[300] += 30.0
    shifted = seasonal_series(300, seed=2)
    shifted[250:] += 20.0
    return write_corpus(
        tmp_path / "corpus",
        {"synthetic/spiky.csv": spiky.tolist(), "synthetic/shifted.csv": shifted.tolist()},
        {"synthetic/spiky.csv": [(290, 310)], "synthetic/shifted.csv": [(240, 260)]},
    )


def test_eval_writes_nab_results_and_scores_them(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = runner.invoke(
        app,
        ["anomaly-eval", "--corpus", str(corpus), "--results-dir", str(out), "--output", "json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["detector"] == "ensemble"
    assert report["files"] == 2
    assert report["points"] == 700
    assert set(report["scores"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    # Both planted anomalies are beyond anything seen before: found without a false alarm.
    assert report["scores"]["standard"]["true_positives"] == 2
    assert report["scores"]["standard"]["normalized"] > 80
    written = out / "ensemble" / "synthetic" / "ensemble_spiky.csv"
    with written.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 400
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert np.all((scores >= 0) & (scores <= 1))
    assert int(np.argmax(scores)) == 300
    assert not list(out.rglob("*.partial"))


def test_eval_table_names_each_profile(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "anomaly-eval",
            "--corpus",
            str(corpus),
            "--results-dir",
            str(tmp_path / "r"),
            "--detector",
            "windowed_gaussian",
        ],
    )
    assert result.exit_code == 0, result.output
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert profile in result.stdout
    assert (tmp_path / "r" / "windowed_gaussian" / "synthetic").is_dir()


def test_eval_without_labels_writes_results_and_says_why_unscored(
    tmp_path: Path,
) -> None:
    corpus = write_corpus(tmp_path / "c", {"x/a.csv": seasonal_series(200).tolist()}, None)
    result = runner.invoke(
        app,
        [
            "anomaly-eval",
            "--corpus",
            str(corpus),
            "--results-dir",
            str(tmp_path / "r"),
            "--detector",
            "robust",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scores"] is None
    assert "combined_windows.json" in report["reason"]
    assert (tmp_path / "r" / "robust" / "x" / "robust_a.csv").is_file()


@pytest.mark.parametrize(
    ("layout", "message"),
    [("missing", "does not exist"), ("empty", "NAB layout"), ("badrow", "line 3")],
)
def test_bad_corpus_is_a_user_error(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "c"
    if layout == "empty":
        (root / "data").mkdir(parents=True)
    elif layout == "badrow":
        (root / "data" / "x").mkdir(parents=True)
        (root / "data" / "x" / "a.csv").write_text(
            "timestamp,value\n2024-01-01 00:00:00,1\nyesterday,2\n"
        )
    result = runner.invoke(
        app, ["anomaly-eval", "--corpus", str(root), "--results-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_unknown_detector_lists_the_choices(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "anomaly-eval",
            "--corpus",
            str(corpus),
            "--results-dir",
            str(tmp_path),
            "--detector",
            "x",
        ],
    )
    assert result.exit_code == 2
    assert "ensemble" in result.stderr


def test_detectors_lists_every_detector() -> None:
    result = runner.invoke(app, ["anomaly-detectors", "--output", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} >= {"ensemble", "robust", "seasonal", "knn"}
    assert [r["name"] for r in rows if r["default"]] == ["ensemble"]


def test_results_that_cannot_be_written_are_a_user_error_leaving_no_partial_file(
    corpus: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "ensemble").write_text("a file where the detector's folder goes\n")
    blocked = tmp_path / "blocked"
    target = blocked / "ensemble" / "synthetic" / "ensemble_spiky.csv"
    (target / "inside").mkdir(parents=True)  # a folder where a results file goes
    for out in (taken, blocked):
        result = runner.invoke(
            app, ["anomaly-eval", "--corpus", str(corpus), "--results-dir", str(out)]
        )
        assert result.exit_code == 2, result.output
        assert "--results-dir" in result.stderr
        assert "Traceback" not in result.output
        assert not list(out.rglob("*.partial"))


@pytest.mark.parametrize(
    "spans",
    [
        [["2024-01-01 00:00:00"]],  # no end
        [5],  # not a pair
        [["2024-01-01 00:00:00", "zz"]],  # not a time
        7,  # not a list of windows
    ],
)
def test_malformed_label_windows_are_a_user_error(
    corpus: Path, tmp_path: Path, spans: object
) -> None:
    labels = corpus / "labels" / "combined_windows.json"
    labels.write_text(json.dumps({"synthetic/spiky.csv": spans}))
    out = tmp_path / "r"
    result = runner.invoke(
        app, ["anomaly-eval", "--corpus", str(corpus), "--results-dir", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "synthetic/spiky.csv" in result.stderr
    assert "[start, end]" in result.stderr
    assert not out.exists()
