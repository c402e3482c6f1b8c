"""Shared helpers: synthetic series and tiny NAB-layout corpora written to disk."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2024, 1, 1)
STEP = timedelta(minutes=5)


def stamp(i: int) -> str:
    return (START + i * STEP).strftime("%Y-%m-%d %H:%M:%S")


def seasonal_series(n: int, period: int = 48, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    return 10.0 + 3.0 * np.sin(2 * np.pi * i / period) + rng.normal(0.0, noise, n)


def write_corpus(
    root: Path,
    files: Mapping[str, Sequence[float]],
    windows: Mapping[str, Sequence[tuple[int, int]]] | None,
) -> Path:
    """Write `{"<category>/<name>.csv": values}` in NAB's layout; windows as row ranges."""
    for key, values in files.items():
        path = root / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value"] + [f"{stamp(i)},{v!r}" for i, v in enumerate(values)]
        path.write_text("\n".join(lines) + "\n")
    if windows is not None:
        (root / "labels").mkdir(parents=True, exist_ok=True)
        labels = {
            key: [[stamp(a) + ".000000", stamp(b) + ".000000"] for a, b in spans]
            for key, spans in windows.items()
        }
        (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return root
