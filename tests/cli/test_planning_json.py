"""The planning commands print under `-o json` exactly what they printed before their payloads
moved to `queries/` (the MCP tools share them): byte for byte, measured times aside."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from tests.inputs import write_corpus, write_trace

GOLDEN = Path(__file__).resolve().parent / "golden"
runner = CliRunner()


def _timed(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its wall-clock figures (which vary from run to run) as null."""
    if "wall_seconds" in data:
        data["wall_seconds"] = dict.fromkeys(data["wall_seconds"])
    for solution in data.get("solutions", {}).values():
        solution["seconds"] = solution["seconds_to_best"] = None
    return data


ARGS: dict[str, Callable[[Path], list[str]]] = {
    "workload-analyze": lambda tmp: ["workload-analyze", str(write_trace(tmp))],
    "autoscale-eval": lambda tmp: [
        "autoscale-eval", str(write_trace(tmp, rows=24 * 5)), "--peak-agents", "5",
    ],
    "placement-eval": lambda tmp: [
        "placement-eval", "--corpus", str(write_corpus(tmp / "qap")),
        "--iterations", "300", "--seed", "4",
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(ARGS))
def test_json_is_unchanged(command: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*ARGS[command](tmp_path), "-o", "json"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    data = json.loads(line)
    assert json.dumps(data) == line  # one object, as json.dumps writes it
    got = json.dumps(_timed(data))
    golden = GOLDEN / f"{command}.json"
    if os.environ.get("SWARMPERF_UPDATE_GOLDEN") == "1":
        golden.write_text(got + "\n")
    assert got == golden.read_text().rstrip("\n")
