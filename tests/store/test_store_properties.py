"""Properties of the store that hold for any input Hypothesis can think of."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.core.model import TaskResult, TaskStatus
from swarmperf.store import Store

# NaN is left out: SQLite stores it as NULL. Infinities survive.
times = st.floats(allow_nan=False)
maybe_times = st.none() | times
texts = st.text(max_size=12)

task_results = st.builds(
    TaskResult,
    task_id=texts,
    status=st.sampled_from(TaskStatus),
    agent=st.none() | texts,
    attempts=st.integers(min_value=0, max_value=2**63 - 1),
    queued_at=times,
    started_at=maybe_times,
    finished_at=maybe_times,
    error=st.none() | texts,
    value=st.none() | st.integers(),
    kind=texts,
    tenant=texts,
    cost=maybe_times,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # One store for all examples: each example writes to a run of its own.
    with Store.open(tmp_path_factory.mktemp("store") / "swarmperf.db") as opened:
        yield opened


def stored_fields(r: TaskResult) -> tuple[object, ...]:
    return tuple(getattr(r, f.name) for f in fields(TaskResult) if f.name != "value")


@settings(max_examples=60, deadline=None)
@given(results=st.lists(task_results, max_size=25))
def test_any_results_round_trip(store: Store, results: list[TaskResult]) -> None:
    run_id = store.start_run("prop", {}, "local", "round-robin")
    store.record_results(run_id, results)
    loaded = list(store.iter_results(run_id))
    assert [stored_fields(r) for r in loaded] == [stored_fields(r) for r in results]
    assert all(type(r.status) is TaskStatus and r.value is None for r in loaded)
    assert store.count_results(run_id) == len(results)
