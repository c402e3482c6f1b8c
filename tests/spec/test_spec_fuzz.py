"""Fuzzed specs: `validate` and `run` answer every mutation of a good spec with exit code 0 or 2
and a short message: never a traceback, a hang or a blown memory budget."""

from __future__ import annotations

import copy
import resource
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from swarmperf.cli.main import app
from swarmperf.spec import DEMO_SPEC_YAML

runner = CliRunner(env={"COLUMNS": "200"})
MAX_OUTPUT = 20_000  # characters: a message, not a dump of what was read

DEMO: dict[str, Any] = yaml.safe_load(DEMO_SPEC_YAML)
# Small enough to run in a fraction of a second, whatever a mutation leaves of it.
TINY: dict[str, Any] = {
    "swarm_id": "fuzz",
    "seed": 1,
    "duration": "5s",
    "agents": [{"id": "a", "count": 2, "concurrency": 2}, {"id": "b"}],
    "queue": {"max_queued": 1000, "max_wait": "1s"},
    "workload": {"tasks": 20, "kind": "noop", "size": "1ms", "failure_rate": 0.1},
    "monitor": {"enabled": False},
}

# Drawn values are copied before use: some are containers that a later mutation may fill,
# and sampled_from hands out the same object every time (data generation must not change).
HOSTILE_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        -1,
        0,
        -(10**9),
        10**7,
        10**9,
        10**18,
        10**100,
        1e308,
        -1e-308,
        float("nan"),
        float("inf"),
        None,
        True,
        "",
        "x" * 100_000,
        "10000000000000000000000000000s",
        "-5s",
        "1e999/s",
        [],
        {},
        [[[[[[[[]]]]]]]],
        {"a": {"b": {"c": None}}},
        "nosuch",
    ]
)

# Plausible values, so that some mutated specs stay valid and get as far as running.
BENIGN_VALUES = st.sampled_from([1, 2, 3, 0.5, "1ms", "2s", "10/s", "b1", "sleep", False])

# Text appended to a dumped spec: YAML that is hostile in itself.
_BOMB = "\n".join(
    ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
)
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        _BOMB,
        "deep: " + "[" * 63 + "]" * 63,
        "deep: " + "[" * 65 + "]" * 65,
        "deep: " + "[" * 5000 + "]" * 5000,
        "deep: " + "{a: " * 3000 + "1" + "}" * 3000,
        "loop: &loop [*loop]",
        "obj: !!python/object/apply:os.system ['true']",
        "seed: " + "9" * 5000,
        "agents: [{id: z}]",  # the key a second time
        "\tbad: indentation",
        "big: " + "y" * (1 << 20),
        "alias: *undefined",
        "--- \nsecond: document",
    ]
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """YAML text: `base` with a few of its values replaced, keys deleted or added, values
    nested deep, and hostile YAML appended."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = data
        key: Any = None
        node: Any = data
        # Walk down to a random node, remembering where it hangs.
        while isinstance(node, dict | list) and node and (key is None or draw(st.booleans())):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, draw(st.sampled_from(keys))
            node = parent[key]
        op = draw(st.sampled_from(["replace", "benign", "delete", "add", "nest", "text"]))
        if key is None or op == "add":
            if isinstance(node, dict):
                added = draw(st.sampled_from(["unknown", "x" * 5000, "count", "tasks"]))
                node[added] = copy.deepcopy(draw(HOSTILE_VALUES))
            continue
        if op == "replace":
            parent[key] = copy.deepcopy(draw(HOSTILE_VALUES))
        elif op == "benign":
            parent[key] = draw(BENIGN_VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "nest":
            for _ in range(draw(st.sampled_from([2, 30, 70]))):
                node = [node]
            parent[key] = node
        else:
            parent[key] = draw(st.text(max_size=50))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    # Half the time the text is left alone, so that more of the examples get to run.
    return text + draw(st.one_of(st.just(""), HOSTILE_TEXT)) + "\n"


def _check(exit_code: int, output: str, exception: BaseException | None) -> None:
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert exit_code in (0, 2), output[-2000:]
    assert "Traceback" not in output
    assert len(output) < MAX_OUTPUT
    if exit_code == 2:
        assert "error:" in output


@pytest.mark.slow
@settings(
    max_examples=250,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=st.one_of(mutated(DEMO), mutated(TINY)))
def test_validate_answers_every_mutation_with_0_or_2(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["validate", str(path)])
    event(f"validate exit {result.exit_code}")
    _check(result.exit_code, result.output, result.exception)


@pytest.mark.slow
@settings(
    max_examples=80,
    deadline=timedelta(seconds=60),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=mutated(TINY))
def test_run_answers_every_mutation_without_a_traceback(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["run", str(path), "--no-store", "--output", "json"])
    event(f"run exit {result.exit_code}")
    # `run` may also end with 1 on purpose (a run that could not record its results).
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in (0, 1, 2), result.output[-2000:]
    assert "Traceback" not in result.output
    assert len(result.output) < MAX_OUTPUT


def _limited() -> None:
    # 2 GiB of address space and 60 s of CPU: far below what a refused spec would take.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=mutated(TINY), command=st.sampled_from(["validate", "run"]))
def test_a_real_process_answers_within_memory_and_time(text: str, command: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        args = [str(path), "--no-store"] if command == "run" else [str(path)]
        done = subprocess.run(
            [sys.executable, "-m", "swarmperf", command, *args],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_limited,
            check=False,
        )
    assert done.returncode in ((0, 1, 2) if command == "run" else (0, 2)), done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr) < MAX_OUTPUT
