"""What the notebooks' figures show, as plain data (numpy, lists, DataFrames; `viz` draws them),
and the callables of the mask browser."""

from __future__ import annotations

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
from avs_lib.engine.train import read_history
from avs_lib.losses import TERMS
from avs_lib.metrics import frame_iou
from avs_lib.report.experiments import read_test_tables

# ---------------------------------------------------------------- the data

MS3_CATEGORY = "(MS3: no classes)"  # MS3's metadata has no category column


def audio_on_disk(root: str | Path, dataset: str = "s4") -> str:
    """"wav" when the tree has WAVs, else "pkl": the official log-mels only, with no waveform to show."""
    return "wav" if (Path(root) / f"{dataset}_data" / "audio_wav").is_dir() else "pkl"


def mask_areas(root: str | Path, splits: Sequence[str] = SPLITS, dataset: str = "s4") -> pd.DataFrame:
    """One row per ground-truth mask file: split, category, name, frame (1-based), area_fraction."""
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
    """The metadata CSV, one row per clip (name, category, split; S4 also start)."""
    layout = LAYOUTS[dataset]
    path = Path(root) / layout.csv_name
    if not path.is_file():
        raise FileNotFoundError(f"{dataset.upper()} metadata not found: {path}")
    table = pd.read_csv(path).rename(columns={layout.name_column: "name"})
    if dataset == "ms3":
        table["category"] = MS3_CATEGORY
    return table


def first_of_categories(dataset, count: int) -> list[int]:
    """The first clip of each of the first `count` categories met (MS3: its first `count` clips)."""
    return pd.Series([clip.category or clip.name for clip in dataset.clips]).drop_duplicates().index[:count].tolist()


def clip_title(clip) -> str:
    """"category (name)", or an MS3 clip's name alone."""
    return f"{clip.category} ({clip.name})" if clip.category else clip.name


def clip_view(dataset, index: int) -> dict[str, Any]:
    """A clip as plain data: name, category, frames uint8 [T, S, S, 3], gt (a list with None where
    the split has no mask) and boxes [T, 4] or None."""
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
    return (waveform.mean(axis=1) if waveform.ndim == 2 else waveform), rate  # [N, channels] -> [N]


def synthetic_info(root: str | Path) -> dict[str, Any] | None:
    """The generator's info.json on synthetic data, else None (real data)."""
    from avs_lib.datatools.synth import read_info

    return read_info(root) if (Path(root) / "synth_sidecar" / "info.json").is_file() else None


def object_masks(dataset, index: int) -> dict[str, np.ndarray]:
    """Every object of a synthetic clip (the generator's sidecar), label -> bool [T, S, S] at the
    dataset's size: the sounding object first, then the silent distractors."""
    sidecar = dataset.sidecar(dataset.clips[index].name)
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
    """The test clips a run was evaluated on, at its image size, without crop labels."""
    cfg = run_config(run_dir)
    cfg.data.root, cfg.data.crop_labels = str(data_root), False
    return build_dataset(cfg, "test")


def _index_in(dataset, name: str) -> int:
    names = [clip.name for clip in dataset.clips]
    if name not in names:
        raise ValueError(f"clip {name!r} is not among the {len(names)} clips of {full_split(dataset).root}")
    return names.index(name)


class RunPredictor:
    """Masks of trained runs (`runs`, default every one with a best.pt, each loaded once) on the test clips
    `dataset` under the clip's own, swapped-in or silent audio; `predict` and `audio` serve `viz.MaskBrowser`."""

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

    def _source(self, index: int, swapped: bool) -> int:
        """The clip (index in the whole split) whose audio the model hears."""
        source = self.partners[index] if swapped else index
        if source is None:
            raise ValueError(f"clip {self.dataset.clips[index].name!r} has no swap partner")
        return source

    def probabilities(self, run: str, index: int, audio: str = "true") -> np.ndarray:
        """Foreground probabilities float [T, S, S] of clip `index` under "true", "swapped" or "silent" audio."""
        from avs_lib.engine.evaluate import SILENCE_LOG_MEL, predict_logits

        if audio not in AUDIO_CONDITIONS:
            raise ValueError(f"audio must be 'true', 'swapped' or 'silent', got {audio!r}")
        item = self.dataset[index]
        sound = (full_split(self.dataset).load_audio(self._source(index, True)) if audio == "swapped" else
                 torch.full_like(item["audio"], SILENCE_LOG_MEL) if audio == "silent" else item["audio"])
        logits = predict_logits(self.system(run), {"frames": item["frames"][None], "audio": sound[None]},
                                self.device)  # [T, 1, S, S]
        return torch.sigmoid(logits[:, 0]).cpu().numpy()

    def predict(self, run: str, index: int, swapped: bool) -> np.ndarray:
        """MaskBrowser's predict(run, clip_index, swapped_audio)."""
        return self.probabilities(run, index, "swapped" if swapped else "true")

    def audio(self, index: int, swapped: bool) -> tuple[np.ndarray, int]:
        """MaskBrowser's audio(clip_index, swapped_audio): the WAV the model heard."""
        return clip_waveform(full_split(self.dataset), self._source(index, swapped))

    def browser_clips(self) -> list[dict[str, Any]]:
        """The clips as MaskBrowser wants them (name, category, frames, gt, swap_partner)."""
        full = full_split(self.dataset)
        return [{**clip_view(self.dataset, index), "swap_partner": "" if partner is None else full.clips[partner].name}
                for index, partner in enumerate(self.partners)]


def _masks(predictor, run: str, index: int, audio: str) -> np.ndarray | None:
    """bool [T, S, S]: what `run` segments under `audio`; None for swapped audio without a partner."""
    if audio == "swapped" and predictor.partners[index] is None:
        return None
    return predictor.probabilities(run, index, audio) > 0.5


# ---------------------------------------------------------------- where the mask goes, and why it fails

AUDIO_CONDITIONS = ("true", "swapped", "silent")
DESTINATIONS = ("sounding object", "distractor", "background", "empty")
FAILURE_KINDS = ("empty", "on distractor", "background spill", "partial")
GOOD_IOU = 0.5  # a frame at or above this IoU is not a failure


def sidecar_objects(dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic clip's visible objects at the dataset's size: the sounding one bool [T, S, S]
    and the silent distractors bool [K, T, S, S] (K may be 0)."""
    sounding, *others = object_masks(dataset, index).values()
    return sounding, np.stack(others) if others else np.zeros((0, *sounding.shape), dtype=bool)


def frame_destination(pred: np.ndarray, sounding: np.ndarray, distractors: np.ndarray) -> dict[str, float]:
    """Where a frame's predicted foreground (bool [S, S]) lies, as shares of DESTINATIONS; the sounding object
    wins where it overlaps a distractor [K, S, S]; `empty` = 1 when nothing is predicted."""
    pred, sounding = np.asarray(pred, bool), np.asarray(sounding, bool)
    other = np.asarray(distractors, bool).any(axis=0) if len(distractors) else np.zeros_like(sounding)
    total = int(pred.sum())
    if total == 0:
        return {"sounding object": 0.0, "distractor": 0.0, "background": 0.0, "empty": 1.0}
    on_sounding = int((pred & sounding).sum())
    on_distractor = int((pred & other & ~sounding).sum())
    return {"sounding object": on_sounding / total, "distractor": on_distractor / total,
            "background": (total - on_sounding - on_distractor) / total, "empty": 0.0}


def classify_failure(pred: np.ndarray, gt: np.ndarray, distractors: np.ndarray) -> str:
    """"empty", "ok" (IoU >= GOOD_IOU), else where most of the foreground lies: "on distractor",
    "background spill" or "partial" (on the sounding object, too little or too much of it)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if not pred.any():
        return "empty"
    if frame_iou(pred, gt) >= GOOD_IOU:
        return "ok"
    shares = frame_destination(pred, gt, distractors)
    top = max(("sounding object", "distractor", "background"), key=lambda k: shares[k])  # first wins ties
    return {"sounding object": "partial", "distractor": "on distractor", "background": "background spill"}[top]


def run_masks(run_dir: str | Path, dataset, index: int) -> np.ndarray:
    """The masks a run wrote at test time for clip `index` (test/pred_masks), bool [T, S, S]."""
    clip = dataset.clips[index]
    folder = Path(run_dir) / "test" / "pred_masks" / clip.category / clip.name
    return np.stack([mask_values(open_image(folder / f"{clip.name}_{t + 1}.png", f"predicted mask of clip {clip.name!r}")) != 0
                     for t in range(len(dataset.load_frames_raw(index)))])


def failure_table(run_dir: str | Path, dataset) -> pd.DataFrame:
    """Every test frame with a mask as the run predicted it (synthetic data only): name, category,
    frame (0-based), iou, kind (`classify_failure`), area of the sounding object, the DESTINATIONS."""
    rows = []
    for index, clip in enumerate(dataset.clips):
        pred, view = run_masks(run_dir, dataset, index), clip_view(dataset, index)
        _, distractors = sidecar_objects(dataset, index)
        if pred.shape != view["frames"].shape[:3]:
            raise ValueError(f"{run_dir}: predicted masks {pred.shape} do not match the frames "
                             f"{view['frames'].shape[:3]} of {clip.name!r}; read the dataset at the "
                             "run's image size (evaluation_dataset)")
        rows += [{"name": clip.name, "category": clip.category, "frame": t, "iou": frame_iou(pred[t], gt),
                  "kind": classify_failure(pred[t], gt, distractors[:, t]), "area": float(gt.mean()),
                  **frame_destination(pred[t], gt, distractors[:, t])}
                 for t, gt in enumerate(view["gt"]) if gt is not None]
    return pd.DataFrame(rows)


def pick_failures(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per failure kind its lowest-IoU frame (ties: name, frame), each from another clip; returns
    (the rows, the rule as a sentence naming the kinds no frame has)."""
    chosen, absent = [], []
    for kind in FAILURE_KINDS:
        rows = table[(table["kind"] == kind) & ~table["name"].isin([r["name"] for r in chosen])]
        if rows.empty:
            absent.append(kind)
        else:
            chosen.append(rows.sort_values(["iou", "name", "frame"]).iloc[0])
    rule = ("For each failure kind, the test frame of that kind with the lowest IoU (one per clip; "
            f"a frame at IoU >= {GOOD_IOU} is no failure)")
    rule += f"; no frame of kind {', '.join(repr(k) for k in absent)}." if absent else "."
    return pd.DataFrame(chosen).reset_index(drop=True), rule


def failure_rows(run_dir: str | Path, dataset, picked: pd.DataFrame, label: str = "") -> list[dict[str, Any]]:
    """`viz.plot_failure_cases` rows of the frames `pick_failures` chose, titled by kind."""
    rows = []
    for _, row in picked.iterrows():
        index, t = _index_in(dataset, row["name"]), int(row["frame"])
        view = clip_view(dataset, index)
        title = "\n".join(x for x in (row["kind"], label, row["name"], f"frame {t + 1}") if x)
        rows.append({"frame": view["frames"][t], "gt": view["gt"][t], "pred": run_masks(run_dir, dataset, index)[t],
                     "title": title})
    return rows


def mask_destinations(predictor, runs: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Where the masks of each method's runs go on every test frame of a synthetic split, per audio
    condition: a row per (method, run, condition, name, frame) with the DESTINATIONS shares."""
    dataset = predictor.dataset
    objects = [sidecar_objects(dataset, i) for i in range(len(dataset))]
    rows = []
    for method, names in runs.items():
        for run in names:
            for condition in AUDIO_CONDITIONS:
                for index, (sounding, distractors) in enumerate(objects):
                    pred = _masks(predictor, run, index, condition)  # [T, S, S]; None: no partner
                    rows += [{"method": method, "run": run, "condition": condition, "name": dataset.clips[index].name,
                              "frame": t, **frame_destination(pred[t], sounding[t], distractors[:, t])}
                             for t in range(0 if pred is None else len(pred))]
    return pd.DataFrame(rows)


def per_frame_results(runs_dir: str | Path, runs: Sequence[str]) -> pd.DataFrame:
    """Each named run's test/per_frame.csv, with method and seed."""
    return read_test_tables(runs_dir, "per_frame.csv", runs)


def iou_with_area(per_frame: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """Per-frame test IoU (`per_frame_results`, frame 0-based) beside the sounding object's share of
    the frame (`mask_areas`, 1-based); a frame with a mask but no area is an error, not dropped."""
    scored = per_frame[per_frame["has_gt"].astype(bool)].copy()
    keys = pd.MultiIndex.from_arrays([scored["name"], scored["frame"].astype(int) + 1])
    scored["area"] = areas.set_index(["name", "frame"])["area_fraction"].reindex(keys).to_numpy()
    if scored["area"].isna().any():
        missing = keys[scored["area"].isna().to_numpy()]
        raise ValueError(f"iou_with_area: no mask area for {len(missing)} frame(s), e.g. {missing[0][0]!r} frame "
                         f"{missing[0][1]} (1-based); the areas come from another split or dataset")
    return scored


def validation_history(runs_dir: str | Path, runs: Sequence[str]) -> pd.DataFrame:
    """Each run's per-epoch validation metrics (`val_*` in metrics.jsonl): method, seed, epoch, metric, value."""
    rows = []
    for run in runs:
        cfg = run_config(Path(runs_dir) / run)
        for record in read_history(Path(runs_dir) / run):
            rows += [{"method": cfg.name, "seed": cfg.seed, "epoch": int(record["epoch"]), "metric": key,
                      "value": float(value)} for key, value in record.items()
                     if key.startswith("val_") and isinstance(value, int | float)]
    return pd.DataFrame(rows, columns=["method", "seed", "epoch", "metric", "value"])


# ---------------------------------------------------------------- clips chosen by a rule


def pick_clips_by_quantiles(clips: pd.DataFrame, method: str,
                            quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> tuple[list[str], str]:
    """The test clips at `quantiles` of `method`'s per-clip IoU (mean over seeds; position
    round(q * (n - 1)), ties by name), and the rule as a sentence."""
    rows = clips[clips["method"] == method]
    if rows.empty:
        raise ValueError(f"no per-clip results for method {method!r}; have {sorted(set(clips['method']))}")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    mean = rows.groupby("name")["iou"].mean().reset_index().sort_values(["iou", "name"]).reset_index(drop=True)
    names = [str(mean["name"].iloc[round(q * (len(mean) - 1))]) for q in quantiles]
    seeds = rows["seed"].nunique() if "seed" in rows.columns else 1
    rule = (f"test clips at the {', '.join(f'{100 * q:g}' for q in quantiles)} percentiles of {method}'s per-clip "
            f"IoU (mean over {seeds} seed(s), {len(mean)} clips; ties by name)")
    return names, rule


def qualitative_rows(predictor, runs: dict[str, str], names: Sequence[str]) -> list[dict[str, Any]]:
    """`viz.plot_qualitative_grid` rows: per clip its first frame, its ground truth and each (method -> run)'s
    mask under each audio condition (None without a swap partner)."""
    rows = []
    for name in names:
        index = _index_in(predictor.dataset, name)
        view = clip_view(predictor.dataset, index)
        masks = {(method, c): _masks(predictor, run, index, c) for method, run in runs.items() for c in AUDIO_CONDITIONS}
        rows.append({"name": name, "frame": view["frames"][0], "gt": view["gt"][0],
                     "masks": {key: None if m is None else m[0] for key, m in masks.items()}})
    return rows


MIN_VISIBLE_AREA = 0.005  # a swapped-in object counts as in view on a frame from 0.5 % of it
MIN_VISIBLE_FRAMES = 0.8  # ... and an example needs it in view on this share of the clip's frames


def swap_outcomes(predictor, run: str) -> pd.DataFrame:
    """Per test clip whose swap partner's class is in view: the share of frames whose mask follows
    the audio (on the sounding object with its audio, on the swapped-in one with the partner's:
    `metrics.moved_to_swapped` both ways), the first frame that follows and the first that misses."""
    from avs_lib.metrics import moved_to_swapped

    dataset, full = predictor.dataset, full_split(predictor.dataset)
    rows = []
    for index, partner in enumerate(predictor.partners):
        sidecar = dataset.sidecar(dataset.clips[index].name) if partner is not None else None
        hits = np.flatnonzero(sidecar.classes == full.clips[partner].category_index) if sidecar is not None else []
        if len(hits) == 0 or hits[0] == 0:
            continue
        sounding, distractors = sidecar_objects(dataset, index)
        swapped_in = distractors[hits[0] - 1]
        own, other = torch.from_numpy(sounding), torch.from_numpy(swapped_in)
        stays, valid = moved_to_swapped(torch.from_numpy(_masks(predictor, run, index, "true")), other, own)
        moved, _ = moved_to_swapped(torch.from_numpy(_masks(predictor, run, index, "swapped")), own, other)
        follows, valid = (stays & moved & valid).numpy(), valid.numpy()
        area = swapped_in.reshape(len(swapped_in), -1).mean(axis=1)  # [T, H, W] -> [T] share of the frame
        rows.append({"name": dataset.clips[index].name, "index": index, "partner": full.clips[partner].name,
                     "follows": float(follows[valid].mean()) if valid.any() else float("nan"),
                     "first_follow": int(np.argmax(follows)) if follows.any() else -1,
                     "first_miss": int(np.argmax(~follows & valid)) if (~follows & valid).any() else -1,
                     "visible": float((area >= MIN_VISIBLE_AREA).mean()), "swapped_in": swapped_in})
    return pd.DataFrame(rows)


def pick_swap_examples(outcomes: pd.DataFrame) -> tuple[dict[str, pd.Series], str]:
    """({"hit": the clip that follows the audio on the most frames, "miss": the fewest}, the rule in words), ties
    by name, among clips whose swapped-in object is in view (`visible` >= MIN_VISIBLE_FRAMES, when given)."""
    total = len(outcomes)
    if "visible" in outcomes.columns:
        outcomes = outcomes[outcomes["visible"] >= MIN_VISIBLE_FRAMES]
    if outcomes.empty:
        raise ValueError("pick_swap_examples: no test clip has a swap partner in view")
    ranked = outcomes.sort_values(["follows", "name"], ascending=[False, True])
    misses = outcomes.sort_values(["follows", "name"])
    picked = {k: v for k, v, shown in (("hit", ranked.iloc[0], ranked["follows"].iloc[0] > 0),
                                       ("miss", misses.iloc[0], misses["follows"].iloc[0] < 1)) if shown}
    rule = ("hit: the test clip whose mask follows the audio on the most frames; miss: the one on the "
            f"fewest (ties by name; {len(outcomes)} of {total} clips with a swap partner whose object is "
            f"in view, ≥ {MIN_VISIBLE_AREA:.1%} of the frame on ≥ {MIN_VISIBLE_FRAMES:.0%} of its frames)")
    if "hit" not in picked:
        rule += "; no clip follows the audio on any frame, so there is no hit to show"
    if "miss" not in picked:
        rule += "; every clip follows the audio on every frame, so there is no miss to show"
    return picked, rule


def pick_swap_changes(run_dir: str | Path) -> tuple[dict[str, pd.Series], str]:
    """Real data: ({"most changed": the clip whose swapped-audio mask has the lowest IoU to its own-audio one,
    "least changed": the highest}, the rule in words), from a run's test/audio_change_per_clip.csv."""
    path = Path(run_dir) / "test" / "audio_change_per_clip.csv"
    if not path.is_file():
        raise FileNotFoundError(f"per-clip audio changes not found: {path} (the test evaluation writes it)")
    clips = pd.read_csv(path).query("audio == 'swapped'")
    if clips.empty:
        raise ValueError(f"{path}: no test clip has a swap partner")
    ranked = clips.sort_values(["iou_to_true", "name"])
    rule = ("most changed: the test clip whose mask with swapped audio has the lowest IoU to its own-audio mask "
            f"(mean over frames); least changed: the highest (ranked by that IoU, then by name; {len(clips)} clips "
            "with a swap partner)")
    return {"most changed": ranked.iloc[0], **({"least changed": ranked.iloc[-1]} if len(ranked) > 1 else {})}, rule


def swap_example_rows(predictor, run: str, picked: dict[str, pd.Series]) -> list[dict[str, Any]]:
    """`viz.plot_swap_examples` rows: per picked clip the frame that shows its outcome (real data: where the two
    audios' masks differ most), the masks under each audio condition and the objects (real data: the GT)."""
    rows, full = [], full_split(predictor.dataset)
    for outcome, row in picked.items():
        index, synthetic = _index_in(predictor.dataset, row["name"]), "swapped_in" in row.index
        masks = [_masks(predictor, run, index, c) for c in AUDIO_CONDITIONS]
        t = (max(int(row["first_follow"] if outcome == "hit" else row["first_miss"]), 0) if synthetic else
             int(np.argmin([frame_iou(true, swapped) for true, swapped in zip(*masks[:2], strict=True)])))
        view = clip_view(predictor.dataset, index)
        rows.append({"outcome": outcome, "title": f"{row['name']} (audio from "
                     f"{full.clips[predictor.partners[index]].name}), frame {t + 1}", "frame": view["frames"][t],
                     "panels": [(f"{c} audio", m[t]) for c, m in zip(AUDIO_CONDITIONS, masks, strict=True)],
                     "sounding": sidecar_objects(predictor.dataset, index)[0][t] if synthetic else view["gt"][t],
                     "swapped_in": row["swapped_in"][t] if synthetic else None,
                     "follows": float(row["follows"]) if synthetic else None})
    return rows


# ---------------------------------------------------------------- the architecture, from the code


def architecture_spec(cfg: ExperimentConfig) -> dict[str, Any]:
    """What `viz.plot_architecture` draws, read from the modules of a system built from `cfg`
    without weight files, so the figure cannot drift from the code."""
    from avs_lib.engine.system import AVSSystem

    bare = config_from_dict(to_dict(cfg))  # a copy without the weight files
    for name in ("resnet_weights", "vggish_weights", "crop_weights", "audio_weights"):
        setattr(bare.model, name, None)
    bare.model.freeze_backbone = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no pretrained weights given")
        system = AVSSystem(bare)
    model, crop_net, audio = system.model, system.crop_classifier, system.audio_encoder
    crop = None if crop_net is None else {
        "shared": bool(crop_net.shared), "trunk": "AVS encoder (shared)" if crop_net.shared else cfg.model.crop_trunk_name,
        "embedding": int(crop_net.embedding.out_features), "classes": int(crop_net.classifier.out_features),
        "to_audio": int(system.crop_to_audio.out_features) if system.crop_to_audio is not None else None}
    weights = {name: float(getattr(cfg.loss, name)) for name in TERMS}
    return {
        "name": cfg.name, "backbone": cfg.model.backbone, "stage_channels": [int(c) for c in model.encoder_channels],
        "channel": int(model.channel), "fusion": model.fusion,
        "fusion_blocks": {stage: type(model.fusion_block(stage)).__name__ for stage in model.fusion_stages},
        "decoder": [name for name in ("path4", "path3", "path2", "path1") if hasattr(model, name)],
        "audio_encoder": type(audio).__name__ if audio is not None else None,
        # Built without weight files, a "small" encoder comes out trainable; the config says whether
        # the run's encoder (loaded from its file) is frozen.
        "audio_frozen": audio is not None and (not any(p.requires_grad for p in audio.parameters())
                                               or (cfg.model.freeze_audio and cfg.model.audio_weights is not None)),
        "crop": crop, "losses": {k: v for k, v in weights.items() if v > 0},
        "avm_stages": list(cfg.loss.avm_stages) if cfg.loss.avm > 0 else [],
    }
