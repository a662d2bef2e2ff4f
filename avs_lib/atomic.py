"""Atomic file writes: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# A temporary of a target untouched for this long belongs to a write that was killed (a live
# write keeps appending, so its modification time stays recent); the next write removes it.
STALE_TEMPORARY_SECONDS = 600.0


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None], fsync: bool = False) -> None:
    """Call `write(file)` on a temporary ``.{name}.*.tmp`` beside `path`, then rename it over `path`. The file
    gets ``open(path, "w")``'s mode (0666 less umask), not ``mkstemp``'s 0600: a group sharing it can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # another process may clean it first
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0o022)  # reading the umask means setting it, so it is set straight back
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as file:
            write(file)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as err:
        Path(temp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            # a failed write on an open file (a full disk) names no file
            raise OSError(err.errno, f"cannot write the file ({err.strerror or err})", str(path)) from err
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    write_atomically(path, lambda f: f.write(data))


def write_text_atomically(path: str | Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))
