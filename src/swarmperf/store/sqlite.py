"""The SQLite store: runs, task results, metrics, benchmarks, decisions and events."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from swarmperf.core.errors import ConfigError, StoreError
from swarmperf.core.events import AGENT_PLACED
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store.locking import WriteStats, begin_immediate
from swarmperf.store.migrations import SCHEMA_VERSION, check_not_newer, migrate, schema_version
from swarmperf.store.records import (
    RUN_KINDS,
    RUN_REAL,
    RUN_RUNNING,
    AgentNodeRecord,
    BenchmarkRecord,
    DecisionRecord,
    EventRecord,
    MetricRow,
    RunRecord,
    pid_alive,
    run_status,
)

# The last two are the run's kind and its number among the swarm's runs of that kind.
_RUN_COLUMNS = (
    "id, swarm_id, started_at, finished_at, status, backend, strategy, spec, report, "
    "pid, host, heartbeat_at, kind, (SELECT count(*) FROM runs AS earlier"
    " WHERE earlier.swarm_id = runs.swarm_id AND earlier.kind = runs.kind"
    " AND earlier.id <= runs.id)"
)
_NUMBER_ALL = (
    "(SELECT count(*) FROM runs AS earlier"
    " WHERE earlier.swarm_id = runs.swarm_id AND earlier.id <= runs.id)"
)
# A store opened read-only is not migrated: before migration 4, runs have no pid and host,
# and before migration 5 every run is real.
_RUN_COLUMNS_V4 = (
    "id, swarm_id, started_at, finished_at, status, backend, strategy, spec, report, "
    f"pid, host, heartbeat_at, 'real', {_NUMBER_ALL}"
)
_RUN_COLUMNS_V3 = (
    "id, swarm_id, started_at, finished_at, status, backend, strategy, spec, report, "
    f"NULL, NULL, NULL, 'real', {_NUMBER_ALL}"
)
_RESULT_COLUMNS = (
    "task_id, kind, tenant, status, agent, attempts, queued_at, started_at, finished_at, "
    "error, cost"
)
_RESULT_BATCH = 1000  # rows fetched per query by `iter_results`
# How long a writer keeps waiting for another process's write lock before it gives up: long
# enough to outlast a retention job or a backup, short enough that a stuck one is noticed.
DEFAULT_WRITE_TIMEOUT = 600.0


class Store:
    """Durable memory for swarms, in one SQLite file.

    Create it with `Store.open(path)` and close it with `close()` or a `with` block. The file
    is in WAL mode, so other processes can read it while this one writes. Every write method
    is one transaction; group several into one with `with store.transaction(): ...`.
    A store may be shared between threads; it serialises their use of the connection.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        clock: Callable[[], float],
        *,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        read_only: bool = False,
        stats: WriteStats | None = None,
    ) -> None:
        """Wrap an open, migrated connection. Use `Store.open` rather than calling this."""
        self.path = path
        self.read_only = read_only
        self._conn = conn
        self._clock = clock
        self._lock = threading.RLock()
        self._savepoints = 0
        self._write_timeout = write_timeout
        self._stats = stats if stats is not None else WriteStats()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        busy_timeout: float = 5.0,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating it and its parent directories if needed) and migrate the store.

        `busy_timeout` is how long, in seconds, one attempt waits for another process's write
        lock; a writer keeps trying, warning as it waits, for `write_timeout` seconds in all.
        A new data directory is made private to its owner (0700) and a new database file too
        (0600): they hold alert history and sink errors.

        `read_only` opens the store without writing anything, not even a migration: for
        commands that only read, and for users who may read the store but not write it. A
        missing store then reads as an empty one, and nothing is created.

        `clock` gives the wall-clock UNIX time stamped on runs, benchmarks and decisions.
        Problems with the file itself (damaged, not a database, not writable) raise
        `StoreError` saying what to do.
        """
        path = Path(path)
        stats = WriteStats()
        try:
            conn = (
                _connect_read_only(path, busy_timeout)
                if read_only
                else _connect(path, busy_timeout)
            )
        except sqlite3.DatabaseError as exc:
            raise _store_error(exc, path) from exc
        try:

            def begin() -> None:
                begin_immediate(conn, path, write_timeout=write_timeout, stats=stats)

            _configure(conn, path, read_only=read_only, begin=begin)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _store_error(exc, path) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, clock, write_timeout=write_timeout, read_only=read_only, stats=stats)

    def set_cache(self, mebibytes: int) -> None:
        """Let this connection cache up to `mebibytes` of pages (SQLite's default is 2):
        for a long-lived writer whose indexes outgrow the default."""
        with self._lock:
            self._conn.execute(f"PRAGMA cache_size = {-1024 * int(mebibytes)}")

    def write_stats(self) -> WriteStats:
        """How often and how long this store waited for the write lock, measured so far."""
        with self._lock:
            return replace(self._stats)

    def close(self) -> None:
        """Close the connection. Closing twice is harmless."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside the block land together, or not at all.

        Blocks nest; an inner block that raises undoes only its own writes.
        """
        with self._lock:
            if not self._conn.in_transaction:
                if self.read_only:
                    raise StoreError(
                        self.path,
                        "it was opened read-only",
                        "Open it with read_only=False to write.",
                    )
                # IMMEDIATE takes the write lock now, waiting (and retrying) while another
                # writer has it. A deferred BEGIN would instead fail at once later, when its
                # read lock needed upgrading to a write lock: SQLite does not wait for that.
                with self._translated():
                    begin_immediate(
                        self._conn, self.path, write_timeout=self._write_timeout, stats=self._stats
                    )
                try:
                    with self._translated():
                        yield
                        self._conn.execute("COMMIT")
                except BaseException:
                    _rollback(self._conn, "ROLLBACK")
                    raise
                return
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                _rollback(self._conn, f"ROLLBACK TO {name}")
                raise
            finally:
                if self._conn.in_transaction:
                    self._conn.execute(f"RELEASE {name}")
                self._savepoints -= 1

    # -- runs -----------------------------------------------------------------------------

    def start_run(
        self,
        swarm_id: str,
        spec: Mapping[str, Any],
        backend: str,
        strategy: str,
        *,
        kind: str = RUN_REAL,
    ) -> int:
        """Record that a run began now, in this process; return its id. Its status is
        "running" until `finish_run`; keep it fresh with `heartbeat`. `kind` is `real`, or
        `simulated` for a run in virtual time (left out of the swarm's history by default)."""
        _check_kind(kind)
        now = self._clock()
        row = (swarm_id, now, RUN_RUNNING, backend, strategy, _dump(spec))
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO runs (swarm_id, started_at, status, backend, strategy, spec,"
                " pid, host, heartbeat_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, os.getpid(), socket.gethostname(), now, kind),
            )
        return _rowid(cursor)

    def heartbeat(self, run_id: int) -> None:
        """Record that the run is still going now (readers take a silent one for dead)."""
        with self.transaction():
            self._conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE id = ?", (self._clock(), run_id)
            )

    def finish_run(self, run_id: int, report: Mapping[str, Any], status: str) -> None:
        """Record that a run ended now, how (`status`) and with what outcome (`report`)."""
        params = (self._clock(), status, _dump(report), run_id)
        with self.transaction():
            cursor = self._conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, report = ? WHERE id = ?", params
            )
            if cursor.rowcount == 0:
                raise LookupError(f"No run has id {run_id!r}; start_run returns valid ids.")

    def get_run(self, run_id: int) -> RunRecord | None:
        rows = self._query(f"SELECT {self._run_columns()} FROM runs WHERE id = ?", (run_id,))
        return self._run_record(rows[0]) if rows else None

    def list_runs(
        self, swarm_id: str | None = None, limit: int = 50, *, kind: str | None = RUN_REAL
    ) -> list[RunRecord]:
        """The most recently started runs first, of one swarm or of all.

        Only real runs by default: a simulated run's virtual agents and tasks would distort
        a swarm's history. `kind="simulated"` gives those alone, `kind=None` every run.
        """
        _check_limit(limit)
        if kind is not None:
            _check_kind(kind)
        clauses, params = self._run_filters(swarm_id, kind)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        # Newest by id rather than by started_at: the wall clock can step backwards.
        sql = f"SELECT {self._run_columns()} FROM runs {where}ORDER BY id DESC LIMIT ?"
        rows = self._query(sql, (*params, limit))
        return [self._run_record(row) for row in rows]

    def _run_filters(
        self, swarm_id: str | None, kind: str | None
    ) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        if swarm_id is not None:
            clauses.append("swarm_id = ?")
            params.append(swarm_id)
        if kind is not None:
            if self._schema() >= 5:
                clauses.append("kind = ?")
                params.append(kind)
            elif kind != RUN_REAL:
                clauses.append("0")  # before migration 5 every run is real
        return clauses, params

    def _schema(self) -> int:
        with self._lock:
            return schema_version(self._conn)

    def _run_columns(self) -> str:
        version = self._schema()
        if version >= 5:
            return _RUN_COLUMNS
        return _RUN_COLUMNS_V4 if version >= 4 else _RUN_COLUMNS_V3

    def latest_swarm(self, *, kind: str | None = RUN_REAL) -> str | None:
        """The swarm that ran or was sampled most recently (its latest run of `kind`, or its
        latest metric snapshot, whichever is newer); None when the store holds neither."""
        runs = self.list_runs(limit=1, kind=kind)
        rows = self._query("SELECT swarm_id, ts FROM metrics ORDER BY ts DESC, id DESC LIMIT 1", ())
        if not runs:
            return str(rows[0][0]) if rows else None
        if rows and rows[0][1] > runs[0].last_seen:
            return str(rows[0][0])
        return runs[0].swarm_id

    def _run_record(self, row: tuple[Any, ...]) -> RunRecord:
        """The row as readers should see it: `aborted` if its process is gone."""
        record = _run(row)
        if record.status != RUN_RUNNING:
            return record
        status = run_status(
            record.status,
            pid=record.pid,
            host=record.host,
            heartbeat_at=record.heartbeat_at,
            started_at=record.started_at,
            clock=self._clock,
            this_host=socket.gethostname(),
            alive=pid_alive,
        )
        return record if status == record.status else replace(record, status=status)

    def latest_run(self, swarm_id: str, *, kind: str | None = RUN_REAL) -> RunRecord | None:
        """The swarm's most recently started run of `kind` (real by default; None: any)."""
        runs = self.list_runs(swarm_id, limit=1, kind=kind)
        return runs[0] if runs else None

    def run_by_number(
        self, swarm_id: str, number: int, *, kind: str = RUN_REAL
    ) -> RunRecord | None:
        """The swarm's run `number` of `kind` (`RunRecord.number`: its runs of that kind
        counted from 1 in the order they started); None if it has no such run."""
        _check_kind(kind)
        if number < 1:
            return None
        clauses, params = self._run_filters(swarm_id, kind)
        sql = (
            f"SELECT {self._run_columns()} FROM runs WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT 1 OFFSET ?"
        )
        rows = self._query(sql, (*params, number - 1))
        return self._run_record(rows[0]) if rows else None

    # -- task results ---------------------------------------------------------------------

    def record_results(self, run_id: int, results: Iterable[TaskResult]) -> None:
        """Store results in one transaction: all of them, or none if anything fails.

        The results' values are not stored. Their times are stored as given (swarm clock).
        """
        rows = (result_row(run_id, result) for result in results)
        with self.transaction():
            self._conn.executemany(
                f"INSERT INTO task_results (run_id, {_RESULT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def count_results(self, run_id: int) -> int:
        rows = self._query("SELECT count(*) FROM task_results WHERE run_id = ?", (run_id,))
        count: int = rows[0][0]
        return count

    def iter_results(self, run_id: int) -> Iterator[TaskResult]:
        """Yield a run's results in the order they were recorded (`value` is None)."""
        # Fetch in batches, each its own query, so that a slow consumer neither holds the
        # lock nor loads a large run into memory at once.
        sql = (
            f"SELECT id, {_RESULT_COLUMNS} FROM task_results"
            " WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?"
        )
        after = -1
        while rows := self._query(sql, (run_id, after, _RESULT_BATCH)):
            for row in rows:
                yield _result(row[1:])
            after = rows[-1][0]

    # -- metrics --------------------------------------------------------------------------

    def record_metrics(
        self,
        swarm_id: str,
        run_id: int | None,
        ts: float,
        metrics: Mapping[str, float | None],
    ) -> None:
        """Store one snapshot: a row per metric, all at time `ts` (UNIX seconds).

        SQLite has no NaN: a NaN value is stored, and read back, as None.
        """
        rows = [(swarm_id, run_id, ts, name, value) for name, value in metrics.items()]
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO metrics (swarm_id, run_id, ts, name, value) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def metrics(
        self, swarm_id: str, name: str | None = None, since: float | None = None
    ) -> list[MetricRow]:
        """A swarm's metric rows, oldest first; `since` (UNIX seconds) is inclusive."""
        where, params = _filters(swarm_id, {"name = ?": name, "ts >= ?": since})
        rows = self._query(
            f"SELECT swarm_id, run_id, ts, name, value FROM metrics {where} ORDER BY ts, id",
            params,
        )
        return [MetricRow(*row) for row in rows]

    # -- benchmarks -----------------------------------------------------------------------

    def record_benchmark(
        self, name: str, result: Mapping[str, Any], swarm_id: str | None = None
    ) -> int:
        row = (name, self._clock(), swarm_id, _dump(result))
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO benchmarks (name, created_at, swarm_id, result) VALUES (?, ?, ?, ?)",
                row,
            )
        return _rowid(cursor)

    def benchmarks(self, name: str | None = None, limit: int = 100) -> list[BenchmarkRecord]:
        """The most recently recorded benchmark results first."""
        _check_limit(limit)
        columns = "id, name, created_at, swarm_id, result"
        if name is None:
            sql = f"SELECT {columns} FROM benchmarks ORDER BY id DESC LIMIT ?"
            rows = self._query(sql, (limit,))
        else:
            sql = f"SELECT {columns} FROM benchmarks WHERE name = ? ORDER BY id DESC LIMIT ?"
            rows = self._query(sql, (name, limit))
        return [_benchmark(row) for row in rows]

    # -- decisions ------------------------------------------------------------------------

    def record_decision(
        self, swarm_id: str, kind: str, decision: Mapping[str, Any], reason: str
    ) -> int:
        """Record what was decided now (`decision`, with its evidence) and why (`reason`)."""
        row = (swarm_id, self._clock(), kind, _dump(decision), reason)
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO decisions (swarm_id, created_at, kind, decision, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                row,
            )
        return _rowid(cursor)

    def update_decision(self, decision_id: int, decision: Mapping[str, Any]) -> None:
        """Replace a decision's record: for evidence that comes later (the figures after a
        change, measured once it has had time to show)."""
        with self.transaction():
            cursor = self._conn.execute(
                "UPDATE decisions SET decision = ? WHERE id = ?", (_dump(decision), decision_id)
            )
            if cursor.rowcount == 0:
                raise LookupError(f"No decision has id {decision_id!r}.")

    def get_decision(self, decision_id: int) -> DecisionRecord | None:
        rows = self._query(
            "SELECT id, swarm_id, created_at, kind, decision, reason FROM decisions WHERE id = ?",
            (decision_id,),
        )
        return _decision(rows[0]) if rows else None

    def decisions(self, swarm_id: str, kind: str | None = None) -> list[DecisionRecord]:
        """A swarm's decisions in the order they were made."""
        where, params = _filters(swarm_id, {"kind = ?": kind})
        rows = self._query(
            f"SELECT id, swarm_id, created_at, kind, decision, reason FROM decisions {where}"
            " ORDER BY id",
            params,
        )
        return [_decision(row) for row in rows]

    # -- events ---------------------------------------------------------------------------

    def record_event(
        self,
        swarm_id: str,
        run_id: int | None,
        ts: float,
        kind: str,
        subject: str,
        detail: Mapping[str, Any],
    ) -> int:
        """Record that `kind` happened to `subject` (an agent, a tenant...) at `ts` (UNIX
        seconds). An agent placed on a node (`agent-placed`, with `node` and `address` in
        its detail) is also recorded in the run's `agent_nodes`."""
        row = (swarm_id, run_id, ts, kind, subject, _dump(detail))
        with self.transaction():
            cursor = self._conn.execute(
                "INSERT INTO events (swarm_id, run_id, ts, kind, subject, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            node = detail.get("node") if kind == AGENT_PLACED else None
            if run_id is not None and isinstance(node, str):
                self.record_agent_node(run_id, subject, node, detail.get("address"), ts)
        return _rowid(cursor)

    # -- where agents ran -----------------------------------------------------------------

    def record_agent_node(
        self, run_id: int, agent: str, node_id: str, address: object, placed_at: float
    ) -> None:
        """Record that `agent` of run `run_id` started on `node_id` at `placed_at`."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO agent_nodes (run_id, agent, node_id, address, placed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, agent, node_id, None if address is None else str(address), placed_at),
            )

    def agent_nodes(self, run_id: int) -> list[AgentNodeRecord]:
        """Where each agent of run `run_id` started, in order: a row per start."""
        rows = self._query(
            "SELECT run_id, agent, node_id, address, placed_at FROM agent_nodes"
            " WHERE run_id = ? ORDER BY placed_at, id",
            (run_id,),
        )
        return [AgentNodeRecord(*row) for row in rows]

    def events(
        self,
        swarm_id: str,
        kind: str | None = None,
        since: float | None = None,
        *,
        run_kind: str | None = RUN_REAL,
    ) -> list[EventRecord]:
        """A swarm's events, oldest first; `since` (UNIX seconds) is inclusive.

        Those of simulated runs are left out unless `run_kind` is `simulated` or None (all);
        events of no run (an alert's delivery, say) are always in.
        """
        if run_kind is not None:
            _check_kind(run_kind)
        # An open store is always migrated (a read-only one with an older schema is refused).
        in_kind = "(run_id IS NULL OR run_id IN (SELECT id FROM runs WHERE kind = ?))"
        where, params = _filters(swarm_id, {"kind = ?": kind, "ts >= ?": since, in_kind: run_kind})
        rows = self._query(
            f"SELECT id, swarm_id, run_id, ts, kind, subject, detail FROM events {where}"
            " ORDER BY ts, id",
            params,
        )
        return [_event(row) for row in rows]

    # -- alert state ----------------------------------------------------------------------

    def save_alert_states(
        self, swarm_id: str, states: Mapping[str, Mapping[str, Any]], removed: Iterable[str] = ()
    ) -> None:
        """Upsert the alerts in `states` (key -> JSON-able state) and delete `removed`, at once."""
        now = self._clock()
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO alert_states (swarm_id, key, updated_at, state) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (swarm_id, key) DO UPDATE SET"
                " updated_at = excluded.updated_at, state = excluded.state",
                [(swarm_id, key, now, _dump(state)) for key, state in states.items()],
            )
            self._conn.executemany(
                "DELETE FROM alert_states WHERE swarm_id = ? AND key = ?",
                [(swarm_id, key) for key in removed],
            )

    def alert_states(self, swarm_id: str) -> dict[str, dict[str, Any]]:
        """Every stored alert of a swarm, by key."""
        rows = self._query(
            "SELECT key, state FROM alert_states WHERE swarm_id = ? ORDER BY key", (swarm_id,)
        )
        return {key: _load(state) for key, state in rows}

    # -- helpers --------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock, self._translated():
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's errors about the file itself (damaged, read-only, disk full) into
        `StoreError`s that say what to do; leave the others (a bug's) as they are."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            error = _store_error(exc, self.path)
            if error is exc:
                raise
            raise error from exc

    # -- metric history: retention and downsampling ---------------------------------------
    # A downsampled bucket is three rows at the bucket's start: `<name>` (the mean),
    # `<name>#max` and `<name>#n` (how many values went in), so that downsampling again into
    # coarser buckets weighs each bucket by its count and changes nothing when repeated.

    def delete_metrics_before(self, cutoff: float, swarm_id: str | None = None) -> int:
        """Delete the metric rows older than `cutoff` (UNIX seconds); return how many."""
        sql = "DELETE FROM metrics WHERE ts < ?"
        params: tuple[object, ...] = (cutoff,)
        if swarm_id is not None:
            sql, params = sql + " AND swarm_id = ?", (cutoff, swarm_id)
        with self.transaction():
            return self._conn.execute(sql, params).rowcount

    def downsample_metrics(
        self, before: float, bucket_s: float, swarm_id: str | None = None
    ) -> tuple[int, int]:
        """Aggregate the rows of whole buckets of `bucket_s` seconds ending by `before`.

        Each (swarm, run, metric, bucket) becomes its mean, max and count. Buckets already
        in that form are left alone, so repeating the call is harmless. Returns (rows
        replaced, rows written).
        """
        if not bucket_s > 0 or not math.isfinite(bucket_s):
            raise ConfigError("bucket", bucket_s, "Use a duration > 0, e.g. 1m.")
        limit = math.floor(before / bucket_s) * bucket_s
        sql = "SELECT id, swarm_id, run_id, ts, name, value FROM metrics WHERE ts < ?"
        params: tuple[object, ...] = (limit,)
        if swarm_id is not None:
            sql, params = sql + " AND swarm_id = ?", (limit, swarm_id)
        with self.transaction():
            groups: dict[tuple[str, int | None, str, int], list[tuple[Any, ...]]] = {}
            for row in self._conn.execute(sql, params):
                base = row[4].split("#", 1)[0]
                key = (row[1], row[2], base, _bucket(row[3], bucket_s))
                groups.setdefault(key, []).append(row)
            replaced: list[int] = []
            written: list[tuple[Any, ...]] = []
            for (swarm, run, base, k), rows in groups.items():
                start = k * bucket_s
                if all(r[3] == start for r in rows) and sorted(r[4] for r in rows) == [
                    base,
                    f"{base}#max",
                    f"{base}#n",
                ]:
                    continue
                mean, peak, count = _aggregate(rows)
                replaced.extend(r[0] for r in rows)
                written += [
                    (swarm, run, start, base, mean),
                    (swarm, run, start, f"{base}#max", peak),
                    (swarm, run, start, f"{base}#n", float(count)),
                ]
            self._conn.executemany(
                "DELETE FROM metrics WHERE id = ?", [(row_id,) for row_id in replaced]
            )
            self._conn.executemany(
                "INSERT INTO metrics (swarm_id, run_id, ts, name, value) VALUES (?, ?, ?, ?, ?)",
                written,
            )
        return len(replaced), len(written)

    def count_metrics(self, swarm_id: str | None = None) -> int:
        if swarm_id is None:
            rows = self._query("SELECT count(*) FROM metrics", ())
        else:
            rows = self._query("SELECT count(*) FROM metrics WHERE swarm_id = ?", (swarm_id,))
        count: int = rows[0][0]
        return count

    def latest_metrics(self, swarm_id: str) -> tuple[float, dict[str, float | None]] | None:
        """The newest snapshot of a swarm: its time and its rows by name; None if none."""
        rows = self._query("SELECT max(ts) FROM metrics WHERE swarm_id = ?", (swarm_id,))
        if rows[0][0] is None:
            return None
        ts: float = rows[0][0]
        named = self._query(
            "SELECT name, value FROM metrics WHERE swarm_id = ? AND ts = ? ORDER BY id",
            (swarm_id, ts),
        )
        return ts, dict(named)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-write connection, creating a private data directory and database if missing."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        # SQLite creates a missing file with the umask's permissions (often 0644), and gives
        # its -wal and -shm files the database's: create it first, readable by its owner only.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # an existing store (or one another process just made) keeps its permissions
    except OSError as exc:
        raise StoreError(
            path,
            f"it could not be created ({exc.strerror})",
            "Choose a writable data directory (--data-dir or $SWARMPERF_DATA_DIR).",
        ) from exc
    try:
        # Autocommit mode: transactions are begun and ended explicitly by the Store.
        return sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.OperationalError as exc:
        raise StoreError(
            path, f"SQLite could not open it ({exc})", "Give the path of a file."
        ) from exc


def _connect_read_only(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that cannot write, to an existing store."""
    if not path.exists():
        # Nothing recorded there yet: an empty store, in memory, so that the command says
        # what data it lacks in its own words, and no file is made by a command that reads.
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(conn, path)
        return conn
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        # A WAL database needs its -shm index, which a reader makes if it may write the
        # directory. One who may not can still read the file as it stands, when no writer
        # has it open (no -wal file): SQLite then reads it without locks.
        wal = path.with_name(path.name + "-wal")
        if not _readonly_code(exc) or wal.exists():
            raise
        return sqlite3.connect(
            f"{uri}&immutable=1",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    return conn


def _configure(
    conn: sqlite3.Connection, path: Path, *, read_only: bool, begin: Callable[[], None]
) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    # Refuse a newer schema before changing anything in the file.
    check_not_newer(conn, path)
    if read_only:
        if schema_version(conn) < SCHEMA_VERSION:
            raise StoreError(
                path,
                f"its schema (version {schema_version(conn)}) is older than this swarmperf's "
                f"({SCHEMA_VERSION}), and a read-only store is not upgraded",
                "Run a command that writes to it once (e.g. `swarmperf run`) to upgrade it.",
            )
        return
    # NORMAL is durable in WAL mode except for the last commits before a power loss, and
    # spares an fsync per commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Switching modes needs an exclusive lock, so only switch when needed: a reader opening
    # the store while a writer works must not wait for it.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, path, begin=begin)


def _readonly_code(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)


def _store_error(exc: sqlite3.DatabaseError, path: Path) -> BaseException:
    """A `StoreError` saying what is wrong with the file and what to do; `exc` itself when
    the error is not about the file."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary == sqlite3.SQLITE_NOTADB:
        return StoreError(
            path,
            "it is not an SQLite database",
            "Move it away or use another data directory.",
        )
    if primary == sqlite3.SQLITE_CORRUPT:
        return StoreError(
            path,
            f"the database is damaged ({exc})",
            "Restore it from a backup, or save what is still readable with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.db` and use the recovered file "
            "in its place; or start afresh in another data directory.",
        )
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return StoreError(
            path,
            f"this process may not write it ({exc})",
            "Run as a user who may write the data directory and its files, or choose another "
            "data directory (--data-dir or $SWARMPERF_DATA_DIR). Commands that only read "
            "(swarm-monitor, performance-report, metrics-collect, sla-check) open it read-only.",
        )
    if primary == sqlite3.SQLITE_FULL:
        return StoreError(
            path, "the disk is full", "Free some space (`swarmperf metrics-retention`) and retry."
        )
    if primary == sqlite3.SQLITE_IOERR:
        return StoreError(
            path, f"reading or writing it failed ({exc})", "Check the disk and the file system."
        )
    return exc


def _rollback(conn: sqlite3.Connection, statement: str) -> None:
    # Some errors (a full disk, say) make SQLite roll the whole transaction back by itself;
    # rolling back again would raise and hide the error that matters.
    if conn.in_transaction:
        conn.execute(statement)


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value))


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _rowid(cursor: sqlite3.Cursor) -> int:
    # Always set after an INSERT; the check keeps the type honest.
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite reported no row id after an INSERT.")
    return cursor.lastrowid


def _check_kind(kind: str) -> None:
    if kind not in RUN_KINDS:
        raise ConfigError("kind", kind, f"Use one of: {', '.join(RUN_KINDS)}.")


def _check_limit(limit: int) -> None:
    # SQLite reads a negative LIMIT as "no limit", which would hide a caller's bug.
    if limit < 1:
        raise ConfigError("limit", limit, "Use an integer >= 1.")


def _filters(swarm_id: str, optional: Mapping[str, object]) -> tuple[str, tuple[object, ...]]:
    """A WHERE clause on swarm_id, and on each optional clause whose parameter is not None."""
    clauses: list[str] = ["swarm_id = ?"]
    params: list[object] = [swarm_id]
    for clause, param in optional.items():
        if param is not None:
            clauses.append(clause)
            params.append(param)
    return "WHERE " + " AND ".join(clauses), tuple(params)


def _run(row: tuple[Any, ...]) -> RunRecord:
    (run_id, swarm_id, started_at, finished_at, status, backend, strategy, spec, report) = row[:9]
    pid, host, heartbeat_at, kind, number = row[9:]
    return RunRecord(
        id=run_id,
        swarm_id=swarm_id,
        started_at=started_at,
        finished_at=finished_at,
        status=status,
        backend=backend,
        strategy=strategy,
        spec=_load(spec),
        report=None if report is None else _load(report),
        pid=pid,
        host=host,
        heartbeat_at=heartbeat_at,
        stored_status=status,
        kind=kind,
        number=number,
    )


def _benchmark(row: tuple[Any, ...]) -> BenchmarkRecord:
    bench_id, name, created_at, swarm_id, result = row
    return BenchmarkRecord(bench_id, name, created_at, swarm_id, _load(result))


def _decision(row: tuple[Any, ...]) -> DecisionRecord:
    decision_id, swarm_id, created_at, kind, decision, reason = row
    return DecisionRecord(decision_id, swarm_id, created_at, kind, _load(decision), reason)


def _event(row: tuple[Any, ...]) -> EventRecord:
    event_id, swarm_id, run_id, ts, kind, subject, detail = row
    return EventRecord(event_id, swarm_id, run_id, ts, kind, subject, _load(detail))


def result_row(run_id: int, r: TaskResult) -> tuple[Any, ...]:
    return (
        run_id,
        r.task_id,
        r.kind,
        r.tenant,
        r.status.value,
        r.agent,
        r.attempts,
        r.queued_at,
        r.started_at,
        r.finished_at,
        r.error,
        r.cost,
    )


def _result(row: tuple[Any, ...]) -> TaskResult:
    task_id, kind, tenant, status, agent, attempts, queued, started, finished, error, cost = row
    return TaskResult(
        task_id=task_id,
        status=TaskStatus(status),
        agent=agent,
        attempts=attempts,
        queued_at=queued,
        started_at=started,
        finished_at=finished,
        error=error,
        kind=kind,
        tenant=tenant,
        cost=cost,
    )


def _bucket(ts: float, size: float) -> int:
    """The k with k * size <= ts < (k + 1) * size, computed with the same products."""
    k = math.floor(ts / size)
    if k * size > ts:
        k -= 1
    elif (k + 1) * size <= ts:
        k += 1
    return k


def _aggregate(rows: list[tuple[Any, ...]]) -> tuple[float | None, float | None, int]:
    """Mean, max and count of a bucket's rows, raw or already downsampled."""
    by_ts: dict[float, dict[str, float | None]] = {}
    for _, _, _, ts, name, value in rows:
        _, _, suffix = name.partition("#")
        by_ts.setdefault(ts, {})[suffix] = value
    total, count, peak = 0.0, 0, None
    for parts in by_ts.values():
        value = parts.get("")
        if value is None:
            continue
        stored_n = parts.get("n")
        n = 1 if stored_n is None else int(stored_n)
        top = parts.get("max", value)
        total += value * n
        count += n
        peak = top if peak is None or (top is not None and top > peak) else peak
    return (total / count if count else None), peak, count
