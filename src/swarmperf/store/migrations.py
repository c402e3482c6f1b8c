"""The store's schema as numbered migrations, and the code that applies them in order.

Migration N (1-based) is `MIGRATIONS[N - 1]`; the database records the last one applied in
`PRAGMA user_version`. A released migration is never edited: change the schema by appending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from swarmperf.core.errors import ConfigError

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and the results of their tasks.
    """
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        swarm_id    TEXT NOT NULL,
        started_at  REAL NOT NULL,
        finished_at REAL,
        status      TEXT NOT NULL,
        backend     TEXT NOT NULL,
        strategy    TEXT NOT NULL,
        spec        TEXT NOT NULL,  -- JSON
        report      TEXT            -- JSON; NULL until the run finishes
    );
    CREATE INDEX runs_by_swarm ON runs (swarm_id);

    -- Times here are on the swarm's monotonic clock, not UNIX time: they are only
    -- comparable within one run.
    CREATE TABLE task_results (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        task_id     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        status      TEXT NOT NULL,
        agent       TEXT,
        attempts    INTEGER NOT NULL,
        queued_at   REAL NOT NULL,
        started_at  REAL,
        finished_at REAL,
        error       TEXT,
        cost        REAL
    );
    CREATE INDEX task_results_by_run ON task_results (run_id);
    """,
    # 2: what monitoring, benchmarking and optimisation write about a swarm.
    """
    CREATE TABLE metrics (
        id       INTEGER PRIMARY KEY,
        swarm_id TEXT NOT NULL,
        run_id   INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        ts       REAL NOT NULL,
        name     TEXT NOT NULL,
        value    REAL
    );
    CREATE INDEX metrics_by_swarm ON metrics (swarm_id, ts);
    CREATE INDEX metrics_by_name ON metrics (swarm_id, name, ts);

    CREATE TABLE benchmarks (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        created_at REAL NOT NULL,
        swarm_id   TEXT,
        result     TEXT NOT NULL  -- JSON
    );
    CREATE INDEX benchmarks_by_name ON benchmarks (name);

    CREATE TABLE decisions (
        id         INTEGER PRIMARY KEY,
        swarm_id   TEXT NOT NULL,
        created_at REAL NOT NULL,
        kind       TEXT NOT NULL,
        decision   TEXT NOT NULL,  -- JSON
        reason     TEXT NOT NULL
    );
    CREATE INDEX decisions_by_swarm ON decisions (swarm_id, kind);

    CREATE TABLE events (
        id       INTEGER PRIMARY KEY,
        swarm_id TEXT NOT NULL,
        run_id   INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        ts       REAL NOT NULL,
        kind     TEXT NOT NULL,
        subject  TEXT NOT NULL,
        detail   TEXT NOT NULL  -- JSON
    );
    CREATE INDEX events_by_swarm ON events (swarm_id, ts);
    """,
    # 3: alert state, so a restarted monitor neither loses an alert nor sends it twice.
    """
    CREATE TABLE alert_states (
        swarm_id   TEXT NOT NULL,
        key        TEXT NOT NULL,  -- the alert's identity: rule name and its labels
        updated_at REAL NOT NULL,
        state      TEXT NOT NULL,  -- JSON
        PRIMARY KEY (swarm_id, key)
    );
    """,
    # 4: who runs a run, and when it last said it was alive, so that readers can tell a
    # run still going from one whose process was killed before it could record its end.
    """
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
    """,
    # 5: what a run was: `real` (a swarm ran) or `simulated` (virtual time, virtual agents),
    # so that a simulation at scale never shows up in the real swarm's history.
    """
    ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'real';
    CREATE INDEX runs_by_swarm_kind ON runs (swarm_id, kind);
    """,
    # 6: a live swarm's durable intake: every task its service accepted, stored before the
    # reply said so, and its one result. A task with no result after a crash runs again.
    """
    CREATE TABLE intake (
        seq         INTEGER PRIMARY KEY,  -- the order tasks were accepted in
        swarm_id    TEXT NOT NULL,
        task_id     TEXT NOT NULL,
        key         TEXT NOT NULL,        -- idempotency key: the client's, or the task id
        task        TEXT NOT NULL,        -- JSON: kind, payload, priority, deadline...
        accepted_at REAL NOT NULL,        -- UNIX time
        run_id      INTEGER REFERENCES runs (id) ON DELETE SET NULL,  -- the last to take it
        done_seq    INTEGER,              -- the order results were recorded in; NULL: none yet
        status      TEXT,
        result      TEXT,                 -- JSON: value, error, agent, attempts, latency_s
        finished_at REAL                  -- UNIX time
    );
    CREATE UNIQUE INDEX intake_by_key ON intake (swarm_id, key);
    CREATE UNIQUE INDEX intake_by_task ON intake (swarm_id, task_id);
    -- Results in the order recorded; the tasks without one sort first (NULL), which is
    -- how a restart finds them.
    CREATE UNIQUE INDEX intake_by_done ON intake (swarm_id, done_seq);
    """,
    # 7: where each agent of a run ran (a Ray node), a row per start, so a restart that
    # moved it shows; and one clock for events: UNIX time. Events stored on a swarm's
    # monotonic (or a simulation's virtual) clock are moved onto UNIX time, measured from
    # their run's start: by its first task's queue time, or failing that its first event.
    # No UNIX time of a run is below 1e9 (2001), and no monotonic clock reaches it.
    """
    CREATE TABLE agent_nodes (
        id        INTEGER PRIMARY KEY,
        run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        agent     TEXT NOT NULL,
        node_id   TEXT NOT NULL,
        address   TEXT,
        placed_at REAL NOT NULL  -- UNIX time
    );
    CREATE INDEX agent_nodes_by_run ON agent_nodes (run_id, agent);

    -- The offsets first, in a table of their own: read while the rows change, the first
    -- event of a run would move before the others are measured from it.
    CREATE TABLE migration_7_offsets AS
        SELECT r.id AS run_id, r.started_at - COALESCE(
            (SELECT MIN(t.queued_at) FROM task_results t WHERE t.run_id = r.id),
            (SELECT MIN(e.ts) FROM events e WHERE e.run_id = r.id AND e.ts < 1e9)
        ) AS offset
        FROM runs r WHERE EXISTS (SELECT 1 FROM events e WHERE e.run_id = r.id AND e.ts < 1e9);
    UPDATE events
        SET ts = ts + (SELECT o.offset FROM migration_7_offsets o WHERE o.run_id = events.run_id)
        WHERE ts < 1e9
            AND run_id IN (SELECT run_id FROM migration_7_offsets WHERE offset IS NOT NULL);
    DROP TABLE migration_7_offsets;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def check_not_newer(conn: sqlite3.Connection, where: Path, known: int = SCHEMA_VERSION) -> None:
    """Raise `ConfigError` if the database was written by a newer swarmperf than this one."""
    found = schema_version(conn)
    if found > known:
        raise ConfigError(
            f"schema version of {where}",
            found,
            f"This swarmperf understands schema versions up to {known}; the database was "
            "written by a newer swarmperf. Upgrade swarmperf (pip install --upgrade swarmperf) "
            "to open it, or use another data directory.",
        )


def migrate(
    conn: sqlite3.Connection,
    where: Path,
    migrations: Sequence[str] = MIGRATIONS,
    *,
    begin: Callable[[], None] | None = None,
) -> int:
    """Apply the migrations `conn` lacks, all in one transaction; return the new version.

    `conn` must be in autocommit mode (`isolation_level=None`) with no transaction open.
    `begin` takes the write lock (default: a plain `BEGIN IMMEDIATE`).
    """
    check_not_newer(conn, where, len(migrations))
    if schema_version(conn) == len(migrations):
        # Up to date: return without taking the write lock, so that opening the store to
        # read never waits for a busy writer.
        return len(migrations)
    if begin is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        begin()
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        check_not_newer(conn, where, len(migrations))
        current = schema_version(conn)
        for script in migrations[current:]:
            for statement in split_statements(script):
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is an int we computed.
        conn.execute(f"PRAGMA user_version = {len(migrations)}")
        conn.execute("COMMIT")
    except BaseException:
        # Some errors make SQLite roll back by itself; a second ROLLBACK would hide them.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(migrations)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into statements.

    `Connection.executescript` would do this, but it commits any open transaction first, which
    would break the all-or-nothing guarantee of `migrate`. `complete_statement` keeps a `;`
    inside a string literal or a trigger body from ending a statement early.
    """
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending.removesuffix(";")):
        statements.append(pending.removesuffix(";").strip())
    return statements


def _has_code(sql: str) -> bool:
    """True unless `sql` holds only whitespace, `;` and `--` comments."""
    lines = (line.split("--", 1)[0] for line in sql.splitlines())
    return any(line.strip(" \t;") for line in lines)
