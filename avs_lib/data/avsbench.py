"""AVSBench clips as tensors: the S4 ("Single-source") and MS3 ("Multi-sources") readers.

They read the official download's layout, so a checkpoint trained here sees what the official scripts saw:

    ROOT/s4_meta_data.csv                      name,start,category,split
    ROOT/s4_data/visual_frames/{split}/{category}/{name}/{name}_{i}.png     i = 1..5
    ROOT/s4_data/gt_masks/{split}/{category}/{name}/{name}_{i}.png          train: _1 only
    ROOT/s4_data/audio_wav/{split}/{category}/{name}.wav
    ROOT/s4_data/audio_log_mel/{split}/{category}/{name}.pkl
    ROOT/s4_data/crop_labels/{split}/{category}/{name}/{name}_{i}.xml       (thesis' boxes)
    ROOT/ms3_meta_data.csv                     video_id,split
    ROOT/ms3_data/visual_frames/{video_id}/{video_id}.mp4_{i}.png
    ROOT/ms3_data/gt_masks/{split}/{video_id}/{video_id}_{i}.png            all 5, every split
    ROOT/ms3_data/audio_wav/{split}/{video_id}.wav
    ROOT/ms3_data/audio_log_mel/{split}/{video_id}.pkl
    ROOT/ms3_data/crop_labels/{split}/{video_id}/{video_id}.mp4_{i}.xml      (this project's)

Crop labels are not in the download (``python -m avs_lib crop-labels ROOT`` makes them, named after their
frame as labelImg does); an MS3 box holds every sounding object, named ``sounding``.
``avs_lib.datatools.check.check_dataset`` audits a whole tree at once.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from avs_lib.data.audio import load_log_mel_cached, wav_conversion
from avs_lib.data.boxes import Box, read_voc_annotation, read_yolo
from avs_lib.data.categories import CATEGORY_TO_INDEX, FRAMES_PER_CLIP, SPLITS
from avs_lib.data.errors import DataFormatError, crop_labels_instruction
from avs_lib.data.safe_pickle import load_tensor_pickle
from avs_lib.data.sidecar import SIDECAR_DIR, read_sidecar

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOG_MEL_SHAPE = (FRAMES_PER_CLIP, 1, 96, 64)  # one 0.96 s VGGish example per second
AUDIO_SOURCES = ("wav", "pkl")
_MAX_LISTED = 10  # rows named in one error message before "and N more"
CROP_LABELS_DIR = "crop_labels"
MS3_OBJECT_NAME = "sounding"  # MS3 has no category: the object name of its crop labels


@dataclass(frozen=True)
class Layout:
    """One AVSBench subset's metadata file and data folder, relative to its root."""

    name: str  # "s4" | "ms3"
    csv_name: str
    columns: tuple[str, ...]
    name_column: str
    data_dir: str

    @property
    def header(self) -> str:
        return ",".join(self.columns)


S4_LAYOUT = Layout("s4", "s4_meta_data.csv", ("name", "start", "category", "split"), "name", "s4_data")
MS3_LAYOUT = Layout("ms3", "ms3_meta_data.csv", ("video_id", "split"), "video_id", "ms3_data")
LAYOUTS = {"s4": S4_LAYOUT, "ms3": MS3_LAYOUT}


def detect_layout(root: str | Path, subset: str | None = None) -> Layout:
    """The subset named ("s4" or "ms3"), or the one whose metadata CSV is in `root`."""
    if subset is not None:
        if subset not in LAYOUTS:
            raise ValueError(f"expected the subset s4 or ms3 (or None: detect it), got {subset!r}")
        return LAYOUTS[subset]
    present = [layout for layout in LAYOUTS.values() if (Path(root) / layout.csv_name).is_file()]
    if not present:
        raise FileNotFoundError(f"no AVSBench dataset at {root}: expected {S4_LAYOUT.csv_name} (S4) or "
                                f"{MS3_LAYOUT.csv_name} (MS3) there")
    if len(present) > 1:
        raise ValueError(f"{root} holds both {S4_LAYOUT.csv_name} and {MS3_LAYOUT.csv_name}; "
                         "name the subset (s4 or ms3)")
    return present[0]


@dataclass(frozen=True)
class ClipRecord:
    """One row of the metadata CSV (S4's ``start``, the trim start in the raw video, is not used)."""

    name: str
    category: str  # "" for MS3, which has no category column
    split: str

    @property
    def category_index(self) -> int:
        return CATEGORY_TO_INDEX[self.category] if self.category else -1


@dataclass(frozen=True)
class ClipPaths:
    """Every file one clip is expected to have."""

    frames: tuple[Path, ...]  # _1 .. _5
    masks: tuple[Path, ...]  # the masks the split provides (S4 train: _1 only)
    mask_frames: tuple[int, ...]  # 0-based frame index of each mask
    wav: Path
    log_mel: Path
    crop_labels: tuple[Path, ...]  # VOC XML per frame (a YOLO .txt may stand in for each)


def mask_frames(layout: Layout, split: str) -> tuple[int, ...]:
    """0-based frames that carry a ground-truth mask: S4 train has only the first one."""
    return (0,) if layout is S4_LAYOUT and split == "train" else tuple(range(FRAMES_PER_CLIP))


def name_problem(value: str) -> str | None:
    """Why a CSV value cannot be a path component (``../x`` would read and write outside), or None."""
    if value == "":
        return "is empty"
    if value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        return "is not a single path component (no '/', '\\', '.' or '..')"
    if Path(value).is_absolute() or Path(value).drive:
        return "is an absolute path"
    return None


def clip_paths(layout: Layout, root: str | Path, clip: ClipRecord) -> ClipPaths:
    """The official file paths of one clip (S4 or MS3)."""
    for column, value in ((layout.name_column, clip.name), ("category", clip.category)):
        problem = name_problem(value) if value or column == layout.name_column else None
        if problem is not None:
            raise ValueError(f"clip {column} {value!r} {problem}")
    data, name, numbers = Path(root) / layout.data_dir, clip.name, range(1, FRAMES_PER_CLIP + 1)
    masked, s4 = mask_frames(layout, clip.split), layout is S4_LAYOUT
    where = Path(clip.split) / clip.category if s4 else Path(clip.split)  # MS3 has no category
    # MS3 frames carry the raw video's file name, "{id}.mp4_{i}.png", and have no split folder.
    frame_dir, stem = (where / name, name) if s4 else (Path(name), f"{name}.mp4")
    return ClipPaths(frames=tuple(data / "visual_frames" / frame_dir / f"{stem}_{i}.png" for i in numbers),
                     masks=tuple(data / "gt_masks" / where / name / f"{name}_{k + 1}.png" for k in masked),
                     mask_frames=masked, wav=data / "audio_wav" / where / f"{name}.wav",
                     log_mel=data / "audio_log_mel" / where / f"{name}.pkl",
                     crop_labels=tuple(data / CROP_LABELS_DIR / where / name / f"{stem}_{i}.xml" for i in numbers))


def read_clip_table(csv_path: str | Path, layout: Layout) -> pd.DataFrame:
    """The metadata CSV as strings by column name, plus ``line``; ragged rows are refused (pandas
    would shift or drop their fields), extra columns are fine."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"AVSBench {layout.name.upper()} metadata not found: {csv_path} "
                                f"(expected a CSV with header {layout.header})")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as file:  # a spreadsheet's CSV may start with a BOM
            reader = csv.reader(file)
            rows = [(reader.line_num, fields) for fields in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataFormatError(csv_path, f"cannot read CSV ({error}); expected header {layout.header}") from None
    if not rows:
        raise DataFormatError(csv_path, f"empty file; expected header {layout.header}")
    header = [column.strip() for column in rows[0][1]]
    missing = [column for column in layout.columns if column not in header]
    repeated = sorted({column for column in header if header.count(column) > 1})
    if missing or repeated:
        problem = f"missing column(s) {', '.join(missing)}" if missing else f"repeated column(s) {', '.join(repeated)}"
        raise DataFormatError(csv_path, f"{problem}: expected header {layout.header}, found {','.join(header)}")
    body = [(line, fields) for line, fields in rows[1:] if any(f.strip() for f in fields)]
    ragged = [line for line, fields in body if len(fields) != len(header)]
    if ragged:
        raise DataFormatError(csv_path, f"{_lines(ragged)}: number of fields differs from the header's "
                                        f"{len(header)} ({','.join(header)})")
    table = pd.DataFrame([fields for _, fields in body], columns=header, dtype=str)
    table = table[list(layout.columns)].apply(lambda column: column.str.strip())
    table["line"] = [line for line, _ in body]  # header is line 1
    return table


def _lines(lines: Sequence[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:_MAX_LISTED])
    more = f" and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
    return f"{'line' if len(lines) == 1 else 'lines'} {shown}{more}"


def table_issues(table: pd.DataFrame, layout: Layout) -> list[tuple[str, str]]:
    """Every problem with a metadata table's rows as ``(kind, message)``, rows sharing one grouped; kinds:
    empty_name, unsafe_name, unknown_split, unknown_category, bad_start, duplicate_name."""
    issues: list[tuple[str, str]] = []
    names = table[layout.name_column]

    def grouped(kind: str, rows: pd.DataFrame, column: str, message: str) -> None:
        for value, group in rows.groupby(column, sort=True):
            issues.append((kind, message.format(value=value, lines=_lines(group["line"].tolist()))))

    grouped("empty_name", table[names == ""], layout.name_column, f"empty {layout.name_column} on {{lines}}")
    for column in (c for c in (layout.name_column, "category") if c in layout.columns):
        for value, rows in table[table[column] != ""].groupby(column, sort=True):
            problem = name_problem(value)
            if problem is not None:
                issues.append(("unsafe_name", f"{column} {value!r} on {_lines(rows['line'].tolist())} "
                               f"{problem}; expected a plain name (it becomes a folder or file name)"))
    grouped("unknown_split", table[~table["split"].isin(SPLITS)], "split",
            "unknown split {value!r} on {lines}; expected one of " + ", ".join(SPLITS))
    if "category" in layout.columns:
        grouped("unknown_category", table[~table["category"].isin(CATEGORY_TO_INDEX)], "category",
                "unknown category {value!r} on {lines}; expected one of the 23 S4 categories "
                "(avs_lib.data.categories.S4_CATEGORIES)")
    if "start" in layout.columns:
        bad = table.loc[pd.to_numeric(table["start"], errors="coerce").isna(), "line"].tolist()
        if bad:
            issues.append(("bad_start", f"start is not a number on {_lines(bad)}; expected seconds"))
    grouped("duplicate_name", table[names.duplicated(keep=False) & (names != "")], layout.name_column,
            "clip {value!r} appears on {lines}; expected each " + layout.name_column + " once")
    return issues


def table_records(table: pd.DataFrame, layout: Layout) -> list[ClipRecord]:
    """ClipRecords of a (checked) metadata table, in file order."""
    return [ClipRecord(row[layout.name_column], row.get("category", ""), row["split"])
            for row in table.to_dict("records")]


def read_metadata(root: str | Path, layout: Layout) -> list[ClipRecord]:
    """All clips of a subset's metadata CSV; any row problem is a DataFormatError naming the rows."""
    csv_path = Path(root) / layout.csv_name
    table = read_clip_table(csv_path, layout)
    issues = table_issues(table, layout)
    if issues:
        raise DataFormatError(csv_path, "; ".join(message for _, message in issues))
    return table_records(table, layout)


def links_leaving_root(root: Path, skip: set[str] = frozenset()) -> list[tuple[Path, Path]]:
    """(link, target) of every symlink under `root` whose target lies outside it, searched without
    following links (one `scandir` per folder) and not inside folders named in `skip`."""
    inside, found, folders = Path(root).resolve(), [], [Path(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    target = Path(os.path.realpath(entry.path))
                    if not target.is_relative_to(inside):
                        found.append((Path(entry.path), target))
                elif entry.is_dir(follow_symlinks=False) and entry.name not in skip:
                    folders.append(Path(entry.path))
    return sorted(found)


def open_image(path: Path, what: str) -> Image.Image:
    """Decode a whole image file (a truncated PNG fails here, not later), as an in-memory copy."""
    if not path.is_file():
        raise FileNotFoundError(f"missing {what}: {path}")
    try:
        with Image.open(path) as image:
            return image.copy()  # loads (decodes) it whole
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... by format
        raise DataFormatError(path, f"cannot decode image ({error}); expected a readable {what}") from error


def frame_problem(image: Image.Image) -> str | None:
    """Why a decoded frame is refused (not converted), or None: a non-RGB file is not an AVSBench still."""
    return None if image.mode == "RGB" else f"frame is mode {image.mode}, expected RGB (convert the file to RGB)"


def common_size(sizes: Sequence[tuple[int, int] | None]) -> tuple[int, int] | None:
    """The size most of a clip's frames have (None when no frame was readable)."""
    known = [size for size in sizes if size is not None]
    return Counter(known).most_common(1)[0][0] if known else None


def mask_problem(values: np.ndarray) -> str | None:
    """Why a mask's values are refused, or None: only {0, 255} or {0, 1}, since compression noise
    (JPEG, smooth resizing) would otherwise become object wherever a pixel is not exactly 0."""
    found = np.unique(values)
    if any(set(found.tolist()) <= allowed for allowed in ({0, 255}, {0, 1})):
        return None
    shown = ", ".join(f"{v:g}" for v in found[:8]) + (", ..." if found.size > 8 else "")
    return (f"mask values {{{shown}}} are not binary; expected only 0 and 255 (or 0 and 1) "
            "(compression noise? save masks as lossless PNG)")


def mask_values(image: Image.Image) -> np.ndarray:
    """A mask's values [H, W] as it renders: a palette mask through its palette, not its indices
    (an inverted palette draws the object with index 0), and in colour any coloured pixel."""
    if image.mode in ("1", "L", "I", "I;16", "F"):
        return np.asarray(image)
    if image.mode == "LA":
        return np.asarray(image)[..., 0]
    return np.asarray(image.convert("RGB")).max(axis=-1)


def mask_alpha_problem(image: Image.Image) -> str | None:
    """Why a mask's transparency is refused (any transparent pixel, rather than guessed at), or None."""
    transparent = int((np.asarray(image.convert("RGBA"))[..., 3] != 255).sum()) if image.has_transparency_data else 0
    if transparent == 0:
        return None
    return (f"mask has {transparent} transparent pixel(s); expected an opaque mask (masks are read by "
            "their colours, so an object drawn in the alpha channel would read as empty; save it as "
            "a greyscale PNG)")


def resize_square(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """`image` at size x size (frames bilinear, masks nearest); the one resize every reader uses."""
    return image if image.size == (size, size) else image.resize((size, size), resample)


def normalise_frames(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T,H,W,3] -> ImageNet-normalised float32 [T,3,H,W] (as ToTensor + Normalize)."""
    mean, std = np.asarray(IMAGENET_MEAN, dtype=np.float32), np.asarray(IMAGENET_STD, dtype=np.float32)
    scaled = (frames.astype(np.float32) / 255.0 - mean) / std  # [T,H,W,3]
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(0, 3, 1, 2)))  # -> [T,3,H,W]


def log_mel_problem(log_mel: torch.Tensor) -> str | None:
    if tuple(log_mel.shape) != LOG_MEL_SHAPE:
        return f"log-mel has shape {list(log_mel.shape)}, expected {list(LOG_MEL_SHAPE)}"
    if not torch.isfinite(log_mel).all():
        return "log-mel contains NaN or infinite values, expected finite numbers"
    return None


def conversion_warning(where: str, wavs: Sequence[Path]) -> str | None:
    """One message for all the WAVs a dataset converts (``wav_conversion``): the count and the first
    files; None if none is."""
    found = [f"{wav} ({change})" for wav in wavs if (change := wav_conversion(wav)) is not None]
    if not found:
        return None
    more = f"; and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    return f"{where}: {len(found)} WAV file(s) converted on reading: {'; '.join(found[:_MAX_LISTED])}{more}"


def crop_label_name(clip: ClipRecord) -> str:
    """The object name a clip's crop labels carry: its S4 category, or ``sounding`` for MS3."""
    return clip.category or MS3_OBJECT_NAME


def missing_crop_labels(paths: Sequence[ClipPaths]) -> list[Path]:
    """Label files absent in both labelImg formats (VOC .xml, or YOLO .txt beside it)."""
    return [xml for clip in paths for xml in clip.crop_labels
            if not xml.is_file() and not xml.with_suffix(".txt").is_file()]


def read_crop_label(xml: Path, category: str, frame_size: tuple[int, int] | None) -> tuple[Box, tuple[int, int]]:
    """The box of a frame's one object, the sounding one (named `category`), and the image size it refers to,
    from labelImg's VOC (``.xml``, ``<size>`` must be `frame_size` unless None) or YOLO (``.txt``)."""
    if xml.is_file():
        annotation = read_voc_annotation(xml)
        path, label_size, found = xml, annotation.image_size, [(o.name, o.box) for o in annotation.objects]
    else:
        path = xml.with_suffix(".txt")
        if not path.is_file():
            raise FileNotFoundError(f"missing crop label: {xml} (expected a labelImg VOC file, or YOLO "
                                    f"{path.name} with classes.txt beside it)")
        if frame_size is None:
            raise ValueError(f"{path}: a YOLO label needs the size of its frame")
        label_size, found = frame_size, read_yolo(path, image_size=frame_size)
    if len(found) != 1:
        raise DataFormatError(path, f"found {len(found)} boxes, expected exactly 1 (the sounding object)")
    name, box = found[0]
    if name != category:
        raise DataFormatError(path, f"object name is {name!r}, expected {category!r}")
    if frame_size is not None and tuple(label_size) != tuple(frame_size):
        raise DataFormatError(path, f"<size> is {label_size[0]}x{label_size[1]} but its frame is "
                                    f"{frame_size[0]}x{frame_size[1]}; expected the size of the frame it was "
                                    "drawn on (the box would be scaled into the wrong crop)")
    return box, label_size


class _AVSBenchClips(Dataset):
    """What S4 and MS3 share: CSV, frames, masks and audio of one split."""

    layout: ClassVar[Layout]
    default_audio: ClassVar[str]

    def __init__(self, root: str | Path, split: str, image_size: int = 224, audio: str | None = None,
                 crop_labels: bool = False, cache_dir: str | Path | None = None):
        audio = self.default_audio if audio is None else audio
        for name, value, choices in (("split", split, SPLITS), ("audio", audio, AUDIO_SOURCES)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"AVSBench root not found: {self.root}")
        self.split, self.image_size, self.audio, self.crop_labels = split, image_size, audio, crop_labels
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        label_root = self.root / self.layout.data_dir / CROP_LABELS_DIR
        if crop_labels and not label_root.is_dir():
            raise FileNotFoundError(f"crop labels not found: {label_root} (AVSBench ships none; "
                                    f"{crop_labels_instruction(self.root)}; or train a method without crop losses)")
        everything = read_metadata(self.root, self.layout)
        self.clips: list[ClipRecord] = [clip for clip in everything if clip.split == split]
        if not self.clips:
            found = sorted({clip.split for clip in everything})
            raise DataFormatError(self.root / self.layout.csv_name,
                                  f"no clips with split {split!r}; found splits {', '.join(found) or 'none'}")
        self._paths = [clip_paths(self.layout, self.root, clip) for clip in self.clips]
        self._index = {clip.name: i for i, clip in enumerate(self.clips)}
        where = f"AVSBench {self.layout.name.upper()} {split} at {self.root}"
        converted = conversion_warning(where, [p.wav for p in self._paths]) if audio == "wav" else None
        if converted:  # once per dataset, here rather than once per item and worker
            warnings.warn(converted, stacklevel=3)
        outside = links_leaving_root(self.root, skip=set(SPLITS) - {split})
        if outside:  # read, but said: what is read there is not the dataset's to vouch for
            warnings.warn(f"{len(outside)} path(s) in the {split} split of {self.root} are symlinks leading outside "
                          f"it, e.g. {outside[0][0]} -> {outside[0][1]}; reading them (check-data lists each)",
                          stacklevel=3)
        # Every label file present, checked now: a gap found mid-training wastes the run.
        missing = missing_crop_labels(self._paths) if crop_labels else []
        if missing:
            raise FileNotFoundError(f"{len(missing)} crop label file(s) missing in the {self.split} split, e.g. "
                                    f"{', '.join(map(str, missing[:3]))} ({crop_labels_instruction(self.root)})")

    def __len__(self) -> int:
        return len(self.clips)

    def paths(self, index: int) -> ClipPaths:
        """Every file path of clip ``index`` (whether or not it exists)."""
        return self._paths[index]

    def index_of(self, name: str) -> int:
        if name not in self._index:
            raise KeyError(f"no clip {name!r} in the {self.split} split of {self.root}")
        return self._index[name]

    def sidecar(self, name: str) -> Any:
        """The synthetic generator's per-clip truth (sidecar.SidecarClip); None for other datasets."""
        self.index_of(name)
        return read_sidecar(self.root, self.split, name) if (self.root / SIDECAR_DIR).is_dir() else None

    def _read_frames(self, index: int) -> list[Image.Image]:
        clip, paths = self.clips[index], self._paths[index].frames
        frames = [open_image(path, f"frame {i} of clip {clip.name!r} (an RGB PNG)")
                  for i, path in enumerate(paths, start=1)]
        for path, frame in zip(paths, frames, strict=True):
            problem = frame_problem(frame)
            if problem is not None:
                raise DataFormatError(path, problem)
        expected = common_size([frame.size for frame in frames])
        for path, frame in zip(paths, frames, strict=True):
            if frame.size != expected:
                raise DataFormatError(path, f"frame is {frame.size[0]}x{frame.size[1]}, expected "
                                            f"{expected[0]}x{expected[1]} like the other frames of clip {clip.name!r}")
        return frames

    def load_frames_raw(self, index: int, frames: list[Image.Image] | None = None) -> np.ndarray:
        """The clip's frames (read unless given) as uint8 [5,S,S,3], resized but not normalised (for plotting)."""
        frames = self._read_frames(index) if frames is None else frames
        return np.stack([np.asarray(resize_square(f, self.image_size, Image.Resampling.BILINEAR)) for f in frames])

    def _read_masks(self, index: int, frames: list[Image.Image]) -> torch.Tensor:
        clip, paths = self.clips[index], self._paths[index]
        masks = []
        for path, k in zip(paths.masks, paths.mask_frames, strict=True):
            image = open_image(path, f"mask {k + 1} of clip {clip.name!r} (a binary PNG)")
            if image.size != frames[k].size:
                raise DataFormatError(path, f"mask is {image.size[0]}x{image.size[1]}, expected the size of its "
                                            f"frame {paths.frames[k]} ({frames[k].size[0]}x{frames[k].size[1]})")
            values = mask_values(image)
            problem = mask_alpha_problem(image) or mask_problem(values)
            if problem is not None:
                raise DataFormatError(path, problem)
            # Binary by now; nearest resizing keeps it binary.
            binary = Image.fromarray((values != 0).astype(np.uint8))
            masks.append(np.asarray(resize_square(binary, self.image_size, Image.Resampling.NEAREST)))
        return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))  # [M,1,S,S]

    def load_audio(self, index: int) -> torch.Tensor:
        """Only the clip's log-mel [5,1,96,64] (swapped-audio and counterfactual passes need no frames)."""
        name, wav = self.clips[index].name, self.audio == "wav"
        path = self._paths[index].wav if wav else self._paths[index].log_mel
        if not path.is_file():
            expected = ("a 16 kHz WAV; audio='pkl' reads the precomputed log-mel instead" if wav else
                        "a pickled tensor [5, 1, 96, 64]; audio='wav' computes it from the WAV instead")
            what = "audio" if wav else "log-mel"
            raise FileNotFoundError(f"missing {what} of clip {name!r}: {path} (expected {expected})")
        log_mel = load_log_mel_cached(path, self.cache_dir) if wav else load_tensor_pickle(path)
        problem = log_mel_problem(log_mel)
        if problem is not None:
            raise DataFormatError(path, problem)
        return log_mel.detach().to(torch.float32)

    def _crop_box(self, index: int, frame: int, frame_size: tuple[int, int]) -> tuple[float, ...]:
        """Box of the sounding object in frame ``frame`` (0-based), in S x S pixels."""
        xml = self._paths[index].crop_labels[frame]
        box, label_size = read_crop_label(xml, crop_label_name(self.clips[index]), frame_size)
        (xmin, ymin, xmax, ymax), (width, height) = box, label_size
        sx, sy = self.image_size / width, self.image_size / height
        return (xmin * sx, ymin * sy, xmax * sx, ymax * sy)

    def _item(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        frames = self._read_frames(index)
        item: dict[str, Any] = {
            "frames": normalise_frames(self.load_frames_raw(index, frames)),  # [5,3,S,S]
            "audio": self.load_audio(index),  # [5,1,96,64]
            "masks": self._read_masks(index, frames),  # [M,1,S,S]
            "mask_frames": torch.tensor(self._paths[index].mask_frames, dtype=torch.int64),
            "category": torch.tensor(clip.category_index, dtype=torch.int64),
            "category_name": clip.category,
            "name": clip.name,
            "index": index,
        }
        if self.crop_labels:
            boxes = [self._crop_box(index, k, frame.size) for k, frame in enumerate(frames)]
            item["boxes"] = torch.tensor(boxes, dtype=torch.float32)  # [5,4]
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(range(len(self))[index])  # numpy ints and negative indices, as a list takes them


class AVSBenchS4(_AVSBenchClips):
    """One split of AVSBench S4 ("Single-source"): 23 categories, one sounding object per clip.

    Items are dicts: ``frames`` float32 [5,3,S,S] ImageNet-normalised, ``audio`` float32 [5,1,96,64] log-mel
    (``audio="wav"``: computed from the WAV, cached under ``cache_dir``; ``"pkl"``: the official pickles, read
    safely), ``masks`` float32 [M,1,S,S] in {0,1} with ``mask_frames`` int64 [M] (train M=1: frame 0 only;
    val/test M=5), ``category`` int64 scalar, ``category_name``, ``name``, ``index``, and with ``crop_labels=True``
    (this project's addition, off by default) ``boxes`` float32 [5,4] (xmin, ymin, xmax, ymax in S x S pixels,
    max exclusive).
    """

    layout, default_audio = S4_LAYOUT, "wav"


class AVSBenchMS3(_AVSBenchClips):
    """One split of AVSBench MS3 ("Multi-sources"): items as for AVSBenchS4 with M=5 in every split,
    ``category`` = -1, ``category_name`` = "", and ``boxes`` [5,4] around all sounding objects."""

    layout, default_audio = MS3_LAYOUT, "pkl"


def open_split(root: str | Path, split: str, dataset: str = "s4", image_size: int = 224, audio: str = "wav",
               crop_labels: bool = False, cache_dir: str | Path | None = None) -> _AVSBenchClips:
    """One split of an S4 or MS3 tree (`dataset`), its sound read from `audio` ("wav" or "pkl")."""
    reader = AVSBenchS4 if detect_layout(root, dataset) is S4_LAYOUT else AVSBenchMS3
    return reader(root, split, image_size=image_size, audio=audio, crop_labels=crop_labels, cache_dir=cache_dir)


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch item dicts: tensors stacked, ints as int64, strings as lists; a key some items lack
    (``boxes`` when only some datasets have crop labels) is left out rather than filled in."""
    batch: dict[str, Any] = {}
    for key in [key for key in items[0] if all(key in item for item in items)]:
        values = [item[key] for item in items]
        if all(isinstance(v, torch.Tensor) for v in values):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch {key!r}: items have shapes {sorted(shapes)} (e.g. S4 train "
                                 "clips have 1 mask, val/test clips 5; batch one split at a time)")
            batch[key] = torch.stack(values)
        elif all(isinstance(v, int) for v in values):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        else:
            batch[key] = values
    return batch


def split_counts(clips: Sequence[ClipRecord]) -> dict[str, dict[str, int]]:
    """Number of clips per split and category (MS3: category "")."""
    counts: dict[str, dict[str, int]] = {}
    for (split, category), number in Counter((clip.split, clip.category) for clip in clips).items():
        counts.setdefault(split, {})[category] = number
    return counts
