"""Connecting to Ray: a Ray Client head that failed to start this client's server, or whose
server died as it started, is asked again, and every other failure is reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from swarmperf.runtime.ray_backend import (
    CLIENT_SERVER_DIED,
    CLIENT_SERVER_FAILED,
    CLIENT_START_ATTEMPTS,
    _init,
)


class Head:
    """Stands in for `ray`: `init` raises the given errors in turn, then connects."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def init(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr("swarmperf.runtime.ray_backend.time.sleep", waited.append)
    return waited


def failed_start() -> ConnectionAbortedError:
    return ConnectionAbortedError(f"Initialization failure from server: {CLIENT_SERVER_FAILED}.")


def test_a_failed_client_server_start_is_asked_again(no_waiting: list[float]) -> None:
    head = Head(failed_start(), failed_start())
    _init(head, "ray://h:10001", {"namespace": "n"})
    assert len(head.calls) == 3
    assert head.calls[-1] == {"address": "ray://h:10001", "namespace": "n"}
    assert no_waiting == [1.0, 2.0]


def server_died() -> ConnectionAbortedError:
    # What the head sent when the server it started for this client died at once.
    return ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "ray/util/client/server/proxier.py", line 396, in start_specific_server\n'
        "    cmd = psutil_proc.cmdline()\n"
        "psutil.ZombieProcess: PID still exists but it's a zombie (pid=31421)\n"
    )


def test_a_client_server_that_died_as_it_started_is_asked_for_again(
    no_waiting: list[float],
) -> None:
    head = Head(server_died())
    _init(head, "ray://h:10001", {})
    assert len(head.calls) == 2
    assert no_waiting == [1.0]


def test_it_gives_up_after_the_last_attempt() -> None:
    head = Head(*(failed_start() for _ in range(CLIENT_START_ATTEMPTS)))
    with pytest.raises(ConnectionAbortedError, match=CLIENT_SERVER_FAILED):
        _init(head, "ray://h:10001", {})
    assert len(head.calls) == CLIENT_START_ATTEMPTS


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("connection refused"),
        RuntimeError(CLIENT_SERVER_FAILED),
        RuntimeError(CLIENT_SERVER_DIED),
    ],
)
def test_any_other_failure_is_not_retried(error: Exception, no_waiting: list[float]) -> None:
    head = Head(error)
    with pytest.raises(type(error)):
        _init(head, "ray://h:10001", {})
    assert len(head.calls) == 1
    assert no_waiting == []
