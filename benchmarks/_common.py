"""Shared plumbing for the benchmark scripts: flags, medians and the final JSON line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def dataset_dir(name: str) -> Path:
    """A public dataset's folder: `$SWARMPERF_DATASETS/<name>`, else `../shared/datasets/<name>`.

    The relative default is beside the checkout, where the datasets' README puts them.
    """
    root = os.environ.get("SWARMPERF_DATASETS")
    beside = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    base = Path(root) if root else beside
    return base / name


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What one benchmark run was asked to do."""

    quick: bool
    n: int  # tasks (or steps) per measured point
    repeats: int


def parse_args(
    description: str,
    *,
    n: int,
    repeats: int,
    quick_n: int,
    quick_repeats: int,
    argv: Sequence[str] | None = None,
) -> RunSettings:
    """Read `--quick`, `--repeats` and `-n`; flags given explicitly win over `--quick`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help=f"{quick_n:,} per point, {quick_repeats} repeat(s)"
    )
    parser.add_argument("--repeats", type=int, default=None, help=f"default {repeats}")
    parser.add_argument("-n", type=int, default=None, help=f"default {n:,}")
    args = parser.parse_args(argv)
    chosen_n = args.n if args.n is not None else (quick_n if args.quick else n)
    chosen_repeats = (
        args.repeats if args.repeats is not None else (quick_repeats if args.quick else repeats)
    )
    if chosen_n < 1 or chosen_repeats < 1:
        parser.error("-n and --repeats must be >= 1")
    return RunSettings(quick=bool(args.quick), n=chosen_n, repeats=chosen_repeats)


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def spread(samples: Sequence[float]) -> str:
    """`median [min-max]`, for the human-readable tables."""
    return f"{median(samples):8.3f} [{min(samples):.3f}-{max(samples):.3f}]"


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout ends with the JSON line and nothing else."""
    print(message, file=sys.stderr, flush=True)


def emit(figures: dict[str, Any]) -> None:
    """Print the run's figures as the last line on stdout: one JSON object."""
    sys.stderr.flush()
    print(json.dumps(figures, sort_keys=False), flush=True)


def package_versions(*names: str) -> dict[str, str | None]:
    """The interpreter's and each installed package's version (None: not installed)."""
    import importlib.metadata

    versions: dict[str, str | None] = {"python": python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def compiled_core() -> bool | None:
    """Whether the installed swarmperf runs its compiled core (None: no swarmperf)."""
    try:
        from swarmperf.runtime import compiled
    except ImportError:
        return None
    return bool(compiled())
