"""A tiny AVSBench written by hand in the official on-disk layout of the AVSBench download, for reader tests.

Deliberately independent of ``avs_lib`` (no synthetic generator, no ``write_voc``/``write_wav``):
paths are spelled out here as the official preprocessing scripts wrote them, so the reader is
checked against the layout and not against itself. Every file type is written by the tool that
wrote it for real: PNG frames and 0/255 masks with PIL, 16 kHz WAV with soundfile, labelImg
VOC XML as text, and log-mels with ``pickle.dump(torch_tensor, f)`` as the official
``preprocess_s4.py`` / ``preprocess_ms3.py`` did.

Each frame is a flat background with one rectangle (the sounding object); the mask is the
rectangle, and so is the crop label. Colours and boxes are stored in the returned specs so
tests can compute expected values by hand.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch
from PIL import Image

FRAME_SIZE = 32
SAMPLE_RATE = 16000
OBJECT_COLOUR = (250, 200, 20)

# (name, category, split) -- YouTube-style ids, one with a leading "-" as in the real CSV.
S4_CLIPS = (
    ("-_wznbUu3DY", "helicopter", "train"),
    ("0BLiYNtFSjA", "dog_barking", "train"),
    ("3mJ2tN8xYbQ", "dog_barking", "val"),
    ("Zp7-hC0aWq4", "helicopter", "test"),
)
MS3_CLIPS = (
    ("6DR8dA9TDOc", "train"),
    ("ElOVPqC_kRc", "train"),
    ("esbnrrsznWc", "val"),
    ("vlny-m0SIiw", "test"),
)


@dataclass
class ClipSpec:
    """What was written for one clip: enough to predict every value the reader returns."""

    name: str
    category: str
    split: str
    backgrounds: list[tuple[int, int, int]]  # RGB of pixel (0, 0) in frame i
    boxes: list[tuple[int, int, int, int]]  # 0-based, max exclusive, in FRAME_SIZE pixels
    log_mel: torch.Tensor  # [5, 1, 96, 64], exactly what the .pkl holds
    files: dict[str, Path] = field(default_factory=dict)  # "frame1", "mask1", "wav", "pkl", "xml1"


def frame_box(clip_number: int, frame: int) -> tuple[int, int, int, int]:
    """The object moves one pixel right per frame; each clip starts in a different place."""
    x0, y0 = 4 + 2 * clip_number + frame, 6 + clip_number
    return (x0, y0, x0 + 10, y0 + 12)


def write_frame(
    path: Path, background: tuple[int, int, int], box: tuple[int, int, int, int]
) -> None:
    pixels = np.empty((FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    pixels[:] = background
    xmin, ymin, xmax, ymax = box
    pixels[ymin:ymax, xmin:xmax] = OBJECT_COLOUR
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="RGB").save(path)


def write_mask(path: Path, box: tuple[int, int, int, int], size: int = FRAME_SIZE) -> None:
    """Official masks are 8-bit greyscale PNGs with 0 (background) and 255 (object)."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    xmin, ymin, xmax, ymax = box
    pixels[ymin:ymax, xmin:xmax] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path)


def write_wav(path: Path, seconds: float, frequency: float) -> None:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(
        str(path), 0.3 * np.sin(2 * np.pi * frequency * t), SAMPLE_RATE, subtype="PCM_16"
    )


def write_log_mel_pickle(path: Path, tensor: torch.Tensor) -> None:
    """As the official preprocessing: ``pickle.dump(log_mel_tensor, fw)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump(tensor, file)


def voc_xml(
    image_path: Path,
    box: tuple[int, int, int, int],
    name: str,
    size: tuple[int, int] = (FRAME_SIZE, FRAME_SIZE),
) -> str:
    """labelImg's Pascal VOC text; coordinates 1-based inclusive (0-based exclusive in memory)."""
    xmin, ymin, xmax, ymax = box
    return f"""<annotation>
\t<folder>{image_path.parent.name}</folder>
\t<filename>{image_path.name}</filename>
\t<path>{image_path}</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>{size[0]}</width>
\t\t<height>{size[1]}</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>{name}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>{xmin + 1}</xmin>
\t\t\t<ymin>{ymin + 1}</ymin>
\t\t\t<xmax>{xmax}</xmax>
\t\t\t<ymax>{ymax}</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


def _log_mel(clip_number: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(clip_number)
    return torch.randn(5, 1, 96, 64, generator=generator) - 3.0


def _backgrounds(clip_number: int) -> list[tuple[int, int, int]]:
    return [(10 * clip_number + 20 * i, 40 + clip_number, 100 + 10 * i) for i in range(5)]


def write_s4(root: Path, crop_labels: bool = True, clips=S4_CLIPS) -> list[ClipSpec]:
    """S4 layout: 2 train / 1 val / 1 test clips over 2 categories (or `clips`), 32x32, 5 s audio."""
    data = root / "s4_data"
    lines = ["name,start,category,split"]
    specs = []
    for number, (name, category, split) in enumerate(clips):
        lines.append(f"{name},{number},{category},{split}")
        spec = ClipSpec(
            name,
            category,
            split,
            _backgrounds(number),
            [frame_box(number, i) for i in range(5)],
            _log_mel(number),
        )
        where = Path(split) / category
        for i in range(1, 6):
            frame = data / "visual_frames" / where / name / f"{name}_{i}.png"
            write_frame(frame, spec.backgrounds[i - 1], spec.boxes[i - 1])
            spec.files[f"frame{i}"] = frame
            if split != "train" or i == 1:  # train clips carry only the first mask
                mask = data / "gt_masks" / where / name / f"{name}_{i}.png"
                write_mask(mask, spec.boxes[i - 1])
                spec.files[f"mask{i}"] = mask
            if crop_labels:
                xml = data / "crop_labels" / where / name / f"{name}_{i}.xml"
                xml.parent.mkdir(parents=True, exist_ok=True)
                xml.write_text(voc_xml(frame, spec.boxes[i - 1], category))
                spec.files[f"xml{i}"] = xml
        spec.files["wav"] = data / "audio_wav" / where / f"{name}.wav"
        write_wav(spec.files["wav"], 5.0, 440.0 * (number + 1))
        spec.files["pkl"] = data / "audio_log_mel" / where / f"{name}.pkl"
        write_log_mel_pickle(spec.files["pkl"], spec.log_mel)
        specs.append(spec)
    (root / "s4_meta_data.csv").write_text("\n".join(lines) + "\n")
    return specs


def write_ms3(root: Path, clips=MS3_CLIPS) -> list[ClipSpec]:
    """MS3 layout: 2 train / 1 val / 1 test clips (or `clips`), masks for all 5 frames in every split."""
    data = root / "ms3_data"
    lines = ["video_id,split"]
    specs = []
    for number, (name, split) in enumerate(clips):
        lines.append(f"{name},{split}")
        spec = ClipSpec(
            name,
            "",
            split,
            _backgrounds(number),
            [frame_box(number, i) for i in range(5)],
            _log_mel(100 + number),
        )
        for i in range(1, 6):
            frame = data / "visual_frames" / name / f"{name}.mp4_{i}.png"
            write_frame(frame, spec.backgrounds[i - 1], spec.boxes[i - 1])
            spec.files[f"frame{i}"] = frame
            mask = data / "gt_masks" / split / name / f"{name}_{i}.png"
            write_mask(mask, spec.boxes[i - 1])
            spec.files[f"mask{i}"] = mask
        spec.files["wav"] = data / "audio_wav" / split / f"{name}.wav"
        write_wav(spec.files["wav"], 5.0, 330.0 * (number + 1))
        spec.files["pkl"] = data / "audio_log_mel" / split / f"{name}.pkl"
        write_log_mel_pickle(spec.files["pkl"], spec.log_mel)
        specs.append(spec)
    (root / "ms3_meta_data.csv").write_text("\n".join(lines) + "\n")
    return specs
