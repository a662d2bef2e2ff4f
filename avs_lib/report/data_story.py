"""Notebook 01's sentences (Markdown) about the data, computed from the data it shows; the
synthetic benchmark's story on synthetic data only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from avs_lib.data.categories import SPLITS

SMALL_AREA = 0.05  # a mask covering less of its frame than this counts as a small object


def _split_counts(clips: pd.DataFrame) -> str:
    counts = clips["split"].value_counts()
    return ", ".join(f"{int(counts.get(split, 0))} {split}" for split in SPLITS)


def what_the_data_is(root: str | Path, dataset: str, clips: pd.DataFrame, info: dict[str, Any] | None) -> str:
    """The dataset in one paragraph: the generator's rules (`info`), else what the real tree holds."""
    where = f"`{Path(root).resolve()}`: {len(clips)} clips ({_split_counts(clips)})"
    if info is not None:
        parameters = info.get("parameters", {})
        return (f"This report runs on a **synthetic** AVSBench at {where}. Every clip shows the sounding "
                f"object and up to {parameters.get('max_distractors', 2)} silent objects of other classes "
                f"({parameters.get('num_classes', 23)} classes), drawn by the same rules, so only the sound "
                "tells them apart. The files follow the real S4 layout exactly, so the same code reads the "
                "real dataset (`DATA_ROOT` pointing at it, `PROFILE=\"paper\"`).")
    if dataset == "ms3":
        return (f"This report runs on **real AVSBench MS3** (multiple sound sources) at {where}. MS3 has "
                "no classes, and every frame of every split carries a mask of all the sounding objects. "
                "Real data records nothing about the silent objects in view, so the sections that need "
                "that say what they cannot show.")
    classes = clips["category"].nunique()
    return (f"This report runs on **real AVSBench S4** (one sound source) at {where}, over {classes} "
            "classes. Each mask marks the sounding object; training clips carry a mask on their first "
            "frame only. Real data records nothing about the silent objects in view, so the sections "
            "that need that say what they cannot show.")


def class_balance(clips: pd.DataFrame, dataset: str) -> str:
    """Whether the training clips are balanced over the classes, with the extremes when not."""
    if dataset == "ms3":
        return f"MS3 has no classes: its metadata lists clips only ({_split_counts(clips)})."
    train = clips[clips["split"] == "train"]["category"].value_counts()
    if train.empty:
        return "The metadata lists no training clips."
    if train.min() == train.max():
        clips_each = f"{int(train.max())} training clip" + ("s" if train.max() != 1 else "")
        return (f"Balanced: each of the {len(train)} classes has {clips_each}, so "
                "every class weighs the same in the per-class results of notebook 4.")
    most, fewest = train.idxmax(), train.idxmin()
    return (f"Not balanced: training clips per class range from {int(train.min())} (`{fewest}`) to "
            f"{int(train.max())} (`{most}`) over {len(train)} classes; the per-class results of notebook 4 "
            "rest on unequal amounts of training data.")


def object_sizes(areas: pd.DataFrame) -> str:
    """How many ground-truth masks are small (`inspection.mask_areas`)."""
    if areas.empty:
        return "No ground-truth masks to measure."
    small = float((areas["area_fraction"] < SMALL_AREA).mean())
    return (f"{small:.0%} of the {len(areas)} ground-truth masks cover less than {SMALL_AREA:.0%} of their "
            f"frame; the median mask covers {areas['area_fraction'].median():.1%}.")


def sound_source(audio: str) -> str:
    """What the sound figures below show: waveforms and players from WAVs, or log-mels alone."""
    if audio == "wav":
        return ("Below, each clip's waveform above its five log-mel examples laid end to end, and a "
                "player for the same WAV file.")
    return ("This tree has **no WAV files** (no `audio_wav/`): the runs read the precomputed log-mels "
            "(`audio_log_mel/*.pkl`), so below are the five log-mel examples of each clip alone, with no "
            "waveform and nothing to play.")


def why_listen(synthetic: bool) -> str:
    """Why the pictures alone cannot say which object sounds, as far as the data can show it."""
    if synthetic:
        return ("The generator keeps what only it knows (the `synth_sidecar/` folder): every object's "
                "class and visible mask. Below, the same clip with each object it shows: one of them "
                "sounds, the others are silent objects of other classes, drawn with the same sizes, "
                "contrast and motion. Nothing in the pictures says which one is sounding.")
    return ("Real data has masks of what sounds only: nothing records the silent objects in "
            "view, so this notebook can neither show them nor bound what a model that does not listen "
            "scores. Notebook 4's silent- and swapped-audio diagnostics ask it of the trained models "
            "instead.")
