"""What made a run: `provenance.json` in each run directory.

It records the git commit (and whether the tree had uncommitted changes), the library versions,
the device, the CPU and its kernel settings, and the command, so a number in the report can be
traced to the code that produced it. The CPU is part of it: the same code and versions on another
CPU round float32 sums differently (other SIMD kernels in PyTorch, MKL and oneDNN), and training
carries that into the trained numbers (README, "Reproducibility").

The *code version* that decides whether a finished run may be reused is not the git commit: a
commit that only edits the README or a notebook would otherwise retrain every run. It is a hash
of the sources that can change what a run computes: every `*.py` of the package except the report
layer (`avs_lib/report/`) and the command line (`cli.py`, `__main__.py`), which only read runs.

The *data fingerprint* (`data_fingerprint`) decides the same for the data a run read: the metadata
CSV and crop-label files by content, the frames, masks and audio by size and modification time
(reading every frame would cost more than a short run).
"""

from __future__ import annotations

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


def code_version(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 (first 16 hex digits) over the relative path and bytes of each hashed source file."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if relative.startswith(_NOT_HASHED):
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(directory: Path = PACKAGE_DIR) -> dict[str, Any]:
    """{"commit", "dirty"} of the checkout holding `directory`; "unknown" outside a git checkout
    (an installed wheel, a tarball) or without git."""
    commit = _git(["rev-parse", "HEAD"], directory)
    if not commit:
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    status = _git(["status", "--porcelain", "--untracked-files=no"], directory)
    return {"commit": commit, "dirty": UNKNOWN if status is None else bool(status)}


def _parent_commands(levels: int = 3) -> list[str]:
    """Command lines of the processes above this one (Linux /proc; empty elsewhere). A run trained
    from a notebook has a kernel's argv; the `python -m avs_lib report ...` that started the
    kernel is one or two levels up."""
    commands, pid = [], Path("/proc/self")
    for _ in range(levels):
        try:
            stat = (pid / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid <= 1:
                break
            pid = Path(f"/proc/{ppid}")
            commands.append((pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except (OSError, ValueError, IndexError):
            break
    return commands


def _versions() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__}


# Environment variables that choose the CPU kernels, and so the rounding of float32 results.
KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
                   "NPY_DISABLE_CPU_FEATURES", "OMP_NUM_THREADS")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def machine_record() -> dict[str, Any]:
    """The CPU a float32 result was computed on: model, the SIMD level PyTorch's kernels use, the
    kernel-choosing environment variables that are set, and the library versions."""
    import torch

    return {"cpu_model": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "kernel_settings": {k: os.environ[k] for k in KERNEL_SETTINGS if k in os.environ},
            "versions": _versions()}


def collect_provenance(device: Any) -> dict[str, Any]:
    """The provenance record of a run about to train on `device` (a torch.device or its name)."""
    import torch

    device_text = str(device)
    if getattr(device, "type", None) == "cuda" and torch.cuda.is_available():
        device_text += f" ({torch.cuda.get_device_name(device)})"
    machine = machine_record()
    return {"code_version": code_version(), "git": git_state(), "versions": machine.pop("versions"),
            "device": device_text, "machine": machine, "command": list(sys.argv),
            "parent_commands": _parent_commands()}


def write_provenance(run_dir: str | Path, device: Any, cfg: Any = None) -> dict[str, Any]:
    """Write `run_dir/provenance.json` atomically, with the data fingerprint of the run `cfg`
    (an `ExperimentConfig`) when given; returns what was written."""
    record = collect_provenance(device)
    if cfg is not None:
        record["data"] = data_fingerprint(*data_read_by(cfg))
    write_text_atomically(Path(run_dir) / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")
    return record


def read_provenance(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's provenance record, or None when it has none (trained before provenance existed)
    or the file is not valid JSON."""
    path = Path(run_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------- the data a run read


def data_read_by(cfg: Any) -> tuple[Path, str, str, bool]:
    """(root, dataset, audio folder kind, crop labels read) of a run config: what its fingerprint
    covers. Crop labels count only for a run that reads them, so a corrected box retrains the
    thesis runs and not the baseline's."""
    data = cfg.data
    labels = data.crop_labels is True or (data.crop_labels is None and cfg.loss.crop_losses)
    return Path(data.root), data.dataset, data.audio, bool(labels)


def _stat_digest(folder: Path) -> str:
    """sha256 (16 hex digits) over (relative path, size, mtime) of every file under `folder`."""
    digest = hashlib.sha256()
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(base, name))
            relative = os.path.relpath(os.path.join(base, name), folder)
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _content_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256 (16 hex digits)} of every file under `folder` (the crop labels:
    small text files a person edits, so an edit keeping size and mtime still counts)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(folder.rglob("*")) if p.is_file()}


def data_fingerprint(root: Path, dataset: str, audio: str, crop_labels: bool) -> dict[str, Any]:
    """What a run of `dataset` at `root` reads, cheaply: the metadata CSV's sha256, a digest of
    the sizes and mtimes of the frames, masks and audio (`audio`: "wav" or "pkl"), and the
    crop-label files' content hashes when the run reads them. Absent parts are None."""
    from avs_lib.data.avsbench import CROP_LABELS_DIR, LAYOUTS

    layout = LAYOUTS["ms3" if dataset == "ms3" else "s4"]
    root, data = Path(root), Path(root) / layout.data_dir
    meta = root / layout.csv_name
    folders = {"frames": "visual_frames", "masks": "gt_masks",
               "audio": "audio_wav" if audio == "wav" else "audio_log_mel"}
    record: dict[str, Any] = {"metadata": hashlib.sha256(meta.read_bytes()).hexdigest()[:16] if meta.is_file() else None}
    record.update({part: _stat_digest(data / name) if (data / name).is_dir() else None
                   for part, name in folders.items()})
    labels = data / CROP_LABELS_DIR
    record["crop_labels"] = _content_hashes(labels) if crop_labels and labels.is_dir() else None
    return record


def data_change(saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """Why the data differs from a run's recorded fingerprint, in a few words; None when the same."""
    if saved is None:
        return "no data fingerprint recorded (trained before runs recorded one)"
    for part, what in (("metadata", "metadata CSV"), ("frames", "frames"), ("masks", "masks"),
                       ("audio", "audio files")):
        if saved.get(part) != now.get(part):
            return f"{what} changed" + ("" if part == "metadata" else " (sizes or modification times)")
    old, new = saved.get("crop_labels") or {}, now.get("crop_labels") or {}
    changed = sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
    if changed:
        more = f", and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"crop labels changed ({changed[0]}{more})"
    return None


__all__ = ["KERNEL_SETTINGS", "PROVENANCE_FILE", "code_version", "collect_provenance", "data_change",
           "data_fingerprint", "data_read_by", "git_state", "machine_record", "read_provenance", "write_provenance"]
