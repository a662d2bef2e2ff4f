"""Checkpoints that survive a crash and rebuild their run: atomic writes, config inside, safe loads."""

from __future__ import annotations

import errno
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avs_lib.atomic import write_atomically, write_text_atomically


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Save to a temporary file in the same directory, fsync, then rename over `path`.

    A crash (even SIGKILL) leaves either the old file or the new one, never a torn one.
    """
    try:
        write_atomically(path, lambda f: torch.save(obj, f), fsync=True)
    except RuntimeError as err:
        # torch's zip writer reports a failed write (a full disk) as "[enforce fail ...]".
        reason = " ".join(str(err).split())
        raise OSError(errno.EIO, f"could not write the checkpoint ({reason}); is the disk full?", str(path)) from err


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically (results tables, JSON summaries)."""
    write_text_atomically(path, text)


def rng_state() -> dict[str, Any]:
    """Every random number generator a run touches, so a resumed run continues the same streams."""
    state = {
        "python": random.getstate(),
        # the numpy key array travels as a tensor: `weights_only` loads admit tensors, not ndarrays
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state_to_plain(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing pickled code (`weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated files and foreign pickles both end here
        raise ValueError(f"{path}: not a readable avs_lib checkpoint ({err})") from err
