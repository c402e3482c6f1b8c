"""Error analysis: message templates, grouping, counts, times and trends."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from swarmperf.bench.error_patterns import (
    Slices,
    analyse_records,
    analyse_results,
    normalise,
    split_error,
)
from swarmperf.bench.results import ErrorRecord, load_result, save_result
from swarmperf.bench.scenarios import parse_suite
from swarmperf.bench.suite import make_target_factory, run_suite
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
@example("0A0")
@example("timed out after 2.5s on 3aa3")
def test_normalising_twice_changes_nothing(message: str) -> None:
    once = normalise(message)
    assert normalise(once) == once


# Digits, letters and the separators error messages are made of: where templates go wrong.
_MESSAGE_PARTS = st.sampled_from([*"0123456789aAeEfFxz_-+.:/\\'\" ", "<num>", "<id>", "0x"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_MESSAGE_PARTS, max_size=20).map("".join))
def test_a_template_is_its_own_template(message: str) -> None:
    once = normalise(message)
    assert normalise(once) == once


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("timed out after 2.5s", "timed out after <num>s"),
        ("waited 100ms", "waited <num>ms"),
        ("0A0", "0A0"),  # one word, neither a number nor an id
        ("build 3aa3 failed", "build 3aa3 failed"),
    ],
)
def test_a_number_keeps_its_unit_but_never_splits_a_word(message: str, template: str) -> None:
    assert normalise(message) == template


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
    assert top.trend is None  # these records carry no counts over time
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


def _record(message: str, counts: list[int], tasks: list[int]) -> ErrorRecord:
    return ErrorRecord(
        type="TimeoutError",
        message=message,
        count=sum(counts),
        first_seen=0.0,
        last_seen=1.0,
        counts_by_slice=counts,
        tasks_by_slice=tasks,
    )


def test_records_with_counts_over_time_get_a_trend() -> None:
    tasks = [100] * 10
    rising = _record("task t1 timed out", list(range(10)), tasks)
    analysis = analyse_records([("load", rising)])
    (pattern,) = analysis.patterns
    assert pattern.trend is not None
    assert pattern.trend.direction == "increasing"
    assert pattern.trend_reason is None


def test_records_of_one_scenario_share_its_tasks_and_scenarios_add_up() -> None:
    # Two messages, one template, one scenario: 5 + 5 failures of the same 100 tasks per
    # slice, so the share is 10% throughout, not 5% of 200.
    tasks = [100] * 10
    a = _record("task t1 timed out", [5] * 10, tasks)
    b = _record("task t2 timed out", [5] * 10, tasks)
    steady = analyse_records([("load", a), ("load", b)]).patterns[0]
    assert steady.trend is not None
    assert steady.trend.direction == "none"
    # The same shape in another scenario, falling: 10%, 9%, ... over the same slices of each.
    falling = _record("task t3 timed out", [10 - b for b in range(10)], tasks)
    merged = analyse_records([("load", a), ("load", b), ("spike", falling)]).patterns[0]
    assert merged.count == 100 + 55
    assert merged.trend is not None
    assert merged.trend.direction == "decreasing"


def test_a_record_without_counts_over_time_leaves_its_pattern_without_a_trend() -> None:
    tasks = [100] * 10
    old = ErrorRecord(
        type="TimeoutError", message="task t9 timed out", count=50, first_seen=0, last_seen=1
    )
    analysis = analyse_records(
        [("load", _record("task t1 timed out", [5] * 10, tasks)), ("load", old)]
    )
    (pattern,) = analysis.patterns
    assert pattern.trend is None
    assert "no counts over time" in (pattern.trend_reason or "")


def test_slices_count_tasks_and_times_over_equal_slices_of_the_span() -> None:
    slices = Slices.of([0.0, 1.0, 2.5, 9.99, 10.0], buckets=5)
    assert slices is not None
    assert slices.edges == (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    assert slices.tasks == (2, 1, 0, 0, 2)
    assert slices.count([0.5, 10.0, 11.0]) == [1, 0, 0, 0, 1]
    assert Slices.of([]) is None
    assert Slices.of([3.0, 3.0]) is None


_calls = itertools.count()


def fails_more_and_more() -> None:
    """A load-test target that fails a growing share of its calls: none at first, then up
    to about half (a seeded draw per call, so the run does not depend on the clock)."""
    n = next(_calls)
    if random.Random(n).random() < n / 800:
        raise TimeoutError(f"call {n} took too long")


def test_error_analysis_of_a_results_file_finds_a_rising_error(tmp_path: Path) -> None:
    global _calls
    _calls = itertools.count()
    suite = parse_suite(
        {
            "suite": "t",
            "defaults": {"duration": "1s", "iterations": 1, "warmup": "0s", "cooldown": "0s"},
            "scenarios": [{"name": "steady", "kind": "load", "rate": "400/s"}],
        }
    )
    make, description = make_target_factory(f"{__name__}:fails_more_and_more")
    path = tmp_path / "results.json"
    save_result(asyncio.run(run_suite(suite, make, target_description=description)), path)
    result = load_result(path)
    analysis = analyse_records((s.name, e) for s in result.scenarios for e in s.errors)
    (pattern,) = analysis.patterns
    assert pattern.template == "call <num> took too long"
    assert pattern.count > 50
    assert pattern.trend is not None, pattern.trend_reason
    assert pattern.trend.direction == "increasing"
