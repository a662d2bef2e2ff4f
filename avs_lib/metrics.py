"""Evaluation metrics as the official AVSBench code computes them, plus audio-reliance measures.

Checked against avs_scripts/avs_s4/utils/utility.py (`mask_iou`, `_eval_pr`, `Eval_Fmeasure`)
and test.py / test.sh:

- IoU: prediction = sigmoid(logit) > 0.5; IoU = inter / (union + 1e-7); a frame whose ground
  truth is empty scores the fraction of its pixels predicted background.
- F-score: probabilities = sigmoid(logit); 255 thresholds linspace(0, 1 - 1e-10) (float32, so
  the last one is exactly 1.0); a pixel is positive when p >= threshold; precision
  tp / (#pred + 1e-20), recall tp / (#gt + 1e-20); frames with an empty ground truth skipped.
  Per test batch, the F-curves (β² = 0.3, NaN -> 0) of its frames are *averaged* and the max of
  that mean curve is the batch's score; a batch without a non-empty frame scores 0. The
  reported F is the mean of the batch scores, so it depends on the test batch size (test.sh
  uses 4 clips, test.py's default is 1). `Evaluator` reports it with its batch size and a
  batch-independent version: the same mean-then-max over every frame of the split.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

PR_NUM = 255
BETA2 = 0.3
IOU_EPS = 1e-7


# ---------------------------------------------------------------- per-frame maths


def _frames(x: Tensor, what: str) -> Tensor:
    """[N, 1, H, W] or [N, H, W] -> [N, H, W]."""
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ValueError(f"{what}: expected [N, H, W] or [N, 1, H, W], got {tuple(x.shape)}")


def _binary(mask: Tensor, what: str) -> Tensor:
    """A bool copy of a mask that must hold only 0 and 1."""
    if mask.dtype == torch.bool:
        return mask
    if bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f"{what}: expected a binary mask (values 0 and 1), found other values")
    return mask != 0


def _predicted(logits: Tensor) -> Tensor:
    """Official binarisation: sigmoid(logit) > 0.5 (computed as such, to round like the original)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the official model ran in float32
    return torch.sigmoid(logits) > 0.5


def _pair(logits: Tensor, target: Tensor, what: str) -> tuple[Tensor, Tensor]:
    logits, target = _frames(logits, what), _frames(target, what)
    if logits.shape != target.shape:
        raise ValueError(f"{what}: prediction {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    return logits, _binary(target, f"{what} target").to(logits.device)


def binary_iou(pred: Tensor | np.ndarray, target: Tensor | np.ndarray, eps: float = IOU_EPS) -> Tensor:
    """Per-frame IoU of binary masks, float64 [N] — the one IoU of the project.

    The official convention: inter / (union + eps); a frame whose target is empty scores the
    fraction of its pixels predicted background, (#background pixels) / (#pixels + eps), so an
    empty prediction of an empty target scores ~1 and not 0/0.

    Args:
        pred, target: bool (or 0/1) masks, [N, H, W], [N, 1, H, W] or one [H, W] frame.
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.dim() == 2:
        pred, target = pred[None], target[None]  # one frame [H, W] -> [1, H, W]
    pred, target = _frames(pred, "binary_iou") != 0, _frames(target, "binary_iou") != 0
    if pred.shape != target.shape:
        raise ValueError(f"binary_iou: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    target = target.to(pred.device)
    inter = (pred & target).flatten(1).sum(1).double()  # [N]
    union = (pred | target).flatten(1).sum(1).double()  # [N]
    empty = ~target.flatten(1).any(1)  # [N]
    background = (~pred).flatten(1).sum(1).double()  # [N]; equals ~pred & ~target when target is empty
    pixels = torch.full_like(union, float(target.shape[-2] * target.shape[-1]))
    return torch.where(empty, background, inter) / (torch.where(empty, pixels, union) + eps)


def frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of one [H, W] frame as a float, by `binary_iou` (the figures and the failure table use it)."""
    return float(binary_iou(pred, gt)[0])


def mask_iou(logits: Tensor, target: Tensor, eps: float = IOU_EPS) -> Tensor:
    """Per-frame IoU of the official binarisation, sigmoid(logit) > 0.5, float64 [N].

    Args:
        logits: [N, H, W] or [N, 1, H, W] mask logits.
        target: same shape, binary.
    """
    logits, target = _pair(logits, target, "mask_iou")
    return binary_iou(_predicted(logits), target, eps)


def _thresholds(device: torch.device) -> Tensor:
    # float32 like the official torch.linspace default: 1 - 1e-10 rounds to exactly 1.0
    return torch.linspace(0, 1 - 1e-10, PR_NUM, dtype=torch.float32, device=device)


def f_score_curves(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-frame precision and recall at the official 255 thresholds.

    Counts pixels per threshold with one bucketize + histogram instead of 255 comparisons;
    a pixel counts as positive at threshold i when sigmoid(logit) >= threshold i.

    Args:
        logits: [N, H, W] or [N, 1, H, W].
        target: same shape, binary.
    Returns:
        precision [N, 255], recall [N, 255] (float64), valid [N] bool (target not empty; the
        official F-score skips the others).
    """
    logits, target = _pair(logits, target, "f_score_curves")
    n = logits.shape[0]
    probs = torch.sigmoid(logits if logits.dtype == torch.float64 else logits.float())
    probs = probs.flatten(1)  # [N, H, W] -> [N, HW]
    thresholds = _thresholds(logits.device).to(probs.dtype)
    # level = number of thresholds <= p, so the pixel is positive at thresholds 0 .. level-1
    level = torch.bucketize(probs, thresholds, right=True)  # [N, HW] in 0..255
    offsets = torch.arange(n, device=logits.device)[:, None] * (PR_NUM + 1)
    flat = (level + offsets).flatten()  # one histogram of 256 bins per frame
    hist_all = torch.bincount(flat, minlength=n * (PR_NUM + 1)).reshape(n, PR_NUM + 1)
    hist_tp = torch.bincount(flat[target.flatten()], minlength=n * (PR_NUM + 1)).reshape(n, PR_NUM + 1)
    # positives at threshold i = pixels with level > i: reversed cumulative sum, drop level 0
    predicted = hist_all.flip(1).cumsum(1).flip(1)[:, 1:].double()  # [N, 255]
    true_pos = hist_tp.flip(1).cumsum(1).flip(1)[:, 1:].double()  # [N, 255]
    gt = target.flatten(1).sum(1, keepdim=True).double()  # [N, 1]
    precision = true_pos / (predicted + 1e-20)
    recall = true_pos / (gt + 1e-20)
    return precision, recall, gt[:, 0] > 0


def f_curves(precision: Tensor, recall: Tensor, beta2: float = BETA2) -> Tensor:
    """F-measure at each threshold, NaN (0/0) set to 0 as the official code does. Shape kept."""
    f = (1 + beta2) * precision * recall / (beta2 * precision + recall)
    return torch.nan_to_num(f, nan=0.0)


# ---------------------------------------------------------------- the split-level accumulator


@dataclass
class FrameRecord:
    """What `Evaluator` keeps of one evaluated frame (small, picklable for DDP gathers)."""

    name: str
    category: str
    frame: int
    iou: float
    has_gt: bool
    f_curve: np.ndarray | None  # [255] float64, only when has_gt


def _per_frame(values: Sequence[Any] | Tensor, n: int, what: str) -> list:
    """Expand per-clip values (len B, N = B*M) to per-frame ones; per-frame values pass through."""
    values = values.reshape(-1).tolist() if isinstance(values, Tensor) else list(values)
    if len(values) == n:
        return values
    if len(values) == 0 or n % len(values) != 0:
        raise ValueError(f"Evaluator.update: {what} has {len(values)} entries; expected one per frame ({n}) "
                         "or per clip")
    repeat = n // len(values)
    return [v for v in values for _ in range(repeat)]


class Evaluator:
    """Accumulates per-frame IoU and F-curves over a split; `compute()` reports everything.

    Args:
        official_batch_size: the test batch size, in CLIPS, that the official F-score is
            grouped by. Clips are taken in arrival order (the loader's, unshuffled), and each
            group holds every frame of `official_batch_size` consecutive clips. Default 4, as in
            the official test.sh that produced the paper's numbers (test.py's own default is 1).
        beta2: F-measure β².
    One process evaluates (multi-process training validates and tests on rank 0), so the
    records are never split across ranks.
    """

    def __init__(self, official_batch_size: int = 4, beta2: float = BETA2):
        if official_batch_size < 1:
            raise ValueError(f"official_batch_size must be >= 1, got {official_batch_size}")
        self.official_batch_size = official_batch_size
        self.beta2 = beta2
        self.reset()

    def reset(self) -> None:
        self._records: list[FrameRecord] = []

    @torch.no_grad()
    def update(self, logits: Tensor, target: Tensor, names: Sequence[str], categories: Sequence[str],
               frame_ids: Sequence[int] | Tensor) -> None:
        """Add a batch of frames.

        Args:
            logits: [N, 1, H, W] or [N, H, W]; frames of one clip contiguous (clip-major).
            target: same shape, binary ground truth.
            names, categories: per frame (len N) or per clip (len B; each clip's N/B frames in a row).
            frame_ids: per frame index within its clip, len N (a [B, M] tensor such as the
                reader's `mask_frames` is flattened).
        """
        iou = mask_iou(logits, target)
        precision, recall, valid = f_score_curves(logits, target)
        curves = f_curves(precision, recall, self.beta2).cpu().numpy()
        n = iou.shape[0]
        names = _per_frame(names, n, "names")
        categories = _per_frame(categories, n, "categories")
        frame_ids = _per_frame(frame_ids, n, "frame_ids")
        for i, (score, has_gt) in enumerate(zip(iou.tolist(), valid.tolist(), strict=True)):
            self._records.append(FrameRecord(name=str(names[i]), category=str(categories[i]), frame=int(frame_ids[i]),
                                             iou=score, has_gt=has_gt, f_curve=curves[i] if has_gt else None))

    def update_clips(self, logits: Tensor, batch: dict[str, Any]) -> None:
        """Add a reader's batch: logits [B*T, 1, S, S] of each clip's frames that have a mask."""
        B = batch["masks"].shape[0]
        per_clip = logits.view(B, logits.shape[0] // B, *logits.shape[1:])  # [B*T, 1, S, S] -> [B, T, 1, S, S]
        idx = batch["mask_frames"]  # [B, M]
        chosen = per_clip[torch.arange(B)[:, None], idx]  # [B, M, 1, S, S]
        self.update(chosen.flatten(0, 1), batch["masks"].flatten(0, 1).to(logits.device), names=batch["name"],
                    categories=batch["category_name"], frame_ids=idx.flatten().tolist())

    def compute(self) -> dict[str, Any]:
        """Everything about the split.

        Returns a dict with
            per_frame: DataFrame (name, category, frame, iou, has_gt), one row per frame, clip order;
            per_clip: DataFrame (name, category, iou, n_frames), IoU averaged over the clip's frames;
            per_category: DataFrame (category, n_clips, n_frames, miou, f_score), f_score being
                the split-level F of that category's frames (NaN when none has a ground truth);
            miou: mean IoU over frames;
            f_score_official, official_batch_size: the official batch-grouped F-score and its batch size;
            f_score_split: mean F-curve over all non-empty frames of the split, then max;
            n_frames, n_clips.
        """
        records = self._records
        if not records:
            raise ValueError("Evaluator.compute: no frames; call update() first")
        keys = [(r.name, r.frame) for r in records]
        if len(set(keys)) != len(keys):
            repeated = sorted({k for k in keys if keys.count(k) > 1})[:5]
            raise ValueError(f"Evaluator.compute: frames evaluated more than once, e.g. {repeated}; "
                             "call reset() between runs")

        clips = list(dict.fromkeys(r.name for r in records))  # in arrival order
        rank = {name: i for i, name in enumerate(clips)}
        records = sorted(records, key=lambda r: (rank[r.name], r.frame))

        frames = pd.DataFrame(records).drop(columns="f_curve")  # name, category, frame, iou, has_gt
        per_clip = (frames.groupby("name", sort=False)
                    .agg(category=("category", "first"), iou=("iou", "mean"), n_frames=("frame", "size"))
                    .reset_index())
        category_rows = []
        for category, group in frames.groupby("category", sort=True):
            members = [records[i] for i in group.index]
            category_rows.append({"category": category, "n_clips": group["name"].nunique(), "n_frames": len(group),
                                  "miou": group["iou"].mean(),
                                  "f_score": self._split_f(members) if any(r.has_gt for r in members) else float("nan")})

        batch_f = []
        size = self.official_batch_size
        for first in range(0, len(clips), size):
            batch_clips = set(clips[first : first + size])
            batch_f.append(self._split_f([r for r in records if r.name in batch_clips]))

        return {"per_frame": frames, "per_clip": per_clip, "per_category": pd.DataFrame(category_rows),
                "miou": float(frames["iou"].mean()), "f_score_official": float(np.mean(batch_f)),
                "official_batch_size": size, "f_score_split": self._split_f(records), "n_frames": len(records),
                "n_clips": len(clips)}

    @staticmethod
    def _split_f(records: list[FrameRecord]) -> float:
        """The official score of a test batch (`Eval_Fmeasure`): the mean F-curve of its frames
        with a ground truth, then its max; 0 if it has none."""
        curves = [r.f_curve for r in records if r.has_gt]
        return float(torch.from_numpy(np.stack(curves)).mean(0).max()) if curves else 0.0  # [n, 255]


# ---------------------------------------------------------------- audio reliance


def moved_to_swapped(pred_swapped: Tensor, original_obj_masks: Tensor, swapped_obj_masks: Tensor,
                     overlap: str = "pixels") -> tuple[Tensor, Tensor]:
    """Per frame: does the prediction under swapped audio cover the swapped-in object more than
    the original sounding one?

    Args:
        pred_swapped: [N, H, W] bool mask, or logits (thresholded at sigmoid > 0.5; a 0/1 float
            mask thresholds correctly too, since sigmoid(0) = 0.5 is not > 0.5).
        original_obj_masks: [N, H, W] binary, the object that sounds in the true audio.
        swapped_obj_masks: [N, H, W] binary, the object of the class whose audio was swapped in.
        overlap: "pixels" (intersection size) or "iou" (intersection over union with each object,
            which does not favour the larger object).
    Returns:
        moved [N] bool (strictly more overlap with the swapped-in object; ties, including no
        overlap with either, count as not moved), valid [N] bool (not both objects empty).
    """
    pred = _frames(pred_swapped, "pred_swapped")
    pred = pred if pred.dtype == torch.bool else _predicted(pred)
    original = _binary(_frames(original_obj_masks, "original_obj_masks"), "original_obj_masks").to(pred.device)
    swapped = _binary(_frames(swapped_obj_masks, "swapped_obj_masks"), "swapped_obj_masks").to(pred.device)
    if not pred.shape == original.shape == swapped.shape:
        raise ValueError(f"moved_to_swapped: shapes differ: pred {tuple(pred.shape)}, original "
                         f"{tuple(original.shape)}, swapped {tuple(swapped.shape)}")
    to_original = (pred & original).flatten(1).sum(1).double()  # [N]
    to_swapped = (pred & swapped).flatten(1).sum(1).double()  # [N]
    if overlap == "iou":
        to_original = to_original / (pred | original).flatten(1).sum(1).clamp_min(1)
        to_swapped = to_swapped / (pred | swapped).flatten(1).sum(1).clamp_min(1)
    elif overlap != "pixels":
        raise ValueError(f"overlap must be 'pixels' or 'iou', got {overlap!r}")
    valid = original.flatten(1).any(1) | swapped.flatten(1).any(1)
    return to_swapped > to_original, valid


def listening_rate(pred_swapped: Tensor, original_obj_masks: Tensor, swapped_obj_masks: Tensor,
                   overlap: str = "pixels") -> float:
    """Fraction of frames whose prediction follows swapped-in audio to the other object.

    1.0 for a model that segments whatever the audio names, 0.0 for one that ignores the audio.
    Frames where both objects are absent are excluded; ties count as not moved (see
    `moved_to_swapped` for the arguments).
    """
    moved, valid = moved_to_swapped(pred_swapped, original_obj_masks, swapped_obj_masks, overlap)
    if not bool(valid.any()):
        raise ValueError("listening_rate: every frame has both objects empty; nothing to measure")
    return float(moved[valid].double().mean())


def audio_following_rate(pred_true: Tensor, pred_swapped: Tensor, original_obj_masks: Tensor,
                         swapped_obj_masks: Tensor, overlap: str = "pixels") -> float:
    """Fraction of frames where the mask is on the sounding object with the true audio *and*
    moves to the swapped-in object with the swapped audio.

    The listening rate alone counts a model that ignores audio but happens to prefer the
    other object by its looks (chance is about 1/2 with two objects); this paired rate is 0 for
    every model whose prediction does not depend on the audio, and 1 for one that follows it.
    """
    stays, valid = moved_to_swapped(pred_true, swapped_obj_masks, original_obj_masks, overlap)
    moved, _ = moved_to_swapped(pred_swapped, original_obj_masks, swapped_obj_masks, overlap)
    if not bool(valid.any()):
        raise ValueError("audio_following_rate: every frame has both objects empty; nothing to measure")
    return float((stays & moved)[valid].double().mean())


# ---------------------------------------------------------------- audio changes on any data

MOVED_BELOW_IOU = 0.5  # a clip's mask "moves" when it overlaps its true-audio mask less than this


def predicted_area(logits: Tensor) -> Tensor:
    """Per frame, the share of pixels predicted object (sigmoid > 0.5), float64 [N]."""
    return _predicted(_frames(logits, "predicted_area")).flatten(1).double().mean(1)


def prediction_iou(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Per frame, the IoU of two predicted masks, float64 [N]; two empty masks agree fully (1)."""
    a, b = _predicted(_frames(logits_a, "prediction_iou")), _predicted(_frames(logits_b, "prediction_iou"))
    if a.shape != b.shape:
        raise ValueError(f"prediction_iou: masks {tuple(a.shape)} and {tuple(b.shape)} differ in shape")
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


class AudioChangeMeter:
    """How much each clip's predicted mask changes when its audio is replaced (silence, another
    clip's track). Needs no knowledge of the objects, so it runs on real AVSBench too.

    Per clip, over its frames: the mean predicted area with the true and the changed audio, and
    the mean IoU between the two predictions. The mask *moves* when that IoU is below
    `moved_below` (default 0.5: the changed mask shares less than half of the union with the
    true-audio one). A model that ignores the audio has IoU 1, area change 0 and moves never.
    """

    def __init__(self, moved_below: float = MOVED_BELOW_IOU):
        if not 0.0 < moved_below <= 1.0:
            raise ValueError(f"moved_below must be in (0, 1], got {moved_below}")
        self.moved_below = moved_below
        self.reset()

    def reset(self) -> None:
        self._rows: list[dict[str, Any]] = []

    @torch.no_grad()
    def update(self, logits_true: Tensor, logits_changed: Tensor, names: Sequence[str],
               keep: Sequence[bool] | None = None) -> None:
        """Add clips: logits [B*T, 1, H, W] (or [B*T, H, W]) clip-major, `names` one per clip (B);
        with `keep`, only the clips it marks (e.g. those that got another clip's track)."""
        if keep is not None:
            kept = [b for b, k in enumerate(keep) if k]
            if not kept:
                return
            T = logits_true.shape[0] // len(names)
            frames = torch.tensor([b * T + t for b in kept for t in range(T)], device=logits_changed.device)
            logits_true, logits_changed, names = logits_true[frames], logits_changed[frames], [names[b] for b in kept]
        n = _frames(logits_true, "AudioChangeMeter").shape[0]
        if not names or n % len(names):
            raise ValueError(f"AudioChangeMeter.update: {n} frames cannot be split into {len(names)} clips")
        T = n // len(names)
        area_true = predicted_area(logits_true).view(len(names), T).mean(1)  # [B*T] -> [B]
        area_changed = predicted_area(logits_changed).view(len(names), T).mean(1)
        agreement = prediction_iou(logits_true, logits_changed).view(len(names), T).mean(1)
        for b, name in enumerate(names):
            self._rows.append({"name": str(name), "area_true": float(area_true[b]),
                               "area_changed": float(area_changed[b]), "iou_to_true": float(agreement[b]),
                               "moved": bool(agreement[b] < self.moved_below)})

    def compute(self) -> dict[str, Any]:
        """per_clip DataFrame (name, area_true, area_changed, iou_to_true, moved) and the means:
        clips, area_change (signed, share of the frame), abs_area_change, iou_to_true, moved_share.
        NaN means when no clip was added."""
        per_clip = pd.DataFrame(self._rows, columns=["name", "area_true", "area_changed", "iou_to_true", "moved"])
        change = per_clip["area_changed"] - per_clip["area_true"]
        return {
            "per_clip": per_clip,
            "clips": len(per_clip),
            "area_change": float(change.mean()),  # an empty Series' mean is NaN
            "abs_area_change": float(change.abs().mean()),
            "iou_to_true": float(per_clip["iou_to_true"].mean()),
            "moved_share": float(per_clip["moved"].mean()),
        }


def audio_change_summary(changes: dict[str, AudioChangeMeter], metrics: dict[str, Any]) -> dict[str, Any]:
    """Per changed audio: the meter's means as `{mode}_{key}`, and `{mode}_miou_change` (mIoU against
    the ground truth with that audio minus with the true one, from `metrics`)."""
    out: dict[str, Any] = {}
    for mode, meter in changes.items():
        result = meter.compute()
        for key in ("area_change", "abs_area_change", "iou_to_true", "moved_share", "clips"):
            out[f"{mode}_{key}"] = result[key]
        out[f"{mode}_miou_change"] = metrics[f"miou_{mode}"] - metrics["miou"]
    return out


def audio_change_table(changes: dict[str, AudioChangeMeter], computed: dict[str, dict]) -> pd.DataFrame:
    """One row per (audio, clip): the mask changes, and the clip's ground-truth IoU with the true and
    the changed audio (`computed`: each `Evaluator.compute()` by audio)."""
    gt_true = computed["true"]["per_clip"].set_index("name")["iou"]
    tables = []
    for mode, meter in changes.items():
        table = meter.compute()["per_clip"]
        table.insert(0, "audio", mode)
        table["gt_iou_true"] = table["name"].map(gt_true)
        table["gt_iou_changed"] = table["name"].map(computed[mode]["per_clip"].set_index("name")["iou"])
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


SIDECAR_ONLY_NOTE = ("synthetic-only: the listening and following rates need the masks of the swapped-in "
                     "class's object, which only the synthetic generator's sidecar knows; this dataset has none")


class ListeningMeter:
    """The listening and following rates over the swapped-audio frames of clips whose swapped-in
    object's mask is known (the synthetic sidecar); NaN with a note on real data."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.pred, self.true, self.orig, self.new = [], [], [], []

    def update(self, logits_true: Tensor, logits_swapped: Tensor, original_obj_masks: Tensor,
               swapped_obj_masks: Tensor) -> None:
        """Add one clip: logits [T, 1, S, S] with the true and the swapped audio, object masks [T, S, S]."""
        self.pred.append(logits_swapped[:, 0].cpu())
        self.true.append(logits_true[:, 0].cpu())
        self.orig.append(original_obj_masks)
        self.new.append(swapped_obj_masks)

    def compute(self) -> dict[str, Any]:
        if not self.pred:
            return {"listening_rate": float("nan"), "following_rate": float("nan"), "listening_frames": 0,
                    "listening_rate_note": SIDECAR_ONLY_NOTE}
        pred, orig, new = torch.cat(self.pred), torch.cat(self.orig), torch.cat(self.new)
        return {"listening_rate": listening_rate(pred, orig, new),
                "following_rate": audio_following_rate(torch.cat(self.true), pred, orig, new),
                "listening_frames": int(sum(len(p) for p in self.pred))}
