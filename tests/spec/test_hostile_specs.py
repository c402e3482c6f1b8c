"""Hostile specs and files: refused with exit code 2 and a bounded message, never a traceback,
a hang, a blown memory budget, or the contents of a file that is not what it was meant to be."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from swarmperf.spec import SpecError, parse_spec_yaml

runner = CliRunner(env={"COLUMNS": "200"})
MINIMAL = "agents: [{id: a}]\n"
SECRET = "s3cr3t-Hunter2-token-9f8e7d"


def validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def _limited() -> None:
    # 2 GiB of address space: plenty for the interpreter and its imports, far below what an
    # expanded alias bomb or a ten-million-agent spec would take.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def validate_in_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    """`swarmperf validate` in its own process, with a memory ceiling and a time limit."""
    return subprocess.run(
        [sys.executable, "-m", "swarmperf", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
        check=False,
    )


def alias_bomb(levels: int = 9) -> str:
    lines = [MINIMAL.strip(), 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# -- YAML bombs and limits ----------------------------------------------------------------


@pytest.mark.slow
def test_an_alias_bomb_is_refused_with_bounded_time_and_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert len(path.read_bytes()) < 600
    done = validate_in_subprocess(path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "alias" in done.stderr
    assert len(done.stderr) < 2000


def test_alias_expansion_is_limited_in_process() -> None:
    with pytest.raises(SpecError, match="alias"):
        parse_spec_yaml(alias_bomb(7), "bomb.yaml")


def test_a_few_aliases_still_work() -> None:
    # Aliases are an ordinary way to share settings between groups.
    text = "agents:\n  - {id: a, tags: &t [gpu, fast]}\n  - {id: b, tags: *t}\n"
    spec = parse_spec_yaml(text, "anchors.yaml")
    assert [sorted(a.tags) for a in spec.agent_specs()] == [["fast", "gpu"]] * 2


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(SpecError, match="itself"):
        parse_spec_yaml(MINIMAL + "workload: &w {size: *w}\n", "loop.yaml")


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_is_refused_with_the_limit(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(MINIMAL + "workload: " + "[" * depth + "]" * depth + "\n")
    code, output = validate(path)
    assert code == 2, output
    assert "Traceback" not in output
    assert "nested" in output
    assert "64" in output


def test_nesting_through_aliases_is_refused() -> None:
    lines = [MINIMAL.strip(), "x0: &a0 " + "[" * 40 + "]" * 40]
    for i in range(1, 40):
        lines.append(f"x{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    with pytest.raises(SpecError, match="nested"):
        parse_spec_yaml("\n".join(lines) + "\n", "deep.yaml")


def test_a_too_large_document_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "# " + "x" * (2 << 20) + "\n")
    code, output = validate(path)
    assert code == 2, output
    assert "1048576 bytes" in output


def test_an_integer_too_long_to_print_is_refused_briefly(tmp_path: Path) -> None:
    path = tmp_path / "digits.yaml"
    path.write_text(MINIMAL + "seed: " + "9" * 5000 + "\n")
    code, output = validate(path)
    assert code == 2, output
    assert "9" * 100 not in output
    assert "seed" in output


# -- counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "limit"),
    [
        ("agents: [{id: a, count: 10000000}]\n", "agents[0].count", "100000"),
        ("agents: [{id: a, count: 60000}, {id: b, count: 60000}]\n", "agents", "100000"),
        ("agents: [{id: a, concurrency: 100000000}]\n", "agents[0].concurrency", "10000"),
        (MINIMAL + "workload: {tasks: 1000000000}\n", "workload.tasks", "10000000"),
        (MINIMAL + "queue: {max_queued: 10000000000}\n", "queue.max_queued", "1000000000"),
        (MINIMAL + "resilience: {retry: {max_attempts: 100000000}}\n", "max_attempts", "100"),
        (MINIMAL + "seed: 100000000000000000000\n", "seed", str(2**63 - 1)),
    ],
)
def test_every_count_has_a_limit_named_in_the_message(
    tmp_path: Path, text: str, field: str, limit: str
) -> None:
    path = tmp_path / "counts.yaml"
    path.write_text(text)
    code, output = validate(path)
    assert code == 2, output
    assert field in output
    assert limit in output


def test_agents_times_concurrency_is_limited() -> None:
    with pytest.raises(SpecError, match="1000000"):
        parse_spec_yaml("agents: [{id: a, count: 1000, concurrency: 5000}]\n", "slots.yaml")


def test_the_readme_scale_is_still_valid() -> None:
    spec = parse_spec_yaml(
        "agents: [{id: a, count: 10000}]\nbackend: sim\nworkload: {tasks: 1000000}\n", "big"
    )
    assert len(spec.agent_specs()) == 10000


# -- validate refuses what run would refuse ------------------------------------------------


def test_validate_refuses_an_unknown_task_kind(tmp_path: Path) -> None:
    path = tmp_path / "kind.yaml"
    path.write_text(MINIMAL + "workload: {kind: nosuch}\n")
    code, output = validate(path)
    assert code == 2, output
    assert "workload.kind" in output
    assert "sleep" in output  # the registered kinds are listed


def test_validate_accepts_auto_which_load_balance_runs(tmp_path: Path) -> None:
    path = tmp_path / "auto.yaml"
    path.write_text(MINIMAL + "strategy: auto\n")
    code, output = validate(path)
    assert code == 0, output


# -- bounded messages ---------------------------------------------------------------------


def test_a_long_value_is_shown_as_a_short_preview(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(MINIMAL + "swarm_id: [" + ", ".join(["abcdefgh"] * 50_000) + "]\n")
    code, output = validate(path)
    assert code == 2, output
    assert len(output) < 2000


def test_many_problems_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MINIMAL + "".join(f"unknown{i}: 1\n" for i in range(5000)))
    code, output = validate(path)
    assert code == 2, output
    assert "5000 problems" in output
    assert "and 4980 more" in output
    assert len(output) < 10_000


# -- files that are not what they should be ------------------------------------------------


SHADOW = f"root:$6${SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\nMIIEow{SECRET}AKCAQEA\n-----END RSA PRIVATE KEY-----\n"
ENV = f"password: {SECRET}\napi_token: {SECRET}\n"


@pytest.mark.parametrize("content", [SHADOW, PEM, ENV, f"{SECRET}: [\n"], ids=lambda c: c[:6])
def test_an_alerting_file_that_is_no_such_file_is_named_not_echoed(
    tmp_path: Path, content: str
) -> None:
    secret_file = tmp_path / "not-alerting"
    secret_file.write_text(content)
    spec = tmp_path / "spec.yaml"
    spec.write_text(MINIMAL + f"monitor: {{alerting: {secret_file}}}\n")
    code, output = validate(spec)
    assert code == 2, output
    assert SECRET not in output
    assert "19000" not in output  # nor any other part of it
    assert str(secret_file) in output.replace("\n", "")


@pytest.mark.parametrize("content", [SHADOW, PEM, ENV], ids=lambda c: c[:6])
def test_a_spec_that_is_no_spec_is_named_not_echoed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "not-a-spec"
    path.write_text(content)
    code, output = validate(path)
    assert code == 2, output
    assert SECRET not in output
    assert "not-a-spec" in output


def test_an_unknown_key_is_named_but_its_value_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(MINIMAL + f"workload: {{tsks: 10, token: {SECRET}}}\n")
    code, output = validate(path)
    assert code == 2, output
    assert "workload.tsks" in output
    assert "'tasks'" in output  # still suggests the key that was meant
    assert SECRET not in output


def test_a_typo_in_the_only_key_still_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("agent: [{id: a}]\n")
    code, output = validate(path)
    assert code == 2, output
    assert "'agents'" in output


@pytest.mark.parametrize("content", [SHADOW, PEM, ENV], ids=lambda c: c[:6])
def test_a_suite_or_sla_file_that_is_no_such_file_is_not_echoed(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "secrets"
    path.write_text(content)
    for args in (["sla-check", "--sla", str(path)], ["benchmark-run", "--suite", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert SECRET not in result.output, args
