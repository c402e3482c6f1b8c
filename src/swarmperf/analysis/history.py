"""Metric history upkeep: keep recent snapshots as they are, coarser ones for longer, then drop.

A policy says how long raw snapshots stay (`raw_for_s`), the bucket older ones are folded
into (`bucket_s`: mean, max and count per metric, see `Store.downsample_metrics`), and when
rows go altogether (`keep_for_s`). Applying a policy twice at the same instant changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmperf.core.errors import ConfigError
from swarmperf.store import Store


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long metric history lives; all durations in seconds."""

    raw_for_s: float
    bucket_s: float
    keep_for_s: float | None = None  # None: keep downsampled rows for good

    def __post_init__(self) -> None:
        if not self.raw_for_s >= 0:
            raise ConfigError("raw_for", self.raw_for_s, "Use a duration >= 0, e.g. 1h.")
        if not self.bucket_s > 0:
            raise ConfigError("bucket", self.bucket_s, "Use a duration > 0, e.g. 1m.")
        if self.keep_for_s is not None and not self.keep_for_s > self.raw_for_s:
            raise ConfigError(
                "keep_for",
                self.keep_for_s,
                f"Keep rows longer than they stay raw ({self.raw_for_s:g} s), or give none.",
            )


@dataclass(frozen=True, slots=True)
class UpkeepOutcome:
    deleted: int  # rows older than keep_for
    replaced: int  # raw rows folded into buckets
    written: int  # bucket rows written (mean, max and count per metric and bucket)


def apply_policy(
    store: Store, policy: RetentionPolicy, now: float, swarm_id: str | None = None
) -> UpkeepOutcome:
    """Delete what is past keeping, then downsample what is past staying raw, at once."""
    with store.transaction():
        deleted = 0
        if policy.keep_for_s is not None:
            deleted = store.delete_metrics_before(now - policy.keep_for_s, swarm_id)
        replaced, written = store.downsample_metrics(
            now - policy.raw_for_s, policy.bucket_s, swarm_id
        )
    return UpkeepOutcome(deleted, replaced, written)
