"""Atomic file writes: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# A temporary file of a target untouched for this long belongs to a write that was killed
# (a live write keeps appending, so its modification time stays recent).
STALE_TEMPORARY_SECONDS = 600.0


def _temporary_prefix(path: Path) -> str:
    """``.{name}.`` -- every temporary of `path` starts so, and nothing else beside it does."""
    return f".{path.name}."


def _owner() -> str:
    """Host and process of this write, put in the temporary's name to tell a dead writer."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _writer_is_dead(temp: Path, prefix: str) -> bool:
    """True when the temporary names a process of this host that no longer runs."""
    owner = temp.name[len(prefix) : -len(".tmp")].rsplit(".", 1)[0]  # host-pid.random -> host-pid
    host, _, pid = owner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's writer (a shared folder), or an older name: age decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def remove_stale_temporaries(path: str | Path, older_than_s: float = STALE_TEMPORARY_SECONDS) -> list[Path]:
    """Delete the leftovers of killed writes of `path` (``.{name}.*.tmp`` beside it); return them.

    A leftover is stale when the process that wrote it is gone (same host), or when it has not
    been touched for `older_than_s` seconds.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix, cutoff = _temporary_prefix(path), time.time() - older_than_s
    removed = []
    for temp in path.parent.glob(f"{prefix}*.tmp"):
        try:
            if temp.is_file() and (_writer_is_dead(temp, prefix) or temp.stat().st_mtime < cutoff):
                temp.unlink()
                removed.append(temp)
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None], fsync: bool = False) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`.

    The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the
    umask), not the 0600 of ``mkstemp``, so a group sharing a run or dataset folder can read
    it. Temporaries left by an earlier write of the same target that was killed are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_temporary_prefix(path)}{_owner()}.", suffix=".tmp"
    )
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as file:
            write(file)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp_name, path)
    except OSError as err:
        Path(temp_name).unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # a failed write on an open file (a full disk) names no file
            raise OSError(err.errno, f"cannot write the file ({err.strerror or err})", str(path)) from err
        raise
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    write_atomically(path, lambda f: f.write(data))


def write_text_atomically(path: str | Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))
