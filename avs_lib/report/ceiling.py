"""How far a model gets without hearing: the gap between the oracle (the sounding object) and the
best visual strategy is what listening must earn (notebook 01)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from avs_lib.data.categories import FRAMES_PER_CLIP, SPLITS
from avs_lib.data.sidecar import read_sidecar
from avs_lib.datatools.synth import META_FILE, clip_paths
from avs_lib.metrics import frame_iou


def _split_names(root: Path, split: str) -> list[tuple[str, str]]:
    path = root / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"metadata not found: {path}")
    with open(path, newline="") as file:
        return [(row["name"], row["category"]) for row in csv.DictReader(file) if row["split"] == split]


VISUAL_STRATEGIES = (
    "sounding_object",
    "largest_object",
    "most_central_object",
    "random_object",
    "union_of_objects",
)


def _strategy_scores(objects: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU of each strategy on one frame; ``objects`` [K, H, W] bool (0 sounds), ``truth`` [H, W]."""
    height, width = truth.shape
    areas = objects.sum(axis=(1, 2))  # [K]
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    centroid_x = (objects * xs).sum(axis=(1, 2)) / np.maximum(areas, 1)
    centroid_y = (objects * ys).sum(axis=(1, 2)) / np.maximum(areas, 1)
    off_centre = np.hypot(centroid_x - width / 2, centroid_y - height / 2)
    return {
        "sounding_object": frame_iou(objects[0], truth),
        "largest_object": frame_iou(objects[int(areas.argmax())], truth),
        "most_central_object": frame_iou(objects[int(off_centre.argmin())], truth),
        "random_object": float(np.mean([frame_iou(o, truth) for o in objects])),
        "union_of_objects": frame_iou(objects.any(axis=0), truth),
    }


def visual_only_ceiling(root: str | Path, split: str) -> dict[str, float]:
    """mIoU against the GT masks of strategies that see every object but hear nothing
    (`sounding_object` is the oracle; `random_object` the expected score of a uniform pick)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = Path(root)
    scores: dict[str, list[float]] = {strategy: [] for strategy in VISUAL_STRATEGIES}
    for name, category in _split_names(root, split):
        visible = read_sidecar(root, split, name).masks.astype(bool)  # [K, 5, H, W]
        mask_dir = clip_paths(root, split, category, name)["masks"]
        for i in (1,) if split == "train" else range(1, FRAMES_PER_CLIP + 1):
            path = mask_dir / f"{name}_{i}.png"
            if not path.is_file():
                raise FileNotFoundError(f"ground-truth mask not found: {path}")
            with Image.open(path) as image:
                truth = np.asarray(image.convert("L")) > 0
            for strategy, score in _strategy_scores(visible[:, i - 1], truth).items():
                scores[strategy].append(score)
    if not scores["sounding_object"]:
        raise ValueError(f"{root / META_FILE} lists no clips in split {split!r}")
    return {strategy: float(np.mean(values)) for strategy, values in scores.items()}
