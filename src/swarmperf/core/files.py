"""Writing files whole or not at all: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, durable: bool = False, mode: int | None = None) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename.

    An existing file keeps its permissions (a file its owner made private stays private).
    A new file gets the permissions a plain `open(path, "w")` would give (the process umask
    applied to 0o666), not the private 0o600 of a temporary file. `durable` also fsyncs
    the data before the rename, for files that must survive a power cut. `mode` sets the
    permissions outright (0o600 for a secret), whatever the file had.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
