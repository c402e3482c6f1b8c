"""The frames parent and workers exchange: a byte stream cut anywhere comes back whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarmperf.runtime.process.protocol import HEADER, FrameReader

frames = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=64)),
    max_size=8,
)


@given(frames, st.lists(st.integers(1, 100), max_size=40))
def test_frames_survive_any_cut_of_the_stream(
    sent: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(HEADER.pack(op, n, len(body)) + body for op, n, body in sent)
    reader = FrameReader()
    got: list[tuple[int, int, bytes]] = []
    offset = 0
    for size in [*cuts, len(stream)]:
        chunk = stream[offset : offset + size]
        offset += len(chunk)
        if chunk:
            got += [(op, n, bytes(body)) for op, n, body in reader.feed(chunk)]
    assert got == sent
