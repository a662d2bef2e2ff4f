"""Checkpoints that survive a crash and rebuild their run: atomic writes, config inside, safe loads."""

from __future__ import annotations

import errno
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avs_lib.atomic import write_atomically
from avs_lib.data.safe_pickle import TORCH_ZIP_MAGIC, zip_unpacked_bytes

# torch.load allocates every entry of a checkpoint at the size its zip directory declares, so a
# small file of deflated zeros could ask for any amount of memory. The largest checkpoint the
# profiles write (paper, thesis: 0.7 GiB of weights and 0.7 GiB of Adam moments) is about 1.4 GiB;
# 4 GiB leaves room for wider models and still refuses a file no run of this project writes.
CHECKPOINT_MAX_BYTES = 4 * 2**30


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
    _check_unpacked_size(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated files and foreign pickles both end here
        raise ValueError(f"{path}: not a readable avs_lib checkpoint ({err})") from err


def _check_unpacked_size(path: Path) -> None:
    """Refuse a checkpoint that would unpack past `CHECKPOINT_MAX_BYTES`, before torch.load allocates it.

    `atomic_torch_save` writes torch's zip format only; the legacy stream (whose storage sizes
    are declared inside a pickle) is refused rather than sized.
    """
    with open(path, "rb") as file:
        if file.read(4) != TORCH_ZIP_MAGIC:
            raise ValueError(f"{path}: not a readable avs_lib checkpoint (expected the zip format torch.save writes)")
        try:
            size = zip_unpacked_bytes(file)
        except Exception as err:  # a torn write leaves no zip directory at the end
            raise ValueError(f"{path}: not a readable avs_lib checkpoint ({err})") from None
    if size > CHECKPOINT_MAX_BYTES:
        raise ValueError(
            f"{path}: unpacks to {size / 2**30:.1f} GiB, more than the {CHECKPOINT_MAX_BYTES // 2**30} GiB "
            "any avs_lib checkpoint takes; refused before loading"
        )
