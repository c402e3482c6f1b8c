"""Where agents ran (`agent_nodes`), and one clock for events: migration 7 and its records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from swarmperf.core.events import AGENT_PLACED, RETRY
from swarmperf.store import AgentNodeRecord, Store
from swarmperf.store.migrations import MIGRATIONS, migrate


def test_an_agent_placed_event_records_where_the_agent_ran(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        run = store.start_run("s", {}, "ray", "round-robin")
        other = store.start_run("s", {}, "ray", "round-robin")
        store.record_event("s", run, 100.0, AGENT_PLACED, "a", {"node": "n1", "address": "ip1"})
        store.record_event("s", run, 101.0, RETRY, "t1", {"node": "not a placement"})
        store.record_event("s", other, 102.0, AGENT_PLACED, "a", {"node": "n9", "address": "x"})
        # Restarted on another node: a second row, in order.
        store.record_event(
            "s", run, 105.0, AGENT_PLACED, "a", {"node": "n2", "address": "ip2", "previous": "n1"}
        )
        store.record_event("s", None, 106.0, AGENT_PLACED, "b", {"node": "n3"})  # no run
        assert store.agent_nodes(run) == [
            AgentNodeRecord(run, "a", "n1", "ip1", 100.0),
            AgentNodeRecord(run, "a", "n2", "ip2", 105.0),
        ]
        assert [r.node_id for r in store.agent_nodes(other)] == ["n9"]


def test_migration_7_moves_monotonic_event_times_onto_unix_time(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, MIGRATIONS[:6])
    start = 1_700_000_000.0
    conn.executescript(
        f"""
        INSERT INTO runs (id, swarm_id, started_at, status, backend, strategy, spec)
            VALUES (1, 's', {start}, 'completed', 'ray', 'rr', '{{}}'),
                   (2, 's', {start + 50}, 'completed', 'ray', 'rr', '{{}}');
        -- Run 1: the swarm's monotonic clock read 5000.0 when its first task was queued.
        INSERT INTO task_results (run_id, task_id, kind, tenant, status, agent, attempts,
            queued_at, started_at, finished_at)
            VALUES (1, 't', 'k', 'd', 'succeeded', 'a', 1, 5000.0, 5000.5, 5001.0);
        INSERT INTO events (swarm_id, run_id, ts, kind, subject, detail) VALUES
            ('s', 1, 5002.5, 'agent-lost', 'a', '{{}}'),
            ('s', 2, 700.0, 'retry', 't', '{{}}'),       -- no results: from its first event
            ('s', 2, 703.0, 'retry', 't', '{{}}'),
            ('s', NULL, {start + 9}, 'alert', 'x', '{{}}'),  -- already UNIX time
            ('s', 1, {start + 7}, 'retry', 'u', '{{}}');
        """
    )
    conn.close()
    with Store.open(path) as store:
        ts = [(e.run_id, e.ts) for e in store.events("s")]
    assert ts == [
        (1, start + 2.5),
        (1, start + 7),
        (None, start + 9),
        (2, start + 50),
        (2, start + 53),
    ]
