"""TCPD harness: the F1 and covering metrics on hand cases, corpus loading, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from swarmperf.bench.tcpd import (
    PUBLISHED_SERIES,
    covering,
    f1_score,
    load_corpus,
    precision_recall,
    score_corpus,
    score_series,
)
from swarmperf.cli.main import app
from swarmperf.core.errors import ConfigError
from tests.support import unavailable

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "tcpd"


def _shared_corpus() -> Path:
    if not SHARED.is_dir():
        unavailable(f"the shared TCPD data set is not at {SHARED}")
    return SHARED


# --- metrics, by hand -------------------------------------------------------------------------


def test_f1_matches_the_reference_examples() -> None:
    annotations = {"1": [10, 20], "2": [11, 20], "3": [10], "4": [0, 5]}
    assert f1_score(annotations, [10, 20]) == pytest.approx(1.0)
    # Only index 0 predicted: precision 1/1, recall (1/3 + 1/3 + 1/2 + 1/2) / 4 = 5/12.
    assert f1_score(annotations, []) == pytest.approx(20 / 34)


def test_f1_margin_and_each_prediction_used_once() -> None:
    assert precision_recall({"a": [50]}, [55]) == (1.0, 1.0)  # within the margin of 5
    assert precision_recall({"a": [50]}, [56]) == (0.5, 0.5)  # just outside
    # 11 is closest to both 10 and 12 but can match only one of them.
    p, r = precision_recall({"a": [10, 12]}, [11])
    assert p == 1.0
    assert r == pytest.approx(2 / 3)
    assert f1_score({"a": [10, 12]}, [11]) == pytest.approx(0.8)
    # Precision is against the union of annotators, recall is averaged over them.
    p, r = precision_recall({"a": [30], "b": [70]}, [30, 70])
    assert p == 1.0
    assert r == pytest.approx(((2 / 2) + (2 / 2)) / 2)
    p, r = precision_recall({"a": [30], "b": []}, [30])
    assert p == 1.0
    assert r == pytest.approx((1.0 + 1.0) / 2)


def test_covering_by_hand() -> None:
    assert covering({"a": [5]}, [5], 10) == pytest.approx(1.0)
    # [0,5) and [5,10) each half-covered by the single predicted segment.
    assert covering({"a": [5]}, [], 10) == pytest.approx(0.5)
    # [0,5) best matches [0,3) at 3/5, [5,10) matches [3,10) at 5/7.
    assert covering({"a": [5]}, [3], 10) == pytest.approx((5 * 3 / 5 + 5 * 5 / 7) / 10)
    assert covering({"a": [], "b": [5]}, [], 10) == pytest.approx((1.0 + 0.5) / 2)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    n=st.integers(2, 300),
    data=st.data(),
)
def test_a_perfect_prediction_scores_one(n: int, data: st.DataObject) -> None:
    points = data.draw(st.lists(st.integers(1, n - 1), max_size=10, unique=True))
    annotations = {"x": points, "y": points}
    assert covering(annotations, points, n) == pytest.approx(1.0)
    assert f1_score(annotations, points) == pytest.approx(1.0)
    other = data.draw(st.lists(st.integers(1, n - 1), max_size=10, unique=True))
    assert 0.0 <= covering(annotations, other, n) <= 1.0
    assert 0.0 < f1_score(annotations, other) <= 1.0  # index 0 always matches


def test_metrics_reject_an_empty_annotator_set() -> None:
    with pytest.raises(ConfigError, match="annotations"):
        f1_score({}, [3])
    with pytest.raises(ConfigError, match="annotations"):
        covering({}, [3], 10)


# --- corpus loading ---------------------------------------------------------------------------


def _write_series(path: Path, name: str, values: list[float | None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "name": name,
                "n_obs": len(values),
                "n_dim": 1,
                "time": {"index": list(range(len(values)))},
                "series": [{"label": "V1", "type": "float", "raw": values}],
            }
        )
    )


def _tiny_corpus(root: Path) -> Path:
    step: list[float | None] = [10.0 + (i % 3) * 0.1 for i in range(40)]
    step += [20.0 + (i % 3) * 0.1 for i in range(40)]
    step[7] = None
    flat = [5.0 + (i % 4) * 0.2 for i in range(50)]
    _write_series(root / "datasets" / "step.json", "step", step)  # the TCPD repository layout
    _write_series(root / "flat" / "flat.json", "flat", list(flat))  # one folder per data set
    (root / "annotations.json").write_text(
        json.dumps({"step": {"1": [40], "2": [41]}, "flat": {"1": [], "2": []}})
    )
    return root


def test_both_layouts_load(tmp_path: Path) -> None:
    corpus = load_corpus(_tiny_corpus(tmp_path))
    assert sorted(corpus.series) == ["flat", "step"]
    assert corpus.series["step"].values[7] is None
    assert corpus.series["step"].n_obs == 80
    assert corpus.annotations is not None
    assert corpus.annotations["step"]["2"] == (41,)
    assert corpus.evaluation_names() == ["flat", "step"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"name": "x", "series": []}), "n_obs"),
        (json.dumps({"name": "x", "n_obs": 3, "series": [{"raw": [1, 2]}]}), "raw"),
        (json.dumps({"name": "x", "n_obs": 2, "series": [{"raw": [1, "a"]}]}), r"raw\[1\]"),
    ],
)
def test_bad_data_sets_name_what_is_wrong(tmp_path: Path, content: str, field: str) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "x.json").write_text(content)
    with pytest.raises(ConfigError, match=field):
        load_corpus(tmp_path)


def test_files_that_are_not_text_are_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "x.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match=r"x\.json"):
        load_corpus(tmp_path)
    _write_series(tmp_path / "datasets" / "x.json", "x", [1.0, 2.0, 3.0])
    (tmp_path / "annotations.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match=r"annotations\.json"):
        load_corpus(tmp_path)


def test_an_empty_or_missing_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No data sets found"):
        load_corpus(tmp_path)
    with pytest.raises(ConfigError, match="corpus"):
        load_corpus(tmp_path / "missing")


# --- scoring a corpus -------------------------------------------------------------------------


def test_a_corpus_score_averages_the_scored_evaluation_series(tmp_path: Path) -> None:
    root = _tiny_corpus(tmp_path)
    _write_series(root / "datasets" / "unlabelled.json", "unlabelled", [1.0, 2.0, 3.0])
    corpus = load_corpus(root)
    predictions = {"flat": [], "step": [20], "unlabelled": [1]}
    scored = score_corpus(corpus, predictions)
    assert corpus.annotations is not None
    assert scored.scores is not None
    assert list(scored.scores) == ["flat", "step"]  # nothing to score "unlabelled" against
    assert scored.evaluated == ("flat", "step")
    step = score_series("step", corpus.annotations["step"], [20], 80)  # 20 misses 40
    flat = score_series("flat", corpus.annotations["flat"], [], 50)
    assert scored.scores == {"flat": flat, "step": step}
    assert step.f1 < 1.0
    assert scored.f1 == (flat.f1 + step.f1) / 2
    assert scored.cover == (flat.cover + step.cover) / 2
    assert scored.reason is None


def test_a_corpus_without_annotations_or_evaluated_scores_says_why(tmp_path: Path) -> None:
    root = _tiny_corpus(tmp_path)
    corpus = load_corpus(root)
    nothing = score_corpus(corpus, {})
    assert (nothing.scores, nothing.f1, nothing.cover) == ({}, None, None)
    assert nothing.reason == "no evaluated series has annotations"
    (root / "annotations.json").unlink()
    unannotated = score_corpus(load_corpus(root), {"step": [40]})
    assert (unannotated.scores, unannotated.evaluated, unannotated.f1) == (None, (), None)
    assert unannotated.reason == "no annotations.json in the corpus"


# --- the command ------------------------------------------------------------------------------


def test_changepoint_eval_on_a_tiny_corpus(tmp_path: Path) -> None:
    root = _tiny_corpus(tmp_path)
    result = CliRunner().invoke(app, ["changepoint-eval", "--corpus", str(root), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["method"] == "pelt"
    assert data["change_points"] == {"flat": [], "step": [40]}
    assert data["scores"]["step"]["f1"] == pytest.approx(1.0)
    assert data["scores"]["flat"]["cover"] == pytest.approx(1.0)
    assert data["mean"]["f1"] == pytest.approx(1.0)
    table = CliRunner().invoke(app, ["changepoint-eval", "--corpus", str(root)])
    assert table.exit_code == 0
    assert "step" in table.stdout
    assert "mean over 2 series" in table.stdout


def test_changepoint_eval_without_annotations_says_so(tmp_path: Path) -> None:
    root = _tiny_corpus(tmp_path)
    (root / "annotations.json").unlink()
    result = CliRunner().invoke(
        app, ["changepoint-eval", "--corpus", str(root), "--method", "cusum", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["scores"] is None
    assert data["mean"] is None
    assert data["scores_reason"] == "no annotations.json in the corpus"
    assert data["change_points"]["step"] == [40]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "{missing}"], "corpus"),
        (["--corpus", "{bad}"], "not JSON"),
        (["--corpus", "{good}", "--method", "magic"], "method"),
    ],
)
def test_changepoint_eval_user_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad"
    (bad / "datasets").mkdir(parents=True)
    (bad / "datasets" / "x.json").write_text("{")
    good = _tiny_corpus(tmp_path / "good")
    paths = {"missing": tmp_path / "missing", "bad": bad, "good": good}
    result = CliRunner().invoke(app, ["changepoint-eval", *[a.format(**paths) for a in args]])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


# --- the real corpus --------------------------------------------------------------------------


def test_real_corpus_zero_detector_matches_the_published_baseline() -> None:
    corpus = load_corpus(_shared_corpus())
    univariate = [n for n, s in corpus.series.items() if s.n_dim == 1]
    scored = score_corpus(corpus, {name: [] for name in univariate})
    # Every annotated series is scored, but the means cover only the published 13.
    assert scored.scores is not None
    assert set(scored.scores) > set(PUBLISHED_SERIES)
    assert scored.evaluated == PUBLISHED_SERIES
    # REFERENCES.md: "zero" scores F1 0.667 and cover 0.575 on these 13 series.
    assert scored.f1 == pytest.approx(0.667, abs=5e-4)
    assert scored.cover == pytest.approx(0.575, abs=5e-4)


def test_real_series_nile_dam_is_found() -> None:
    from swarmperf.bench.changepoint import detect_changes

    corpus = load_corpus(_shared_corpus())
    assert corpus.annotations is not None
    nile = corpus.series["nile"]
    found = detect_changes(nile.values)
    # The Aswan dam (1898, index 28) lowered the flow: one downward change.
    assert [(cp.index, cp.direction) for cp in found] == [(28, "down")]
    score = score_series("nile", corpus.annotations["nile"], [28], nile.n_obs)
    assert score.f1 == pytest.approx(1.0)
