"""The profile request both clients send: checked before it leaves, waited for past its window."""

from __future__ import annotations

import json
import math

import pytest

from swarmperf.client._profile import PROFILE_GRACE_S, profile_call
from swarmperf.core.errors import ConfigError


def test_the_request_carries_the_window_and_waits_past_it() -> None:
    call = profile_call(12.5, 50, "agents", True, awaiting=False)
    assert (call.method, call.path) == ("POST", "/v1/profile")
    assert call.body is not None
    assert json.loads(call.body) == {
        "duration_s": 12.5,
        "rate_hz": 50.0,
        "components": "agents",
        "memory": True,
        "awaiting": False,
    }
    assert call.read_timeout == 12.5 + PROFILE_GRACE_S
    assert not call.idempotent  # a lost reply is not sent again: the window would be twice


@pytest.mark.parametrize(
    ("duration", "rate", "field"),
    [(0, 100, "duration_s"), (-1, 100, "duration_s"), (math.inf, 100, "duration_s"),
     (True, 100, "duration_s"), (10, 0, "rate_hz"), (10, math.nan, "rate_hz")],
)  # fmt: skip
def test_bad_windows_are_refused_before_sending(duration: float, rate: float, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        profile_call(duration, rate, "all", False)
    assert caught.value.field == field
