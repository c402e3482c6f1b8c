"""Taking SQLite's write lock patiently: retry while another process holds it, and say so."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmperf.core.errors import StoreError

log = logging.getLogger("swarmperf.store")

# SQLite's own busy handler already backs off within each attempt (1 ms up to 100 ms sleeps,
# for up to `busy_timeout`); between attempts a little jitter keeps waiting writers from
# retrying in lockstep.
_JITTER_S = 0.05
_WARN_EVERY_S = 10.0  # a waiting writer says so at once, then this often

# Result codes that mean "someone else has the lock": the attempt may succeed later.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(exc: sqlite3.Error) -> bool:
    """True when `exc` says another connection holds a lock (SQLITE_BUSY or LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


@dataclass(slots=True)
class WriteStats:
    """How long this connection waited for the write lock, measured (monotonic seconds)."""

    transactions: int = 0
    waits: int = 0  # transactions that found the lock taken at least once
    max_wait_s: float = 0.0
    total_wait_s: float = 0.0


def begin_immediate(
    conn: sqlite3.Connection,
    path: Path,
    *,
    write_timeout: float,
    stats: WriteStats | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`BEGIN IMMEDIATE`, retried while another process holds the write lock.

    Each attempt waits up to the connection's busy timeout inside SQLite. After a failed
    attempt a warning (then one every 10 s) names the store and how long this writer has
    waited; after
    `write_timeout` seconds in all, `StoreError` says who to look for.
    """
    started = clock()
    attempts = 0
    warned_at: float | None = None
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            attempts += 1
            waited = clock() - started
            if waited >= write_timeout:
                _count(stats, waited, attempts)
                raise StoreError(
                    path,
                    f"another process held its write lock for {waited:.1f} s (the limit is "
                    f"{write_timeout:g} s)",
                    "Look for another swarmperf run, a retention job or a backup using this "
                    "data directory, let it finish, and try again.",
                ) from exc
            if warned_at is None or waited - warned_at >= _WARN_EVERY_S:
                warned_at = waited
                log.warning(
                    "waiting for the store's write lock at %s: another process holds it "
                    "(%.1f s so far, giving up after %g s)",
                    path,
                    waited,
                    write_timeout,
                )
            sleep(random.uniform(0, _JITTER_S))
            continue
        _count(stats, clock() - started, attempts)
        return


def _count(stats: WriteStats | None, waited: float, attempts: int) -> None:
    if stats is None:
        return
    stats.transactions += 1
    if attempts:
        stats.waits += 1
    stats.max_wait_s = max(stats.max_wait_s, waited)
    stats.total_wait_s += waited
