"""Schema migrations: a fresh store, an upgrade from version 1, and a store too new to open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from swarmperf.core.errors import ConfigError, StoreError
from swarmperf.core.model import TaskStatus
from swarmperf.store import SCHEMA_VERSION, Store
from swarmperf.store.migrations import MIGRATIONS, migrate, split_statements

ALL_TABLES = {
    "alert_states",
    "runs",
    "task_results",
    "metrics",
    "benchmarks",
    "decisions",
    "events",
    "intake",
    "agent_nodes",
}

# Version 1 of the schema, written out by hand as an older swarmperf would have left it.
SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, swarm_id TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, status TEXT NOT NULL, backend TEXT NOT NULL, strategy TEXT NOT NULL,
    spec TEXT NOT NULL, report TEXT
);
CREATE INDEX runs_by_swarm ON runs (swarm_id);
CREATE TABLE task_results (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id TEXT NOT NULL, kind TEXT NOT NULL, tenant TEXT NOT NULL, status TEXT NOT NULL,
    agent TEXT, attempts INTEGER NOT NULL, queued_at REAL NOT NULL, started_at REAL,
    finished_at REAL, error TEXT, cost REAL
);
CREATE INDEX task_results_by_run ON task_results (run_id);
INSERT INTO runs VALUES (1, 'old', 50.0, 60.0, 'succeeded', 'local', 'round-robin',
    '{"agents": 2}', '{"done": 3}');
INSERT INTO task_results VALUES (1, 1, 't0', 'sleep', 'default', 'succeeded', 'a1', 1,
    1.0, 1.5, 2.0, NULL, 0.5);
PRAGMA user_version = 1;
"""


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    conn.close()
    return {name for (name,) in rows}


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return version


def make_db(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()


def test_there_is_an_upgrade_path_to_test() -> None:
    # The upgrade test below is only meaningful while there is more than one version.
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_fresh_store_has_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) == ALL_TABLES


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        run_id = store.start_run("s", {"x": 1}, "local", "round-robin")
    with Store.open(path) as store:
        run = store.get_run(run_id)
    assert run is not None
    assert run.spec == {"x": 1}


def test_version_1_store_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_db(path, SCHEMA_V1)
    assert tables(path) == {"runs", "task_results"}
    with Store.open(path) as store:
        run = store.get_run(1)
        assert run is not None
        assert (run.swarm_id, run.spec, run.report) == ("old", {"agents": 2}, {"done": 3})
        [old_result] = store.iter_results(1)
        assert (old_result.task_id, old_result.status) == ("t0", TaskStatus.SUCCEEDED)
        # The tables version 2 added work, and can refer to the old run.
        store.record_metrics("old", 1, 70.0, {"throughput": 3.0})
        store.record_event("old", 1, 70.0, "breaker-open", "a1", {})
        assert [m.value for m in store.metrics("old")] == [3.0]
        assert len(store.events("old")) == 1
    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) == ALL_TABLES


def test_store_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    newer = SCHEMA_VERSION + 1
    make_db(path, f"CREATE TABLE future (x); PRAGMA user_version = {newer};")
    with pytest.raises(ConfigError, match="Upgrade swarmperf") as caught:
        Store.open(path)
    assert caught.value.value == newer
    assert str(path) in str(caught.value)
    assert user_version(path) == newer
    assert tables(path) == {"future"}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_failing_migration_applies_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    good = "CREATE TABLE a (x); CREATE TABLE b (y);"
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, tmp_path / "s.db", [good, "CREATE TABLE c (z); CREATE TABLE (;"])
    assert not conn.in_transaction
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0
    assert migrate(conn, tmp_path / "s.db", [good]) == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_migrate_applies_only_what_is_missing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    first = "CREATE TABLE a (x);"
    second = "INSERT INTO a VALUES (1);"
    assert migrate(conn, tmp_path / "s.db", [first]) == 1
    assert migrate(conn, tmp_path / "s.db", [first, second]) == 2
    assert migrate(conn, tmp_path / "s.db", [first, second]) == 2
    assert conn.execute("SELECT x FROM a").fetchall() == [(1,)]
    conn.close()


def test_split_statements_respects_strings_triggers_and_comments() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
        INSERT INTO t VALUES ('x;y'); SELECT 1;
    END;
    ;
    SELECT 2
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END;")
    assert statements[2].split() == ["SELECT", "2", ";"]


def test_every_migration_splits_into_complete_statements() -> None:
    for script in MIGRATIONS:
        statements = split_statements(script)
        assert statements
        assert all(sqlite3.complete_statement(s) for s in statements)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store.open(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="could not open"):
        Store.open(tmp_path)


def test_a_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="could not be created"):
        Store.open(tmp_path / "file" / "s.db")
