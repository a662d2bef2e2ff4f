"""How far a model gets without hearing: the gap between the oracle (the sounding object) and the
best visual strategy is what listening must earn (notebook 01)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avs_lib.data.avsbench import mask_values, open_image, open_split
from avs_lib.data.sidecar import read_sidecar
from avs_lib.metrics import frame_iou


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
    data = open_split(root, split, audio="pkl")  # the metadata and mask paths, as the runs read them
    scores = []  # one dict of strategy -> IoU per frame with a GT mask
    for index, clip in enumerate(data.clips):
        visible = read_sidecar(root, split, clip.name).masks.astype(bool)  # [K, 5, H, W]
        paths = data.paths(index)
        for k, path in zip(paths.mask_frames, paths.masks, strict=True):
            truth = mask_values(open_image(path, f"ground-truth mask {k + 1} of clip {clip.name!r}")) != 0
            scores.append(_strategy_scores(visible[:, k], truth))
    return {strategy: float(np.mean([s[strategy] for s in scores])) for strategy in scores[0]}
