"""Fixtures for the runtime tests: one local Ray for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import unavailable

_RAY_ENV = {"RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """A local Ray with 2 CPUs, started once (it takes seconds) and shut down at the end."""
    try:
        import ray
    except ImportError:
        unavailable("Ray is not installed: pip install 'swarmperf[ray]'")
    saved = {name: os.environ.get(name) for name in _RAY_ENV}
    os.environ.update(_RAY_ENV)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
