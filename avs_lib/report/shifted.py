"""Does listening survive a shift? Every trained model scored, without retraining, on harder test
splits made by the same generator (several looks per class, colours shared across classes,
background noise at 10 and 0 dB SNR, clips whose sounding object is off-screen).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
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


def _evaluate_one(run_dir: str, name: str, root: str, device: str, threads: int) -> dict:
    """One (run, shifted split) evaluation, reused while newer than best.pt (runs in a worker)."""
    import torch

    from avs_lib.engine.evaluate import evaluate
    from avs_lib.engine.features import feature_cache_folder

    torch.set_num_threads(threads)
    out = Path(run_dir) / name
    if _fresh(out, Path(run_dir)):
        return json.loads((out / "metrics.json").read_text())
    # Every run of a grid has the same frozen encoders: their outputs on a shifted split are
    # computed once, beside the runs, and read by all (the feature cache of the training runs).
    cache = feature_cache_folder(None, str(Path(run_dir).parent))
    return evaluate(run_dir, split="test", device=device, out_dir=out, data_root=root, feature_cache=cache)


def evaluate_on_shifted(runs_dir: str | Path, pairs: list[tuple[str, int]], roots: dict[str, Path],
                        device: str = "auto", jobs: int = 1) -> pd.DataFrame:
    """Score each run's best checkpoint on each shifted root; one row per (run, split).

    Results go to `{run_dir}/{split name}/` (metrics.json, per-clip tables) and are reused while
    they are newer than the run's best.pt. Listening and following rates count only clips whose
    sounding object is on screen; `miou_onscreen` / `miou_offscreen` split the mIoU the same way
    (an off-screen clip's target is empty, so its IoU is the share of the frame left empty).
    `jobs` > 1 evaluates that many at once in worker processes (CPU), cpu_count // jobs threads each.
    """
    tasks = [(str(Path(runs_dir) / f"{m}_seed{s}"), name, str(root), m, s)
             for m, s in pairs for name, root in roots.items()]
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    if jobs > 1 and len(tasks) > 1:
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_evaluate_one, run, name, root, device, threads) for run, name, root, _, _ in tasks]
            metrics = [f.result() for f in tqdm(futures, desc="shifted test splits", unit="eval")]
    else:
        metrics = [_evaluate_one(run, name, root, device, threads)
                   for run, name, root, _, _ in tqdm(tasks, desc="shifted test splits", unit="eval")]
    on_screen = {name: sounding_on_screen(root, "test") for name, root in roots.items()}
    rows = []
    for (run, name, _, method, seed), values in zip(tasks, metrics, strict=True):
        clips = pd.read_csv(Path(run) / name / "per_clip.csv")
        visible = clips["name"].map(on_screen[name]).astype(bool)
        row = {"method": method, "seed": seed, "split": name,
               **{k: v for k, v in values.items() if isinstance(v, int | float)}}
        row["miou_onscreen"] = _frame_weighted(clips[visible])
        row["miou_offscreen"] = _frame_weighted(clips[~visible])
        rows.append(row)
    return pd.DataFrame(rows)


def _frame_weighted(clips: pd.DataFrame) -> float:
    """mIoU over the frames of these clips (per-clip IoUs weighted by their frame counts)."""
    if clips.empty:
        return float("nan")
    return float((clips["iou"] * clips["n_frames"]).sum() / clips["n_frames"].sum())


__all__ = ["SHIFTED_FOLDER", "evaluate_on_shifted", "shifted_roots"]
