"""Crop labels bootstrapped from the ground-truth masks, as labelImg files a person can correct.

AVSBench has masks, not boxes; the thesis' crop losses need one box of the sounding object per frame.
Each frame gets a Pascal VOC file: its own mask's tight box (origin ``mask``), else the nearest frame's,
the earlier on a tie (``copied``: S4 train annotates frame 1 only); a clip with only empty masks, none.
A ``<derived>`` mark tells them from hand-drawn labels, which are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from avs_lib.data.avsbench import (
    ClipPaths,
    clip_paths,
    crop_label_name,
    detect_layout,
    mask_values,
    open_image,
    read_metadata,
)
from avs_lib.data.boxes import Box, box_from_mask, read_voc_annotation, write_voc
from avs_lib.data.categories import FRAMES_PER_CLIP, SPLITS
from avs_lib.data.errors import DataFormatError

ORIGIN_MASK = "mask"  # the tight box of the frame's own mask
ORIGIN_COPIED = "copied"  # the box of another frame's mask (this frame has none, or an empty one)
ORIGIN_DRAWN = "drawn"  # no <derived> mark: drawn or saved in labelImg, or written by another tool
TOOL = "python -m avs_lib crop-labels"


@dataclass(frozen=True)
class DerivedBox:
    """One frame's bootstrapped box and where it came from (``from_frame`` is 0-based)."""

    box: Box
    origin: str  # ORIGIN_MASK | ORIGIN_COPIED
    from_frame: int


def derive_boxes(masks: dict[int, np.ndarray], frames: int = FRAMES_PER_CLIP) -> list[DerivedBox | None]:
    """Each frame's box from a clip's masks (0-based frame -> bool [H, W]); all None when every mask is empty."""
    boxes = {k: box_from_mask(mask) for k, mask in masks.items() if np.any(mask)}
    if not boxes:
        return [None] * frames
    nearest = [k if k in boxes else min(boxes, key=lambda j: (abs(j - k), j)) for k in range(frames)]
    return [DerivedBox(boxes[j], ORIGIN_MASK if j == k else ORIGIN_COPIED, j) for k, j in enumerate(nearest)]


def is_hand_drawn(xml: Path) -> bool:
    """Whether a person made the label: an XML without the <derived> mark (or unparsable: a
    half-saved edit), or a YOLO .txt in its place."""
    if xml.is_file():
        try:
            return read_voc_annotation(xml).derived is None
        except DataFormatError:
            return True
    return xml.with_suffix(".txt").is_file()


def label_origin(xml: Path) -> str:
    """How an existing label file's box was made: ORIGIN_MASK, ORIGIN_COPIED or ORIGIN_DRAWN."""
    if not xml.is_file():
        return ORIGIN_DRAWN  # a YOLO .txt: only labelImg writes those
    derived = read_voc_annotation(xml).derived
    return ORIGIN_DRAWN if derived is None else derived.get("origin", ORIGIN_DRAWN)


@dataclass
class BootstrapReport:
    """What ``bootstrap_crop_labels`` did, per file and per clip."""

    root: Path
    written: dict[str, int] = field(default_factory=lambda: {ORIGIN_MASK: 0, ORIGIN_COPIED: 0})
    kept: list[Path] = field(default_factory=list)  # hand-drawn files left alone
    unboxed_clips: list[str] = field(default_factory=list)  # "split/name": every mask empty

    def summary(self) -> str:
        lines = [f"crop labels under {self.root}: wrote {sum(self.written.values())} file(s) "
                 f"({self.written[ORIGIN_MASK]} box of the frame's own mask, "
                 f"{self.written[ORIGIN_COPIED]} copied from the nearest frame with a mask)",
                 f"kept {len(self.kept)} hand-drawn file(s) (--overwrite replaces them)"]
        if self.unboxed_clips:
            shown = ", ".join(self.unboxed_clips[:10])
            more = f" and {len(self.unboxed_clips) - 10} more" if len(self.unboxed_clips) > 10 else ""
            lines.append(f"{len(self.unboxed_clips)} clip(s) have only empty masks, so no box: {shown}{more} "
                         "(draw their boxes in labelImg)")
        lines.append("review them in notebook 02; correct them in labelImg (its save folder: the "
                     "frame's folder under crop_labels/)")
        return "\n".join(lines)


def _frame_sizes(paths: ClipPaths) -> list[tuple[tuple[int, int], int]]:
    """(width, height) and channel count of each frame, read from the PNG header only."""
    sizes = []
    for path in paths.frames:
        if not path.is_file():
            raise FileNotFoundError(f"missing frame: {path} (each crop label names its frame)")
        with Image.open(path) as image:
            sizes.append((image.size, len(image.getbands())))
    return sizes


def _clip_masks(paths: ClipPaths, name: str, sizes: list[tuple[int, int]]) -> dict[int, np.ndarray]:
    """The clip's masks as bool [H, W] by 0-based frame, each the size of its frame."""
    masks = {}
    for k, path in zip(paths.mask_frames, paths.masks, strict=True):
        mask = mask_values(open_image(path, f"mask {k + 1} of clip {name!r}")) != 0
        if (mask.shape[1], mask.shape[0]) != sizes[k]:
            raise DataFormatError(path, f"mask is {mask.shape[1]}x{mask.shape[0]}, expected the size of its frame "
                                  f"{paths.frames[k]} ({sizes[k][0]}x{sizes[k][1]})")
        masks[k] = mask
    return masks


def bootstrap_crop_labels(root: str | Path, splits: Iterable[str] | None = None, subset: str | None = None,
                          overwrite: bool = False, progress: bool = False) -> BootstrapReport:
    """Write labelImg VOC crop labels from the ground-truth masks, rewriting this tool's earlier files. A missing
    or unreadable frame or mask raises (``python -m avs_lib check-data`` lists them all)."""
    root = Path(root)
    layout = detect_layout(root, subset)
    chosen = list(SPLITS if splits is None else splits)
    unknown = [split for split in chosen if split not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {', '.join(unknown)}; expected some of {', '.join(SPLITS)}")
    report = BootstrapReport(root)
    inside = root.resolve()
    for clip in tqdm([c for c in read_metadata(root, layout) if c.split in chosen], desc="crop labels",
                     disable=not progress):
        paths = clip_paths(layout, root, clip)
        sizes = _frame_sizes(paths)
        boxes = derive_boxes(_clip_masks(paths, clip.name, [size for size, _ in sizes]), len(paths.frames))
        if all(box is None for box in boxes):
            report.unboxed_clips.append(f"{clip.split}/{clip.name}")
            continue
        for frame, xml, derived, (size, depth) in zip(paths.frames, paths.crop_labels, boxes, sizes, strict=True):
            if not overwrite and is_hand_drawn(xml):
                report.kept.append(xml)
                continue
            if not xml.resolve().is_relative_to(inside):  # the tool writes into the dataset only
                raise ValueError(f"{xml}: a symlink leads it to {xml.resolve()}, outside the dataset root {inside}; "
                                 "refusing to write there (replace the link by a folder inside the dataset)")
            mark = {"origin": derived.origin, "from_frame": str(derived.from_frame + 1), "tool": TOOL}  # 1-based
            write_voc(xml, derived.box, name=crop_label_name(clip), image_path=frame.resolve(),
                      image_size=size, depth=depth, derived=mark)
            report.written[derived.origin] += 1
    return report
