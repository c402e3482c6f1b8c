"""The dashboards' feed: numbered messages, resume after a seq, slow readers dropped."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st

from swarmperf.service.feed import Feed, Reader


def drain(reader: Reader) -> list[dict[str, object]]:
    got = [json.loads(text) for text in reader.backlog]
    while not reader.queue.empty():
        text = reader.queue.get_nowait()
        if text is None:
            break
        got.append(json.loads(text))
    return got


@given(before=st.integers(0, 30), after_cut=st.integers(0, 40), later=st.integers(0, 30))
def test_a_reader_resuming_after_a_seq_misses_nothing_and_repeats_nothing(
    before: int, after_cut: int, later: int
) -> None:
    async def scenario() -> None:
        feed = Feed(keep=1000, clock=lambda: 1.0)
        for i in range(before):
            feed.publish({"type": "metrics", "n": i})
        cut = min(after_cut, feed.seq)
        reader = feed.subscribe(cut)
        for i in range(later):
            feed.publish({"type": "event", "n": i})
        seqs = [m["seq"] for m in drain(reader)]
        assert seqs == list(range(cut + 1, before + later + 1))

    asyncio.run(scenario())


def test_a_slow_reader_is_dropped_and_the_others_keep_everything() -> None:
    async def scenario() -> None:
        feed = Feed()
        slow, fast = feed.subscribe(None), feed.subscribe(None)
        for i in range(fast.queue.maxsize + 5):
            feed.publish({"type": "metrics", "n": i})
            if not fast.queue.empty():
                fast.queue.get_nowait()  # the fast reader keeps up; the slow one never reads
        assert slow.dropped
        assert feed.readers == 1
        assert not fast.dropped
        last = None
        while not slow.queue.empty():
            last = slow.queue.get_nowait()
        assert last is None  # its queue ends, so its connection closes with a reason

    asyncio.run(scenario())


def test_the_end_reaches_every_reader_and_later_ones_too() -> None:
    async def scenario() -> None:
        feed = Feed()
        reader = feed.subscribe(None)
        feed.publish({"type": "metrics"})
        feed.end("stopped")
        messages = drain(reader)
        assert [m["type"] for m in messages] == ["metrics", "end"]
        late = feed.subscribe(1)
        assert [json.loads(t)["type"] for t in late.backlog] == ["end"]
        assert late.queue.get_nowait() is None

    asyncio.run(scenario())


def test_only_the_last_messages_are_kept() -> None:
    feed = Feed(keep=3)
    for i in range(10):
        feed.publish({"n": i})
    assert [json.loads(t)["seq"] for t in feed.subscribe(None).backlog] == [8, 9, 10]
