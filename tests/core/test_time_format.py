"""UNIX times and ages as people read them, and counts with nouns that agree."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from swarmperf.core.durations import format_ago, format_timestamp, plural


def test_a_timestamp_reads_as_local_iso_8601_with_its_offset() -> None:
    ts = 1_767_225_603.7
    shown = format_timestamp(ts)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", shown)
    assert dt.datetime.fromisoformat(shown).timestamp() == int(ts)


def test_a_timestamp_with_now_says_how_long_ago() -> None:
    assert format_timestamp(1_000_000.0, now=1_000_125.0).endswith(" (2 min ago)")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "just now"),
        (42.9, "42 s ago"),
        (60, "1 min ago"),
        (7_300, "2 h ago"),
        (86_400, "1 day ago"),
        (5 * 86_400 + 10, "5 days ago"),
        (-3, "in the future"),
    ],
)
def test_ages(seconds: float, text: str) -> None:
    assert format_ago(seconds) == text


def test_plurals_agree_with_their_count() -> None:
    assert plural(1, "pattern") == "1 pattern"
    assert plural(151, "failure") == "151 failures"
    assert plural(0, "pattern") == "0 patterns"
    assert plural(2, "agency", "agencies") == "2 agencies"
    assert plural(1_234, "row") == "1,234 rows"
