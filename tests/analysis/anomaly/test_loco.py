"""Held-out NAB scoring: settings and thresholds chosen on the other categories only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis import nab
from swarmperf.analysis.anomaly.loco import LeaveOneCategoryOut
from swarmperf.core.errors import ConfigError
from tests.analysis.anomaly.conftest import write_corpus

N = 200  # probation: 30 rows
WINDOW = (100, 119)
CATEGORIES = ("c1", "c2", "c3")
KEYS = [f"{c}/a.csv" for c in CATEGORIES]
STANDARD = nab.NAB_PROFILES["standard"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> nab.Corpus:
    root = tmp_path_factory.mktemp("loco")
    write_corpus(root, {k: [0.0] * N for k in KEYS}, {k: [WINDOW] for k in KEYS})
    return nab.load_corpus(root)


def scores(marks: dict[str, dict[int, float]]) -> dict[str, np.ndarray]:
    """Zero everywhere but the given rows, per category."""
    out = {}
    for key in KEYS:
        a = np.zeros(N)
        for row, value in marks.get(key.split("/")[0], {}).items():
            a[row] = value
        out[key] = a
    return out


def test_a_candidate_good_only_where_it_is_scored_is_never_chosen(corpus: nab.Corpus) -> None:
    steady = scores({c: {110: 1.0} for c in CATEGORIES})  # mid-window everywhere
    # Perfect on c1 (earliest row of its window), false alarms only elsewhere.
    lucky = scores({"c1": {100: 1.0}, "c2": {50: 1.0, 60: 1.0}, "c3": {50: 1.0, 60: 1.0}})
    loco = LeaveOneCategoryOut(corpus)
    loco.add("steady", steady)
    loco.add("lucky", lucky)
    held = loco.result("standard")
    assert [f.candidate for f in held.folds] == ["steady"] * 3
    assert held.normalized == pytest.approx(nab.score_corpus(corpus, steady, STANDARD).normalized)
    # The lucky one is perfect on c1, but c1 is held out exactly when it could be chosen.
    c1 = held.folds[0].held_out_score
    assert c1.true_positives == 1
    assert c1.raw < 1.0


def test_the_threshold_comes_from_the_other_categories(corpus: nab.Corpus) -> None:
    # c1 and c2 alarm early at 0.8 with a false alarm at 0.5; c3 alarms early at only 0.3.
    candidate = scores({"c1": {100: 0.8, 50: 0.5}, "c2": {100: 0.8, 50: 0.5}, "c3": {100: 0.3}})
    loco = LeaveOneCategoryOut(corpus)
    loco.add("only", candidate)
    folds = {f.held_out: f for f in loco.result("standard").folds}
    assert folds["c3"].threshold == 0.8
    assert folds["c3"].held_out_score.false_negatives == 1  # 0.3 is below what c1, c2 chose
    # Scored on itself, c3 would have found its window.
    alone = nab.load_corpus(corpus.root, ["c3/a.csv"])
    assert nab.score_corpus(alone, candidate, STANDARD).true_positives == 1


def test_ties_go_to_the_candidate_added_first(corpus: nab.Corpus) -> None:
    same = scores({c: {105: 1.0} for c in CATEGORIES})
    loco = LeaveOneCategoryOut(corpus)
    loco.add("first", same)
    loco.add("second", same)
    assert {f.candidate for f in loco.result("standard").folds} == {"first"}
    assert loco.chosen("standard")[0] == "first"


def test_one_category_or_no_labels_is_a_config_error(tmp_path: Path) -> None:
    write_corpus(tmp_path / "one", {"c1/a.csv": [0.0] * N}, {"c1/a.csv": [WINDOW]})
    with pytest.raises(ConfigError, match="categories"):
        LeaveOneCategoryOut(nab.load_corpus(tmp_path / "one"))
    write_corpus(tmp_path / "bare", {"c1/a.csv": [0.0] * N, "c2/a.csv": [0.0] * N}, None)
    with pytest.raises(ConfigError, match="labels"):
        LeaveOneCategoryOut(nab.load_corpus(tmp_path / "bare"))


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 0.1, 0.4, 0.5, 0.9, 1.0]), min_size=N * 3, max_size=N * 3)
)
def test_scoring_at_the_sweeps_threshold_gives_the_sweeps_score(
    corpus: nab.Corpus, values: list[float]
) -> None:
    s = {key: np.asarray(values[i * N : (i + 1) * N]) for i, key in enumerate(KEYS)}
    for profile in nab.NAB_PROFILES.values():
        best = nab.score_corpus(corpus, s, profile)
        at = nab.score_at(corpus, s, profile, best.threshold)
        assert at.raw == pytest.approx(best.raw)
        assert (at.true_positives, at.false_positives) == (
            best.true_positives,
            best.false_positives,
        )


def test_the_median_category_outvotes_one_category_with_many_windows(tmp_path: Path) -> None:
    # "big" holds three series; each small category one. One candidate finds only big's
    # windows, the other only the small categories': summed, big's three windows decide;
    # by the median training category, the candidate good on most categories wins.
    big = [f"big/{n}.csv" for n in "abc"]
    small = [f"s{i}/a.csv" for i in (1, 2, 3)]
    keys = big + small
    write_corpus(tmp_path, {k: [0.0] * N for k in keys}, {k: [WINDOW] for k in keys})
    corpus = nab.load_corpus(tmp_path)

    def early(where: list[str]) -> dict[str, np.ndarray]:
        out = {k: np.zeros(N) for k in keys}
        for k in where:
            out[k][WINDOW[0]] = 1.0
        return out

    fits_big, broad = early(big), early(small)
    picked: dict[str, tuple[dict[str, str], float]] = {}
    for select in ("sum", "median"):
        loco = LeaveOneCategoryOut(corpus, select)
        loco.add("fits_big", fits_big)
        loco.add("broad", broad)
        held = loco.result("standard")
        picked[select] = ({f.held_out: f.candidate for f in held.folds}, held.normalized)
        assert loco.chosen("standard")[0] == ("broad" if select == "median" else "fits_big")
    assert picked["median"][0] == dict.fromkeys(("big", "s1", "s2", "s3"), "broad")
    assert picked["sum"][0] == {
        "big": "broad",
        "s1": "fits_big",
        "s2": "fits_big",
        "s3": "fits_big",
    }
    assert picked["median"][1] > picked["sum"][1]


def test_an_unknown_selection_rule_is_a_config_error(corpus: nab.Corpus) -> None:
    with pytest.raises(ConfigError, match="select"):
        LeaveOneCategoryOut(corpus, "best")  # type: ignore[arg-type]
