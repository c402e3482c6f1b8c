"""The profile request both clients send: its body checked here, its read timeout the window's."""

from __future__ import annotations

import math
from typing import Any

from swarmperf.client._protocol import Call, as_dict, encode
from swarmperf.core.errors import ConfigError

# Beyond the window: the service folds the samples (and waits for py-spy) before replying.
PROFILE_GRACE_S = 60.0


def profile_call(
    duration_s: float, rate_hz: float, components: str, memory: bool, awaiting: bool = True
) -> Call[dict[str, Any]]:
    for name, value in (("duration_s", duration_s), ("rate_hz", rate_hz)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(name, value, "Give a number > 0.")
        if not math.isfinite(value):
            raise ConfigError(name, value, "Give a finite number.")
    body = {
        "duration_s": float(duration_s),
        "rate_hz": float(rate_hz),
        "components": components,
        "memory": bool(memory),
        "awaiting": bool(awaiting),
    }
    return Call(
        "POST", "/v1/profile", as_dict, encode(body), read_timeout=duration_s + PROFILE_GRACE_S
    )
