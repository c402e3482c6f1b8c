"""The live feed for dashboards: numbered messages, a replay buffer, and bounded fan-out.

Every message gets the next number (`seq`) and is encoded once, whatever the number of
readers. The last `keep` messages stay, so that a page that reconnects with the last number
it saw misses nothing (within them). Each reader has a queue of its own, bounded: a reader
too slow to empty it is dropped with a reason, and the swarm never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEEP = 600  # messages kept for readers that reconnect: ten minutes at one a second
READER_BUFFER = 1000  # messages a reader may fall behind before it is dropped
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str).encode


@dataclass(slots=True, eq=False)  # each reader is itself: hashed by identity
class Reader:
    """One subscriber: its backlog at subscription, then its queue of encoded messages.
    `None` in the queue means the feed ended; `dropped` says the reader fell behind."""

    backlog: list[str]
    # One place more than a reader may fall behind: the end marker always fits, and no
    # message is ever evicted to make room for it.
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(READER_BUFFER + 1)
    )
    last_seq: int = 0
    dropped: bool = False


class Feed:
    """Publish on the event loop; readers `subscribe` and read their queue."""

    def __init__(
        self,
        *,
        keep: int = KEEP,
        first: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seq = first - 1
        self.clock = clock
        self._kept: deque[tuple[int, str]] = deque(maxlen=keep)
        self._readers: set[Reader] = set()
        self.ended = False

    @property
    def readers(self) -> int:
        return len(self._readers)

    def publish(self, message: dict[str, Any]) -> int:
        """Number, stamp and encode `message`, keep it, and hand it to every reader."""
        self.seq += 1
        message["seq"] = self.seq
        message.setdefault("ts", self.clock())
        text = _encode(message)
        self._kept.append((self.seq, text))
        for reader in list(self._readers):
            if reader.queue.qsize() >= READER_BUFFER:
                # Dropped, not waited for: a slow page must never slow the swarm.
                reader.dropped = True
                self._readers.discard(reader)
                reader.queue.put_nowait(None)
                continue
            reader.queue.put_nowait(text)
            reader.last_seq = self.seq
        return self.seq

    def subscribe(self, after: int | None) -> Reader:
        """A reader with every kept message numbered above `after` (None: all kept)."""
        backlog = [text for seq, text in self._kept if after is None or seq > after]
        reader = Reader(backlog, last_seq=self.seq)
        if self.ended:
            reader.queue.put_nowait(None)
        else:
            self._readers.add(reader)
        return reader

    def unsubscribe(self, reader: Reader) -> None:
        self._readers.discard(reader)

    def end(self, reason: str) -> None:
        """The last message; then every reader's queue ends."""
        if self.ended:
            return
        self.publish({"type": "end", "reason": reason})
        self.ended = True
        for reader in list(self._readers):
            # The end marker's place is kept free (see `Reader.queue`); a reader that is
            # full up gets it in its spare one.
            reader.queue.put_nowait(None)
        self._readers.clear()
