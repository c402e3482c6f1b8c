"""A slice of the real NAB corpus (../shared/datasets/nab): the harness end to end on real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from swarmperf.analysis import nab
from swarmperf.analysis.anomaly import Ensemble, WindowedGaussian
from tests.support import unavailable

NAB_DIR = Path(
    os.environ.get(
        "SWARMPERF_NAB", Path(__file__).resolve().parents[3].parent / "shared/datasets/nab"
    )
)
SLICE = ["realTraffic/speed_7578.csv", "realKnownCause/rogue_agent_key_hold.csv"]


@pytest.fixture(scope="module")
def corpus() -> nab.Corpus:
    if not (NAB_DIR / "data").is_dir():
        unavailable(f"NAB corpus not found at {NAB_DIR} (set SWARMPERF_NAB)")
    return nab.load_corpus(NAB_DIR, SLICE)


def test_the_slice_reads_as_nab_lays_it_out(corpus: nab.Corpus) -> None:
    assert [len(s) for s in corpus.series] == [1127, 1882]
    assert corpus.window_count == 6
    assert set(corpus.profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}


def test_the_ensemble_beats_the_windowed_gaussian_on_real_series(corpus: nab.Corpus) -> None:
    ours = nab.score_all(corpus, nab.run_corpus(corpus, Ensemble))
    baseline = nab.score_all(corpus, nab.run_corpus(corpus, WindowedGaussian))
    assert ours["standard"].normalized > baseline["standard"].normalized
    assert ours["standard"].true_positives >= 4


def test_results_round_trip_through_nab_layout(corpus: nab.Corpus, tmp_path: Path) -> None:
    scores = nab.run_corpus(corpus, WindowedGaussian)
    paths = nab.write_results(tmp_path, "windowed_gaussian", corpus, scores)
    assert paths[0] == tmp_path / "windowed_gaussian/realTraffic/windowed_gaussian_speed_7578.csv"
    back = np.loadtxt(paths[0], delimiter=",", skiprows=1, usecols=2)
    np.testing.assert_array_equal(back, scores[SLICE[0]])
