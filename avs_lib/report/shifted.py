"""Does listening survive a shift? Every trained model scored, without retraining, on harder test
splits from the same generator: one factor at a time, then all together."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from avs_lib.data.sidecar import sounding_on_screen
from avs_lib.datatools import synth
from avs_lib.datatools.profiles import get_profile
from avs_lib.datatools.synth import ShiftParams

SHIFTED_FOLDER = "shifted"  # inside the clean dataset's root, beside pretrained/
DEVELOPMENT_TEST = "devtest"  # the test split the recipe was chosen with, when a fresh one replaced it
# One factor per split, then the four together at each noise level (folder names: `shifted_test_name`).
SHIFTS = (ShiftParams(looks_per_class=3), ShiftParams(shared_colours=True), ShiftParams(snr_db=10.0),
          ShiftParams(snr_db=0.0), ShiftParams(offscreen_fraction=0.2),
          ShiftParams(3, True, 10.0, 0.2), ShiftParams(3, True, 0.0, 0.2))


def shifted_roots(profile: str, data_root: str | Path, progress: bool = False) -> dict[str, Path]:
    """The shifted test roots of a synthetic profile's dataset (made once; {} on real data), paired
    clip by clip with the clean test split."""
    spec = get_profile(profile).synthetic
    base = synth.profile_params(spec) if spec is not None else None
    if base is None or base.shift is not None:  # real data, or a harder benchmark already
        return {}
    parent = Path(data_root) / SHIFTED_FOLDER
    roots = {synth.shifted_test_name(shift): parent / synth.shifted_test_name(shift) for shift in SHIFTS}
    for shift, root in zip(SHIFTS, roots.values(), strict=True):
        synth.ensure_shifted_test(root, base, shift, progress=progress)
    return roots


def development_test_roots(profile: str, data_root: str | Path, progress: bool = False) -> dict[str, Path]:
    """{"devtest": root}, the old test split the recipe was chosen on, when the profile's test split
    is a fresh one (`SyntheticData.test_seed`); else {}."""
    spec = get_profile(profile).synthetic
    if spec is None or spec.test_seed is None or synth.profile_params(spec).shift is not None:
        return {}
    root = Path(data_root) / DEVELOPMENT_TEST
    synth.ensure_development_test(root, synth.profile_params(spec), progress=progress)
    return {DEVELOPMENT_TEST: root}


def _evaluate_one(run_dir: str, name: str, root: str, device: str, threads: int) -> dict:
    """One (run, shifted split) evaluation, reused while newer than best.pt (runs in a worker)."""
    import torch

    from avs_lib.engine.evaluate import evaluate
    from avs_lib.engine.features import feature_cache_folder

    torch.set_num_threads(threads)
    out = Path(run_dir) / name
    metrics = out / "metrics.json"
    if metrics.is_file() and metrics.stat().st_mtime >= (Path(run_dir) / "best.pt").stat().st_mtime:
        return json.loads(metrics.read_text())
    # Every run of a grid has the same frozen encoders: their outputs on a shifted split are
    # computed once, beside the runs, and read by all (the feature cache of the training runs).
    cache = feature_cache_folder(None, str(Path(run_dir).parent))
    return evaluate(run_dir, split="test", device=device, out_dir=out, data_root=root, feature_cache=cache)


def evaluate_on_shifted(runs_dir: str | Path, pairs: list[tuple[str, int]], roots: dict[str, Path],
                        device: str = "auto", jobs: int = 1) -> pd.DataFrame:
    """Score each run's best checkpoint on each shifted root, `jobs` at a time; one row per (run,
    split), with the mIoU split by whether the sounding object is on screen."""
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
        rows.append({"method": method, "seed": seed, "split": name,
                     **{k: v for k, v in values.items() if isinstance(v, int | float)},
                     "miou_onscreen": _frame_weighted(clips[visible]),
                     "miou_offscreen": _frame_weighted(clips[~visible])})
    return pd.DataFrame(rows)


SHOWN = ["miou", "miou_onscreen", "listening_rate", "following_rate"]  # what a shifted split is read by


def split_table(clean: pd.DataFrame, on_shifted: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (split, method): the clean test split first, then each shifted split."""
    clean = clean.assign(split="clean").rename(columns=lambda c: c.removeprefix("test_"))
    clean["miou_onscreen"] = clean["miou"]
    both = pd.concat([clean, on_shifted], ignore_index=True)
    return both.groupby(["split", "method"], sort=False)[SHOWN].mean()


def long_rows(on_shifted: pd.DataFrame | None) -> pd.DataFrame | None:
    """`evaluate_on_shifted`'s numbers as results.csv rows (method, seed, split, metric, value)."""
    if on_shifted is None:
        return None
    return on_shifted.melt(id_vars=["method", "seed", "split"], value_vars=SHOWN, var_name="metric")


def _frame_weighted(clips: pd.DataFrame) -> float:
    """mIoU over the frames of these clips (per-clip IoUs weighted by their frame counts)."""
    if clips.empty:
        return float("nan")
    return float((clips["iou"] * clips["n_frames"]).sum() / clips["n_frames"].sum())
