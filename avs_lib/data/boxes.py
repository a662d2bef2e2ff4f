"""Bounding boxes of the sounding object: labelImg files (Pascal VOC XML, YOLO txt) and crops.

In memory a box is ``(xmin, ymin, xmax, ymax)`` of ints, 0-based, exclusive max (``image[ymin:ymax,
xmin:xmax]``); VOC's 1-based inclusive coordinates are converted only in ``read_voc_annotation`` and
``write_voc``; YOLO's normalised edges map straight onto it. A box a program made carries a ``<derived>``
element; labelImg rewrites the whole file on save and drops it, so a box saved in labelImg is hand-drawn.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avs_lib.atomic import write_bytes_atomically
from avs_lib.data.errors import DataFormatError

Box = tuple[int, int, int, int]
DERIVED_TAG = "derived"  # our extension of the VOC file; labelImg ignores it and drops it on save


@dataclass(frozen=True)
class VocObject:
    """One ``<object>`` of a VOC file; ``box`` is already 0-based, exclusive max."""

    name: str
    box: Box


@dataclass(frozen=True)
class VocAnnotation:
    """A whole VOC file: the size ``(width, height)`` of the image it describes, and its objects."""

    image_size: tuple[int, int]
    objects: list[VocObject]
    derived: dict[str, str] | None = None  # the <derived> element's children; None: drawn by hand


def _child_text(path: Path, parent: ET.Element, tag: str, where: str) -> str:
    child = parent.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataFormatError(path, f"missing <{tag}> in <{where}> (expected a labelImg VOC file)")
    return child.text.strip()


def _child_int(path: Path, parent: ET.Element, tag: str, where: str) -> int:
    text = _child_text(path, parent, tag, where)
    try:
        value = float(text)  # other tools write "12.0" or "12.4"; labelImg writes ints
    except ValueError:
        raise DataFormatError(path, f"<{where}/{tag}> is {text!r}, expected a number") from None
    if not math.isfinite(value):
        raise DataFormatError(path, f"<{where}/{tag}> is {text!r}, expected a finite number")
    return math.floor(value + 0.5)


def _parse_object(path: Path, element: ET.Element, image_size: tuple[int, int]) -> VocObject:
    width, height = image_size
    name = _child_text(path, element, "name", "object")
    bndbox = element.find("bndbox")
    if bndbox is None:
        raise DataFormatError(path, f"object {name!r} has no <bndbox>")
    xmin, ymin, xmax, ymax = (_child_int(path, bndbox, tag, "bndbox") for tag in ("xmin", "ymin", "xmax", "ymax"))
    if xmax < xmin or ymax < ymin:
        raise DataFormatError(path, f"object {name!r} has a zero-area box xmin={xmin} ymin={ymin} xmax={xmax} "
                                    f"ymax={ymax} (expected xmin <= xmax and ymin <= ymax, 1-based inclusive)")
    if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
        raise DataFormatError(path, f"object {name!r} box xmin={xmin} ymin={ymin} xmax={xmax} ymax={ymax} lies "
                                    f"outside the {width}x{height} image (expected 1 <= xmin, xmax <= {width}, "
                                    f"1 <= ymin, ymax <= {height})")
    # 1-based inclusive -> 0-based exclusive max: only the minimum moves.
    return VocObject(name, (xmin - 1, ymin - 1, xmax, ymax))


def read_voc_annotation(path: str | Path) -> VocAnnotation:
    """Parse a labelImg Pascal VOC file, checking every box against the image size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DataFormatError(path, f"malformed XML ({error}); expected a labelImg VOC file") from None
    if root.tag != "annotation":
        raise DataFormatError(path, f"root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    if size is None:
        raise DataFormatError(path, "missing <size> (expected <size><width><height><depth>)")
    image_size = (_child_int(path, size, "width", "size"), _child_int(path, size, "height", "size"))
    if min(image_size) <= 0:
        raise DataFormatError(path, f"image size {image_size} is not positive")
    objects = [_parse_object(path, element, image_size) for element in root.findall("object")]
    mark = root.find(DERIVED_TAG)
    derived = None if mark is None else {child.tag: (child.text or "").strip() for child in mark}
    return VocAnnotation(image_size, objects, derived)


def _check_box(box: Sequence[int], image_size: tuple[int, int], what: str, error=ValueError) -> Box:
    """`box` as ints, or `error(message)` raised if it is not a box inside the image."""
    if len(box) != 4:
        raise error(f"{what}: a box has 4 values (xmin, ymin, xmax, ymax), got {box!r}")
    xmin, ymin, xmax, ymax = (int(v) for v in box)
    width, height = image_size
    if xmax <= xmin or ymax <= ymin:
        raise error(f"{what}: zero-area box {box!r} (expected xmin < xmax and ymin < ymax)")
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        raise error(f"{what}: box {box!r} lies outside the {width}x{height} image")
    return xmin, ymin, xmax, ymax


def write_voc(path: str | Path, box: Sequence[int], *, name: str, image_path: str | Path,
              image_size: tuple[int, int], depth: int = 3, derived: dict[str, str] | None = None) -> None:
    """A one-object VOC file in labelImg's tags (labelImg can edit it); ``derived`` marks a program's box."""
    path, image_path = Path(path), Path(image_path)
    xmin, ymin, xmax, ymax = _check_box(box, image_size, str(path))
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = image_path.parent.name
    ET.SubElement(root, "filename").text = image_path.name
    ET.SubElement(root, "path").text = str(image_path)
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image_size[0]), ("height", image_size[1]), ("depth", depth)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(root, "segmented").text = "0"
    element = ET.SubElement(root, "object")
    for tag, value in (("name", name), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
        ET.SubElement(element, tag).text = value
    bndbox = ET.SubElement(element, "bndbox")
    # 0-based exclusive max -> 1-based inclusive: only the minimum moves.
    for tag, value in (("xmin", xmin + 1), ("ymin", ymin + 1), ("xmax", xmax), ("ymax", ymax)):
        ET.SubElement(bndbox, tag).text = str(value)
    if derived is not None:
        mark = ET.SubElement(root, DERIVED_TAG)
        for tag, text in derived.items():
            ET.SubElement(mark, tag).text = text
    ET.indent(root, space="\t")
    write_bytes_atomically(path, ET.tostring(root, encoding="utf-8") + b"\n")


def read_yolo(path: str | Path, image_size: tuple[int, int]) -> list[tuple[str, Box]]:
    """Boxes of a labelImg YOLO file: one ``class cx cy w h`` line per box, all normalised; class names
    are in ``classes.txt`` beside it, one per line (the line number is the id), as labelImg saves them."""
    path = Path(path)
    classes = path.parent / "classes.txt"
    if not classes.is_file():
        raise FileNotFoundError(f"YOLO classes file not found: {classes}")
    names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise DataFormatError(classes, "no class names (expected one name per line)")
    if not path.is_file():
        raise FileNotFoundError(f"YOLO label file not found: {path}")
    width, height = image_size
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) != 5:
            raise DataFormatError(path, f"{where} has {len(fields)} fields, expected 5 (class cx cy w h)")
        try:
            class_id = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise DataFormatError(path, f"{where} is {line.strip()!r}, expected an int and 4 numbers") from None
        if not 0 <= class_id < len(names):
            raise DataFormatError(path, f"{where}: class id {class_id} is outside 0..{len(names) - 1}")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            raise DataFormatError(path, f"{where}: cx cy w h = {cx} {cy} {w} {h}, expected values in [0, 1]")
        # Normalised edges -> pixel edges; rounding absorbs the 6-decimal text format.
        box = (round((cx - w / 2) * width), round((cy - h / 2) * height),
               round((cx + w / 2) * width), round((cy + h / 2) * height))
        boxes.append((names[class_id], _check_box(box, image_size, where, partial(DataFormatError, path))))
    return boxes


def box_from_mask(mask: np.ndarray | torch.Tensor) -> Box:
    """Tight box around the non-zero pixels of a [H, W] mask."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"box_from_mask expects a [H, W] mask, got shape {tuple(array.shape)}")
    rows, columns = np.flatnonzero(array.any(axis=1)), np.flatnonzero(array.any(axis=0))
    if rows.size == 0:
        raise ValueError("box_from_mask: the mask is empty, there is no object to box")
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def scale_box(box: Sequence[int], from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    """Move a box from an image of ``from_size`` (w, h) to one of ``to_size``, keeping >= 1 pixel."""
    xmin, ymin, xmax, ymax = _check_box(box, from_size, "scale_box")
    if min(to_size) <= 0:
        raise ValueError(f"scale_box: target size {to_size} is not positive")
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]

    def edge(value: float, limit: int) -> int:
        return min(max(math.floor(value + 0.5), 0), limit)  # round half up, clamp to the image

    new_xmin = min(edge(xmin * sx, to_size[0]), to_size[0] - 1)
    new_ymin = min(edge(ymin * sy, to_size[1]), to_size[1] - 1)
    new_xmax = max(edge(xmax * sx, to_size[0]), new_xmin + 1)
    new_ymax = max(edge(ymax * sy, to_size[1]), new_ymin + 1)
    return new_xmin, new_ymin, new_xmax, new_ymax


def _crop_one(frame: torch.Tensor, box: Sequence[float], size: int) -> torch.Tensor:
    height, width = frame.shape[-2:]
    xmin, ymin, xmax, ymax = _check_box([round(float(v)) for v in box], (width, height), "crop_and_resize")
    crop = frame[:, ymin:ymax, xmin:xmax].unsqueeze(0)  # [1, 3, h, w]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]


def crop_and_resize(frame: torch.Tensor, box: Sequence[float] | torch.Tensor, size: int = 224) -> torch.Tensor:
    """Crop [3,H,W] by one box, or [N,3,H,W] by boxes [N,4], to [.., 3, size, size] (bilinear); boxes
    are rounded to whole pixels, and gradients flow back into ``frame`` (a slice + interpolate)."""
    if frame.dim() == 3:
        return _crop_one(frame, box, size)
    boxes = torch.as_tensor(box)
    if frame.dim() != 4 or boxes.shape != (frame.shape[0], 4):
        raise ValueError(f"crop_and_resize expects frame [3,H,W] with one box, or [N,3,H,W] with boxes [N,4]; "
                         f"got frame {tuple(frame.shape)} and boxes {tuple(boxes.shape)}")
    return torch.stack([_crop_one(f, b.tolist(), size) for f, b in zip(frame, boxes, strict=True)])
