"""Streaming quantiles with a relative-error guarantee: a log-bucket sketch and a sliding window.

Why our own code: this is the monitor's hot path (one observation per finished task and per
metric update), and it must be mergeable and windowed. A plain dict of log buckets costs a
few Python operations per observation, several times less than a locked bucket histogram
(`benchmarks/metrics_overhead.py` measures both in one run).

The guarantee (as in DDSketch, Masson et al., VLDB 2019): with `gamma = (1 + a) / (1 - a)`,
a value `x > min_value` falls in bucket `i = ceil(log_gamma(x))`, i.e. `gamma**(i-1) < x <=
gamma**i`, and the bucket is reported as `2 * gamma**i / (gamma + 1)`, which is within a
relative error `a` of every value in it. So `quantile(q)` is within relative error `alpha` of
the exact sample at rank `floor(q * (n - 1))` (numpy's `method="lower"`); with the default
`alpha = 0.005` every quantile is within 0.5% (and so well within 1%). Values with
`|x| <= min_value` are counted as 0 (absolute error at most `min_value`).

Memory: one dict entry per occupied bucket, at most `ln(max|x| / min_value) / ln(gamma) + 1`
per sign: about 4,200 from 1 ns to 1e9 s at the default alpha, whatever the number of
observations.

Thread safety: observations happen on one thread (the swarm's event loop); readers on other
threads (a Prometheus scrape) take `dict` copies, which are atomic in CPython.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from math import ceil, log
from typing import Generic, TypeVar

from swarmperf.core.errors import ConfigError

DEFAULT_ALPHA = 0.005
DEFAULT_MIN_VALUE = 1e-9


class QuantileSketch:
    """Mergeable streaming quantiles within relative error `alpha`, with count/sum/min/max."""

    __slots__ = (
        "_gamma",
        "_inv_log_gamma",
        "_log_gamma",
        "_min_value",
        "_neg",
        "_pos",
        "_zero",
        "alpha",
        "count",
        "max",
        "min",
        "sum",
    )

    def __init__(self, alpha: float = DEFAULT_ALPHA, min_value: float = DEFAULT_MIN_VALUE) -> None:
        if not (isinstance(alpha, float | int) and 0 < alpha < 1):
            raise ConfigError("alpha", alpha, "Use a relative error in (0, 1), e.g. 0.005.")
        if not (isinstance(min_value, float | int) and min_value > 0 and math.isfinite(min_value)):
            raise ConfigError("min_value", min_value, "Use a small positive number, e.g. 1e-9.")
        self.alpha = float(alpha)
        self._gamma = (1 + alpha) / (1 - alpha)
        self._log_gamma = log(self._gamma)
        self._inv_log_gamma = 1.0 / self._log_gamma
        self._min_value = float(min_value)
        self._pos: dict[int, int] = {}
        self._neg: dict[int, int] = {}
        self._zero = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def observe(self, x: float) -> None:
        """Add one value (finite; NaN and infinities would void the guarantee)."""
        self.count += 1
        self.sum += x
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if x > self._min_value:
            i = ceil(log(x) * self._inv_log_gamma)
            pos = self._pos
            pos[i] = pos.get(i, 0) + 1
        elif x < -self._min_value:
            i = ceil(log(-x) * self._inv_log_gamma)
            neg = self._neg
            neg[i] = neg.get(i, 0) + 1
        else:
            self._zero += 1

    def merge(self, other: QuantileSketch) -> None:
        """Add `other`'s observations to this sketch (both must share alpha and min_value)."""
        if other.alpha != self.alpha or other._min_value != self._min_value:
            raise ConfigError(
                "sketch.alpha",
                other.alpha,
                f"Merge sketches made with the same alpha ({self.alpha}) and min_value.",
            )
        for mine, theirs in ((self._pos, dict(other._pos)), (self._neg, dict(other._neg))):
            for i, n in theirs.items():
                mine[i] = mine.get(i, 0) + n
        self._zero += other._zero
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> QuantileSketch:
        twin = QuantileSketch(self.alpha, self._min_value)
        twin.merge(self)
        return twin

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """The value at rank `floor(q * (count - 1))` within relative error alpha; None if
        empty."""
        if not 0 <= q <= 1:
            raise ConfigError("quantile", q, "Use a number in [0, 1], e.g. 0.99.")
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Several quantiles in one pass over the buckets (`qs` in any order)."""
        n = self.count
        if n == 0:
            return [None] * len(qs)
        order = sorted(range(len(qs)), key=lambda j: qs[j])
        out: list[float | None] = [None] * len(qs)
        k = 0
        seen = 0
        for value, weight in self._buckets():
            seen += weight
            while k < len(order) and math.floor(qs[order[k]] * (n - 1)) < seen:
                # The true value lies in [min, max]: clamping only brings the estimate closer.
                out[order[k]] = min(max(value, self.min), self.max)
                k += 1
            if k == len(order):
                break
        return out

    def _buckets(self) -> Iterator[tuple[float, int]]:
        """(representative value, count) in ascending value order."""
        scale = 2.0 / (self._gamma + 1)
        gamma = self._gamma
        for i, n in sorted(dict(self._neg).items(), reverse=True):
            yield -scale * gamma**i, n
        if self._zero:
            yield 0.0, self._zero
        for i, n in sorted(dict(self._pos).items()):
            yield scale * gamma**i, n

    @property
    def buckets(self) -> int:
        """How many buckets are occupied (the sketch's memory, in entries)."""
        return len(self._pos) + len(self._neg) + (1 if self._zero else 0)


T = TypeVar("T")


class SlidingRing(Generic[T]):
    """The last `slices` time slices of `width` seconds each, made by `factory`.

    Slice `k` covers `[k * width, (k + 1) * width)` on the caller's clock. `at(t)` returns
    the slice holding time `t`, starting new slices (and dropping the oldest) as time moves
    on; a time older than the ring returns None (too old to count).
    """

    __slots__ = ("_factory", "_ids", "_inv_width", "_items", "_latest", "slices", "width")

    def __init__(self, width: float, slices: int, factory: Callable[[], T]) -> None:
        if not (width > 0 and math.isfinite(width)):
            raise ConfigError("window", width, "Use a window longer than 0, e.g. 10s.")
        if slices < 1:
            raise ConfigError("slices", slices, "Use a whole number >= 1, e.g. 10.")
        self.width = float(width)
        self._inv_width = 1.0 / self.width
        self.slices = slices
        self._factory = factory
        self._items: list[T | None] = [None] * slices
        self._ids: list[int] = [-(2**62)] * slices
        self._latest = -(2**62)

    def index(self, t: float) -> int:
        return math.floor(t * self._inv_width)

    def at(self, t: float) -> T | None:
        return self.slice(math.floor(t * self._inv_width))

    def slice(self, k: int) -> T | None:
        """Slice `k`, made if it is new; None if it is older than the ring."""
        slot = k % self.slices
        if self._ids[slot] == k:
            return self._items[slot]
        if k <= self._latest - self.slices:
            return None
        self.advance(k)
        item = self._factory()
        self._items[slot] = item
        self._ids[slot] = k
        return item

    def advance(self, k: int) -> None:
        """Move the ring's newest slice to `k`, forgetting slices that fall out of it."""
        if k > self._latest:
            self._latest = k

    def window(self, now: float) -> tuple[float, list[T]]:
        """The start of the ring's span ending at `now`, and its slices, oldest first."""
        k = math.floor(now * self._inv_width)
        # Read-only: a reader on another thread must not move the ring.
        first = max(self._latest, k) - self.slices + 1
        live = sorted(
            (kid, item)
            for kid, item in zip(self._ids, self._items, strict=True)
            if item is not None and first <= kid <= k
        )
        return first * self.width, [item for _, item in live]

    def slice_ids(self, start: float, end: float) -> range:
        """The indices of the slices an interval `[start, end]` overlaps."""
        return range(math.floor(start * self._inv_width), math.floor(end * self._inv_width) + 1)

    def get(self, k: int) -> T | None:
        """Slice `k` if the ring holds it, else None (no new slice is made)."""
        slot = k % self.slices
        return self._items[slot] if self._ids[slot] == k else None


class WindowedSketch:
    """Quantiles over the last `window` seconds, from `slices` rotating sub-sketches.

    The reported span is between `window * (slices - 1) / slices` and `window` long: a whole
    slice drops out at a time.
    """

    __slots__ = ("_alpha", "_min_value", "_ring")

    def __init__(
        self,
        window: float = 300.0,
        slices: int = 10,
        alpha: float = DEFAULT_ALPHA,
        min_value: float = DEFAULT_MIN_VALUE,
    ) -> None:
        QuantileSketch(alpha, min_value)  # validates alpha and min_value up front
        self._alpha = alpha
        self._min_value = min_value
        self._ring: SlidingRing[QuantileSketch] = SlidingRing(window / slices, slices, self._new)

    def _new(self) -> QuantileSketch:
        return QuantileSketch(self._alpha, self._min_value)

    def observe(self, x: float, now: float) -> None:
        """Add `x` observed at time `now` (a time older than the window is ignored)."""
        sketch = self._ring.at(now)
        if sketch is not None:
            sketch.observe(x)

    def snapshot(self, now: float) -> QuantileSketch:
        """One sketch of everything observed in the window ending at `now`."""
        merged = self._new()
        for part in self._ring.window(now)[1]:
            merged.merge(part)
        return merged
