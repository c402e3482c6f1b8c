"""Round trips through every table of the store, and the all-or-nothing writes."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from swarmperf.core.errors import ConfigError
from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store import (
    RUN_RUNNING,
    BenchmarkRecord,
    DecisionRecord,
    EventRecord,
    MetricRow,
    RunRecord,
    Store,
)


class StepClock:
    """A wall clock that moves one second every time it is read."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "swarmperf.db", clock=StepClock()) as opened:
        yield opened


def result(task_id: str, **changes: object) -> TaskResult:
    made = TaskResult(
        task_id=task_id,
        status=TaskStatus.SUCCEEDED,
        agent="a1",
        attempts=1,
        queued_at=10.0,
        started_at=10.5,
        finished_at=12.25,
        kind="sleep",
        tenant="acme",
        cost=0.5,
    )
    for name, value in changes.items():
        setattr(made, name, value)
    return made


def unrecordable(task_id: str) -> TaskResult:
    """A result with no `queued_at`, which the table refuses. A typed `TaskResult` cannot
    be made so; a stand-in with the same fields can, as a foreign producer's might be."""
    made = result(task_id)
    values = {f.name: getattr(made, f.name) for f in fields(TaskResult)}
    return cast(TaskResult, SimpleNamespace(**{**values, "queued_at": None}))


def stored_fields(r: TaskResult) -> tuple[object, ...]:
    return tuple(getattr(r, f.name) for f in fields(TaskResult) if f.name != "value")


# -- opening ---------------------------------------------------------------------------------


def test_open_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "swarmperf.db"
    with Store.open(str(path)) as store:
        assert store.path == path
    assert path.is_file()


def test_connection_settings(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", busy_timeout=2.5) as store:
        pragma = {
            name: store._conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 2500,
    }


def test_closed_store_refuses_work_and_closing_again_is_harmless(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.list_runs()


# -- runs ------------------------------------------------------------------------------------


def test_run_round_trip(store: Store) -> None:
    spec = {"agents": [{"id": "a1", "weight": 2.0}], "queue": {"max_queued": None}}
    run_id = store.start_run("swarm-1", spec, backend="local", strategy="least-loaded")
    assert store.get_run(run_id) == RunRecord(
        id=run_id,
        swarm_id="swarm-1",
        started_at=1_001.0,
        finished_at=None,
        status=RUN_RUNNING,
        backend="local",
        strategy="least-loaded",
        spec=spec,
        report=None,
        pid=os.getpid(),
        host=socket.gethostname(),
        heartbeat_at=1_001.0,
        stored_status=RUN_RUNNING,
        kind="real",
        number=1,
    )
    store.finish_run(run_id, {"throughput": 12.5, "p99": [0.1, 0.2]}, status="succeeded")
    finished = store.get_run(run_id)
    assert finished is not None
    assert finished.finished_at == 1_002.0
    assert finished.status == "succeeded"
    assert finished.report == {"throughput": 12.5, "p99": [0.1, 0.2]}
    assert finished.spec == spec


def test_unknown_run(store: Store) -> None:
    assert store.get_run(42) is None
    with pytest.raises(LookupError, match="42"):
        store.finish_run(42, {}, "succeeded")


def test_list_runs_newest_first_per_swarm(store: Store) -> None:
    ids = [store.start_run(swarm, {}, "local", "round-robin") for swarm in "abab"]
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs("a")] == [ids[2], ids[0]]
    assert [r.id for r in store.list_runs(limit=3)] == ids[:0:-1]
    assert store.list_runs("c") == []
    latest = store.latest_run("b")
    assert latest is not None
    assert latest.id == ids[3]
    assert store.latest_run("c") is None


@pytest.mark.parametrize("limit", [0, -1])
def test_limits_below_one_are_refused(store: Store, limit: int) -> None:
    with pytest.raises(ConfigError, match="limit"):
        store.list_runs(limit=limit)
    with pytest.raises(ConfigError, match="limit"):
        store.benchmarks(limit=limit)


def test_spec_that_is_not_json_writes_nothing(store: Store) -> None:
    with pytest.raises(TypeError):
        store.start_run("s", {"tags": {"a", "b"}}, "local", "round-robin")
    assert store.list_runs() == []


# -- task results ----------------------------------------------------------------------------


def test_results_round_trip_without_values(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")
    other_run = store.start_run("s", {}, "local", "round-robin")
    results = [
        result("t1", value={"big": "payload"}),
        result(
            "t2",
            status=TaskStatus.FAILED,
            agent=None,
            attempts=3,
            started_at=None,
            finished_at=None,
            error="boom",
            kind="spin",
            tenant="other",
            cost=None,
        ),
        result("t3", status=TaskStatus.REJECTED, queued_at=11.0),
    ]
    store.record_results(run_id, results)
    store.record_results(other_run, [result("t9")])
    loaded = list(store.iter_results(run_id))
    assert [stored_fields(r) for r in loaded] == [stored_fields(r) for r in results]
    assert all(r.value is None for r in loaded)
    assert loaded[1].status is TaskStatus.FAILED
    assert store.count_results(run_id) == 3
    assert store.count_results(other_run) == 1
    assert store.count_results(999) == 0


def test_iter_results_keeps_order_across_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("swarmperf.store.sqlite._RESULT_BATCH", 3)
    run_id = store.start_run("s", {}, "local", "round-robin")
    store.record_results(run_id, (result(f"t{i}") for i in range(10)))
    store.record_results(run_id, [result("t10")])
    assert [r.task_id for r in store.iter_results(run_id)] == [f"t{i}" for i in range(11)]


def test_results_of_an_unknown_run_are_refused(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.record_results(7, [result("t1")])
    assert store.count_results(7) == 0


def test_failing_iterable_leaves_no_results(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")

    def results() -> Iterator[TaskResult]:
        yield result("t1")
        yield result("t2")
        raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError, match="producer"):
        store.record_results(run_id, results())
    assert store.count_results(run_id) == 0


def test_row_that_breaks_a_constraint_leaves_no_results(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")
    broken = unrecordable("t3")
    with pytest.raises(sqlite3.IntegrityError, match="queued_at"):
        store.record_results(run_id, [result("t1"), result("t2"), broken, result("t4")])
    assert store.count_results(run_id) == 0
    assert list(store.iter_results(run_id)) == []


# -- transactions ----------------------------------------------------------------------------


def test_transaction_undoes_all_its_writes(store: Store) -> None:
    def write_then_fail() -> None:
        with store.transaction():
            run_id = store.start_run("s", {}, "local", "round-robin")
            store.record_results(run_id, [result("t1")])
            store.record_event("s", run_id, 1.0, "breaker-open", "a1", {})
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        write_then_fail()
    assert store.list_runs() == []
    assert store.events("s") == []


def test_inner_failure_undoes_only_the_inner_writes(store: Store) -> None:
    with store.transaction():
        run_id = store.start_run("s", {}, "local", "round-robin")
        store.record_results(run_id, [result("t1")])
        with pytest.raises(sqlite3.IntegrityError):
            store.record_results(run_id, [result("t2"), unrecordable("t3")])
        store.record_results(run_id, [result("t4")])
    assert [r.task_id for r in store.iter_results(run_id)] == ["t1", "t4"]


def test_threads_can_share_a_store(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")

    def record(thread: int) -> None:
        for i in range(20):
            with store.transaction():
                store.record_results(run_id, [result(f"t{thread}-{i}")])
                store.record_metrics("s", run_id, float(i), {f"m{thread}": float(i)})

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count_results(run_id) == 80
    assert len(store.metrics("s")) == 80


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_round_trip_and_filters(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")
    store.record_metrics("s", run_id, 20.0, {"throughput": 5.0, "p99": None})
    store.record_metrics("s", None, 10.0, {"throughput": 4.0})
    store.record_metrics("other", None, 15.0, {"throughput": 1.0})
    assert store.metrics("s") == [
        MetricRow("s", None, 10.0, "throughput", 4.0),
        MetricRow("s", run_id, 20.0, "throughput", 5.0),
        MetricRow("s", run_id, 20.0, "p99", None),
    ]
    assert [m.value for m in store.metrics("s", "throughput")] == [4.0, 5.0]
    assert [m.name for m in store.metrics("s", since=20.0)] == ["throughput", "p99"]
    assert store.metrics("s", "p99", since=20.5) == []
    assert store.metrics("nobody") == []


# -- benchmarks ------------------------------------------------------------------------------


def test_benchmarks_round_trip_newest_first(store: Store) -> None:
    first = store.record_benchmark("steady", {"throughput": 100.0, "seeds": [1, 2]})
    second = store.record_benchmark("burst", {"p99": 0.25}, swarm_id="s")
    third = store.record_benchmark("steady", {"throughput": 110.0})
    assert store.benchmarks() == [
        BenchmarkRecord(third, "steady", 1_003.0, None, {"throughput": 110.0}),
        BenchmarkRecord(second, "burst", 1_002.0, "s", {"p99": 0.25}),
        BenchmarkRecord(first, "steady", 1_001.0, None, {"throughput": 100.0, "seeds": [1, 2]}),
    ]
    assert [b.id for b in store.benchmarks("steady")] == [third, first]
    assert [b.id for b in store.benchmarks(limit=1)] == [third]
    assert store.benchmarks("none") == []


# -- decisions -------------------------------------------------------------------------------


def test_decisions_round_trip_in_order(store: Store) -> None:
    scale = store.record_decision(
        "s", "scale", {"agents": 4, "evidence": {"p99": 1.2}}, "p99 above the SLA"
    )
    tune = store.record_decision("s", "tune", {"strategy": "least-loaded"}, "less variance")
    store.record_decision("other", "scale", {"agents": 1}, "idle")
    assert store.decisions("s") == [
        DecisionRecord(
            scale,
            "s",
            1_001.0,
            "scale",
            {"agents": 4, "evidence": {"p99": 1.2}},
            "p99 above the SLA",
        ),
        DecisionRecord(tune, "s", 1_002.0, "tune", {"strategy": "least-loaded"}, "less variance"),
    ]
    assert [d.id for d in store.decisions("s", kind="tune")] == [tune]
    assert store.decisions("nobody") == []


# -- events ----------------------------------------------------------------------------------


def test_events_round_trip_ordered_by_time(store: Store) -> None:
    run_id = store.start_run("s", {}, "local", "round-robin")
    late = store.record_event("s", run_id, 30.0, "breaker-open", "a1", {"failures": 5})
    early = store.record_event("s", None, 10.0, "agent-lost", "a2", {"reason": "killed"})
    store.record_event("other", None, 20.0, "breaker-open", "a1", {})
    assert store.events("s") == [
        EventRecord(early, "s", None, 10.0, "agent-lost", "a2", {"reason": "killed"}),
        EventRecord(late, "s", run_id, 30.0, "breaker-open", "a1", {"failures": 5}),
    ]
    assert [e.id for e in store.events("s", kind="breaker-open")] == [late]
    assert [e.id for e in store.events("s", since=10.5)] == [late]
    assert store.events("s", kind="agent-lost", since=10.5) == []


def test_event_of_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.record_event("s", 99, 1.0, "breaker-open", "a1", {})
    assert store.events("s") == []
