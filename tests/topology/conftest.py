"""The compiled kernels are compiled (or loaded from their cache) once, before any test:
a first compile takes seconds, which no test's deadline or time limit should pay."""

from __future__ import annotations

import pytest

from swarmperf.topology import _kernels


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels() -> None:
    _kernels.warm_up()
