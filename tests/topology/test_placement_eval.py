"""`swarmperf placement-eval` and the QAPLIB reader: bad files exit 2 naming the file and the
line; good ones give one JSON object with the placements and their gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from swarmperf.cli.main import app
from swarmperf.topology import cost
from swarmperf.topology.qaplib import MAX_TOKEN_CHARS, read_dat
from tests.inputs import write_instance

runner = CliRunner()


def evaluate(folder: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["placement-eval", "--corpus", str(folder), "--iterations", "300", *extra],
    )
    return result.exit_code, result.output


def test_json_gives_each_placement_its_cost_and_gap(tmp_path: Path) -> None:
    problems = {
        name: write_instance(tmp_path, name, n, seed)
        for name, n, seed in [("a6", 6, 1), ("b7", 7, 2)]
    }
    code, output = evaluate(tmp_path, "-o", "json", "--seed", "4")
    assert code == 0, output
    figures = json.loads(output.strip().splitlines()[-1])
    assert set(figures["solutions"]) == {"a6", "b7"}
    for name, (problem, optimum) in problems.items():
        solution = figures["solutions"][name]
        perm = solution["perm"]
        assert sorted(perm) == list(range(1, problem.n + 1))  # 1-based locations
        assert solution["cost"] == cost(problem, [p - 1 for p in perm])
        assert solution["seconds"] >= 0
        assert solution["gap_pct"] == figures["gaps"][name] == 0.0
        assert solution["optimum"] == optimum
    assert figures["mean_gap_pct"] == 0.0
    assert figures["at_optimum"] == 2
    assert figures["solver"] == "tabu"
    assert figures["gap_reason"] is None


def test_without_solutions_there_is_no_gap_and_it_says_why(tmp_path: Path) -> None:
    write_instance(tmp_path, "a5", 5, 1)
    (tmp_path / "a5.sln").unlink()
    code, output = evaluate(tmp_path, "-o", "json", "--solver", "annealing")
    assert code == 0, output
    figures = json.loads(output.strip().splitlines()[-1])
    assert figures["solutions"]["a5"]["gap_pct"] is None
    assert figures["mean_gap_pct"] is None
    assert "no .sln" in figures["gap_reason"]


def test_best_known_csv_gives_the_optima(tmp_path: Path) -> None:
    _, optimum = write_instance(tmp_path, "a5", 5, 3)
    (tmp_path / "a5.sln").unlink()
    (tmp_path / "best_known.csv").write_text(f"name,n,best_known_value\na5,5,{int(optimum)}\n")
    code, output = evaluate(tmp_path, "--solver", "genetic")
    assert code == 0, output
    assert "mean gap 0.000% over 1 instances, 1 at the optimum" in output


GOOD_A = "0 1 2\n1 0 3\n2 3 0\n"


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("", 1, "empty file"),
        ("   \n\n", 1, "empty file"),
        ("three\n" + GOOD_A + GOOD_A, 1, "The first number is n"),
        ("0\n", 1, "The first number is n"),
        ("3\n" + GOOD_A + "0 1 x\n1 0 3\n2 3 0\n", 5, "'x' is not valid. Expected a number"),
        ("3\n" + GOOD_A + "0 1 nan\n1 0 3\n2 3 0\n", 5, "Expected a number"),
        ("3\n" + GOOD_A + "0 1 1e999\n1 0 3\n2 3 0\n", 5, "finite"),
        ("3\n" + GOOD_A + "  0    1    2\n  1    0    3\n", 6, "ends in matrix B"),  # cut
        ("3\n" + GOOD_A + GOOD_A + "7\n", 8, "More numbers than n = 3"),
        # n says 3, the matrices are 3 x 4: a row too wide shows as a number too many.
        (
            "3\n0 1 2 5\n1 0 3 5\n2 3 0 5\n" + GOOD_A + GOOD_A,
            2,
            "n and the matrices' sizes disagree",
        ),
        ("4\n" + GOOD_A + GOOD_A, 1, "n = 4"),  # fewer bytes than 2 x 16 numbers need
        ("100000\n0 1\n", 1, "n may be at most"),
        ("3\n" + "9" * (MAX_TOKEN_CHARS + 1) + " " + GOOD_A + GOOD_A, 2, "at most 64 characters"),
    ],
    ids=[
        "empty",
        "blank",
        "n not a number",
        "n zero",
        "not a number",
        "nan",
        "overflow",
        "too few",
        "too many",
        "asymmetric n",
        "n beyond the file",
        "huge n",
        "long token",
    ],
)
def test_a_bad_dat_file_exits_2_with_its_file_and_line(
    tmp_path: Path, content: str, line: int, words: str
) -> None:
    (tmp_path / "bad.dat").write_text(content)
    code, output = evaluate(tmp_path)
    assert code == 2, output
    flat = " ".join(output.split())
    assert f"bad.dat:{line}:" in flat
    assert words in flat
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("3 9\n1 2 2\n", 2, "appears twice"),
        ("3 9\n1 2 4\n", 2, "permutation of 1..3"),
        ("3 9\n1 2\n", 2, "needs 3"),
        ("3" + " " * 10 + "\n", 1, "no value"),
        ("4 9\n1 2 3 4\n", 1, "n = 4"),  # the instance has n = 3
    ],
)
def test_a_bad_sln_file_exits_2_with_its_file_and_line(
    tmp_path: Path, content: str, line: int, words: str
) -> None:
    (tmp_path / "x.dat").write_text("3\n" + GOOD_A + GOOD_A)
    (tmp_path / "x.sln").write_text(content)
    code, output = evaluate(tmp_path, "-o", "json")
    assert code == 2, output
    flat = " ".join(output.split())
    assert f"x.sln:{line}:" in flat
    assert words in flat
    assert "Traceback" not in output
    assert json.loads(output.strip().splitlines()[-1])["error"]


def test_a_bad_best_known_csv_exits_2_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "x.dat").write_text("3\n" + GOOD_A + GOOD_A)
    (tmp_path / "best_known.csv").write_text("name,best_known_value\nx,12\ny,lots\n")
    code, output = evaluate(tmp_path)
    assert code == 2, output
    assert "best_known.csv:3:" in " ".join(output.split())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--solver", "greedy"], "Choose one of: annealing, genetic, tabu"),
        (["--time-limit", "0s"], "above 0"),
        (["--time-limit", "soon"], "duration"),
        (["--seed", "-1"], ">= 0"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    write_instance(tmp_path, "a4", 4, 0)
    code, output = evaluate(tmp_path, *args)
    assert code == 2, output
    assert words in " ".join(output.split())


def test_a_folder_without_instances_exits_2(tmp_path: Path) -> None:
    code, output = evaluate(tmp_path)
    assert code == 2
    assert "no .dat file" in output
    code, output = evaluate(tmp_path / "missing")
    assert code == 2
    assert "not a folder" in output


def test_the_reader_keeps_rows_that_wrap(tmp_path: Path) -> None:
    problem, _ = write_instance(tmp_path, "w9", 6, 7)  # rows of 6 written 4 + 2 per line
    read = read_dat(tmp_path / "w9.dat")
    np.testing.assert_array_equal(read.flow, problem.flow)
    np.testing.assert_array_equal(read.distance, problem.distance)
    assert read.name == "w9"


def test_unreadable_files_and_huge_csv_fields_exit_2(tmp_path: Path) -> None:
    (tmp_path / "x.dat").write_text("3\n" + GOOD_A + GOOD_A)
    (tmp_path / "x.sln").mkdir()  # not a file
    (tmp_path / "folder.dat").mkdir()  # not an instance: skipped
    code, output = evaluate(tmp_path)
    assert code == 2, output
    assert "x.sln" in output
    assert "Traceback" not in output
    (tmp_path / "x.sln").rmdir()
    (tmp_path / "best_known.csv").write_text("name,best_known_value\nx," + "9" * 200_000 + "\n")
    code, output = evaluate(tmp_path)
    assert code == 2, output
    assert "best_known.csv:" in output
