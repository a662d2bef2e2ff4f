"""Audit an AVSBench folder before training: every problem, each with its path, in one report.

The readers (``avs_lib.data.avsbench``) stop at the first bad file, maybe an hour into training;
``check_dataset`` reads every file once, with the readers' own rules, and lists all problems. Kinds:
``csv`` (unparsable: nothing else checked); ``table_issues``' row kinds (an unsafe row is never
followed); ``missing_dir``, ``missing_file``, ``unreadable``; ``frame_not_rgb``, ``frame_size``;
``mask_size``, ``mask_not_binary``, ``mask_alpha``; ``audio_short``, ``audio_values``;
``log_mel_shape``, ``log_mel_values``; ``crop_label``; ``orphan_clip``, ``orphan_file``; ``sidecar``.
What the readers convert (stereo or non-16 kHz WAVs) and symlinks leaving the root are notes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from avs_lib.data.audio import CLIP_SECONDS, read_wav, wav_conversion, wav_problem
from avs_lib.data.avsbench import (
    LOG_MEL_SHAPE,
    MS3_LAYOUT,
    S4_LAYOUT,
    ClipPaths,
    ClipRecord,
    Layout,
    clip_paths,
    common_size,
    detect_layout,
    frame_problem,
    links_leaving_root,
    log_mel_problem,
    mask_alpha_problem,
    mask_problem,
    mask_values,
    name_problem,
    open_image,
    read_clip_table,
    read_crop_label,
    split_counts,
    table_issues,
    table_records,
)
from avs_lib.data.categories import FRAMES_PER_CLIP, SPLITS
from avs_lib.data.errors import DataFormatError
from avs_lib.data.safe_pickle import load_tensor_pickle
from avs_lib.data.sidecar import INFO_FILE, SIDECAR_DIR, read_sidecar

AUDIO_CHOICES = ("auto", "wav", "pkl", "both")
MIN_WAV_SECONDS = CLIP_SECONDS - 0.2  # a shorter WAV is reported as audio_short
_NOTE_KINDS = {"converted": "file(s) converted on reading",
               "symlink_outside": "symlink(s) leading outside the dataset root"}
_CLIP_FOLDERS = ("visual_frames", "gt_masks", "crop_labels")  # one folder per clip inside
_DATA_FOLDERS = ("visual_frames", "gt_masks", "audio_wav", "audio_log_mel", "crop_labels")
Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset: the file (or folder) concerned, a kind, and what was expected."""

    path: Path
    kind: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.path}: {self.message}"


@dataclass
class Report:
    """What ``check_dataset`` found. ``ok`` is True when there is no problem at all."""

    root: Path
    layout: str  # "s4" | "ms3"
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> category -> clips
    files_checked: int = 0
    notes: list[Problem] = field(default_factory=list)  # read but said: kinds of _NOTE_KINDS

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> Counter:
        """Number of problems of each kind."""
        return Counter(problem.kind for problem in self.problems)

    def to_frame(self) -> pd.DataFrame:
        """One row per problem: path, kind, message."""
        rows = [(str(p.path), p.kind, p.message) for p in self.problems]
        return pd.DataFrame(rows, columns=["path", "kind", "message"])

    def counts_frame(self) -> pd.DataFrame:
        """Clips per category (rows) and split (columns); MS3 has the single category ''."""
        frame = pd.DataFrame(self.counts).fillna(0).astype(int)
        return frame.reindex(columns=[s for s in SPLITS if s in frame.columns]).sort_index()

    def summary(self, max_listed: int = 20) -> str:
        """A few lines for a notebook: counts, problems by kind, the first problems in full."""
        per_split = ", ".join(f"{split} {sum(self.counts[split].values())}" for split in SPLITS if split in self.counts)
        clips = sum(sum(per_category.values()) for per_category in self.counts.values())
        categories = {c for per_category in self.counts.values() for c in per_category if c}
        over = f" over {len(categories)} categories" if categories else ""
        lines = [f"AVSBench {self.layout.upper()} at {self.root}: {clips} clips "
                 f"({per_split or 'none'}){over}; {self.files_checked} files checked."]
        if self.notes:
            kinds = Counter(note.kind for note in self.notes)
            said = ", ".join(f"{n} {_NOTE_KINDS.get(kind, kind)}" for kind, n in sorted(kinds.items()))
            lines.append(f"{len(self.notes)} note(s), not problems ({said}):")
            lines += [f"  {note}" for note in self.notes[:max_listed]]
        if self.ok:
            return "\n".join([*lines, "No problems found."])
        by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kinds().items()))
        lines.append(f"{len(self.problems)} problems ({by_kind}):")
        lines += [f"  {problem}" for problem in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f"  ... and {len(self.problems) - max_listed} more (Report.to_frame() lists all)")
        return "\n".join(lines)


@dataclass
class _Audit:
    """The settings of one check and the report it fills."""

    report: Report
    layout: Layout
    image_size: int | None
    folders: set[str]  # the data folders to read: present and asked for

    def add(self, path: Path, kind: str, message: str | None) -> None:
        """Record a problem; a None message (what the readers' ``*_problem`` checks return when fine) is none."""
        if message is not None:
            self.report.problems.append(Problem(Path(path), kind, message))

    def found(self, path: Path, missing: str) -> bool:
        """Count a file; record it as missing (with why it is needed) when it is not there."""
        self.report.files_checked += 1
        if not path.is_file():
            self.add(path, "missing_file", missing)
        return path.is_file()

    def open(self, path: Path, what: str, rule: str) -> Image.Image | None:
        """Decode an image, or record why not (``rule`` says what made it needed)."""
        self.report.files_checked += 1
        try:
            return open_image(path, what)
        except FileNotFoundError:
            self.add(path, "missing_file", f"missing {what}; {rule}")
        except DataFormatError as error:
            self.add(path, "unreadable", error.problem)
        return None

    def clip_size(self, sizes: list[Size | None]) -> Size | None:
        """The size a clip's frames should have: image_size if given, else the most common one."""
        return (self.image_size, self.image_size) if self.image_size else common_size(sizes)


def check_dataset(root: str | Path, splits: Iterable[str] | None = None, image_size: int | None = None,
                  audio: str = "auto", crop_labels: bool | None = None, layout: str | None = None,
                  progress: bool = True) -> Report:
    """Read every file of an AVSBench S4 or MS3 folder and report every problem with its path.

    Args:
        root: the folder holding ``s4_meta_data.csv`` (or ``ms3_meta_data.csv``) and ``s4_data/``.
        splits: the splits to check (default: every row); CSV rows are always all checked.
        image_size: if given, every frame must be this square size; else a clip's frames must share one.
        audio: "wav", "pkl", "both", or "auto" (whichever of ``audio_wav``/``audio_log_mel`` exists).
        crop_labels: check ``crop_labels/`` (S4); None checks them when the folder exists.
        layout: "s4" or "ms3"; None picks the one whose CSV is in ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AVSBench root not found: {root}")
    if audio not in AUDIO_CHOICES:
        raise ValueError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    wanted = set(SPLITS) if splits is None else set(splits)
    if not wanted <= set(SPLITS):
        raise ValueError(f"splits must be among {', '.join(SPLITS)}, got {sorted(wanted)}")
    subset = detect_layout(root, layout)
    report = Report(root=root, layout=subset.name)
    csv_path = root / subset.csv_name
    try:
        table = read_clip_table(csv_path, subset)
    except DataFormatError as error:
        report.problems.append(Problem(csv_path, "csv", error.problem))
        return report
    report.problems += [Problem(csv_path, kind, message) for kind, message in table_issues(table, subset)]
    # A row naming '../x' is reported above and never followed outside the dataset.
    records = [clip for clip in table_records(table, subset)
               if name_problem(clip.name) is None and (not clip.category or name_problem(clip.category) is None)]
    chosen = [clip for clip in records if splits is None or clip.split in wanted]
    report.counts = split_counts(chosen)
    data = root / subset.data_dir
    present = {name for name in _DATA_FOLDERS if (data / name).is_dir()}
    if audio == "auto":  # the audio that is there; WAVs when neither is
        audio = "both" if {"audio_wav", "audio_log_mel"} <= present else "pkl" if "audio_log_mel" in present else "wav"
    check_labels = subset is S4_LAYOUT and ("crop_labels" in present if crop_labels is None else crop_labels)
    required = {"visual_frames": True, "gt_masks": True, "audio_wav": audio in ("wav", "both"),
                "audio_log_mel": audio in ("pkl", "both"), "crop_labels": check_labels}
    folders = {name for name, needed in required.items() if needed and name in present}
    audit = _Audit(report, subset, image_size, folders)
    for name in [name for name, needed in required.items() if needed and name not in present]:
        audit.add(data / name, "missing_dir", f"missing folder {name}/ (expected in the official layout)")
    for clip in tqdm(chosen, desc=f"checking {subset.name.upper()}", unit="clip", disable=not progress):
        _check_clip(audit, clip, clip_paths(subset, root, clip))
    _check_orphans(audit, records, None if splits is None else wanted)
    if (root / SIDECAR_DIR).is_dir():
        _check_sidecars(audit, chosen)
    report.notes += [Problem(link, "symlink_outside", f"symlink to {target}, outside the dataset root; "
                             "read as a dataset file") for link, target in links_leaving_root(root)]
    return report


def _check_clip(audit: _Audit, clip: ClipRecord, paths: ClipPaths) -> None:
    """Every file a row implies, in the folders read (a missing folder is reported once)."""
    sizes: list[Size | None] = [None] * FRAMES_PER_CLIP  # (w, h) of readable frames
    if "visual_frames" in audit.folders:
        sizes = _check_frames(audit, clip, paths)
    reference = audit.clip_size(sizes)
    if "gt_masks" in audit.folders:
        _check_masks(audit, clip, paths, sizes, reference)
    if "audio_wav" in audit.folders:
        _check_wav(audit, clip, paths.wav)
    if "audio_log_mel" in audit.folders:
        _check_pkl(audit, clip, paths.log_mel)
    if "crop_labels" in audit.folders:
        for k, xml in enumerate(paths.crop_labels):
            audit.report.files_checked += 1
            frame_size = sizes[k] or reference
            if frame_size is None and not xml.is_file() and xml.with_suffix(".txt").is_file():
                continue  # a YOLO label needs its frame's size; the frame is already reported
            try:
                read_crop_label(xml, clip.category, frame_size)
            except FileNotFoundError as error:
                audit.add(xml, "missing_file", str(error))
            except DataFormatError as error:
                audit.add(error.path, "crop_label", error.problem)


def _check_frames(audit: _Audit, clip: ClipRecord, paths: ClipPaths) -> list[Size | None]:
    """Decode each frame; return their sizes (None where unreadable) after checking them."""
    sizes: list[Size | None] = []
    for i, path in enumerate(paths.frames, start=1):
        image = audit.open(path, f"frame {i} of clip {clip.name!r}", "every clip has 5 frames")
        audit.add(path, "frame_not_rgb", None if image is None else frame_problem(image))
        sizes.append(None if image is None else image.size)
    expected = audit.clip_size(sizes)
    why = "(image_size)" if audit.image_size else f"like the other frames of clip {clip.name!r}"
    for path, size in zip(paths.frames, sizes, strict=True):
        if size is not None and size != expected:
            audit.add(path, "frame_size", f"frame is {_wxh(size)}, expected {_wxh(expected)} {why}")
    return sizes


def _check_masks(audit: _Audit, clip: ClipRecord, paths: ClipPaths, sizes: list[Size | None],
                 reference: Size | None) -> None:
    rule = "train clips need mask _1" if len(paths.masks) == 1 else f"{clip.split} clips need masks _1 .. _5"
    for path, k in zip(paths.masks, paths.mask_frames, strict=True):
        image = audit.open(path, f"mask {k + 1} of clip {clip.name!r}", rule)
        if image is None:
            continue
        frame_size = sizes[k] or reference
        wrong_size = None if frame_size is None or image.size == frame_size else (
            f"mask is {_wxh(image.size)}, expected {_wxh(frame_size)} like its frame {paths.frames[k].name}")
        for kind, problem in (("mask_not_binary", mask_problem(mask_values(image))),
                              ("mask_alpha", mask_alpha_problem(image)), ("mask_size", wrong_size)):
            audit.add(path, kind, problem)


def _check_wav(audit: _Audit, clip: ClipRecord, path: Path) -> None:
    if not audit.found(path, f"missing audio of clip {clip.name!r}; expected a 16 kHz WAV"):
        return
    try:
        waveform, rate = read_wav(path)
    except DataFormatError as error:
        return audit.add(path, "unreadable", error.problem)
    except Exception as error:  # libsndfile's errors vary by version
        return audit.add(path, "unreadable", f"cannot read the WAV ({error}); expected a WAV file")
    audit.add(path, "audio_values", wav_problem(waveform))
    change = wav_conversion(path)
    if change is not None:
        audit.report.notes.append(Problem(path, "converted", change))
    seconds = waveform.shape[0] / rate
    if seconds < MIN_WAV_SECONDS:
        audit.add(path, "audio_short",
                  f"audio lasts {seconds:.2f} s, expected {CLIP_SECONDS:g} s (at least {MIN_WAV_SECONDS:.2f} s)")


def _check_pkl(audit: _Audit, clip: ClipRecord, path: Path) -> None:
    if not audit.found(path, f"missing log-mel of clip {clip.name!r}; expected a pickled tensor {list(LOG_MEL_SHAPE)}"):
        return
    try:
        log_mel = load_tensor_pickle(path)
    except DataFormatError as error:
        return audit.add(path, "unreadable", error.problem)
    kind = "log_mel_shape" if tuple(log_mel.shape) != LOG_MEL_SHAPE else "log_mel_values"
    audit.add(path, kind, log_mel_problem(log_mel))


def _check_sidecars(audit: _Audit, clips: list[ClipRecord]) -> None:
    """The synthetic generator's info.json and each clip's sidecar: present and readable."""
    root = audit.report.root
    info = root / SIDECAR_DIR / INFO_FILE
    if not info.is_file():
        audit.add(info, "sidecar", "missing; a synthetic tree (synth_sidecar/) has the generator's info.json")
    for clip in clips:
        audit.report.files_checked += 1
        try:
            read_sidecar(root, clip.split, clip.name)
        except FileNotFoundError:
            path = root / SIDECAR_DIR / clip.split / f"{clip.name}.npz"
            audit.add(path, "sidecar", f"missing sidecar of clip {clip.name!r}; a synthetic tree has one per clip")
        except DataFormatError as error:
            audit.add(error.path, "sidecar", error.problem)


def _allowed_files(layout: Layout, root: Path, clip: ClipRecord) -> set[Path]:
    """Every file a row accounts for, including harmless extras (train masks _2.._5, caches)."""
    paths = clip_paths(layout, root, clip)
    # {name}.logmel.npy beside the WAV: the log-mel cache of earlier versions, harmless.
    allowed = {*paths.frames, paths.wav, paths.log_mel, paths.wav.with_name(f"{clip.name}.logmel.npy")}
    allowed |= {paths.masks[0].parent / f"{clip.name}_{i}.png" for i in range(1, FRAMES_PER_CLIP + 1)}
    for xml in paths.crop_labels:
        allowed |= {xml, xml.with_suffix(".txt"), xml.parent / "classes.txt"}
    return allowed


def _check_orphans(audit: _Audit, records: list[ClipRecord], splits: set[str] | None) -> None:
    """Walk the data folders for files and clip folders that no CSV row explains."""
    layout, root = audit.layout, audit.report.root
    data = root / layout.data_dir
    allowed = set().union(*(_allowed_files(layout, root, clip) for clip in records))
    folders = {path.parent for path in allowed}
    orphan_folders: Counter = Counter()
    for top in _DATA_FOLDERS:
        base = data / top
        has_split = not (layout is MS3_LAYOUT and top == "visual_frames")
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            relative = path.relative_to(base)
            other_split = splits is not None and has_split and relative.parts[0] not in splits
            if other_split or path.is_dir() or path in allowed or any(part.startswith(".") for part in relative.parts):
                continue
            if top in _CLIP_FOLDERS and path.parent not in folders:
                orphan_folders[path.parent] += 1
            elif top in _CLIP_FOLDERS:
                audit.add(path, "orphan_file",
                          "unexpected file in a clip folder; expected only the files of its row's clip")
            else:
                audit.add(path, "orphan_file", f"no row in {layout.csv_name} accounts for this file")
    for folder, count in sorted(orphan_folders.items()):
        audit.add(folder, "orphan_clip", f"clip folder ({count} file(s)) has no row in {layout.csv_name}; "
                  "expected a row for every clip folder")


def _wxh(size: Size) -> str:
    return f"{size[0]}x{size[1]}"
