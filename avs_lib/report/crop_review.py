"""Reviewing the crop labels: do the labelImg boxes agree with the ground-truth masks?

The thesis' crop losses trust each frame's box of the sounding object. Where a frame also has a
ground-truth mask, the box should be close to the mask's tight box; a low IoU means a box drawn
on the wrong object, a stale box after the object moved, or an object mostly hidden (the box
covers the whole object, the mask only its visible part). Such frames are listed for a person
to look at, not corrected automatically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from avs_lib.data.avsbench import mask_values, open_image, read_crop_label
from avs_lib.data.boxes import box_from_mask, crop_and_resize, scale_box
from avs_lib.data.errors import DataFormatError

REVIEW_THRESHOLD = 0.5  # box/mask IoU below this is flagged for review
REVIEW_COLUMNS = ["split", "category", "name", "frame", "has_gt", "box", "mask_box", "box_area_fraction",
                  "box_aspect", "iou", "flagged", "reason"]


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


def _read_mask(path: Path, what: str) -> np.ndarray:
    """bool [H, W]: any non-zero pixel is object (as the readers do)."""
    return mask_values(open_image(path, what)) != 0


def _frame_row(dataset, index: int, frame: int, masks: dict[int, Path], threshold: float) -> dict:
    """One labelled frame: its box, and where a mask exists, how well the two agree."""
    clip, paths = dataset.clips[index], dataset.paths(index)
    row = {"split": clip.split, "category": clip.category, "name": clip.name, "frame": frame + 1,
           "has_gt": frame in masks, "box": None, "mask_box": None, "box_area_fraction": np.nan,
           "box_aspect": np.nan, "iou": np.nan, "flagged": False, "reason": ""}
    try:
        with Image.open(paths.frames[frame]) as image:
            frame_size = image.size  # (w, h)
        box, label_size = read_crop_label(paths.crop_labels[frame], clip.category, frame_size)
        width, height = box[2] - box[0], box[3] - box[1]
        row.update(box=tuple(box), box_area_fraction=width * height / (label_size[0] * label_size[1]),
                   box_aspect=width / height)
        if frame in masks:
            mask = _read_mask(masks[frame], f"mask {frame + 1} of clip {clip.name!r}")
            mask_size = (mask.shape[1], mask.shape[0])
            if not mask.any():
                row.update(flagged=True, reason="the ground-truth mask is empty but the frame has a box")
                return row
            mask_box = box_from_mask(mask)
            if label_size != mask_size:
                box = scale_box(box, label_size, mask_size)  # compare in the mask's pixels
            row.update(mask_box=mask_box, iou=box_iou(box, mask_box))
            if row["iou"] < threshold:
                row.update(flagged=True, reason=f"box and mask disagree (IoU {row['iou']:.2f} < {threshold:g})")
    except (FileNotFoundError, DataFormatError) as error:
        # A broken label is a finding of the review: listed with its message, never skipped.
        row.update(flagged=True, reason=str(error))
    return row


def review_crop_labels(dataset, threshold: float = REVIEW_THRESHOLD, progress: bool = False) -> pd.DataFrame:
    """One row per labelled frame of `dataset` (an `AVSBenchS4` split): the box, and for frames
    with a ground-truth mask its IoU with the mask's tight box; `flagged` rows need a look.

    Columns: split, category, name, frame (1-based), has_gt, box, mask_box (xmin, ymin, xmax,
    ymax, max exclusive; box in its label's pixels), box_area_fraction, box_aspect (w / h),
    iou (NaN without a mask), flagged, reason. Unreadable or missing labels are flagged rows.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    rows = []
    for index in tqdm(range(len(dataset)), desc=f"review {getattr(dataset, 'split', '')}", disable=not progress):
        paths = dataset.paths(index)
        if not paths.crop_labels:
            raise ValueError(f"{dataset!r} has no crop labels to review (S4 only)")
        masks = dict(zip(paths.mask_frames, paths.masks, strict=True))
        rows += [_frame_row(dataset, index, k, masks, threshold) for k in range(len(paths.frames))]
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS)


def box_statistics(review: pd.DataFrame) -> pd.DataFrame:
    """Per category: frames labelled, mean box area (share of the frame) and aspect, mean box/mask
    IoU over frames with a mask, and the number flagged."""
    return (
        review.groupby("category")
        .agg(frames=("frame", "size"), box_area_fraction=("box_area_fraction", "mean"),
             box_aspect=("box_aspect", "mean"), frames_with_gt=("has_gt", "sum"),
             mean_iou=("iou", "mean"), flagged=("flagged", "sum"))
        .sort_values("flagged", ascending=False, kind="stable")
    )


def save_review(review: pd.DataFrame, path: str | Path) -> Path:
    """Write the flagged rows (the labels a person should check) as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    review[review["flagged"]].to_csv(path, index=False)
    return path


def crop_examples(dataset, indices: Sequence[int], frame: int = 0, size: int = 224) -> tuple[np.ndarray, list[str]]:
    """The crops the crop classifier is given (box cut, resized to `size`), back as pixels.

    Returns uint8 [N, size, size, 3] and the clips' categories as labels.
    """
    from avs_lib.report.viz import denormalize

    crops, labels = [], []
    for index in indices:
        item = dataset[index]
        if "boxes" not in item:
            raise ValueError("crop_examples needs a dataset read with crop_labels=True")
        crop = crop_and_resize(item["frames"][frame], item["boxes"][frame].tolist(), size)  # [3, c, c]
        crops.append(crop)
        labels.append(item["category_name"])
    return denormalize(torch.stack(crops)), labels  # [N, 3, c, c] -> uint8 [N, c, c, 3]


__all__ = ["REVIEW_THRESHOLD", "box_iou", "box_statistics", "crop_examples", "review_crop_labels", "save_review"]
