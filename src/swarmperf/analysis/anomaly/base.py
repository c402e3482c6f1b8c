"""The streaming detector contract (score before learning, scores in [0, 1]) and shared parts."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from swarmperf.core.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


class Detector(ABC):
    """A streaming anomaly detector with river-style verbs.

    `score_one` rates a point against what has been learnt so far and changes nothing;
    `learn_one` folds the point in. `process` does both in that order, so a score never depends
    on the point's future. Scores lie in [0, 1]; higher is more anomalous.
    """

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def score_one(self, x: float, t: float | None = None) -> float: ...

    @abstractmethod
    def learn_one(self, x: float, t: float | None = None) -> None: ...

    def process(self, x: float, t: float | None = None) -> float:
        score = self.score_one(x, t)
        self.learn_one(x, t)
        return score


class Ring:
    """The last `size` floats as a contiguous numpy view, appended in amortised O(1).

    Values live in a buffer twice the size; when the end is reached the last `size` values
    are copied to the front, so `view()` never copies.
    """

    __slots__ = ("_buf", "_end", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Ring size must be >= 1, got {size}")
        self.size = size
        self._buf = np.zeros(2 * size, dtype=np.float64)
        self._end = 0

    def append(self, x: float) -> None:
        if self._end == len(self._buf):
            self._buf[: self.size] = self._buf[self._end - self.size : self._end]
            self._end = self.size
        self._buf[self._end] = x
        self._end += 1

    def view(self) -> FloatArray:
        return self._buf[max(0, self._end - self.size) : self._end]

    def __len__(self) -> int:
        return min(self._end, self.size)

    def last(self, k: int = 1) -> float:
        """The value `k` steps back (1: the newest)."""
        return float(self._buf[self._end - k])


def gaussian_surprise(z: float) -> float:
    """Two-sided Gaussian tail turned into a score: 0 at z = 0, towards 1 as |z| grows."""
    return math.erf(abs(z) / math.sqrt(2.0))


def log_score(tail: float) -> float:
    """A tail probability on NAB's log scale: 1e-10 -> 1.0, 0.5 -> 0.03, 1 -> 0."""
    tail = min(max(tail, 0.0), 1.0)
    return max(0.0, min(1.0, math.log(tail + 1e-10) / math.log(1e-10)))


def check_positive(field: str, value: float, minimum: float = 1) -> None:
    if not value >= minimum:
        raise ConfigError(field, value, f"Give a number >= {minimum}.")


class Recorded(Detector):
    """Replays scores recorded from another detector, one per point, in order.

    A member's scores do not depend on how the ensemble weighs them, so a benchmark records
    each member once per series and replays them under many weightings through the same
    ensemble code, instead of running the members again for every candidate setting.
    """

    name = "recorded"
    summary = "replays recorded scores (for tuning sweeps)"

    def __init__(self, scores: FloatArray | list[float]) -> None:
        self._scores = [float(s) for s in scores]
        self._next = 0

    def score_one(self, x: float, t: float | None = None) -> float:
        return self._scores[self._next]

    def learn_one(self, x: float, t: float | None = None) -> None:
        self._next += 1
