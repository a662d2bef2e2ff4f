"""Read AVSBench's ``audio_log_mel/*.pkl`` files without letting them run code.

Those files were written by ``pickle.dump(tensor)``. Unpickling calls whatever functions the
file names, so a plain ``pickle.load`` of a downloaded file can run anything. A pickled CPU
tensor (checked with torch 2.14, pickle protocols 0-5) names only these globals:

- ``torch._utils._rebuild_tensor_v2`` -- builds the tensor view over a storage;
- ``torch.storage._load_from_bytes`` -- rebuilds the storage from ``torch.save`` bytes, but
  with ``torch.load(weights_only=False)``, which would run any pickle hidden in those bytes;
- ``collections.OrderedDict`` -- the (always empty) backward-hooks dict;
- ``_codecs.encode`` -- protocols 0-2 only, to turn the storage bytes back from latin-1 text.

Each is replaced by a checked stand-in (storage bytes go through ``torch.load(weights_only=True)``);
any other global is refused when the file names it, before it can be called.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import re
from pathlib import Path

import torch
import torch._utils

from avs_lib.data.errors import DataFormatError


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a global that a pickled tensor does not need."""


def _storage_from_bytes(data: bytes):
    """Stand-in for ``torch.storage._load_from_bytes`` that admits only weights."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"storage payload is {type(data).__name__}, expected bytes")
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message suggests weights_only=False, the very thing to avoid: keep only the name.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        name = found.group(1) if found else "something other than weights"
        raise RefusedGlobal(f"{name} (inside the storage bytes)") from None


def _rebuild_tensor(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
):
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` that refuses saved backward hooks."""
    if backward_hooks:
        raise pickle.UnpicklingError("tensor carries backward hooks, expected none")
    return torch._utils._rebuild_tensor_v2(
        storage, storage_offset, size, stride, requires_grad, collections.OrderedDict(), metadata
    )


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: protocols 0-2 store bytes as latin-1 text."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}, expected latin1")
    return text.encode("latin1")


_ADMITTED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
}


class _TensorUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid):
        # plain pickle.dump(tensor) has no persistent ids (torch.save's format does).
        raise pickle.UnpicklingError(f"persistent id {pid!r}, expected none in a pickled tensor")


def load_tensor_pickle(path: str | Path) -> torch.Tensor:
    """Load a ``pickle.dump(tensor)`` file, refusing anything but a plain CPU tensor."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickled tensor not found: {path}")
    data = path.read_bytes()
    try:
        # Walk the opcodes first: a truncated or garbled file is refused before anything runs.
        for _ in pickletools.genops(data):
            pass
    except Exception as error:
        raise DataFormatError(
            path, f"not a complete pickle ({error}); expected a pickled tensor"
        ) from None
    try:
        result = _TensorUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as refused:
        raise DataFormatError(
            path,
            f"refused global {refused}: a pickled tensor needs only {sorted('.'.join(k) for k in _ADMITTED)}",
        ) from None
    except Exception as error:
        raise DataFormatError(
            path, f"could not unpickle a tensor ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(result, torch.Tensor):
        raise DataFormatError(path, f"holds a {type(result).__name__}, expected a torch.Tensor")
    return result
