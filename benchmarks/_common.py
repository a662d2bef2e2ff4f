"""What the benchmark scripts share: memory readings, child processes, peak FLOP rates, JSON.

The scripts run as `python benchmarks/NAME.py`, so this module is imported as `_common` (the
script's folder is first on sys.path). Memory is read from /proc (Linux); elsewhere the readings
fall back to the lifetime peak or None.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, matched against
# torch.cuda.get_device_name in this order (the first substring found wins).
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
)


def peak_bf16_flops(device_name: str) -> float | None:
    """The card's dense bf16 peak in FLOP/s, or None for a card not in PEAK_BF16_FLOPS."""
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops
    return None


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def status_kib(field: str) -> int | None:
    """A /proc/self/status memory field (VmRSS, VmHWM) in KiB, or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """The peak resident memory of this process from `start()` on, in MiB.

    With /proc, the peak (VmHWM) is reset at `start()` and `base_mb` is the resident size then,
    so `peak_mb - base_mb` is what the code in between needed on top. Without /proc the lifetime
    peak (ru_maxrss) is used, which may hide a pass smaller than an earlier transient.
    """

    def __init__(self) -> None:
        self.base_mb = 0.0
        self.measure = "none"

    def start(self) -> None:
        if reset_peak_rss():
            self.base_mb, self.measure = status_kib("VmRSS") / 1024, "VmHWM after reset"
        else:
            import resource

            self.base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.measure = "ru_maxrss"

    @property
    def peak_mb(self) -> float:
        if self.measure == "VmHWM after reset":
            return status_kib("VmHWM") / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str | Path, args: list[str], timeout_s: float | None = None) -> dict[str, Any]:
    """Run `python script args...` and return the JSON object on its last stdout line.

    Children run with MALLOC_MMAP_THRESHOLD_=1048576, so glibc returns every freed block of
    >= 1 MiB to the system and the peak RSS is the peak of live tensors, not of blocks the
    allocator kept after earlier passes (this costs some page faults, so times are a little
    higher than with the default allocator). A failed child gives {"skipped": reason}.
    """
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "1048576"),
    }
    cmd = [sys.executable, str(script), *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env=env, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"subprocess ran past {timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {"skipped": f"subprocess failed ({proc.returncode}): {proc.stderr[-800:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_json(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write `result` as indented JSON to `path` (folders made), if a path is given."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
