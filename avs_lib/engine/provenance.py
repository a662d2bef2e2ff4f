"""What made a run (`provenance.json`): commit, versions, device, CPU and kernel settings (another CPU
rounds float32 sums differently; README, "Reproducibility"), command; and the two keys that decide
whether a finished run is reused: the code version (not the commit: a README edit would retrain
everything) and the data fingerprint."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from avs_lib.atomic import write_text_atomically

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROVENANCE_FILE = "provenance.json"
UNKNOWN = "unknown"
_NOT_HASHED = ("report/", "cli.py", "__main__.py")  # read runs; never change what a run computes
# Environment variables that choose the CPU kernels, and so the rounding of float32 results.
KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
                   "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS")


def code_version(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 (first 16 hex digits) over the relative path and bytes of each hashed source file."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if not relative.startswith(_NOT_HASHED):
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(directory: Path = PACKAGE_DIR) -> dict[str, Any]:
    """{"commit", "dirty"} of the checkout holding `directory`; "unknown" outside one or without git."""
    commit = _git(["rev-parse", "HEAD"], directory)
    if not commit:
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    status = _git(["status", "--porcelain", "--untracked-files=no"], directory)
    return {"commit": commit, "dirty": UNKNOWN if status is None else bool(status)}


def _parent_commands(levels: int = 3) -> list[str]:
    """Command lines of the processes above this one (Linux /proc): a run trained from a notebook
    has a kernel's argv, and the `python -m avs_lib report` that started it is one or two levels up."""
    commands, pid = [], Path("/proc/self")
    for _ in range(levels):
        try:
            ppid = int((pid / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid <= 1:
                break
            pid = Path(f"/proc/{ppid}")
            commands.append((pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except (OSError, ValueError, IndexError):
            break
    return commands


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or UNKNOWN


def machine_record() -> dict[str, Any]:
    """The CPU a float32 result was computed on: model, PyTorch's SIMD level, kernel settings, versions."""
    import numpy
    import torch
    import torchvision

    return {"cpu_model": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "kernel_settings": {k: os.environ[k] for k in KERNEL_SETTINGS if k in os.environ},
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "numpy": numpy.__version__}}


def write_provenance(run_dir: str | Path, device: Any, cfg: Any = None) -> dict[str, Any]:
    import torch

    device_text = str(device)
    if getattr(device, "type", None) == "cuda" and torch.cuda.is_available():
        device_text += f" ({torch.cuda.get_device_name(device)})"
    machine = machine_record()
    record = {"code_version": code_version(), "git": git_state(), "versions": machine.pop("versions"),
              "device": device_text, "machine": machine, "command": list(sys.argv),
              "parent_commands": _parent_commands()}
    if cfg is not None:
        record["data"] = data_fingerprint(*data_read_by(cfg))
    write_text_atomically(Path(run_dir) / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
    return record


def data_read_by(cfg: Any) -> tuple[Path, str, str, bool]:
    """(root, dataset, audio kind, crop labels read) of a run config; crop labels count only for a
    run that reads them, so a corrected box retrains the thesis runs and not the baseline's."""
    data = cfg.data
    labels = data.crop_labels is True or (data.crop_labels is None and cfg.loss.crop_losses)
    return Path(data.root), data.dataset, data.audio, bool(labels)


def _stat_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(base, name))
            relative = os.path.relpath(os.path.join(base, name), folder)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def data_fingerprint(root: Path, dataset: str, audio: str, crop_labels: bool) -> dict[str, Any]:
    """What a run reads, cheaply: the metadata CSV's sha256, the sizes and mtimes of the frames, masks
    and audio (reading every frame would cost more than a short run), and the crop-label files'
    contents (edits a person makes) when read. Absent parts are None."""
    from avs_lib.data.avsbench import CROP_LABELS_DIR, LAYOUTS

    layout = LAYOUTS[dataset]
    root, data = Path(root), Path(root) / layout.data_dir
    meta = root / layout.csv_name
    folders = {"frames": "visual_frames", "masks": "gt_masks",
               "audio": "audio_wav" if audio == "wav" else "audio_log_mel"}
    record: dict[str, Any] = {"metadata": _sha16(meta) if meta.is_file() else None}
    record.update({part: _stat_digest(data / name) if (data / name).is_dir() else None
                   for part, name in folders.items()})
    labels = data / CROP_LABELS_DIR
    record["crop_labels"] = ({p.relative_to(labels).as_posix(): _sha16(p) for p in sorted(labels.rglob("*"))
                              if p.is_file()} if crop_labels and labels.is_dir() else None)
    return record
