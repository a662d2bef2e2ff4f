"""Reviewing the crop labels the thesis' crop losses trust: where a frame also has a mask, its box
should be close to the mask's tight box. A low IoU (a box on the wrong object, stale, or around an
object mostly hidden) is listed for a person to look at, never corrected. AVSBench ships no crop
labels, so their absence is reported (`label_status`), not an error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from avs_lib.atomic import write_text_atomically
from avs_lib.data.avsbench import (
    CROP_LABELS_DIR,
    crop_label_name,
    mask_values,
    missing_crop_labels,
    open_image,
    open_split,
    read_crop_label,
)
from avs_lib.data.boxes import box_from_mask, crop_and_resize, scale_box
from avs_lib.data.categories import SPLITS
from avs_lib.data.errors import DataFormatError, crop_labels_instruction
from avs_lib.datatools.crop_labels import ORIGIN_COPIED, ORIGIN_DRAWN, ORIGIN_MASK, label_origin

REVIEW_THRESHOLD = 0.5  # box/mask IoU below this is flagged for review
REVIEW_COLUMNS = ["split", "category", "name", "frame", "has_gt", "box", "origin", "mask_box",
                  "box_area_fraction", "box_aspect", "iou", "flagged", "reason"]


@dataclass(frozen=True)
class LabelStatus:
    """Whether a dataset tree has crop labels, and what to tell the reader of the report."""
    folder: Path  # ROOT/{s4,ms3}_data/crop_labels
    found: bool  # the folder exists
    missing: dict[str, int]  # label files absent, per split (empty when not found)

    @property
    def message(self) -> str:
        root = self.folder.parent.parent
        if not self.found:
            return (f"**No crop labels** in `{self.folder}`: AVSBench ships none. To {crop_labels_instruction(root)}. "
                    "The thesis' methods need them; the other methods do not, and this review has nothing to show.")
        if any(self.missing.values()):
            gaps = ", ".join(f"{n} in {split}" for split, n in self.missing.items() if n)
            return (f"Crop labels in `{self.folder}` with **files missing** ({gaps}); they are listed below as "
                    f"flagged frames. To fill the gaps, {crop_labels_instruction(root)} (drawn files are kept).")
        return f"Crop labels in `{self.folder}`: every frame of every split has a label file."


def review_splits(root: str | Path, dataset: str = "s4", image_size: int = 224, audio: str = "pkl") -> dict:
    """Every split, read without boxes: the review reads each label itself (a missing one is a finding)."""
    return {split: open_split(root, split, dataset, image_size=image_size, audio=audio) for split in SPLITS}


def label_status(splits: dict) -> LabelStatus:
    """Whether the tree of `splits` (`review_splits`) has crop labels, and how many are missing per split."""
    first = next(iter(splits.values()))
    folder = first.root / first.layout.data_dir / CROP_LABELS_DIR
    if not folder.is_dir():
        return LabelStatus(folder, False, {})
    missing = {split: len(missing_crop_labels([ds.paths(i) for i in range(len(ds))])) for split, ds in splits.items()}
    return LabelStatus(folder, True, missing)


def with_boxes(splits: dict, status: LabelStatus) -> dict:
    """The splits whose every label file exists, read with their boxes (for the figures)."""
    if not status.found:
        return {}
    return {split: type(ds)(ds.root, split, image_size=ds.image_size, audio=ds.audio, crop_labels=True)
            for split, ds in splits.items() if status.missing.get(split, 0) == 0}


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes (xmin, ymin, xmax, ymax), max exclusive, in the same pixel grid."""
    for box in (a, b):
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box_iou: expected (xmin, ymin, xmax, ymax) with max > min, got {tuple(box)}")
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def _frame_row(dataset, index: int, frame: int, masks: dict[int, Path]) -> dict:
    """One labelled frame: its box, and where a mask exists, how well the two agree."""
    clip, paths = dataset.clips[index], dataset.paths(index)
    row = {"split": clip.split, "category": clip.category, "name": clip.name, "frame": frame + 1,
           "has_gt": frame in masks, "box": None, "origin": "", "mask_box": None, "box_area_fraction": np.nan,
           "box_aspect": np.nan, "iou": np.nan, "flagged": False, "reason": ""}
    try:
        with Image.open(paths.frames[frame]) as image:
            frame_size = image.size  # (w, h)
        box, label_size = read_crop_label(paths.crop_labels[frame], crop_label_name(clip), frame_size)
        width, height = box[2] - box[0], box[3] - box[1]
        row.update(box=tuple(box), origin=label_origin(paths.crop_labels[frame]),
                   box_area_fraction=width * height / (label_size[0] * label_size[1]), box_aspect=width / height)
        if frame in masks:
            mask = mask_values(open_image(masks[frame], f"mask {frame + 1} of clip {clip.name!r}")) != 0
            mask_size = (mask.shape[1], mask.shape[0])
            if not mask.any():
                row.update(flagged=True, reason="the ground-truth mask is empty but the frame has a box")
                return row
            mask_box = box_from_mask(mask)
            if label_size != mask_size:
                box = scale_box(box, label_size, mask_size)  # compare in the mask's pixels
            row.update(mask_box=mask_box, iou=box_iou(box, mask_box))
            if row["iou"] < REVIEW_THRESHOLD:
                row.update(flagged=True, reason=f"box and mask disagree (IoU {row['iou']:.2f} < {REVIEW_THRESHOLD:g})")
    except (FileNotFoundError, DataFormatError) as error:
        # A broken label is a finding of the review: listed with its message, never skipped.
        row.update(flagged=True, reason=str(error))
    return row


def review_crop_labels(dataset) -> pd.DataFrame:
    """One REVIEW_COLUMNS row per frame of an S4 or MS3 split: its box (its label's pixels, max
    exclusive) and origin, and with a mask the IoU with the mask's box; unreadable labels are flagged."""
    rows = []
    for index in range(len(dataset)):
        paths = dataset.paths(index)
        masks = dict(zip(paths.mask_frames, paths.masks, strict=True))
        rows += [_frame_row(dataset, index, k, masks) for k in range(len(paths.frames))]
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS)


def review_all(splits: dict, status: LabelStatus) -> pd.DataFrame:
    """`review_crop_labels` of every split; no rows (same columns) without labels."""
    if not status.found:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    return pd.concat([review_crop_labels(ds) for ds in splits.values()], ignore_index=True)


def coverage(review: pd.DataFrame) -> pd.DataFrame:
    """Per split: frames, labelled frames and their share, the boxes' origins, frames with a mask,
    mean box/mask IoU, flags."""
    table = review.assign(
        labelled=review["box"].notna(), from_mask=review["origin"] == ORIGIN_MASK,
        copied=review["origin"] == ORIGIN_COPIED, drawn=review["origin"] == ORIGIN_DRAWN,
        iou=pd.to_numeric(review["iou"]), has_gt=review["has_gt"].astype(bool), flagged=review["flagged"].astype(bool))
    out = table.groupby("split", sort=False).agg(
        frames=("frame", "size"), labelled=("labelled", "sum"), from_mask=("from_mask", "sum"),
        copied=("copied", "sum"), drawn=("drawn", "sum"), with_gt=("has_gt", "sum"),
        mean_iou=("iou", "mean"), flagged=("flagged", "sum"))
    out.insert(2, "coverage", out["labelled"] / out["frames"])
    return out


def box_statistics(review: pd.DataFrame) -> pd.DataFrame:
    """Per category: frames, mean box area share and aspect, frames with a mask, mean IoU, flags."""
    table = review.groupby("category").agg(
        frames=("frame", "size"), box_area_fraction=("box_area_fraction", "mean"), box_aspect=("box_aspect", "mean"),
        frames_with_gt=("has_gt", "sum"), mean_iou=("iou", "mean"), flagged=("flagged", "sum"))
    return table.sort_values("flagged", ascending=False, kind="stable")


def review_summary(review: pd.DataFrame, status: LabelStatus) -> dict[str, Any]:
    """The numbers of notebook 02's closing sentence."""
    with_gt = review[review["has_gt"].astype(bool)] if status.found else review
    origins = review["origin"].value_counts() if status.found else pd.Series(dtype=int)
    return {"found": status.found, "frames": len(review), "with_mask": len(with_gt),
            "flagged": int(with_gt["flagged"].sum()) if len(with_gt) else 0,
            "median_iou": float(pd.to_numeric(with_gt["iou"]).median()) if len(with_gt) else float("nan"),
            "from_mask": int(origins.get(ORIGIN_MASK, 0)), "copied": int(origins.get(ORIGIN_COPIED, 0)),
            "drawn": int(origins.get(ORIGIN_DRAWN, 0))}


def save_review(review: pd.DataFrame, path: str | Path) -> Path:
    """The flagged rows (the labels a person should check) as CSV, written atomically."""
    write_text_atomically(path, review[review["flagged"]].to_csv(index=False))
    return Path(path)


def crop_examples(dataset, indices: Sequence[int], size: int = 224) -> tuple[np.ndarray, list[str]]:
    """The crops of the first frames the crop classifier is given, as uint8 [N, size, size, 3], and their categories."""
    from avs_lib.report.viz import denormalize

    crops, labels = [], []
    for index in indices:
        item = dataset[index]
        if "boxes" not in item:
            raise ValueError("crop_examples needs a dataset read with crop_labels=True")
        crops.append(crop_and_resize(item["frames"][0], item["boxes"][0].tolist(), size))  # [3, c, c]
        labels.append(item["category_name"])
    return denormalize(torch.stack(crops)), labels  # [N, 3, c, c] -> uint8 [N, c, c, 3]
