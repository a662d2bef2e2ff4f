"""Looking at the data and at what trained runs predict: the plain data behind the notebooks'
figures (`avs_lib.report.viz` draws them) and the callables of the mask browser.

Everything here returns numpy arrays, lists and DataFrames; nothing draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from avs_lib.config import ExperimentConfig, config_from_dict
from avs_lib.data.audio import read_wav
from avs_lib.data.avsbench import AVSBenchMS3, AVSBenchS4, mask_values, open_image
from avs_lib.data.categories import SPLITS
from avs_lib.engine.datasets import build_dataset

# ---------------------------------------------------------------- the data


MS3_CATEGORY = "(MS3: no classes)"  # MS3's metadata has no category column


def open_split(root: str | Path, split: str, dataset: str = "s4", image_size: int = 224):
    """One split of an S4 or MS3 tree without crop labels (the data notebook looks, never trains)."""
    if dataset == "ms3":
        return AVSBenchMS3(root, split, image_size=image_size)
    if dataset != "s4":
        raise ValueError(f"dataset must be 's4' or 'ms3', got {dataset!r}")
    return AVSBenchS4(root, split, image_size=image_size, crop_labels=False)


def mask_areas(root: str | Path, splits: Sequence[str] = SPLITS, dataset: str = "s4") -> pd.DataFrame:
    """Share of the frame each ground-truth mask covers: one row per mask file
    (split, category, name, frame (1-based), area_fraction)."""
    rows = []
    for split in splits:
        data = open_split(root, split, dataset)
        for index, clip in enumerate(data.clips):
            paths = data.paths(index)
            for k, path in zip(paths.mask_frames, paths.masks, strict=True):
                mask = mask_values(open_image(path, f"mask {k + 1} of clip {clip.name!r}")) != 0
                rows.append({"split": split, "category": clip.category or MS3_CATEGORY, "name": clip.name,
                             "frame": k + 1, "area_fraction": float(mask.mean())})
    return pd.DataFrame(rows, columns=["split", "category", "name", "frame", "area_fraction"])


def clip_table(root: str | Path, dataset: str = "s4") -> pd.DataFrame:
    """The metadata CSV as a table: one row per clip (name, category, split; S4 also start).
    MS3 clips, which have no class, get the category "(MS3: no classes)"."""
    if dataset == "ms3":
        path = Path(root) / "ms3_meta_data.csv"
        if not path.is_file():
            raise FileNotFoundError(f"MS3 metadata not found: {path}")
        table = pd.read_csv(path).rename(columns={"video_id": "name"})
        table["category"] = MS3_CATEGORY
        return table
    path = Path(root) / "s4_meta_data.csv"
    if not path.is_file():
        raise FileNotFoundError(f"S4 metadata not found: {path}")
    return pd.read_csv(path)


def first_of_categories(dataset, count: int) -> list[int]:
    """Indices of the first clip of each of the first `count` categories met in `dataset`."""
    seen: dict[str, int] = {}
    for index, clip in enumerate(dataset.clips):
        seen.setdefault(clip.category, index)
        if len(seen) == count:
            break
    return list(seen.values())


def clip_view(dataset, index: int) -> dict[str, Any]:
    """A clip as plain data for plotting: name, category, frames uint8 [T, S, S, 3],
    gt (length-T list: bool [S, S] or None where the split has no mask), boxes [T, 4] or None."""
    item = dataset[index]
    frames = dataset.load_frames_raw(index)  # [T, S, S, 3]
    gt: list[np.ndarray | None] = [None] * len(frames)
    for k, mask in zip(item["mask_frames"].tolist(), item["masks"], strict=True):
        gt[k] = mask[0].numpy() > 0  # [1, S, S] -> [S, S]
    boxes = item["boxes"].numpy() if "boxes" in item else None
    return {"name": item["name"], "category": item["category_name"], "frames": frames, "gt": gt, "boxes": boxes}


def clip_waveform(dataset, index: int) -> tuple[np.ndarray, int]:
    """The clip's sound as mono float [N] in [-1, 1] and its sample rate."""
    waveform, rate = read_wav(dataset.paths(index).wav)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1)  # [N, channels] -> [N]
    return waveform, rate


def synthetic_info(root: str | Path) -> dict[str, Any] | None:
    """The generator's info.json when `root` is a synthetic dataset, else None (real data)."""
    from avs_lib.data.synth import read_info

    return read_info(root) if (Path(root) / "synth_sidecar" / "info.json").is_file() else None


def object_masks(dataset, index: int) -> dict[str, np.ndarray]:
    """Every object of a synthetic clip, from the generator's sidecar: label -> bool [T, S, S]
    at the dataset's image size; the sounding object first, then the silent distractors."""
    clip = dataset.clips[index]
    sidecar = dataset.sidecar(clip.name)
    if sidecar is None:
        raise ValueError(f"{dataset.root} is not a synthetic dataset: it has no per-object truth")
    masks = torch.from_numpy(sidecar.masks.astype(np.float32))  # [K, T, H, W]
    masks = torch.nn.functional.interpolate(masks, size=(dataset.image_size,) * 2, mode="nearest") > 0
    # Two-line row labels: class names are long and the rows are short.
    names = [f"sounding:\n{sidecar.category}"] + [f"silent {k}:\n{c}" for k, c in enumerate(sidecar.distractor_categories, 1)]
    return {name: m.numpy() for name, m in zip(names, masks, strict=True)}


# ---------------------------------------------------------------- what the runs predicted


def run_config(run_dir: str | Path) -> ExperimentConfig:
    """The resolved config a run was trained with (its config.yaml)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    return config_from_dict(yaml.safe_load(path.read_text()))


def evaluation_dataset(run_dir: str | Path, data_root: str | Path):
    """The test clips a run was evaluated on, read at its image size, without crop labels."""
    cfg = run_config(run_dir)
    cfg.data.root = str(data_root)
    cfg.data.crop_labels = False
    return build_dataset(cfg, "test")


def _full(dataset):
    return getattr(dataset, "base", dataset)


def failure_cases(run_dir: str | Path, dataset, names: Sequence[str], label: str = "") -> list[dict[str, Any]]:
    """Rows for `viz.plot_failure_cases`: for each clip, its worst frame as the run predicted it
    at test time (test/pred_masks), with the frame and the ground truth."""
    run_dir = Path(run_dir)
    per_frame = pd.read_csv(run_dir / "test" / "per_frame.csv")
    rows = []
    for name in names:
        index = dataset.index_of(name) if hasattr(dataset, "index_of") else _full(dataset).index_of(name)
        frames = per_frame[(per_frame["name"] == name) & per_frame["has_gt"]]
        if frames.empty:
            raise ValueError(f"{run_dir}/test/per_frame.csv has no frame with a mask for clip {name!r}")
        worst = frames.sort_values(["iou", "frame"]).iloc[0]
        t = int(worst["frame"])  # 0-based
        view = clip_view(dataset, index)
        png = run_dir / "test" / "pred_masks" / view["category"] / name / f"{name}_{t + 1}.png"
        pred = mask_values(open_image(png, f"predicted mask of clip {name!r}")) != 0
        if pred.shape != view["frames"].shape[1:3]:
            raise ValueError(f"{png} is {pred.shape}, the frames are {view['frames'].shape[1:3]}: "
                             "read the dataset at the run's image size (inspection.evaluation_dataset)")
        title = "\n".join(x for x in (label, name, f"{view['category']}, frame {t + 1}") if x)
        rows.append({"frame": view["frames"][t], "gt": view["gt"][t], "pred": pred, "title": title})
    return rows


class RunPredictor:
    """Masks of trained runs on the test clips, with the clip's own, swapped-in or silent audio.

    Loads each run's best.pt once (`system.load_system`) and keeps it. `predict` and `audio`
    have the signatures `viz.MaskBrowser` calls.

    Args:
        runs_dir: folder of run directories `{method}_seed{seed}`.
        dataset: the test clips (see `evaluation_dataset`), read at the runs' image size.
        device: torch device name ("cpu", "cuda", "auto").
        runs: run names to offer (default: every run under runs_dir with a best.pt).
    """

    def __init__(self, runs_dir: str | Path, dataset, device: str = "cpu", runs: Sequence[str] | None = None):
        from avs_lib.engine.evaluate import swap_partners
        from avs_lib.engine.system import select_device

        self.runs_dir = Path(runs_dir)
        available = sorted(p.parent.name for p in self.runs_dir.glob("*/best.pt"))
        self.runs = list(runs) if runs is not None else available
        missing = [r for r in self.runs if r not in available]
        if missing or not self.runs:
            raise FileNotFoundError(f"no best.pt for run(s) {missing or 'any'} under {self.runs_dir}; "
                                    f"runs with a checkpoint: {available}")
        self.dataset, self.device = dataset, select_device(device)
        self.partners = swap_partners(dataset)  # indices in the whole split
        self._systems: dict[str, Any] = {}

    def system(self, run: str):
        from avs_lib.engine.system import load_system

        if run not in self._systems:
            with warnings.catch_warnings():  # the random init is overwritten by the checkpoint at once
                warnings.filterwarnings("ignore", message="no pretrained weights given")
                self._systems[run] = load_system(self.runs_dir / run / "best.pt", self.device)[0]
        return self._systems[run]

    def partner_name(self, index: int) -> str:
        partner = self.partners[index]
        return "" if partner is None else _full(self.dataset).clips[partner].name

    def _audio_input(self, index: int, item: dict, audio: str) -> torch.Tensor:
        from avs_lib.engine.evaluate import SILENCE_LOG_MEL

        if audio == "true":
            return item["audio"]
        if audio == "silent":
            return torch.full_like(item["audio"], SILENCE_LOG_MEL)
        if audio == "swapped":
            partner = self.partners[index]
            if partner is None:
                raise ValueError(f"clip {item['name']!r} has no swap partner")
            return _full(self.dataset).load_audio(partner)
        raise ValueError(f"audio must be 'true', 'swapped' or 'silent', got {audio!r}")

    def probabilities(self, run: str, index: int, audio: str = "true") -> np.ndarray:
        """Foreground probabilities float [T, S, S] of clip `index` as run `run` sees it."""
        from avs_lib.engine.evaluate import predict_logits

        item = self.dataset[index]
        batch = {"frames": item["frames"][None], "audio": self._audio_input(index, item, audio)[None]}
        logits = predict_logits(self.system(run), batch, self.device)  # [T, 1, S, S]
        return torch.sigmoid(logits[:, 0]).cpu().numpy()

    def predict(self, run: str, index: int, swapped: bool) -> np.ndarray:
        """MaskBrowser's predict(run, clip_index, swapped_audio)."""
        return self.probabilities(run, index, "swapped" if swapped else "true")

    def audio(self, index: int, swapped: bool) -> tuple[np.ndarray, int]:
        """MaskBrowser's audio(clip_index, swapped_audio): the WAV the model heard."""
        full = _full(self.dataset)
        source = self.partners[index] if swapped else index
        if source is None:
            raise ValueError(f"clip {self.dataset.clips[index].name!r} has no swap partner")
        return clip_waveform(full, source)

    def browser_clips(self) -> list[dict[str, Any]]:
        """The clips as MaskBrowser wants them (name, category, frames, gt, swap_partner)."""
        clips = []
        for index in range(len(self.dataset)):
            view = clip_view(self.dataset, index)
            clips.append({**view, "swap_partner": self.partner_name(index)})
        return clips

    def swap_panels(self, run: str, index: int, frame: int = 0) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
        """One frame and its masks under true, swapped and silent audio (for plot_audio_swap_panels)."""
        full = _full(self.dataset)
        partner = self.partners[index]
        conditions = [("true", f"own audio:\n{self.dataset.clips[index].category}")]
        if partner is not None:
            conditions.append(("swapped", f"swapped in:\n{full.clips[partner].category}"))
        conditions.append(("silent", "silent"))
        panels = [(title, self.probabilities(run, index, audio)[frame] > 0.5) for audio, title in conditions]
        return self.dataset.load_frames_raw(index)[frame], panels

    def first_swappable(self) -> int:
        """The first test clip with a swap partner."""
        for index, partner in enumerate(self.partners):
            if partner is not None:
                return index
        raise ValueError("no test clip has a swap partner")


__all__ = ["RunPredictor", "clip_table", "clip_view", "clip_waveform", "failure_cases", "first_of_categories",
           "mask_areas", "object_masks", "run_config", "evaluation_dataset", "synthetic_info"]
