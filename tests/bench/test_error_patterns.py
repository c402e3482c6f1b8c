"""Error analysis: message templates, grouping, counts, times and trends."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.error_patterns import (
    analyse_records,
    analyse_results,
    normalise,
    split_error,
)
from swarmperf.bench.results import ErrorRecord
from swarmperf.core.model import TaskResult, TaskStatus


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("task t17 timed out after 2.5 s", "task <id> timed out after <num> s"),
        ("agent 'worker-3' refused task t9", "agent <str> refused task <id>"),
        (
            "lease 123e4567-e89b-12d3-a456-426614174000 expired",
            "lease <uuid> expired",
        ),
        ("object at 0x7f3a2c1b0d90 is closed", "object at <hex> is closed"),
        ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
        ("cannot open /var/lib/swarm/run-12.db", "cannot open <path>"),
        ('key "abc" not found in 3 shards', "key <str> not found in <num> shards"),
        ("HTTP 503 from upstream", "HTTP <num> from upstream"),
        ("  spaced   out  ", "spaced out"),
    ],
)
def test_templates_hide_the_variable_parts(message: str, template: str) -> None:
    assert normalise(message) == template


def test_a_task_error_splits_into_type_and_message() -> None:
    assert split_error("TimeoutError: took 3 s") == ("TimeoutError", "took 3 s")
    assert split_error("swarmperf.core.errors.TaskLost: gone") == (
        "swarmperf.core.errors.TaskLost",
        "gone",
    )
    assert split_error("Task 't1' rejected: queue full") == (
        "error",
        "Task 't1' rejected: queue full",
    )


@settings(max_examples=300, deadline=None)
@given(
    task=st.integers(min_value=0, max_value=10**9),
    seconds=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    agent=st.text(alphabet="abcdefghij-_0123456789", min_size=1, max_size=12),
)
def test_messages_that_differ_only_in_values_share_a_template(
    task: int, seconds: float, agent: str
) -> None:
    message = f"task t{task} on agent '{agent}' timed out after {seconds} s"
    assert normalise(message) == "task <id> on agent <str> timed out after <num> s"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_normalising_twice_changes_nothing(message: str) -> None:
    once = normalise(message)
    assert normalise(once) == once


def test_records_are_grouped_by_type_and_template_with_counts_and_times() -> None:
    records = [
        (
            "load",
            ErrorRecord(
                type="TimeoutError",
                message="task t1 timed out",
                count=3,
                first_seen=10.0,
                last_seen=20.0,
            ),
        ),
        (
            "spike",
            ErrorRecord(
                type="TimeoutError",
                message="task t2 timed out",
                count=5,
                first_seen=5.0,
                last_seen=15.0,
            ),
        ),
        (
            "load",
            ErrorRecord(
                type="ValueError",
                message="task t3 timed out",
                count=1,
                first_seen=1.0,
                last_seen=1.0,
            ),
        ),
    ]
    analysis = analyse_records(records)
    assert analysis.failures == 9
    assert analysis.tasks is None
    top, other = analysis.patterns
    assert (top.type, top.template, top.count) == ("TimeoutError", "task <id> timed out", 8)
    assert (top.first_seen, top.last_seen) == (5.0, 20.0)
    assert top.share == pytest.approx(8 / 9)
    assert top.scenarios == ("load", "spike")
    assert top.examples == ("task t1 timed out", "task t2 timed out")
    assert top.trend is None
    assert "first and last seen" in (top.trend_reason or "")
    assert (other.type, other.count) == ("ValueError", 1)


def _results(fail_probability: list[float], per_bucket: int, seed: int) -> list[TaskResult]:
    rng = random.Random(seed)
    results = []
    for bucket, p in enumerate(fail_probability):
        for i in range(per_bucket):
            t = bucket * 10.0 + i * 10.0 / per_bucket
            failed = rng.random() < p
            results.append(
                TaskResult(
                    task_id=f"t{bucket}-{i}",
                    status=TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED,
                    agent="a1",
                    attempts=1,
                    queued_at=t,
                    started_at=t,
                    finished_at=t + 0.001,
                    error=f"TimeoutError: task t{bucket}{i} took {i}.5 s" if failed else None,
                    kind="sleep",
                )
            )
    return results


def test_a_rising_failure_share_is_an_increasing_trend() -> None:
    analysis = analyse_results(_results([0.02 * b for b in range(10)], 100, seed=1))
    (pattern,) = analysis.patterns
    assert pattern.template == "task <id> took <num> s"
    assert pattern.trend is not None
    assert pattern.trend.direction == "increasing"
    assert pattern.trend.p_value is not None
    assert pattern.trend.p_value < 0.05
    assert analysis.tasks == 1000
    assert analysis.error_rate == pytest.approx(analysis.failures / 1000)


def test_a_falling_failure_share_is_a_decreasing_trend() -> None:
    analysis = analyse_results(_results([0.2 - 0.02 * b for b in range(10)], 100, seed=2))
    assert analysis.patterns[0].trend is not None
    assert analysis.patterns[0].trend.direction == "decreasing"


@pytest.mark.parametrize("seed", range(5))
def test_a_steady_failure_share_shows_no_trend(seed: int) -> None:
    analysis = analyse_results(_results([0.1] * 10, 100, seed=seed))
    trend = analysis.patterns[0].trend
    assert trend is not None
    assert trend.direction == "none"


def test_few_failures_get_no_trend_and_say_why() -> None:
    results = _results([0.0] * 9 + [0.03], 100, seed=3)
    analysis = analyse_results(results)
    (pattern,) = analysis.patterns
    assert pattern.trend is None
    assert "a trend needs at least 8" in (pattern.trend_reason or "")


def test_no_results_and_no_failures() -> None:
    assert analyse_results([]).patterns == ()
    assert analyse_results([]).notes == ("the run has no task results",)
    clean = analyse_results(_results([0.0] * 4, 10, seed=0))
    assert clean.failures == 0
    assert clean.error_rate == 0.0
