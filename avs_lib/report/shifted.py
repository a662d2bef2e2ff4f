"""Does listening survive a shift? Every trained model scored, without retraining, on harder test
splits made by the same generator (several looks per class, colours shared across classes,
background noise at 10 and 0 dB SNR, clips whose sounding object is off-screen).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from avs_lib.config import get_profile
from avs_lib.data.sidecar import sounding_on_screen
from avs_lib.data.synth import ensure_shifted_tests, synth_params

SHIFTED_FOLDER = "shifted"  # inside the clean dataset's root, beside pretrained/


def shifted_roots(profile: str, data_root: str | Path, progress: bool = False) -> dict[str, Path]:
    """The shifted test roots of a synthetic profile's dataset (made once, then reused); empty for
    a profile on real data. They share clip names, classes and swap partners with the clean test
    split, so clean and shifted scores pair clip by clip."""
    spec = get_profile(profile).synthetic
    if spec is None:
        return {}
    parent = Path(data_root) / SHIFTED_FOLDER
    base = synth_params(spec.videos_per_split, image_size=spec.image_size, num_classes=spec.num_classes)
    made = ensure_shifted_tests(parent, base, progress=progress)
    return {name: parent / name for name in made}


def _fresh(out: Path, run_dir: Path) -> bool:
    metrics = out / "metrics.json"
    return metrics.is_file() and metrics.stat().st_mtime >= (run_dir / "best.pt").stat().st_mtime


def evaluate_on_shifted(runs_dir: str | Path, pairs: list[tuple[str, int]], roots: dict[str, Path],
                        device: str = "auto") -> pd.DataFrame:
    """Score each run's best checkpoint on each shifted root; one row per (run, split).

    Results go to `{run_dir}/{split name}/` (metrics.json, per-clip tables) and are reused while
    they are newer than the run's best.pt. Listening and following rates count only clips whose
    sounding object is on screen; `miou_onscreen` / `miou_offscreen` split the mIoU the same way
    (an off-screen clip's target is empty, so its IoU is the share of the frame left empty).
    """
    from avs_lib.engine.evaluate import evaluate

    rows = []
    jobs = [(m, s, name, root) for m, s in pairs for name, root in roots.items()]
    for method, seed, name, root in tqdm(jobs, desc="shifted test splits", unit="eval"):
        run_dir = Path(runs_dir) / f"{method}_seed{seed}"
        out = run_dir / name
        if _fresh(out, run_dir):
            metrics = json.loads((out / "metrics.json").read_text())
        else:
            metrics = evaluate(run_dir, split="test", device=device, out_dir=out, data_root=str(root))
        clips = pd.read_csv(out / "per_clip.csv")
        on_screen = clips["name"].map(sounding_on_screen(root, "test"))
        row = {"method": method, "seed": seed, "split": name,
               **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
        row["miou_onscreen"] = _frame_weighted(clips[on_screen])
        row["miou_offscreen"] = _frame_weighted(clips[~on_screen])
        rows.append(row)
    return pd.DataFrame(rows)


def _frame_weighted(clips: pd.DataFrame) -> float:
    """mIoU over the frames of these clips (per-clip IoUs weighted by their frame counts)."""
    if clips.empty:
        return float("nan")
    return float((clips["iou"] * clips["n_frames"]).sum() / clips["n_frames"].sum())


__all__ = ["SHIFTED_FOLDER", "evaluate_on_shifted", "shifted_roots"]
