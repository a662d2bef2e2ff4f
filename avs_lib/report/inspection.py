"""Looking at the data and at what trained runs predict: the plain data behind the notebooks'
figures (`avs_lib.report.viz` draws them) and the callables of the mask browser.

Everything here returns numpy arrays, lists and DataFrames; nothing draws.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from avs_lib.config import ExperimentConfig, config_from_dict, to_dict
from avs_lib.data.audio import read_wav
from avs_lib.data.avsbench import LAYOUTS, mask_values, open_image, open_split
from avs_lib.data.categories import SPLITS
from avs_lib.engine.datasets import build_dataset, full_split
from avs_lib.losses import TERMS
from avs_lib.metrics import frame_iou

# ---------------------------------------------------------------- the data


MS3_CATEGORY = "(MS3: no classes)"  # MS3's metadata has no category column


def audio_on_disk(root: str | Path, dataset: str = "s4") -> str:
    """"wav" when the tree has WAV files (`{dataset}_data/audio_wav/`), else "pkl": a tree of the
    official log-mels only, which the `paper` profile reads and which has no waveform to show."""
    return "wav" if (Path(root) / f"{dataset}_data" / "audio_wav").is_dir() else "pkl"


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
    layout = LAYOUTS[dataset]
    path = Path(root) / layout.csv_name
    if not path.is_file():
        raise FileNotFoundError(f"{dataset.upper()} metadata not found: {path}")
    table = pd.read_csv(path).rename(columns={layout.name_column: "name"})
    if dataset == "ms3":
        table["category"] = MS3_CATEGORY
    return table


def first_of_categories(dataset, count: int) -> list[int]:
    """Indices of the first clip of each of the first `count` categories met in `dataset` (MS3,
    which has no categories: its first `count` clips)."""
    seen: dict[str, int] = {}
    for index, clip in enumerate(dataset.clips):
        seen.setdefault(clip.category or clip.name, index)
        if len(seen) == count:
            break
    return list(seen.values())


def clip_title(clip) -> str:
    """"category (name)" for an S4 clip; an MS3 clip, which has no category, by its name alone."""
    return f"{clip.category} ({clip.name})" if clip.category else clip.name


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


def _index_in(dataset, name: str) -> int:
    """The position of clip `name` among the clips of `dataset` (a subset included)."""
    for index, clip in enumerate(dataset.clips):
        if clip.name == name:
            return index
    raise ValueError(f"clip {name!r} is not among the {len(dataset.clips)} clips of {full_split(dataset).root}")


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
        return "" if partner is None else full_split(self.dataset).clips[partner].name

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
            return full_split(self.dataset).load_audio(partner)
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
        full = full_split(self.dataset)
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


# ---------------------------------------------------------------- where the mask goes, and why it fails

AUDIO_CONDITIONS = ("true", "swapped", "silent")
DESTINATIONS = ("sounding object", "distractor", "background", "empty")
FAILURE_KINDS = ("empty", "on distractor", "background spill", "partial")
GOOD_IOU = 0.5  # a frame at or above this IoU is not a failure


def sidecar_objects(dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic clip's visible object masks at the dataset's image size: the sounding
    object bool [T, S, S] and the silent distractors bool [K, T, S, S] (K may be 0)."""
    masks = list(object_masks(dataset, index).values())  # sounding first
    sounding = masks[0]
    size = sounding.shape[-2:]
    distractors = np.stack(masks[1:]) if len(masks) > 1 else np.zeros((0, *sounding.shape), dtype=bool)
    if distractors.shape[-2:] != size:
        raise ValueError(f"clip {dataset.clips[index].name!r}: object masks of different sizes")
    return sounding, distractors


def frame_destination(pred: np.ndarray, sounding: np.ndarray, distractors: np.ndarray) -> dict[str, float]:
    """Where one frame's predicted foreground lies: shares on the sounding object, on any
    distractor and on the background (summing to 1), or `empty` = 1 when nothing is predicted.

    A pixel on both the sounding object and a distractor counts as the sounding object (the
    sidecar's masks hold visible pixels only, so this happens only at resampled edges).

    Args:
        pred, sounding: bool [S, S]; distractors: bool [K, S, S].
    Returns:
        the four DESTINATIONS -> share of the frame's weight (one of them 1 for an empty mask).
    """
    pred, sounding = np.asarray(pred, bool), np.asarray(sounding, bool)
    other = np.asarray(distractors, bool).any(axis=0) if len(distractors) else np.zeros_like(sounding)
    total = int(pred.sum())
    if total == 0:
        return {"sounding object": 0.0, "distractor": 0.0, "background": 0.0, "empty": 1.0}
    on_sounding = int((pred & sounding).sum())
    on_distractor = int((pred & other & ~sounding).sum())
    return {"sounding object": on_sounding / total, "distractor": on_distractor / total,
            "background": (total - on_sounding - on_distractor) / total, "empty": 0.0}


def _frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    return frame_iou(np.asarray(pred, bool), np.asarray(gt, bool))


def classify_failure(pred: np.ndarray, gt: np.ndarray, distractors: np.ndarray, good_iou: float = GOOD_IOU) -> str:
    """The kind of one frame's failure, by a fixed rule:

    "empty" (nothing predicted), "ok" (IoU >= good_iou), else where most of the predicted
    foreground lies: "on distractor" (a silent object), "background spill" (no object), or
    "partial" (mostly on the sounding object, but too little or too much of it).

    Args:
        pred, gt: bool [S, S] (gt: the sounding object's mask); distractors: bool [K, S, S].
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if not pred.any():
        return "empty"
    if _frame_iou(pred, gt) >= good_iou:
        return "ok"
    shares = frame_destination(pred, gt, distractors)
    top = max(("sounding object", "distractor", "background"), key=lambda k: shares[k])  # first wins ties
    return {"sounding object": "partial", "distractor": "on distractor", "background": "background spill"}[top]


def run_masks(run_dir: str | Path, dataset, index: int) -> np.ndarray:
    """The masks a run predicted at test time for clip `index` (test/pred_masks), bool [T, S, S]."""
    clip = dataset.clips[index]
    folder = Path(run_dir) / "test" / "pred_masks" / clip.category / clip.name
    masks = []
    for t in range(len(dataset.load_frames_raw(index))):
        png = folder / f"{clip.name}_{t + 1}.png"
        masks.append(mask_values(open_image(png, f"predicted mask of clip {clip.name!r}")) != 0)
    return np.stack(masks)


def failure_table(run_dir: str | Path, dataset, good_iou: float = GOOD_IOU) -> pd.DataFrame:
    """Every test frame with a mask as the run predicted it: name, category, frame (0-based), iou,
    kind (`classify_failure`), the sounding object's share of the frame (area) and the four
    destination shares. Synthetic data only (the distractors come from the sidecar)."""
    rows = []
    for index, clip in enumerate(dataset.clips):
        pred = run_masks(run_dir, dataset, index)
        view = clip_view(dataset, index)
        _, distractors = sidecar_objects(dataset, index)
        if pred.shape != view["frames"].shape[:3]:
            raise ValueError(f"{run_dir}: predicted masks {pred.shape} do not match the frames "
                             f"{view['frames'].shape[:3]} of {clip.name!r}; read the dataset at the "
                             "run's image size (evaluation_dataset)")
        for t, gt in enumerate(view["gt"]):
            if gt is None:
                continue
            shares = frame_destination(pred[t], gt, distractors[:, t])
            rows.append({"name": clip.name, "category": clip.category, "frame": t,
                         "iou": _frame_iou(pred[t], gt), "kind": classify_failure(pred[t], gt, distractors[:, t], good_iou),
                         "area": float(gt.mean()), **shares})
    return pd.DataFrame(rows)


def pick_failures(table: pd.DataFrame, kinds: Sequence[str] = FAILURE_KINDS) -> tuple[pd.DataFrame, str]:
    """One frame per failure kind: the lowest-IoU frame of that kind (ties: clip name, frame),
    each from a different clip; kinds with no frame are left out and named in the rule text.
    Returns (the chosen rows, the rule as a sentence)."""
    chosen, used, absent = [], set(), []
    for kind in kinds:
        rows = table[(table["kind"] == kind) & ~table["name"].isin(used)].sort_values(["iou", "name", "frame"])
        if rows.empty:
            absent.append(kind)
            continue
        chosen.append(rows.iloc[0])
        used.add(rows.iloc[0]["name"])
    rule = ("For each failure kind, the test frame of that kind with the lowest IoU (one per clip; "
            f"a frame at IoU >= {GOOD_IOU} is no failure)")
    rule += f"; no frame of kind {', '.join(repr(k) for k in absent)}." if absent else "."
    return pd.DataFrame(chosen).reset_index(drop=True), rule


def failure_rows(run_dir: str | Path, dataset, picked: pd.DataFrame, label: str = "") -> list[dict[str, Any]]:
    """Rows for `viz.plot_failure_cases` of the frames `pick_failures` chose, titled by kind."""
    rows = []
    for _, row in picked.iterrows():
        index = _index_in(dataset, row["name"])
        t = int(row["frame"])
        view = clip_view(dataset, index)
        pred = run_masks(run_dir, dataset, index)[t]
        title = "\n".join(x for x in (row["kind"], label, row["name"], f"frame {t + 1}") if x)
        rows.append({"frame": view["frames"][t], "gt": view["gt"][t], "pred": pred, "title": title})
    return rows


def mask_destinations(predictor, runs: dict[str, Sequence[str]],
                      conditions: Sequence[str] = AUDIO_CONDITIONS) -> pd.DataFrame:
    """Where each run's masks go on every test frame, per audio condition: one row per
    (method, seed/run, condition, clip, frame) with the four DESTINATIONS shares.

    Args:
        predictor: a `RunPredictor` over a synthetic test split.
        runs: method -> its run names (e.g. every seed).
    The "sounding object" is the clip's own; under swapped audio a model that listens moves its
    mask onto a distractor (the swapped-in class), under silence it should predict nothing.
    """
    dataset = predictor.dataset
    objects = [sidecar_objects(dataset, i) for i in range(len(dataset))]
    rows = []
    for method, names in runs.items():
        for run in names:
            for condition in conditions:
                for index, (sounding, distractors) in enumerate(objects):
                    if condition == "swapped" and predictor.partners[index] is None:
                        continue  # no partner: the clip has no swapped condition (said in the docs)
                    pred = predictor.probabilities(run, index, condition) > 0.5  # [T, S, S]
                    for t in range(len(pred)):
                        rows.append({"method": method, "run": run, "condition": condition,
                                     "name": dataset.clips[index].name, "frame": t,
                                     **frame_destination(pred[t], sounding[t], distractors[:, t])})
    return pd.DataFrame(rows)


def per_frame_results(runs_dir: str | Path, runs: Sequence[str]) -> pd.DataFrame:
    """The test/per_frame.csv of each named run, with method and seed from its config."""
    frames = []
    for run in runs:
        path = Path(runs_dir) / run / "test" / "per_frame.csv"
        if not path.is_file():
            raise FileNotFoundError(f"per-frame test results not found: {path}")
        cfg = run_config(Path(runs_dir) / run)
        table = pd.read_csv(path)
        table.insert(0, "seed", cfg.seed)
        table.insert(0, "method", cfg.name)
        frames.append(table)
    if not frames:
        raise ValueError("per_frame_results: expected at least one run")
    return pd.concat(frames, ignore_index=True)


def iou_with_area(per_frame: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """Per-frame test IoU beside the sounding object's share of the frame.

    Args:
        per_frame: `per_frame_results` (frame 0-based, has_gt). areas: `mask_areas(root, ["test"])`
            (frame 1-based).
    Every frame with a mask must find its area: a missing one is an error, not a dropped row.
    """
    scored = per_frame[per_frame["has_gt"].astype(bool)].copy()
    scored["frame_number"] = scored["frame"].astype(int) + 1
    lookup = areas.set_index(["name", "frame"])["area_fraction"]
    keys = list(zip(scored["name"], scored["frame_number"], strict=True))
    missing = [k for k in keys if k not in lookup.index]
    if missing:
        raise ValueError(f"iou_with_area: no mask area for {len(missing)} frame(s), e.g. {missing[0]} "
                         "(name, 1-based frame); the areas come from another split or dataset")
    scored["area"] = [float(lookup[k]) for k in keys]
    return scored.drop(columns="frame_number")


def validation_history(runs_dir: str | Path, runs: Sequence[str]) -> pd.DataFrame:
    """Each run's metrics.jsonl in long format: method, seed, epoch, metric, value, for every
    per-epoch validation metric (`val_*`) the run logged."""
    rows = []
    for run in runs:
        path = Path(runs_dir) / run / "metrics.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"per-epoch metrics not found: {path}")
        cfg = run_config(Path(runs_dir) / run)
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            for key, value in record.items():
                if key.startswith("val_") and isinstance(value, int | float):
                    rows.append({"method": cfg.name, "seed": cfg.seed, "epoch": int(record["epoch"]),
                                 "metric": key, "value": float(value)})
    return pd.DataFrame(rows, columns=["method", "seed", "epoch", "metric", "value"])


# ---------------------------------------------------------------- clips chosen by a rule


def pick_clips_by_quantiles(clips: pd.DataFrame, method: str,
                            quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> tuple[list[str], str]:
    """Test clips at the given quantiles of `method`'s per-clip IoU (mean over its seeds): the
    clip at position round(q * (n - 1)) in IoU order (ties by name). Returns (names, the rule as
    a sentence) so a figure says how its clips were chosen."""
    rows = clips[clips["method"] == method]
    if rows.empty:
        raise ValueError(f"no per-clip results for method {method!r}; have {sorted(set(clips['method']))}")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    mean = rows.groupby("name")["iou"].mean().reset_index().sort_values(["iou", "name"]).reset_index(drop=True)
    names = [str(mean["name"].iloc[round(q * (len(mean) - 1))]) for q in quantiles]
    seeds = rows["seed"].nunique() if "seed" in rows.columns else 1
    percents = ", ".join(f"{100 * q:g}" for q in quantiles)
    rule = (f"test clips at the {percents} percentiles of {method}'s per-clip IoU "
            f"(mean over {seeds} seed(s), {len(mean)} clips; ties by name)")
    return names, rule


def qualitative_rows(predictor, runs: dict[str, str], names: Sequence[str], frame: int = 0,
                     conditions: Sequence[str] = AUDIO_CONDITIONS) -> list[dict[str, Any]]:
    """Rows for `viz.plot_qualitative_grid`: per clip, one frame, its ground truth and the mask of
    each (method -> run) under each audio condition (None where the clip has no swap partner)."""
    rows = []
    for name in names:
        index = _index_in(predictor.dataset, name)
        view = clip_view(predictor.dataset, index)
        masks: dict[tuple[str, str], np.ndarray | None] = {}
        for method, run in runs.items():
            for condition in conditions:
                if condition == "swapped" and predictor.partners[index] is None:
                    masks[(method, condition)] = None
                    continue
                masks[(method, condition)] = predictor.probabilities(run, index, condition)[frame] > 0.5
        rows.append({"name": name, "frame": view["frames"][frame], "gt": view["gt"][frame], "masks": masks})
    return rows


def swap_outcomes(predictor, run: str) -> pd.DataFrame:
    """Per test clip with a swap partner whose class is in view: the share of frames whose mask
    follows the audio (on the sounding object with the true audio and on the swapped-in object
    with the swapped audio, `metrics.moved_to_swapped` both ways) and the first such frame."""
    from avs_lib.metrics import moved_to_swapped

    dataset, full = predictor.dataset, full_split(predictor.dataset)
    rows = []
    for index, partner in enumerate(predictor.partners):
        if partner is None:
            continue
        sidecar = dataset.sidecar(dataset.clips[index].name)
        hits = np.flatnonzero(sidecar.classes == full.clips[partner].category_index) if sidecar is not None else []
        if len(hits) == 0 or hits[0] == 0:
            continue
        sounding, distractors = sidecar_objects(dataset, index)
        swapped_in = distractors[hits[0] - 1]
        true = torch.from_numpy(predictor.probabilities(run, index, "true") > 0.5)
        swapped = torch.from_numpy(predictor.probabilities(run, index, "swapped") > 0.5)
        own, other = torch.from_numpy(sounding), torch.from_numpy(swapped_in)
        stays, valid = moved_to_swapped(true, other, own)
        moved, _ = moved_to_swapped(swapped, own, other)
        follows, valid = (stays & moved & valid).numpy(), valid.numpy()
        area = swapped_in.reshape(len(swapped_in), -1).mean(axis=1)  # [T, H, W] -> [T] share of the frame
        rows.append({"name": dataset.clips[index].name, "index": index, "partner": full.clips[partner].name,
                     "follows": float(follows[valid].mean()) if valid.any() else float("nan"),
                     "first_follow": int(np.argmax(follows)) if follows.any() else -1,
                     "first_miss": int(np.argmax(~follows & valid)) if (~follows & valid).any() else -1,
                     "visible": float((area >= MIN_VISIBLE_AREA).mean()), "swapped_in": swapped_in})
    return pd.DataFrame(rows)


MIN_VISIBLE_AREA = 0.005  # a swapped-in object counts as in view on a frame from 0.5 % of it
MIN_VISIBLE_FRAMES = 0.8  # ... and an example needs it in view on this share of the clip's frames


def pick_swap_examples(outcomes: pd.DataFrame) -> tuple[dict[str, pd.Series], str]:
    """A hit (the clip whose mask follows the audio on the most frames, if any frame follows)
    and a miss (the clip on the fewest, if any frame misses), ties by name, among the clips whose
    swapped-in object is in view (`visible`, when given: >= MIN_VISIBLE_AREA of the frame on at
    least MIN_VISIBLE_FRAMES of the frames), so a miss is not an object mostly off-frame.
    Returns ({"hit": row, "miss": row}, the rule as a sentence); an outcome no clip shows is
    left out and the sentence says so."""
    total = len(outcomes)
    if "visible" in outcomes.columns:
        outcomes = outcomes[outcomes["visible"] >= MIN_VISIBLE_FRAMES]
    if outcomes.empty:
        raise ValueError("pick_swap_examples: no test clip has a swap partner in view")
    picked: dict[str, pd.Series] = {}
    ranked = outcomes.sort_values(["follows", "name"], ascending=[False, True])
    if ranked["follows"].iloc[0] > 0:
        picked["hit"] = ranked.iloc[0]
    misses = outcomes.sort_values(["follows", "name"])
    if misses["follows"].iloc[0] < 1:
        picked["miss"] = misses.iloc[0]
    rule = ("hit: the test clip whose mask follows the audio on the most frames; miss: the one on the "
            f"fewest (ties by name; {len(outcomes)} of {total} clips with a swap partner whose object is "
            f"in view, ≥ {MIN_VISIBLE_AREA:.1%} of the frame on ≥ {MIN_VISIBLE_FRAMES:.0%} of its frames)")
    if "hit" not in picked:
        rule += "; no clip follows the audio on any frame, so there is no hit to show"
    if "miss" not in picked:
        rule += "; every clip follows the audio on every frame, so there is no miss to show"
    return picked, rule


def swap_example_rows(predictor, run: str, picked: dict[str, pd.Series]) -> list[dict[str, Any]]:
    """Rows for `viz.plot_swap_examples`: per picked clip, the frame that shows the outcome, the
    masks under true / swapped / silent audio and the outlines of the two objects."""
    rows = []
    for outcome, row in picked.items():
        index = int(row["index"])
        t = int(row["first_follow"] if outcome == "hit" else row["first_miss"])
        t = max(t, 0)
        sounding, _ = sidecar_objects(predictor.dataset, index)
        view = clip_view(predictor.dataset, index)
        panels = [(f"{condition} audio", predictor.probabilities(run, index, condition)[t] > 0.5)
                  for condition in AUDIO_CONDITIONS]
        rows.append({"outcome": outcome, "title": f"{row['name']} (audio from {row['partner']}), frame {t + 1}",
                     "frame": view["frames"][t], "panels": panels, "sounding": sounding[t],
                     "swapped_in": row["swapped_in"][t], "follows": float(row["follows"])})
    return rows


# ---------------------------------------------------------------- the architecture, from the code


def architecture_spec(cfg: ExperimentConfig, system=None) -> dict[str, Any]:
    """What `viz.plot_architecture` draws, read from a built system's modules (built from `cfg`
    when not given, without weight files): encoder stage channels, the stages with a fusion
    block, decoder blocks, audio encoder, crop network, and the loss terms with a non-zero weight."""
    from avs_lib.engine.system import AVSSystem

    original = cfg.model
    if system is None:
        cfg = config_from_dict(to_dict(cfg))  # a copy: the weight files are dropped below
        for name in ("resnet_weights", "vggish_weights", "crop_weights", "audio_weights"):
            setattr(cfg.model, name, None)
        cfg.model.freeze_backbone = False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no pretrained weights given")
            system = AVSSystem(cfg)
    model = system.model
    fusion_blocks = {stage: type(model.fusion_block(stage)).__name__ for stage in model.fusion_stages}
    crop = None
    if system.crop_classifier is not None:
        crop = {"shared": bool(system.crop_classifier.shared),
                "trunk": "AVS encoder (shared)" if system.crop_classifier.shared else cfg.model.crop_trunk_name,
                "embedding": int(system.crop_classifier.embedding.out_features),
                "classes": int(system.crop_classifier.classifier.out_features),
                "to_audio": int(system.crop_to_audio.out_features) if system.crop_to_audio is not None else None}
    weights = {name: float(getattr(cfg.loss, name)) for name in TERMS}
    decoder = [name for name in ("path4", "path3", "path2", "path1") if hasattr(model, name)]
    return {
        "name": cfg.name,
        "backbone": cfg.model.backbone,
        "stage_channels": [int(c) for c in model.encoder_channels],
        "channel": int(model.channel),
        "fusion": model.fusion,
        "fusion_blocks": fusion_blocks,
        "decoder": decoder,
        "audio_encoder": type(system.audio_encoder).__name__ if system.audio_encoder is not None else None,
        # Built without weight files, a "small" encoder comes out trainable; the config says whether
        # the run's encoder (loaded from its file) is frozen.
        "audio_frozen": system.audio_encoder is not None and (
            not any(p.requires_grad for p in system.audio_encoder.parameters())
            or (original.freeze_audio and original.audio_weights is not None)),
        "crop": crop,
        "losses": {k: v for k, v in weights.items() if v > 0},
        "avm_stages": list(cfg.loss.avm_stages) if cfg.loss.avm > 0 else [],
    }


__all__ = ["AUDIO_CONDITIONS", "DESTINATIONS", "FAILURE_KINDS", "RunPredictor", "architecture_spec",
           "audio_on_disk", "classify_failure", "clip_table", "clip_title", "clip_view", "clip_waveform", "evaluation_dataset",
           "failure_rows", "failure_table", "first_of_categories", "frame_destination", "iou_with_area",
           "mask_areas", "mask_destinations", "object_masks", "per_frame_results", "pick_clips_by_quantiles",
           "pick_failures", "pick_swap_examples", "qualitative_rows", "run_config", "run_masks", "sidecar_objects",
           "swap_example_rows", "swap_outcomes", "synthetic_info", "validation_history"]
