"""Metric history upkeep on a real store file: retention and idempotent downsampling."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.analysis.history import RetentionPolicy, apply_policy
from swarmperf.core.errors import ConfigError
from swarmperf.store import Store


def rows(store: Store, swarm_id: str = "s") -> list[tuple[float, str, float | None]]:
    return [(r.ts, r.name, r.value) for r in store.metrics(swarm_id)]


def fill(store: Store, samples: Sequence[tuple[float, float | None]], swarm_id: str = "s") -> None:
    with store.transaction():
        for ts, value in samples:
            store.record_metrics(swarm_id, None, ts, {"swarm.latency.p99": value, "x": 1.0})


def test_retention_deletes_only_old_rows_of_the_swarm(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        fill(store, [(float(t), float(t)) for t in range(10)])
        fill(store, [(float(t), float(t)) for t in range(10)], swarm_id="other")
        assert store.delete_metrics_before(4.0, "s") == 8  # ts 0..3, two metrics each
        assert min(ts for ts, _, _ in rows(store)) == 4.0
        assert store.count_metrics("other") == 20
        assert store.delete_metrics_before(4.0, "s") == 0


def test_downsampling_keeps_mean_max_and_count_and_repeats_harmlessly(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        fill(store, [(t * 0.5, float(t)) for t in range(40)])  # ts 0 .. 19.5
        replaced, written = store.downsample_metrics(before=12.0, bucket_s=5.0)
        # Buckets [0, 5) and [5, 10) are whole and old; [10, 15) reaches past 12: untouched.
        assert replaced == 2 * 20
        assert written == 2 * 2 * 3
        got = {(ts, name): v for ts, name, v in rows(store) if ts < 10}
        assert got[(0.0, "swarm.latency.p99")] == pytest.approx(np.mean(range(10)))
        assert got[(0.0, "swarm.latency.p99#max")] == 9.0
        assert got[(0.0, "swarm.latency.p99#n")] == 10.0
        assert got[(5.0, "swarm.latency.p99")] == pytest.approx(np.mean(range(10, 20)))
        assert min(ts for ts, _, _ in rows(store) if ts >= 10) == 10.0
        before = rows(store)
        assert store.downsample_metrics(before=12.0, bucket_s=5.0) == (0, 0)
        assert rows(store) == before


def test_empty_values_do_not_count(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        fill(store, [(0.0, None), (1.0, 4.0), (2.0, None), (3.0, 2.0)])
        store.downsample_metrics(before=10.0, bucket_s=10.0)
        got = {name: v for _, name, v in rows(store)}
        assert got["swarm.latency.p99"] == 3.0
        assert got["swarm.latency.p99#n"] == 2.0
        fill(store, [(20.0, None)])
        store.downsample_metrics(before=30.0, bucket_s=10.0)
        later = {name: v for ts, name, v in rows(store) if ts == 20.0}
        assert later == {
            "swarm.latency.p99": None,
            "swarm.latency.p99#max": None,
            "swarm.latency.p99#n": 0.0,
            "x": 1.0,
            "x#max": 1.0,
            "x#n": 1.0,
        }


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=60),
    st.sampled_from([1.0, 2.5, 3.0]),
)
def test_coarser_buckets_weigh_finer_ones_by_their_counts(values: list[float], fine: float) -> None:
    samples = [(0.37 * i, v) for i, v in enumerate(values)]
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "s.db") as store:
        fill(store, samples)
        store.downsample_metrics(before=1000.0, bucket_s=fine)
        store.downsample_metrics(before=1000.0, bucket_s=60.0)  # 60 s: one bucket for all
        got = {name: v for _, name, v in rows(store)}
    assert got["swarm.latency.p99"] == pytest.approx(float(np.mean(values)), rel=1e-9, abs=1e-9)
    assert got["swarm.latency.p99#max"] == max(values)
    assert got["swarm.latency.p99#n"] == len(values)


def test_a_policy_deletes_then_downsamples_and_is_idempotent(tmp_path: Path) -> None:
    policy = RetentionPolicy(raw_for_s=100.0, bucket_s=10.0, keep_for_s=1000.0)
    now = 2000.0
    with Store.open(tmp_path / "s.db") as store:
        fill(store, [(float(t), 1.0) for t in range(0, 2000, 2)])
        first = apply_policy(store, policy, now)
        assert first.deleted == 2 * 500  # ts < 1000
        assert first.replaced == 2 * 450  # 1000 <= ts < 1900
        after = rows(store)
        second = apply_policy(store, policy, now)
        assert (second.deleted, second.replaced, second.written) == (0, 0, 0)
        assert rows(store) == after
        assert all(ts >= 1000.0 for ts, _, _ in after)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"raw_for_s": -1.0, "bucket_s": 1.0}, "raw_for"),
        ({"raw_for_s": 1.0, "bucket_s": 0.0}, "bucket"),
        ({"raw_for_s": 10.0, "bucket_s": 1.0, "keep_for_s": 5.0}, "keep_for"),
    ],
)
def test_bad_policies_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetentionPolicy(**kwargs)
    assert caught.value.field == field


def test_a_bad_bucket_is_refused_before_anything_changes(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        fill(store, [(1.0, 1.0)])
        with pytest.raises(ConfigError, match="bucket"):
            store.downsample_metrics(before=10.0, bucket_s=0.0)
        assert store.count_metrics() == 2
