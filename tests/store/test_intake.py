"""The durable intake: each key accepted once, each task's result recorded once, in order."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store import Store
from swarmperf.store.intake import Intake

TASK = json.dumps({"kind": "noop"})


def result(task_id: str, status: TaskStatus = TaskStatus.SUCCEEDED) -> TaskResult:
    return TaskResult(task_id, status, "a", 1, 0.0, 0.0, 0.1)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 30), max_size=20), max_size=6),
    finish=st.lists(st.integers(0, 200), max_size=60),
)
def test_keys_are_accepted_once_and_results_recorded_once(
    batches: list[list[int]], finish: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "db") as store:
        run = store.start_run("s", {}, "local", "rr")
        intake = Intake(store, "s")
        first_id: dict[str, str] = {}
        made = 0
        for batch in batches:
            rows = []
            for key_number in batch:
                made += 1
                rows.append((f"t{made}", f"k{key_number}", TASK))
            answers = intake.accept(rows, 0.0, run)
            for (task_id, key, _), answer in zip(rows, answers, strict=True):
                expected = first_id.setdefault(key, task_id)
                assert answer.task_id == expected
                assert answer.duplicate == (expected != task_id)
        ids = list(first_id.values())
        done = 1
        recorded: list[str] = []
        for pick in finish:
            if not ids:
                break
            task_id = ids[pick % len(ids)]
            got = intake.record(run, [(result(task_id), "{}")], done, 1.0)
            if task_id in recorded:
                assert got == []  # a second result for a task is not recorded
            else:
                assert [(r.task_id, n) for r, n in got] == [(task_id, done)]
                recorded.append(task_id)
                done += 1
        assert intake.counts() == (len(ids), len(recorded))
        assert intake.last_done() == len(recorded)
        assert [r.task_id for r in intake.results(0, 1000)] == recorded
        unfinished = [t.task_id for t in intake.unfinished()]
        assert unfinished == [i for i in ids if i not in recorded]
        assert store.count_results(run) == len(recorded)


def test_a_batch_with_a_repeated_result_records_the_rest_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        run = store.start_run("s", {}, "local", "rr")
        intake = Intake(store, "s")
        intake.accept([(f"t{i}", f"t{i}", TASK) for i in range(5)], 0.0, run)
        intake.record(run, [(result("t2"), "{}")], 1, 1.0)
        batch = [(result(f"t{i}", TaskStatus.FAILED), "{}") for i in range(5)]
        got = intake.record(run, batch, 2, 2.0)
        assert [(r.task_id, n) for r, n in got] == [("t0", 2), ("t1", 3), ("t3", 4), ("t4", 5)]
        assert intake.get("t2") is not None
        assert intake.get("t2").status == "succeeded"  # type: ignore[union-attr]
        assert store.count_results(run) == 5


def test_swarms_do_not_share_an_intake(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        one, two = Intake(store, "one"), Intake(store, "two")
        assert not one.accept([("a", "k", TASK)], 0.0, None)[0].duplicate
        assert not two.accept([("b", "k", TASK)], 0.0, None)[0].duplicate
        assert one.get("b") is None
        assert [t.task_id for t in two.unfinished()] == ["b"]


def test_pruning_forgets_tasks_recorded_before_the_cutoff_only(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        run = store.start_run("s", {}, "local", "rr")
        intake = Intake(store, "s")
        intake.accept([(f"t{i}", f"k{i}", TASK) for i in range(12)], 0.0, run)
        for i in range(10):  # t10 and t11 never finish
            intake.record(run, [(result(f"t{i}"), "{}")], i + 1, float(i))
        assert intake.prune(4.5, chunk=3) == 5  # t0..t4 finished at 0..4
        assert [r.task_id for r in intake.results(0, 100)] == [f"t{i}" for i in range(5, 10)]
        assert [t.task_id for t in intake.unfinished()] == ["t10", "t11"]
        again = intake.accept([("n0", "k0", TASK), ("n5", "k5", TASK)], 9.0, run)
        assert [(a.task_id, a.duplicate) for a in again] == [("n0", False), ("t5", True)]
        assert intake.prune(4.5) == 0
