"""Read AVSBench's ``audio_log_mel/*.pkl`` files (``pickle.dump(tensor)``) without letting them run code,
as a plain ``pickle.load`` would. A pickled CPU tensor (torch 2.14, protocols 0-5) names only the four
globals of ``_ADMITTED``; each is replaced by a checked stand-in, and any other global is refused when the
file names it, before it can be called. ``torch.load`` also allocates every storage at the size the bytes
declare before reading it, so a small file (deflated zeros in a zip entry, a legacy stream naming a huge
storage) can ask for gigabytes: the declared sizes are totalled first and a file over ``LOG_MEL_MAX_BYTES``
refused.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import BinaryIO

import torch
import torch._utils

from avs_lib.data.errors import DataFormatError

# One clip's log-mel is [5, 1, 96, 64] float32, 120 KiB (the official pickles are a few hundred kB):
# 64 MiB is 500 times that, so only a file that would inflate is refused, never a real log-mel.
LOG_MEL_MAX_BYTES = 64 * 2**20
TORCH_ZIP_MAGIC = b"PK\x03\x04"  # how torch.load tells its zip format from the legacy stream
_WIDEST_ELEMENT = 16  # bytes of complex128: a legacy storage declares elements, not bytes


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a global that a pickled tensor does not need."""


class TooLarge(pickle.UnpicklingError):
    """The storage bytes declare more memory than a log-mel can take."""


def zip_unpacked_bytes(file: BinaryIO) -> int:
    """Bytes a zip's entries unpack to, as its directory declares: torch.load allocates each at that size."""
    with zipfile.ZipFile(file) as archive:
        return sum(info.file_size for info in archive.infolist())


class _Inert:
    """What a legacy stream's globals become while sizes are read: takes any call, item or state; no-op."""

    def __init__(self, *args, **kwargs) -> None: ...
    def __setitem__(self, key, value) -> None: ...
    def __setstate__(self, state) -> None: ...
    def append(self, item) -> None: ...
    def extend(self, items) -> None: ...


class _StorageSizes(pickle.Unpickler):
    """Follows a legacy torch.save stream only to total its storages, refusing past LOG_MEL_MAX_BYTES
    at the storage that crosses it (torch.load allocates each as it meets it, in the same order)."""

    declared = 0  # bytes so far

    def find_class(self, module: str, name: str):
        return _Inert

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, number of elements, view metadata); any other
        # id allocates nothing, and the reading goes on to the storages after it.
        if isinstance(pid, tuple) and len(pid) >= 5 and isinstance(pid[4], int):
            self.declared += abs(pid[4]) * _WIDEST_ELEMENT
            if self.declared > LOG_MEL_MAX_BYTES:
                raise TooLarge(_too_large(self.declared))
        return _Inert()


def _too_large(size: int) -> str:
    return (f"its storage asks for up to {size / 2**20:.1f} MiB, more than the {LOG_MEL_MAX_BYTES // 2**20} MiB "
            "bound for a log-mel (one clip's is 120 KiB); refused before loading")


def _check_declared_size(data: bytes) -> None:
    """Refuse storage bytes that would make torch.load allocate more than a log-mel can take."""
    if data[:4] == TORCH_ZIP_MAGIC:
        try:
            size = zip_unpacked_bytes(io.BytesIO(data))
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise pickle.UnpicklingError(f"storage bytes are not a readable zip ({error})") from None
        if size > LOG_MEL_MAX_BYTES:
            raise TooLarge(_too_large(size))
        return
    stream = io.BytesIO(data)
    try:
        for _ in range(4):  # magic number, protocol version, system info, then the storage itself
            _StorageSizes(stream).load()
    except TooLarge:
        raise
    except Exception:
        pass  # not a stream this reading can follow: torch.load's weights-only checks decide


def _storage_from_bytes(data: bytes):
    """Stand-in for ``torch.storage._load_from_bytes``, whose ``torch.load(weights_only=False)`` would run any
    pickle hidden in the storage bytes: admits only weights, of a bounded size."""
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"storage payload is {type(data).__name__}, expected bytes")
    _check_declared_size(data)
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message suggests weights_only=False, the very thing to avoid: keep only the name.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        name = found.group(1) if found else "something other than weights"
        raise RefusedGlobal(f"{name} (inside the storage bytes)") from None


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` that refuses saved backward hooks."""
    if backward_hooks:
        raise pickle.UnpicklingError("tensor carries backward hooks, expected none")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           collections.OrderedDict(), metadata)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: protocols 0-2 store bytes as latin-1 text."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}, expected latin1")
    return text.encode("latin1")


_ADMITTED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,  # the (always empty) backward-hooks dict
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
    try:  # walk the opcodes first: a truncated or garbled file is refused before anything runs
        collections.deque(pickletools.genops(data), maxlen=0)
    except Exception as error:
        raise DataFormatError(path, f"not a complete pickle ({error}); expected a pickled tensor") from None
    try:
        result = _TensorUnpickler(io.BytesIO(data)).load()
    except TooLarge as error:
        raise DataFormatError(path, str(error)) from None
    except RefusedGlobal as refused:
        raise DataFormatError(path, f"refused global {refused}: a pickled tensor needs only "
                                    f"{sorted('.'.join(k) for k in _ADMITTED)}") from None
    except Exception as error:
        raise DataFormatError(path, f"could not unpickle a tensor ({type(error).__name__}: {error})") from None
    if not isinstance(result, torch.Tensor):
        raise DataFormatError(path, f"holds a {type(result).__name__}, expected a torch.Tensor")
    return result
