"""Checkpoints that survive a crash and rebuild their run: atomic writes, config inside, safe loads.

A frozen encoder is not stored: the checkpoint names its weight file and that file's sha256 (or the
run's seed for a random start), and `restore_weights` rebuilds it, refusing a file gone or changed.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avs_lib.atomic import write_atomically
from avs_lib.data.safe_pickle import TORCH_ZIP_MAGIC, zip_unpacked_bytes

# torch.load allocates each entry at the size its zip directory declares, so a small file of
# deflated zeros could ask for any memory. 4 GiB is well above any checkpoint the profiles write.
CHECKPOINT_MAX_BYTES = 4 * 2**30


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """A crash (even SIGKILL) leaves either the old file or the new one, never a torn one."""
    try:
        write_atomically(path, lambda f: torch.save(obj, f), fsync=True)
    except RuntimeError as err:
        # torch's zip writer reports a failed write (a full disk) as "[enforce fail ...]".
        reason = " ".join(str(err).split())
        raise OSError(errno.EIO, f"could not write the checkpoint ({reason}); is the disk full?", str(path)) from err


def rng_state() -> dict[str, Any]:
    """Every random number generator a run touches, so a resumed run continues the same streams."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # the numpy key array travels as a tensor: `weights_only` loads admit tensors, not ndarrays
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


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
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated files and foreign pickles both end here
        raise ValueError(f"{path}: not a readable avs_lib checkpoint ({_load_failure(err)})") from None
    _check_layout(path, ckpt)
    return ckpt


def _load_failure(err: Exception) -> str:
    """Why torch.load refused, without its advice to retry with `weights_only=False` (running the file's code)."""
    text = " ".join(str(err).split())
    if "weights_only" not in text:
        return text[:300]
    found = re.search(r"GLOBAL ([\w.]+)", text)
    what = f"the Python object {found.group(1)}" if found else "Python objects"
    return (f"it holds {what} beyond tensors and plain values, and loading that would run code from "
            "the file; refused (avs_lib writes only tensors and plain values)")


def _check_layout(path: Path, ckpt: Any) -> None:
    """A dict holding the run's `config` and `system` weights, as `train` writes; else say what it is."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get("config"), dict) and isinstance(ckpt.get("system"), dict):
        return
    if isinstance(ckpt, torch.Tensor):
        found = f"a bare tensor of shape {list(ckpt.shape)}"
    elif isinstance(ckpt, dict):
        keys = [str(k) for k in ckpt]
        shown = ", ".join(repr(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        tensors = sum(isinstance(v, torch.Tensor) for v in ckpt.values())
        found = (f"a state_dict of {tensors} tensors (keys {shown}), as torchvision or another project writes"
                 if tensors == len(keys) and keys else f"a dict with keys {shown or 'none'}")
    else:
        found = f"a {type(ckpt).__name__}"
    raise ValueError(f"{path}: not an avs_lib checkpoint: found {found}; expected a dict with the run's "
                     "'config' and 'system' weights, as `python -m avs_lib train` writes")


def _check_unpacked_size(path: Path) -> None:
    """Refuse, before torch.load allocates it, a file that unpacks past `CHECKPOINT_MAX_BYTES` (or is not zip)."""
    with open(path, "rb") as file:
        if file.read(4) != TORCH_ZIP_MAGIC:
            raise ValueError(f"{path}: not a readable avs_lib checkpoint (expected the zip format torch.save writes)")
        try:
            size = zip_unpacked_bytes(file)
        except Exception as err:  # a torn write leaves no zip directory at the end
            raise ValueError(f"{path}: not a readable avs_lib checkpoint ({err})") from None
    if size > CHECKPOINT_MAX_BYTES:
        raise ValueError(f"{path}: unpacks to {size / 2**30:.1f} GiB, more than the {CHECKPOINT_MAX_BYTES // 2**30} "
                         "GiB any avs_lib checkpoint takes; refused before loading")


def is_frozen(module: nn.Module | None) -> bool:
    """No parameter takes gradients and it stays in eval mode: its output is a function of its input."""
    return bool(module is not None and getattr(module, "frozen", False)
                and not any(p.requires_grad for p in module.parameters()))


def _frozen_modules(system: nn.Module) -> dict[str, nn.Module]:
    """{state-dict prefix: module} of a system's frozen encoders."""
    parts = {"audio_encoder": getattr(system, "audio_encoder", None), "model.resnet": system.model.resnet}
    return {prefix: module for prefix, module in parts.items() if is_frozen(module)}


def _storages(modules: list[nn.Module]) -> set[int]:
    """Data pointers of the modules' tensors (so a shared crop trunk's aliases are left out too)."""
    return {t.data_ptr() for m in modules for t in m.state_dict().values() if t.numel()}


def _without(state: dict[str, torch.Tensor], storages: set[int]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not (v.numel() and v.data_ptr() in storages)}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Once per (path, size, mtime): a checkpoint is written every epoch."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def weight_entries(system: nn.Module, cfg: Any) -> dict[str, Any]:
    """"system" and "model" (AVS model alone, official key names) without the frozen modules, and "frozen":
    each one's {"file", "sha256"}, or {"random_init_seed"} (built right after seeding with the run's seed)."""
    frozen = _frozen_modules(system)
    storages = _storages(list(frozen.values()))
    references = {}
    for prefix in frozen:
        model = cfg.model
        path = (model.resnet_weights if prefix == "model.resnet"
                else model.vggish_weights if model.audio_encoder == "vggish" else model.audio_weights)
        references[prefix] = ({"file": str(Path(path).resolve()), "sha256": file_sha256(path)} if path
                              else {"random_init_seed": cfg.seed})
    return {"system": _without(system.state_dict(), storages),
            "model": _without(system.model.state_dict(), storages), "frozen": references}


def restore_weights(system: nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint into a system built from its config under its seed: the stored tensors, and
    each frozen module from the weight file it names. Nothing else may be missing."""
    from avs_lib.models.weights import load_weights_file

    references = ckpt.get("frozen", {})
    for prefix, reference in references.items():
        if "file" not in reference:
            continue
        source, sha = Path(reference["file"]), reference["sha256"]
        if not source.is_file():
            raise FileNotFoundError(f"{path}: the frozen {prefix} is not stored in the checkpoint but read from "
                                    f"{source}, which is missing; put that file back (sha256 {sha[:12]}...) to load "
                                    "this run")
        found = file_sha256(source)
        if found != sha:
            raise ValueError(f"{path}: the frozen {prefix} was trained from {source} (sha256 {sha[:12]}...), but that "
                             f"file now has sha256 {found[:12]}...; put the original file back to load this run")
        load_weights_file(system.get_submodule(prefix), source)
    restored = _storages([system.get_submodule(prefix) for prefix in references])
    stored = ckpt["system"]
    missing = [k for k in _without(system.state_dict(), restored) if k not in stored]
    unexpected = [k for k in stored if k not in system.state_dict()]
    if missing or unexpected:
        raise ValueError(f"{path}: the checkpoint does not fit the model its config builds "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    system.load_state_dict(stored, strict=False)
