"""The process backend's wire protocol: the frames that parent and workers exchange.

Tasks travel in batches: the parent sends each worker one frame per call holding the kinds
and payloads of its new tasks (never the `Task` objects, which stay in the parent). Both
sides number a worker's tasks 0, 1, 2, ... in send order, and a frame of results names its
tasks by those numbers, so the parent always knows exactly which tasks a worker had been
sent and not yet reported.

A frame is a 16-byte header (opcode, task count, body length) and a pickled body, written
with one `writev` on a socket pair.

Frames, parent to worker: BATCH (body: the kinds and the payloads of `count` tasks), PING,
BEGIN (body: when the run began, which fault windows count from), STOP (the worker runs
what it was sent, reports, and exits). Worker to parent: READY (body:
its pid and why it could not import its handlers, or None), RESULTS (body: when it was
sent; the first task's number when the tasks are consecutive, else each one's; their start
and finish times, errors or None for all, and values), PONG, MESSAGE (body: the receiver,
the kind and the pickled payload of one message a handler sent, written before the results
of the task that sent it).
"""

from __future__ import annotations

import importlib
import pickle
import struct
import time
from typing import Any

# CLOCK_MONOTONIC, the same in every process: worker timestamps are on the parent's clock.
clock = time.perf_counter

HEADER = struct.Struct("<IIQ")  # opcode, task count, body length in bytes
PICKLE = pickle.HIGHEST_PROTOCOL
READ_SIZE = 1 << 18

# Parent to worker.
BATCH, PING, STOP, BEGIN = 1, 2, 3, 4
# Worker to parent.
READY, RESULTS, PONG, MESSAGE = 11, 12, 13, 14


class FrameReader:
    """Cuts a byte stream into (opcode, count, body) frames; keeps a partial frame."""

    __slots__ = ("_chunks", "_have", "_need")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0

    def feed(self, data: bytes) -> list[tuple[int, int, memoryview]]:
        if self._chunks:
            # Join only once the frame is complete, so a large frame costs linear time.
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        frames: list[tuple[int, int, memoryview]] = []
        view = memoryview(data)
        end = len(data)
        off = 0
        size = HEADER.size
        need = size
        while end - off >= size:
            op, count, length = HEADER.unpack_from(data, off)
            stop = off + size + length
            if stop > end:
                need = size + length
                break
            frames.append((op, count, view[off + size : stop]))
            off = stop
        if off < end:
            self._chunks = [data[off:]]
            self._have = end - off
            self._need = need
        return frames


def import_ref(ref: str) -> Any:
    """The object a `module:qualname` reference names, imported."""
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def error_text(exc: BaseException) -> str:
    """How a failed task's error travels: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"
