"""Small, fixed inputs for the planning commands (a trace, a QAPLIB folder), the same on
every run, so that their output can be compared byte for byte."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from swarmperf.topology import Problem, cost

# A day-long cycle of 24 intervals over 20 days, with a little irregular noise.
TRACE_ROWS = 24 * 20


def write_trace(folder: Path, name: str = "trace.csv", rows: int = TRACE_ROWS) -> Path:
    """A counts trace (NASA-HTTP layout) with a planted period of 24 intervals."""
    lines = [f"{i},{(100 if i % 24 < 12 else 10) + (i * 37) % 17}" for i in range(rows)]
    path = folder / name
    path.write_text("minute_index,requests\n" + "\n".join(lines) + "\n")
    return path


def write_instance(folder: Path, name: str, n: int, seed: int) -> tuple[Problem, float]:
    """A random instance as QAPLIB writes it (rows wrapped at 4 numbers), with its optimum
    in a .sln file (found by trying every permutation: keep n small)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, size=(n, n))
    b = rng.integers(0, 10, size=(n, n))

    def rows(m: np.ndarray) -> str:
        lines = []
        for row in m:
            lines += [" ".join(f"{v:3d}" for v in row[k : k + 4]) for k in range(0, n, 4)]
        return "\n".join(lines)

    (folder / f"{name}.dat").write_text(f"  {n}\n\n{rows(a)}\n\n{rows(b)}\n")
    problem = Problem(a, b)
    best = min(itertools.permutations(range(n)), key=lambda p: cost(problem, p))
    value = cost(problem, best)
    (folder / f"{name}.sln").write_text(f"{n} {int(value)}\n" + " ".join(str(v + 1) for v in best))
    return problem, value


def write_corpus(folder: Path) -> Path:
    """A folder of two tiny QAPLIB instances (n = 6 and 7) with their optima."""
    folder.mkdir(parents=True, exist_ok=True)
    write_instance(folder, "a6", 6, 1)
    write_instance(folder, "b7", 7, 2)
    return folder
