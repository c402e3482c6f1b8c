"""Helpers shared by the tests."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """A system part the test needs (a server, a data set, a compiled build) is missing:
    skip, with `reason`. In CI (`CI=true`), where `.ci/run` provides them all, fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
