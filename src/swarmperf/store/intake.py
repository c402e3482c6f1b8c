"""A live swarm's durable intake in the store: accepted tasks, and the one result of each."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from swarmperf.core.model import TaskResult
from swarmperf.store.sqlite import Store, result_row

_IN_CHUNK = 500  # keys per `IN (...)` lookup: well under SQLite's bound on parameters
_UNFINISHED_BATCH = 1000
_RESULT_COLUMNS = "task_id, key, task, done_seq, status, result, finished_at"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A task as the intake took it: `task_id` is the first task's for a repeated key."""

    task_id: str
    key: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class IntakeTask:
    """An accepted task, as stored."""

    seq: int
    task_id: str
    key: str
    task: dict[str, Any]  # kind, payload, priority, rank, deadline_s, cost, tenant, tokens
    accepted_at: float


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """An accepted task and, once recorded, its result (`done_seq` orders results)."""

    task_id: str
    key: str
    kind: str
    done_seq: int | None
    status: str | None
    result: dict[str, Any] | None
    finished_at: float | None


class Intake:
    """One swarm's intake. Every method is one transaction (or part of the caller's:
    `with store.transaction()` groups several, which is how the service commits many
    requests at once)."""

    def __init__(self, store: Store, swarm_id: str) -> None:
        self.store = store
        self.swarm_id = swarm_id

    def accept(
        self, rows: Sequence[tuple[str, str, str]], accepted_at: float, run_id: int | None
    ) -> list[Accepted]:
        """Store `(task_id, key, task_json)` rows; a key seen before (now or in an earlier
        batch) is not stored again, and answers with the first task's id."""
        store, conn = self.store, self.store._conn
        with store.transaction():
            known: dict[str, str] = {}
            keys = list({key for _, key, _ in rows})
            for i in range(0, len(keys), _IN_CHUNK):
                chunk = keys[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                found = conn.execute(
                    f"SELECT key, task_id FROM intake WHERE swarm_id = ? AND key IN ({marks})",
                    (self.swarm_id, *chunk),
                ).fetchall()
                known.update(found)
            accepted: list[Accepted] = []
            new: list[tuple[Any, ...]] = []
            for task_id, key, task in rows:
                first = known.get(key)
                if first is not None:
                    accepted.append(Accepted(first, key, True))
                    continue
                known[key] = task_id
                accepted.append(Accepted(task_id, key, False))
                new.append((self.swarm_id, task_id, key, task, accepted_at, run_id))
            conn.executemany(
                "INSERT INTO intake (swarm_id, task_id, key, task, accepted_at, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                new,
            )
        return accepted

    def record(
        self,
        run_id: int,
        results: Sequence[tuple[TaskResult, str]],
        next_done: int,
        finished_at: float,
    ) -> list[tuple[TaskResult, int]]:
        """Record each `(result, result_json)` as its task's one result, numbered from
        `next_done`, and under the run's results; a task that has one already keeps it.
        Returns the results recorded now, with their numbers."""
        store, conn = self.store, self.store._conn
        update = (
            "UPDATE intake SET done_seq = ?, status = ?, result = ?, finished_at = ?,"
            " run_id = ? WHERE swarm_id = ? AND task_id = ? AND done_seq IS NULL"
        )
        swarm_id = self.swarm_id

        def row(result: TaskResult, text: str, done: int) -> tuple[Any, ...]:
            status = result.status.value
            return (done, status, text, finished_at, run_id, swarm_id, result.task_id)

        with store.transaction():
            # Every result is its task's first, but for a bug: all in one statement, and
            # one by one only if the count says some task had a result already.
            recorded = [(result, next_done + i) for i, (result, _) in enumerate(results)]
            try:
                with store.transaction():
                    cursor = conn.executemany(
                        update,
                        [row(r, text, next_done + i) for i, (r, text) in enumerate(results)],
                    )
                    if cursor.rowcount != len(results):
                        raise _Repeated()
            except _Repeated:
                recorded = []
                done = next_done
                for result, text in results:
                    if conn.execute(update, row(result, text, done)).rowcount == 1:
                        recorded.append((result, done))
                        done += 1
            conn.executemany(
                "INSERT INTO task_results (run_id, task_id, kind, tenant, status, agent,"
                " attempts, queued_at, started_at, finished_at, error, cost)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [result_row(run_id, result) for result, _ in recorded],
            )
        return recorded

    def prune(self, finished_before: float, chunk: int = 5000) -> int:
        """Forget tasks whose result was recorded before `finished_before` (UNIX time), in
        the order recorded, a chunk per transaction; their keys may then be used again.
        Returns how many went."""
        conn, gone = self.store._conn, 0
        while True:
            with self.store.transaction():
                rows = conn.execute(
                    "SELECT done_seq, finished_at FROM intake WHERE swarm_id = ?"
                    " AND done_seq IS NOT NULL ORDER BY done_seq LIMIT ?",
                    (self.swarm_id, chunk),
                ).fetchall()
                old = [seq for seq, at in rows if at < finished_before]
                if old:
                    gone += conn.execute(
                        "DELETE FROM intake WHERE swarm_id = ? AND done_seq IS NOT NULL"
                        " AND done_seq <= ? AND finished_at < ?",
                        (self.swarm_id, old[-1], finished_before),
                    ).rowcount
            if len(old) < chunk:
                return gone

    def unfinished(self) -> Iterator[IntakeTask]:
        """Accepted tasks with no result yet, in the order they were accepted."""
        after = 0
        while True:
            rows = self.store._query(
                "SELECT seq, task_id, key, task, accepted_at FROM intake"
                " WHERE swarm_id = ? AND done_seq IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (self.swarm_id, after, _UNFINISHED_BATCH),
            )
            if not rows:
                return
            for seq, task_id, key, task, accepted_at in rows:
                yield IntakeTask(seq, task_id, key, json.loads(task), accepted_at)
            after = rows[-1][0]

    def get(self, task_id: str) -> IntakeRecord | None:
        rows = self.store._query(
            f"SELECT {_RESULT_COLUMNS} FROM intake WHERE swarm_id = ? AND task_id = ?",
            (self.swarm_id, task_id),
        )
        return _record(rows[0]) if rows else None

    def results(self, after: int, limit: int) -> list[IntakeRecord]:
        """Recorded results numbered above `after`, in the order they were recorded."""
        rows = self.store._query(
            f"SELECT {_RESULT_COLUMNS} FROM intake WHERE swarm_id = ? AND done_seq > ?"
            " ORDER BY done_seq LIMIT ?",
            (self.swarm_id, after, limit),
        )
        return [_record(row) for row in rows]

    def last_done(self) -> int:
        """The number of the last result recorded (0: none yet)."""
        rows = self.store._query(
            "SELECT max(done_seq) FROM intake WHERE swarm_id = ?", (self.swarm_id,)
        )
        return int(rows[0][0] or 0)

    def counts(self) -> tuple[int, int]:
        """(accepted, with a result) over the swarm's whole intake."""
        rows = self.store._query(
            "SELECT count(*), count(done_seq) FROM intake WHERE swarm_id = ?", (self.swarm_id,)
        )
        return int(rows[0][0]), int(rows[0][1])


class _Repeated(Exception):
    """Some task of a batch had its result recorded already: undo the batch, go one by one."""


def _record(row: tuple[Any, ...]) -> IntakeRecord:
    task_id, key, task, done_seq, status, result, finished_at = row
    kind = json.loads(task).get("kind", "")
    return IntakeRecord(
        task_id,
        key,
        str(kind),
        done_seq,
        status,
        json.loads(result) if result is not None else None,
        finished_at,
    )
