"""Simulated runs kept apart from a swarm's real history, and runs numbered per swarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmperf.core.errors import ConfigError
from swarmperf.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "s.db")


def test_old_runs_read_as_real_after_the_upgrade(tmp_path: Path) -> None:
    import sqlite3

    from swarmperf.store.migrations import MIGRATIONS, migrate

    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, MIGRATIONS[:4])
    conn.execute(
        "INSERT INTO runs (swarm_id, started_at, status, backend, strategy, spec)"
        " VALUES ('old', 1.0, 'completed', 'local', 'round-robin', '{}')"
    )
    conn.close()
    with Store.open(path) as store:
        [run] = store.list_runs("old")
    assert (run.kind, run.number, run.simulated) == ("real", 1, False)


def test_simulated_runs_are_left_out_unless_asked(store: Store) -> None:
    real = store.start_run("prod", {}, "local", "round-robin")
    sim = store.start_run("prod", {}, "sim", "round-robin", kind="simulated")
    assert [r.id for r in store.list_runs("prod")] == [real]
    assert [r.id for r in store.list_runs()] == [real]
    assert [r.id for r in store.list_runs("prod", kind="simulated")] == [sim]
    assert [r.id for r in store.list_runs("prod", kind=None)] == [sim, real]
    latest = store.latest_run("prod")
    assert latest is not None
    assert latest.id == real
    latest_any = store.latest_run("prod", kind=None)
    assert latest_any is not None
    assert latest_any.simulated


def test_a_swarm_with_only_simulated_runs_has_no_real_history(store: Store) -> None:
    store.start_run("virtual", {}, "sim", "round-robin", kind="simulated")
    assert store.latest_run("virtual") is None
    assert store.latest_swarm() is None
    assert store.latest_swarm(kind=None) == "virtual"


def test_events_of_simulated_runs_are_left_out_unless_asked(store: Store) -> None:
    real = store.start_run("prod", {}, "local", "round-robin")
    sim = store.start_run("prod", {}, "sim", "round-robin", kind="simulated")
    store.record_event("prod", real, 1.0, "breaker_opened", "a1", {})
    store.record_event("prod", sim, 2.0, "breaker_opened", "v1", {})
    store.record_event("prod", None, 3.0, "alert_delivery_failed", "sink", {})
    assert [e.subject for e in store.events("prod")] == ["a1", "sink"]
    assert [e.subject for e in store.events("prod", run_kind=None)] == ["a1", "v1", "sink"]
    assert [e.subject for e in store.events("prod", run_kind="simulated")] == ["v1", "sink"]


def test_runs_are_numbered_per_swarm_and_kind(store: Store) -> None:
    for swarm in ("a", "b", "a"):
        store.start_run(swarm, {}, "local", "round-robin")
    store.start_run("a", {}, "sim", "round-robin", kind="simulated")
    a_runs = store.list_runs("a", kind=None)
    assert [(r.kind, r.number) for r in a_runs] == [("simulated", 1), ("real", 2), ("real", 1)]
    [b_run] = store.list_runs("b")
    assert b_run.number == 1
    assert b_run.label() == f"run 1 of swarm 'b' (id {b_run.id})"
    assert a_runs[0].label().startswith("simulated run 1 of swarm 'a'")
    fetched = store.get_run(a_runs[1].id)
    assert fetched is not None
    assert fetched.number == 2


def test_latest_swarm_is_the_one_that_ran_or_was_sampled_last(store: Store) -> None:
    assert store.latest_swarm() is None
    store.start_run("first", {}, "local", "round-robin")
    assert store.latest_swarm() == "first"
    store.record_metrics("sampled", None, 1e12, {"swarm.throughput_per_s": 1.0})
    assert store.latest_swarm() == "sampled"


def test_an_unknown_kind_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="kind"):
        store.start_run("s", {}, "local", "round-robin", kind="virtual")
    with pytest.raises(ConfigError, match="kind"):
        store.list_runs(kind="virtual")
