"""QAPLIB files: instances (`.dat`), their solutions (`.sln`) and a `best_known.csv`.

A `.dat` file is whitespace-separated numbers: n, then matrix A (n x n, the flows), then
matrix B (n x n, the distances); rows may wrap over several lines, so only the count of
numbers is checked, not the lines. A `.sln` file is `n value` and then a permutation, 1-based.

Reading is bounded whatever the file: it is read in pieces of at most `PIECE` bytes, a
number may have at most `MAX_TOKEN_CHARS` characters, n may be at most `MAX_N` and is
checked against the file's size before anything is allocated, and reading stops at the
first number too many. Every problem is a `ConfigError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from swarmperf.core.errors import ConfigError
from swarmperf.topology.qap import MAX_N, Problem

PIECE = 1 << 16
MAX_TOKEN_CHARS = 64
# The smallest a number and its separator can be: "0 ".
MIN_BYTES_PER_NUMBER = 2
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(rb"\+?\d+")


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _tokens(path: Path, stream: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Each whitespace-separated token with its 1-based line, in bounded memory."""
    line = 1
    carry = b""
    while True:
        piece = stream.readline(PIECE)
        if not piece:
            break
        ends_line = piece.endswith(b"\n")
        parts = (carry + piece).split()
        carry = b""
        # A piece cut short by PIECE may end inside a number: keep that part for the next.
        if not ends_line and parts and not piece[-1:].isspace():
            carry = parts.pop()
        for token in parts:
            if len(token) > MAX_TOKEN_CHARS:
                raise ConfigError(
                    _where(path, line),
                    token[:20].decode("ascii", "replace") + "...",
                    f"A number has at most {MAX_TOKEN_CHARS} characters.",
                )
            yield token, line
        if len(carry) > MAX_TOKEN_CHARS:
            raise ConfigError(
                _where(path, line),
                carry[:20].decode("ascii", "replace") + "...",
                f"A number has at most {MAX_TOKEN_CHARS} characters.",
            )
        if ends_line:
            line += 1
    if carry:
        yield carry, line


def _number(path: Path, token: bytes, line: int, what: str) -> float:
    shown = token.decode("utf-8", "replace")
    if _NUMBER.fullmatch(token) is None:
        raise ConfigError(_where(path, line), shown, f"Expected a number ({what}).")
    value = float(token)
    if not math.isfinite(value):
        raise ConfigError(_where(path, line), shown, f"Expected a finite number ({what}).")
    return value


def _header_n(path: Path, tokens: Iterator[tuple[bytes, int]], what: str) -> tuple[int, int]:
    """The leading n: a whole number 1..MAX_N. Returns (n, line)."""
    first = next(tokens, None)
    if first is None:
        raise ConfigError(_where(path, 1), "an empty file", f"It must start with n, {what}.")
    token, line = first
    shown = token.decode("utf-8", "replace")
    if _INTEGER.fullmatch(token) is None or int(token) < 1:
        raise ConfigError(_where(path, line), shown, f"The first number is n, {what}: >= 1.")
    n = int(token)
    if n > MAX_N:
        raise ConfigError(
            _where(path, line), f"n = {n}", f"n may be at most {MAX_N} (larger is not supported)."
        )
    return n, line


def _open(path: Path) -> tuple[BinaryIO, int]:
    """The file opened for reading, and its size; an unreadable one is a `ConfigError`."""
    try:
        stream = path.open("rb")
        return stream, os.fstat(stream.fileno()).st_size
    except OSError as exc:
        raise ConfigError(
            str(path), exc.strerror or type(exc).__name__, "Give a readable file."
        ) from exc


def read_dat(path: Path) -> Problem:
    """The instance in a QAPLIB `.dat` file, named after the file."""
    stream, size = _open(path)
    with stream:
        tokens = _tokens(path, stream)
        n, line = _header_n(path, tokens, "the size of the two matrices")
        wanted = 2 * n * n
        # Checked before the matrices are allocated: a small file cannot claim a huge n.
        if size < wanted * MIN_BYTES_PER_NUMBER - 1:
            raise ConfigError(
                _where(path, line),
                f"n = {n}",
                f"Two {n} x {n} matrices need {wanted:,} numbers, and the file has only "
                f"{size:,} bytes. Check n, or the file is cut short.",
            )
        values = np.empty(wanted)
        count = 0
        last = line
        # The first line holding more numbers than a row has: when the count is wrong,
        # that line is where n and the matrices part ways (rows may wrap, never widen).
        wide: tuple[int, int] | None = None
        on_line = 0
        for token, at in tokens:
            on_line = on_line + 1 if at == last else 1
            last = at
            if wide is None and on_line > n:
                wide = (at, on_line)
            if count == wanted:
                _count_error(path, n, wide)
                raise ConfigError(
                    _where(path, at),
                    token.decode("utf-8", "replace"),
                    f"More numbers than n = {n} allows: two {n} x {n} matrices are "
                    f"{wanted:,} numbers. Check n and the matrices' sizes.",
                )
            matrix = "A" if count < n * n else "B"
            entry = count % (n * n)
            what = f"matrix {matrix}, row {entry // n + 1}, column {entry % n + 1}"
            values[count] = _number(path, token, at, what)
            count += 1
    if count < wanted:
        _count_error(path, n, wide)
        matrix = "A" if count < n * n else "B"
        raise ConfigError(
            _where(path, last),
            f"{count:,} numbers after n",
            f"n = {n} needs two {n} x {n} matrices, {wanted:,} numbers; the file ends in "
            f"matrix {matrix}. Check n and the matrices' sizes.",
        )
    flow = values[: n * n].reshape(n, n)
    distance = values[n * n :].reshape(n, n)
    try:
        return Problem(flow, distance, path.stem)
    except ConfigError as exc:
        raise ConfigError(str(path), exc.value, f"{exc.field}: {exc.fix}") from exc


def _count_error(path: Path, n: int, wide: tuple[int, int] | None) -> None:
    """When a line is wider than a row, the error is there: the matrices are not n x n."""
    if wide is not None:
        line, numbers = wide
        raise ConfigError(
            _where(path, line),
            f"a line of {numbers} or more numbers",
            f"A row of an n = {n} matrix has {n}: n and the matrices' sizes disagree.",
        )


@dataclass(frozen=True, slots=True)
class KnownSolution:
    """A `.sln` file: its n, its value, and its permutation as written (0-based here)."""

    n: int
    value: float
    perm: tuple[int, ...]


def read_sln(path: Path) -> KnownSolution:
    """The solution in a QAPLIB `.sln` file: `n value`, then a permutation of 1..n."""
    stream, size = _open(path)
    with stream:
        tokens = _tokens(path, stream)
        n, line = _header_n(path, tokens, "then the solution's value")
        if size < n * MIN_BYTES_PER_NUMBER:
            raise ConfigError(
                _where(path, line), f"n = {n}", f"A permutation of {n} needs {n} numbers."
            )
        second = next(tokens, None)
        if second is None:
            raise ConfigError(_where(path, line), "no value", "Give `n value` on the first line.")
        value = _number(path, second[0], second[1], "the solution's value")
        perm: list[int] = []
        seen = np.zeros(n, dtype=bool)
        last = second[1]
        for token, last in tokens:
            shown = token.decode("utf-8", "replace")
            if _INTEGER.fullmatch(token) is None or not 1 <= int(token) <= n or len(perm) >= n:
                raise ConfigError(
                    _where(path, last), shown, f"Expected a permutation of 1..{n} after the value."
                )
            k = int(token) - 1
            if seen[k]:
                raise ConfigError(_where(path, last), shown, "It appears twice in the permutation.")
            seen[k] = True
            perm.append(k)
    if len(perm) != n:
        raise ConfigError(_where(path, last), f"{len(perm)} numbers", f"The permutation needs {n}.")
    return KnownSolution(n, value, tuple(perm))


def read_best_known(path: Path) -> dict[str, float]:
    """`name -> best known value` from a CSV with columns `name` and `best_known_value`."""
    known: dict[str, float] = {}
    binary, _ = _open(path)
    with io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="") as stream:
        rows = csv.DictReader(stream)
        if rows.fieldnames is None or not {"name", "best_known_value"} <= set(rows.fieldnames):
            raise ConfigError(
                _where(path, 1),
                rows.fieldnames,
                "The header must name the columns name and best_known_value.",
            )
        try:
            for row in rows:
                raw = row.get("best_known_value") or ""
                known[row.get("name") or ""] = _number(
                    path, raw.strip().encode()[:MAX_TOKEN_CHARS], rows.line_num, "best_known_value"
                )
        except csv.Error as exc:  # e.g. a field beyond csv's size limit
            raise ConfigError(_where(path, rows.line_num), str(exc), "Give a CSV file.") from exc
    return known


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a corpus and the best value known for it (None: none given)."""

    name: str
    path: Path
    optimum: float | None


def list_corpus(folder: Path) -> list[Instance]:
    """Every `.dat` file of `folder`, sorted by name, with its optimum: from
    `best_known.csv` when it lists the instance, else from the `.sln` beside it.
    Solutions are read (and so checked) here; the instances are read one at a time by
    the caller."""
    if not folder.is_dir():
        raise ConfigError("--corpus", str(folder), "It is not a folder.")
    paths = sorted(p for p in folder.glob("*.dat") if p.is_file())
    if not paths:
        raise ConfigError(
            "--corpus", str(folder), "It holds no .dat file (QAPLIB instances: n, A, B)."
        )
    table = folder / "best_known.csv"
    known = read_best_known(table) if table.is_file() else {}
    found: list[Instance] = []
    for path in paths:
        optimum = known.get(path.stem)
        sln = path.with_suffix(".sln")
        if optimum is None and sln.exists():
            optimum = read_sln(sln).value
        found.append(Instance(path.stem, path, optimum))
    return found


def gap_pct(value: float, optimum: float | None) -> float | None:
    """How far `value` is above `optimum`, in percent of it (None: no optimum, or 0 and
    not reached, where a percentage means nothing)."""
    if optimum is None:
        return None
    if optimum == 0:
        return 0.0 if value == 0 else None
    return 100.0 * (value - optimum) / abs(optimum)
