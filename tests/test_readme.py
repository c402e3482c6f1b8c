"""The README's and the docs' shell blocks run as written, in order, from an empty folder.

Conventions the documents follow, which this test holds them to:

- Every fenced block names its language. Shell blocks (`bash`, `sh`, `shell`) are run;
  `console` blocks (with `$` prompts) and every other language are shown, never run.
- A shell block that cannot run here (it installs from PyPI, needs a Ray cluster or a data
  set that ships elsewhere) has `<!-- not run: REASON -->` on the line before its fence. An
  unmarked shell block is run, so one that cannot run fails this test.
- Each command line of a block (a trailing `\\` continues it) must exit 0, or with the code
  its trailing comment names (`# exit 1 when ...`). Commands run in one temporary folder,
  in document order, so a block may create what a later one uses (`swarm.yaml`, results).

Nothing is substituted: the documents' own examples are short enough (about two minutes
for the README in all, most of it the two quick-suite runs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(`{3,})(.*)$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")
EXIT = re.compile(r"#.*\bexits?\s+(\d+)\b")
COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with the `not run` mark before it, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i].strip())
        if opening is None:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).strip()
        before = lines[i - 1].strip() if i > 0 else ""
        mark = NOT_RUN.match(before)
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        found.append(
            Block(
                path,
                i + 1,
                language,
                "\n".join(lines[i + 1 : end]),
                None if mark is None else mark.group(1),
            )
        )
        i = end + 1
    return found


def commands(text: str) -> list[tuple[str, set[int]]]:
    """The block's commands (continuation lines joined), each with the exit codes allowed."""
    result: list[tuple[str, set[int]]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = pending + line
        pending = ""
        allowed = {0}
        documented = EXIT.search(command)
        if documented is not None:
            allowed.add(int(documented.group(1)))
        result.append((command, allowed))
    assert not pending, f"a command ends in a continuation: {pending!r}"
    return result


def environment(home: Path) -> dict[str, str]:
    """The installed package's `swarmperf` first on PATH, as after the README's set-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMPERF_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(home)
    env["COLUMNS"] = "80"
    return env


def run_document(path: Path, folder: Path) -> list[str]:
    """Run every runnable shell block of `path` in `folder`, in order; the commands run."""
    env = environment(folder)
    ran: list[str] = []
    for block in blocks(path):
        if block.language not in SHELL or block.not_run is not None:
            continue
        for command, allowed in commands(block.text):
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            assert done.returncode in allowed, (
                f"{block.where}: `{command}` exited {done.returncode} "
                f"(allowed: {sorted(allowed)})\nstdout:\n{done.stdout[-3000:]}\n"
                f"stderr:\n{done.stderr[-3000:]}"
            )
            ran.append(command)
    return ran


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_block_says_what_it_is(path: Path) -> None:
    for block in blocks(path):
        assert block.language, f"{block.where}: name the block's language (```text for output)"
        if block.not_run is not None:
            assert block.not_run, f"{block.where}: say why the block is not run"
            assert block.language in SHELL, f"{block.where}: only shell blocks are run anyway"


def test_the_conventions_are_read_as_documented(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```bash\n# a comment\necho one > one.txt\nfalse   # exit 1 on purpose\n"
        "cat one.txt \\\n  one.txt\n```\n\n"
        "<!-- not run: needs a cluster -->\n```bash\nexit 3\n```\n\n"
        "```console\n$ exit 4\n```\n",
        encoding="utf-8",
    )
    found = blocks(doc)
    assert [(b.language, b.not_run) for b in found] == [
        ("bash", None),
        ("bash", "needs a cluster"),
        ("console", None),
    ]
    assert run_document(doc, tmp_path) == [
        "echo one > one.txt",
        "false   # exit 1 on purpose",
        "cat one.txt    one.txt",
    ]


def test_an_unmarked_block_that_cannot_run_fails(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```sh\nswarmperf no-such-command\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="no-such-command` exited 2"):
        run_document(doc, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_the_shell_blocks_run_as_written(path: Path, tmp_path: Path) -> None:
    run_document(path, tmp_path)
