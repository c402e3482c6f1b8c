"""NAB v1.1 scoring on hand-built cases, and the vectorised sweep against a plain loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis import nab
from swarmperf.core.errors import ConfigError
from tests.analysis.anomaly.conftest import write_corpus

STANDARD = nab.NAB_PROFILES["standard"]
LOW_FN = nab.NAB_PROFILES["reward_low_FN_rate"]
N = 200  # probation: 30 rows
WINDOWS = [(60, 79), (140, 159)]
SIG_MINUS_1 = 2.0 / (1.0 + math.exp(-5.0)) - 1.0


def sig(y: float) -> float:
    return -1.0 if y > 3 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@pytest.fixture
def corpus(tmp_path: Path) -> nab.Corpus:
    write_corpus(tmp_path, {"cat/a.csv": [0.0] * N}, {"cat/a.csv": WINDOWS})
    return nab.load_corpus(tmp_path)


def one(corpus: nab.Corpus, scores: np.ndarray, profile: nab.Profile) -> nab.ProfileScore:
    return nab.score_corpus(corpus, {"cat/a.csv": scores}, profile)


def test_windows_map_to_rows(corpus: nab.Corpus) -> None:
    assert corpus.windows == {"cat/a.csv": tuple(WINDOWS)}
    assert nab.probation_length(N) == 30
    assert nab.probation_length(10_000) == 750


@pytest.mark.parametrize("profile", list(nab.NAB_PROFILES.values()), ids=lambda p: p.name)
def test_perfect_detector_scores_100(corpus: nab.Corpus, profile: nab.Profile) -> None:
    scores = np.zeros(N)
    for left, _ in WINDOWS:
        scores[left] = 1.0
    result = one(corpus, scores, profile)
    assert result.normalized == pytest.approx(100.0)
    assert (result.true_positives, result.false_negatives, result.false_positives) == (2, 0, 0)


@pytest.mark.parametrize("profile", list(nab.NAB_PROFILES.values()), ids=lambda p: p.name)
def test_never_alarming_scores_0(corpus: nab.Corpus, profile: nab.Profile) -> None:
    result = one(corpus, np.zeros(N), profile)
    assert result.normalized == 0.0
    assert result.threshold is None
    assert result.raw == result.null == -2 * profile.fn_weight


def test_a_false_alarm_before_the_first_window_costs_fp_weight(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[40, 60, 140]] = 1.0  # row 40: after probation, before the first window
    result = one(corpus, scores, STANDARD)
    assert result.raw == pytest.approx(2.0 - STANDARD.fp_weight)
    assert result.false_positives == 1
    assert result.normalized == pytest.approx(100 * (2 - 0.11 + 2) / 4)


def test_detections_in_probation_are_ignored(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[5, 29, 60, 140]] = 1.0
    assert one(corpus, scores, STANDARD).normalized == pytest.approx(100.0)


def test_a_later_detection_in_a_window_is_worth_less(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[70, 140]] = 1.0  # row 70 is halfway into (60, 79): y = -(79 - 70 + 1) / 20
    result = one(corpus, scores, STANDARD)
    assert result.raw == pytest.approx(sig(-0.5) / SIG_MINUS_1 + 1.0)


def test_the_earliest_detection_is_what_a_window_scores(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[60, 61, 62, 75, 140]] = 1.0
    assert one(corpus, scores, STANDARD).raw == pytest.approx(2.0)


def test_a_false_alarm_just_after_a_window_is_cheap(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[60, 81, 140]] = 1.0  # row 81: two rows past the first window's end
    result = one(corpus, scores, STANDARD)
    assert result.raw == pytest.approx(2.0 + STANDARD.fp_weight * sig(2 / 19))
    assert -0.03 < STANDARD.fp_weight * sig(2 / 19) < 0


def test_the_threshold_drops_a_costly_low_score(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[[60, 140]] = 0.9
    scores[40] = 0.5  # a false alarm with a lower score: the sweep stops above it
    result = one(corpus, scores, STANDARD)
    assert result.threshold == 0.9
    assert result.normalized == pytest.approx(100.0)


def test_missing_a_window_costs_fn_weight(corpus: nab.Corpus) -> None:
    scores = np.zeros(N)
    scores[60] = 1.0
    result = one(corpus, scores, LOW_FN)
    assert result.raw == pytest.approx(1.0 - 2.0)
    assert result.normalized == pytest.approx(100 * (-1 + 4) / (2 + 4))


def test_scores_must_cover_every_row(corpus: nab.Corpus) -> None:
    with pytest.raises(ConfigError, match="one score per row"):
        one(corpus, np.zeros(N - 1), STANDARD)


def brute_force(
    score: np.ndarray, weight: np.ndarray, window: np.ndarray, profile: nab.Profile
) -> float:
    """NAB's sweep, one threshold at a time."""
    windows = set(window[window >= 0].tolist())
    best = -profile.fn_weight * len(windows)
    for t in np.unique(score):
        hit = score >= t
        total = float(weight[hit & (window < 0)].sum())
        for g in windows:
            inside = hit & (window == g)
            total += float(weight[inside].max()) if inside.any() else -profile.fn_weight
        best = max(best, total)
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=60),
    st.sampled_from(list(nab.NAB_PROFILES.values())),
    st.integers(0, 2**32 - 1),
)
def test_vectorised_sweep_matches_a_plain_loop(
    levels: list[int], profile: nab.Profile, seed: int
) -> None:
    n = len(levels)
    score = np.asarray(levels, dtype=np.float64) / 6.0  # few distinct values: many ties
    rng = np.random.default_rng(seed)
    window = rng.integers(-1, 3, n)
    weight = np.where(window >= 0, rng.uniform(0.01, 1.0, n), -rng.uniform(0, 0.2, n))
    result = nab.sweep(score, weight, window, total_windows=3, profile=profile)
    assert result.raw == pytest.approx(brute_force(score, weight, window, profile))
