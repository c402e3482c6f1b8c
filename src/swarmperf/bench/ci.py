"""CI outputs of the checks: JUnit XML, a Markdown step summary, JSON, and the exit code.

Every check (a threshold, a quality criterion, a regression test) is one `Check`, grouped by
scenario. In JUnit each scenario is a `<testsuite>` and each check a `<testcase>`; a missed
check is a `<failure>`, a check without data is a `<failure type="no-data">` too (a gate that
could not look must not look green), and an informational check is `<skipped>`.

Exit codes: 0 every check passed, 1 a check failed or had no data, 2 the tool could not run
(bad input, unreadable file): `EXIT_OK`, `EXIT_FAILED`, `EXIT_TOOL_ERROR`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from swarmperf.core.errors import ConfigError
from swarmperf.core.files import write_atomic

CheckStatus = Literal["pass", "fail", "no data", "skipped"]
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TOOL_ERROR = 2
MARKS: dict[CheckStatus, str] = {
    "pass": "✅",
    "fail": "❌",
    "no data": "⚠️",
    "skipped": "➖",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One named check on one scenario: its status, the key figure, and a one-line message."""

    scenario: str
    name: str
    status: CheckStatus
    message: str
    value: str = ""  # the measured figure, as shown to people
    expected: str = ""  # the limit or the baseline it was held against
    category: str = ""  # e.g. "latency", "regression"

    @property
    def blocking(self) -> bool:
        return self.status in ("fail", "no data")


@dataclass(frozen=True, slots=True)
class CheckReport:
    """All checks of one command run, and anything the tool has to say about the run."""

    title: str
    checks: tuple[Check, ...]
    summary: dict[str, Any] = field(default_factory=dict)  # headline figures, e.g. the score
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not any(c.blocking for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_FAILED

    def scenarios(self) -> list[str]:
        seen: dict[str, None] = {}
        for check in self.checks:
            seen.setdefault(check.scenario, None)
        return list(seen)

    def counts(self) -> dict[CheckStatus, int]:
        counts: dict[CheckStatus, int] = {"pass": 0, "fail": 0, "no data": 0, "skipped": 0}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "summary": self.summary,
            "notes": list(self.notes),
            "checks": [
                {
                    "scenario": c.scenario,
                    "name": c.name,
                    "category": c.category,
                    "status": c.status,
                    "value": c.value,
                    "expected": c.expected,
                    "message": c.message,
                }
                for c in self.checks
            ],
        }


def to_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=1)


def to_junit(report: CheckReport) -> str:
    """JUnit XML: `<testsuites>` of one `<testsuite>` per scenario."""
    root = ET.Element("testsuites", name=_xml(report.title))
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for scenario in report.scenarios():
        checks = [c for c in report.checks if c.scenario == scenario]
        failures = sum(c.blocking for c in checks)
        skipped = sum(c.status == "skipped" for c in checks)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml(scenario),
            tests=str(len(checks)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
        )
        totals["tests"] += len(checks)
        totals["failures"] += failures
        totals["skipped"] += skipped
        for check in checks:
            _testcase(suite, scenario, check)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ET.Element, scenario: str, check: Check) -> None:
    classname = _xml(f"swarmperf.{check.category or 'check'}.{scenario}")
    case = ET.SubElement(suite, "testcase", name=_xml(check.name), classname=classname)
    message = _xml(check.message)
    if check.status == "fail":
        failure = ET.SubElement(case, "failure", message=message, type="threshold")
        failure.text = _detail(check)
    elif check.status == "no data":
        failure = ET.SubElement(case, "failure", message=message, type="no-data")
        failure.text = _detail(check)
    elif check.status == "skipped":
        ET.SubElement(case, "skipped", message=message)
    out = ET.SubElement(case, "system-out")
    out.text = _detail(check)


def _detail(check: Check) -> str:
    parts = [check.message]
    if check.value:
        parts.append(f"measured: {check.value}")
    if check.expected:
        parts.append(f"expected: {check.expected}")
    return _xml("\n".join(parts))


# Characters XML 1.0 cannot hold at all, even escaped: a CI server would reject the file.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def to_markdown(report: CheckReport) -> str:
    """A GitHub Actions step summary: a verdict line, headline figures, a table per scenario."""
    counts = report.counts()
    verdict = "✅ passed" if report.passed else "❌ failed"
    lines = [f"## {report.title}: {verdict}", ""]
    tally = ", ".join(f"{MARKS[s]} {n} {s}" for s, n in counts.items() if n)
    lines += [tally or "no checks", ""]
    if report.summary:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | {_cell(_shown(v))} |" for k, v in report.summary.items()]
        lines.append("")
    for scenario in report.scenarios():
        lines += [f"### {_cell(scenario)}", ""]
        lines += ["| | check | measured | expected | detail |", "| --- | --- | --- | --- | --- |"]
        for c in (c for c in report.checks if c.scenario == scenario):
            row = (MARKS[c.status], c.name, c.value, c.expected, c.message)
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
        lines.append("")
    if report.notes:
        lines += ["**Notes**", ""] + [f"- {note}" for note in report.notes] + [""]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: str) -> str:
    # A pipe would end the cell and a newline the row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_text(path: Path, text: str) -> None:
    """Write atomically, so a CI step never reads half a file."""
    write_atomic(path, text)


def write_outputs(
    report: CheckReport, *, junit: Path | None = None, markdown: Path | None = None
) -> list[Path]:
    """Write the asked-for files; return their paths."""
    written: list[Path] = []
    outputs = (("--junit", junit, to_junit), ("--markdown", markdown, to_markdown))
    for option, path, render in outputs:
        if path is None:
            continue
        try:
            write_text(path, render(report))
        except OSError as exc:
            # A report that cannot be written is a tool error, not a failed check.
            fix = f"It cannot be written ({exc.strerror or exc}). Give a writable path."
            raise ConfigError(option, str(path), fix) from None
        written.append(path)
    return written


def merge(title: str, reports: Iterable[CheckReport]) -> CheckReport:
    """One report of several, e.g. quality and regression checks in one CI step."""
    reports = list(reports)
    checks: Sequence[Check] = [c for r in reports for c in r.checks]
    summary = {f"{r.title}: {k}": v for r in reports for k, v in r.summary.items()}
    notes = tuple(n for r in reports for n in r.notes)
    return CheckReport(title, tuple(checks), summary, notes)
