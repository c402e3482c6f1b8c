"""CI outputs: JUnit XML parsed back, Markdown tables read back, JSON, exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from swarmperf.bench.ci import (
    EXIT_FAILED,
    EXIT_OK,
    Check,
    CheckReport,
    merge,
    to_json,
    to_junit,
    to_markdown,
    write_outputs,
)

CHECKS = (
    Check("load", "latency: p(99)<=1000ms", "pass", "p99 180 ms", "180 ms", "p(99)<=1000ms"),
    Check("load", "reliability: rate<=0.1%", "fail", "rate 2% misses rate<=0.1% | x", "2%", "0.1%"),
    Check("spike", "throughput: throughput>=100/s", "no data", "no throughput", "", ">=100/s"),
    Check("spike", "new_metric", "skipped", "nothing to compare it with"),
)


def _report(checks: tuple[Check, ...] = CHECKS) -> CheckReport:
    return CheckReport("Quality of suite quick", checks, {"score (0-100)": 61.5}, ("a note",))


def test_junit_has_one_testsuite_per_scenario_and_one_testcase_per_check() -> None:
    root = ET.fromstring(to_junit(_report()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "2", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["load", "spike"]
    load, spike = suites
    assert (load.get("tests"), load.get("failures"), load.get("skipped")) == ("2", "1", "0")
    passed, failed = load.findall("testcase")
    assert passed.get("name") == "latency: p(99)<=1000ms"
    assert passed.find("failure") is None
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "rate 2% misses rate<=0.1% | x"
    assert "measured: 2%" in (failure.text or "")
    no_data, skipped = spike.findall("testcase")
    no_data_failure = no_data.find("failure")
    assert no_data_failure is not None
    assert no_data_failure.get("type") == "no-data"
    skip = skipped.find("skipped")
    assert skip is not None
    assert skip.get("message") == "nothing to compare it with"


def _tables(markdown: str) -> dict[str, list[list[str]]]:
    """Each `### heading`'s table rows (header and separator left out), split into cells."""
    tables: dict[str, list[list[str]]] = {}
    heading = None
    for line in markdown.splitlines():
        if line.startswith("### "):
            heading = line[4:]
            tables[heading] = []
        elif heading and line.startswith("|") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").replace("\\|", "\x00").split("|")]
            tables[heading].append([c.replace("\x00", "|") for c in cells])
    return {h: rows[1:] for h, rows in tables.items()}


def test_markdown_has_a_verdict_and_one_table_per_scenario() -> None:
    markdown = to_markdown(_report())
    assert markdown.startswith("## Quality of suite quick: ❌ failed")
    assert "✅ 1 pass, ❌ 1 fail, ⚠️ 1 no data, ➖ 1 skipped" in markdown
    assert "| score (0-100) | 61.5 |" in markdown
    tables = _tables(markdown)
    assert list(tables) == ["load", "spike"]
    assert tables["load"] == [
        ["✅", "latency: p(99)<=1000ms", "180 ms", "p(99)<=1000ms", "p99 180 ms"],
        ["❌", "reliability: rate<=0.1%", "2%", "0.1%", "rate 2% misses rate<=0.1% | x"],
    ]
    assert [row[0] for row in tables["spike"]] == ["⚠️", "➖"]
    assert "- a note" in markdown


def test_exit_codes_and_json() -> None:
    assert _report().exit_code == EXIT_FAILED
    only_passes = _report((CHECKS[0], CHECKS[3]))
    assert only_passes.passed
    assert only_passes.exit_code == EXIT_OK
    assert _report((CHECKS[2],)).exit_code == EXIT_FAILED  # no data is not a pass
    data = json.loads(to_json(_report()))
    assert data["passed"] is False
    assert data["exit_code"] == 1
    assert data["counts"] == {"pass": 1, "fail": 1, "no data": 1, "skipped": 1}
    assert data["checks"][1]["status"] == "fail"


def test_outputs_are_written_where_asked(tmp_path: Path) -> None:
    junit, markdown = tmp_path / "ci" / "junit.xml", tmp_path / "summary.md"
    written = write_outputs(_report(), junit=junit, markdown=markdown)
    assert written == [junit, markdown]
    assert ET.parse(junit).getroot().tag == "testsuites"
    assert markdown.read_text(encoding="utf-8").startswith("## ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ci", "junit.xml", "summary.md"]


def test_merge_keeps_every_check_and_prefixes_the_figures() -> None:
    merged = merge("CI", [_report(), CheckReport("Gate", (CHECKS[0],), {"regressions": 0})])
    assert len(merged.checks) == 5
    assert merged.summary == {
        "Quality of suite quick: score (0-100)": 61.5,
        "Gate: regressions": 0,
    }


_text = st.text(max_size=20)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            Check,
            scenario=_text,
            name=_text,
            status=st.sampled_from(["pass", "fail", "no data", "skipped"]),
            message=_text,
            value=_text,
        ),
        max_size=8,
    )
)
def test_any_checks_give_junit_that_parses_and_counts_right(checks: list[Check]) -> None:
    report = CheckReport("t", tuple(checks))
    root = ET.fromstring(to_junit(report))
    assert int(root.get("tests") or 0) == len(checks)
    assert int(root.get("failures") or 0) == sum(c.blocking for c in checks)
    assert len(root.findall("testsuite/testcase")) == len(checks)
