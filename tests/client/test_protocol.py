"""The clients' I/O-free parts: Retry-After, backoff, error replies, tasks as sent."""

from __future__ import annotations

import email.utils
import json
import random

import pytest

from swarmperf.client._protocol import (
    MAX_DELAY_S,
    MAX_RETRY_AFTER_S,
    backoff,
    outcome,
    problem,
    retry_after,
    task_data,
)
from swarmperf.core.errors import ConfigError, ServiceError
from swarmperf.core.model import Priority, Task


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(None) is None
    assert retry_after("5") == 5.0
    assert retry_after(" 1.5 ") == 1.5
    assert retry_after("-3") == 0.0
    assert retry_after("soon") is None
    assert retry_after("inf") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 10, usegmt=True)
    assert retry_after(date, now=now) == pytest.approx(10, abs=1)


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after() -> None:
    rng = random.Random(1)
    waits = [backoff(n, None, rng) for n in range(1, 12)]
    assert waits[0] <= 0.1
    assert all(w <= MAX_DELAY_S for w in waits)
    assert waits[-1] >= MAX_DELAY_S / 2
    assert backoff(1, 3.0) == 3.0
    assert backoff(1, 3600.0) == MAX_RETRY_AFTER_S
    assert backoff(10_000, None) <= MAX_DELAY_S  # no overflow however many retries


def _body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_a_problem_naming_a_field_is_a_config_error() -> None:
    error = problem(422, _body(title="bad", field="tasks[2].kind", value="x", fix="Use noop."), "")
    assert isinstance(error, ConfigError)
    assert error.field == "tasks[2].kind"
    assert error.fix == "Use noop."


def test_other_problems_are_service_errors() -> None:
    refused = problem(401, _body(title="whatever", detail="Bearer abc"), "Unauthorized")
    assert isinstance(refused, ServiceError)
    assert refused.status == 401
    assert "abc" not in str(refused)
    failed = problem(500, _body(title="The service failed", detail="KeyError"), "")
    assert isinstance(failed, ServiceError)
    assert not isinstance(failed, ConfigError)
    assert "KeyError" in str(failed)
    gateway = problem(502, b"<html>Bad gateway</html>", "Bad Gateway")
    assert isinstance(gateway, ServiceError)
    assert "Bad Gateway" in str(gateway)
    assert "html" in str(gateway)
    unknown = problem(404, _body(title="Not Found"), "Not Found")  # no field: not a mistake
    assert type(unknown) is ServiceError


def test_a_task_gets_a_key_and_its_priority_by_name() -> None:
    sent = task_data(Task("noop", payload=[1], priority=Priority.HIGH, rank=2), "tasks[0]")
    assert sent["priority"] == "high"
    assert sent["rank"] == 2
    assert sent["payload"] == [1]
    again = task_data({"kind": "noop"}, "task")
    # Fresh, distinct, and in time order (the service's key index grows at its end).
    assert sent["idempotency_key"] != again["idempotency_key"]
    assert sent["idempotency_key"] < again["idempotency_key"]
    assert "cost" not in sent  # None is left to the service's default
    mapped = task_data({"kind": "noop", "priority": Priority.LOW}, "task")
    assert mapped["priority"] == "low"
    assert mapped.get("payload") is None
    kept = task_data({"kind": "noop", "idempotency_key": "mine"}, "task")
    assert kept["idempotency_key"] == "mine"


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"payload": 1}, "tasks[0].kind"),
        ({"kind": ""}, "tasks[0].kind"),
        ({"kind": "noop", "when": 1}, "tasks[0].when"),
        ({"kind": "noop", "payload": float("nan")}, "tasks[0].payload"),
        ({"kind": "noop", "idempotency_key": ""}, "tasks[0].idempotency_key"),
        ("noop", "tasks[0]"),
    ],
)
def test_a_bad_task_names_its_place(task: object, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        task_data(task, "tasks[0]")  # type: ignore[arg-type]
    assert caught.value.field == field


def test_an_outcome_reads_a_task_record_and_a_result() -> None:
    pending = outcome(
        {"id": "t", "idempotency_key": "k", "kind": "noop", "status": "pending", "result": None}
    )
    assert not pending.done
    assert pending.value is None
    record = outcome(
        {
            "id": "t",
            "idempotency_key": "k",
            "kind": "echo",
            "status": "succeeded",
            "result": {
                "status": "succeeded",
                "value": 3,
                "agent": "a",
                "attempts": 1,
                "latency_s": 0.5,
                "cursor": 9,
                "error": None,
            },
        }
    )
    flat = outcome(
        {
            "id": "t",
            "idempotency_key": "k",
            "kind": "echo",
            "status": "succeeded",
            "value": 3,
            "agent": "a",
            "attempts": 1,
            "latency_s": 0.5,
            "cursor": 9,
            "error": None,
        }
    )
    assert record == flat
    assert record.ok
    assert record.cursor == 9
