"""A synthetic AVSBench (S4) dataset in which only the audio says which object sounds.

Every clip shows one sounding object and 0..k silent distractors of other classes, drawn by the same
rules over clutter; each class has its own look and sound, so a model that ignores the audio can only
guess (``avs_lib.report.ceiling``). ``synth_sidecar/`` keeps what only a generator knows. Each clip
draws from a generator seeded by (seed, split, index), so the bytes do not depend on the worker count.
A *shifted* test split (``ShiftParams``) redraws the clean test plan without the shortcuts.
"""

from __future__ import annotations

import colorsys
import contextlib
import csv
import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from avs_lib.atomic import write_atomically, write_text_atomically
from avs_lib.configtools import check_fields
from avs_lib.data.audio import CLIP_SECONDS, SAMPLE_RATE, write_wav
from avs_lib.data.avsbench import S4_LAYOUT, ClipRecord, clip_paths
from avs_lib.data.boxes import write_voc
from avs_lib.data.categories import FRAMES_PER_CLIP, NUM_CLASSES, S4_CATEGORIES, SPLITS
from avs_lib.data.sidecar import INFO_FILE, SIDECAR_DIR, read_info

GENERATOR_VERSION = 1
META_FILE = "s4_meta_data.csv"
_NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_NAME_LENGTH = 11  # YouTube ids


# --- How each class looks ---
# Inside-tests in object coordinates (every shape fits the unit disc); the order fixes each class's shape.
_SILHOUETTES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "disc": lambda u, v, rho2: rho2 <= 1.0,
    "square": lambda u, v, rho2: np.maximum(np.abs(u), np.abs(v)) <= 0.7,
    # equilateral, inscribed in the unit circle: edges at distance 1/2
    "triangle": lambda u, v, rho2: np.logical_and.reduce(
        [u * np.cos(n) + v * np.sin(n) <= 0.5 for n in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]),
    # five points: radius swings between 1 (tips) and 0.45
    "star": lambda u, v, rho2: np.sqrt(rho2) <= 0.45 + 0.55 * np.abs(
        2 * ((np.arctan2(v, u) / (2 * np.pi) * 5 + 0.25) % 1.0) - 1),
    "ring": lambda u, v, rho2: (rho2 <= 1.0) & (rho2 >= 0.5**2),
    "cross": lambda u, v, rho2: ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)),
    "ellipse": lambda u, v, rho2: u**2 + (v / 0.55) ** 2 <= 1.0,
    "diamond": lambda u, v, rho2: np.abs(u) + np.abs(v) <= 1.0,
}
SHAPES = tuple(_SILHOUETTES)

# True where the pattern colour shows, from (periods per radius f, stripe angle a, u, v); the
# pattern moves and turns with the object.
_TEXTURES: dict[str, Callable[[float, float, np.ndarray, np.ndarray], np.ndarray]] = {
    "solid": lambda f, a, u, v: np.zeros(u.shape, dtype=bool),
    "stripes": lambda f, a, u, v: np.sin(2 * np.pi * f * (u * math.cos(a) + v * math.sin(a))) > 0,
    "checks": lambda f, a, u, v: (np.floor(f * u + 8) + np.floor(f * v + 8)) % 2 == 1,
    "dots": lambda f, a, u, v: ((f * u) % 1.0 - 0.5) ** 2 + ((f * v) % 1.0 - 0.5) ** 2 < 0.3**2,
}
TEXTURES = tuple(_TEXTURES)


@dataclass(frozen=True)
class ClassLook:
    """The appearance rules of one class; each (shape, texture) pair belongs to one class only."""

    shape: str
    texture: str
    colour: tuple[float, float, float]  # RGB in [0, 1]
    pattern_colour: tuple[float, float, float]
    pattern_frequency: float  # texture periods per object radius
    pattern_angle: float  # radians, orientation of stripes


def _hue_colours(hue: float) -> dict[str, tuple[float, float, float]]:
    return {"colour": colorsys.hsv_to_rgb(hue, 0.85, 0.95), "pattern_colour": colorsys.hsv_to_rgb(hue, 0.6, 0.3)}


def _class_look(index: int) -> ClassLook:
    # Classes sharing a shape (index, index + 8, index + 16) get hues a third of the circle
    # apart and different textures, so no two classes look alike.
    hue = ((index % 8) * 3 / 8 + (index // 8) / 3) % 1.0
    return ClassLook(shape=SHAPES[index % 8], texture=TEXTURES[(index // 8 + index % 2) % 4], **_hue_colours(hue),
                     pattern_frequency=1.5 + 0.5 * (index % 3), pattern_angle=math.radians((index * 37) % 180))


CLASS_LOOKS: tuple[ClassLook, ...] = tuple(_class_look(i) for i in range(NUM_CLASSES))

# Hues every class may wear on a shifted split with shared colours (red, yellow, green, blue).
SHARED_HUES = (0.0, 0.15, 0.33, 0.6)
MAX_LOOKS_PER_CLASS = len(TEXTURES)


def look_variant(index: int, variant: int) -> ClassLook:
    """Look `variant` of class `index` (0: its training look); others may wear another class's shape."""
    base = CLASS_LOOKS[index]
    return dataclasses.replace(
        base, shape=SHAPES[(SHAPES.index(base.shape) + 3 * variant) % len(SHAPES)],
        texture=TEXTURES[(TEXTURES.index(base.texture) + variant) % len(TEXTURES)],
        pattern_frequency=1.5 + 0.5 * ((index + variant) % 3),
        pattern_angle=math.radians((index * 37 + variant * 61) % 180))


@dataclass(frozen=True)
class ShiftParams:
    """How a split departs from the clean data (the defaults depart in nothing); on every split of a
    dataset (`profiles.SyntheticData`'s harder variants) they make a harder benchmark to train on."""

    looks_per_class: int = 1  # each object wears one of this many looks of its class, drawn uniformly
    shared_colours: bool = False  # each object's colour drawn from SHARED_HUES, whatever its class
    snr_db: float | None = None  # pink background noise mixed in at this SNR (dB)
    offscreen_fraction: float = 0.0  # share of clips whose sounding object is not drawn (empty target)
    snr_db_range: tuple[float, float] | None = None  # (low, high): each clip's SNR drawn uniformly

    def __post_init__(self) -> None:
        check_fields(self, {
            "looks_per_class": (lambda n: 1 <= n <= MAX_LOOKS_PER_CLASS, f"between 1 and {MAX_LOOKS_PER_CLASS}"),
            "snr_db": (lambda db: db is None or math.isfinite(db), "a finite number of dB or None"),
            "offscreen_fraction": (lambda f: 0.0 <= f <= 1.0, "a fraction in [0, 1]"),
            "snr_db_range": (lambda r: r is None or (self.snr_db is None and len(r) == 2 and math.isfinite(r[0])
                                                    and math.isfinite(r[1]) and r[0] <= r[1]),
                             f"(low, high) finite dB with low <= high, and snr_db None (it is {self.snr_db})"),
        })


# --- How each class sounds ---
@dataclass(frozen=True)
class SoundRecipe:
    """A class's sound: partials ``n**-rolloff * sin(partial_n * phase)`` on a fundamental of frequency
    ``f0 * 2**(fm_depth * wave(fm_rate * t))`` (vibrato, glides, sirens), plus a noise band, under an envelope."""

    f0: float = 0.0  # Hz; 0 means no tonal part
    partials: tuple[float, ...] = tuple(range(1, 9))  # frequency ratios to f0
    rolloff: float = 1.0
    fm_wave: str = "sine"  # "sine" | "saw" | "square"
    fm_rate: float = 0.0  # Hz
    fm_depth: float = 0.0  # octaves (peak)
    noise_centre: float = 0.0  # Hz
    noise_bandwidth: float = 0.0  # Hz (standard deviation of a Gaussian band is half of it)
    noise_level: float = 0.0  # RMS relative to the tonal part (or absolute if no tonal part)
    envelope: str = "steady"  # "steady" | "tremolo" | "pulses"
    envelope_rate: float = 0.0  # Hz: tremolo rate or pulses per second
    tremolo_depth: float = 0.0
    decay: float = 0.1  # s, time constant of each pulse
    onset_jitter: float = 0.05  # pulse timing jitter, fraction of the period


def _harmonics(count: int) -> tuple[float, ...]:
    return tuple(float(n) for n in range(1, count + 1))


# One line per class reads as a table (fields in SoundRecipe order, named where skipped).
# fmt: off
CLASS_SOUNDS: dict[str, SoundRecipe] = {
    "baby_laughter": SoundRecipe(420, _harmonics(8), 1.2, "sine", 3.0, 0.15, noise_centre=2500, noise_bandwidth=1500, noise_level=0.2, envelope="pulses", envelope_rate=5.0, decay=0.08),
    "female_singing": SoundRecipe(330, _harmonics(10), 1.0, "sine", 5.5, 0.03, envelope="tremolo", envelope_rate=0.5, tremolo_depth=0.5),
    "male_speech": SoundRecipe(115, _harmonics(20), 0.8, "sine", 2.0, 0.1, noise_centre=3000, noise_bandwidth=2000, noise_level=0.1, envelope="tremolo", envelope_rate=4.0, tremolo_depth=0.9),
    "dog_barking": SoundRecipe(280, _harmonics(10), 0.7, noise_centre=900, noise_bandwidth=800, noise_level=0.6, envelope="pulses", envelope_rate=1.8, decay=0.09),
    "cat_meowing": SoundRecipe(600, _harmonics(6), 1.3, "sine", 0.8, 0.4, envelope="pulses", envelope_rate=0.8, decay=0.45),
    "lions_roaring": SoundRecipe(80, _harmonics(12), 0.6, noise_centre=300, noise_bandwidth=300, noise_level=0.8, envelope="tremolo", envelope_rate=0.35, tremolo_depth=0.8),
    "horse_clip-clop": SoundRecipe(noise_centre=1200, noise_bandwidth=500, noise_level=1.0, envelope="pulses", envelope_rate=3.2, decay=0.04),
    "coyote_howling": SoundRecipe(700, _harmonics(4), 1.5, "sine", 0.25, 0.6, envelope="tremolo", envelope_rate=0.25, tremolo_depth=0.6),
    "mynah_bird_singing": SoundRecipe(2400, _harmonics(3), 1.5, "saw", 7.0, 0.5, envelope="pulses", envelope_rate=7.0, decay=0.06),
    "playing_acoustic_guitar": SoundRecipe(196, _harmonics(12), 1.0, envelope="pulses", envelope_rate=2.0, decay=0.35),
    "playing_tabla": SoundRecipe(300, (1.0, 1.5, 2.0, 2.5, 3.0), 1.0, "saw", 5.0, -0.2, envelope="pulses", envelope_rate=5.0, decay=0.08),
    "playing_violin": SoundRecipe(440, _harmonics(14), 0.7, "sine", 6.0, 0.02, envelope="tremolo", envelope_rate=0.6, tremolo_depth=0.3),
    "playing_piano": SoundRecipe(262, _harmonics(14), 1.1, envelope="pulses", envelope_rate=1.5, decay=0.6),
    "playing_ukulele": SoundRecipe(392, _harmonics(8), 1.4, envelope="pulses", envelope_rate=3.0, decay=0.15),
    "playing_glockenspiel": SoundRecipe(1560, (1.0, 2.76, 5.40), 1.0, envelope="pulses", envelope_rate=2.5, decay=0.3),
    "helicopter": SoundRecipe(noise_centre=250, noise_bandwidth=300, noise_level=1.0, envelope="tremolo", envelope_rate=11.0, tremolo_depth=0.9),
    "race_car": SoundRecipe(140, _harmonics(16), 0.6, "saw", 0.5, 1.0, noise_centre=1500, noise_bandwidth=2000, noise_level=0.3),
    "driving_buses": SoundRecipe(55, _harmonics(20), 0.9, noise_centre=6000, noise_bandwidth=2000, noise_level=0.3),
    "ambulance_siren": SoundRecipe(950, _harmonics(3), 1.0, "square", 0.7, 0.4),
    "typing_on_computer_keyboard": SoundRecipe(noise_centre=4500, noise_bandwidth=3000, noise_level=1.0, envelope="pulses", envelope_rate=9.0, decay=0.015, onset_jitter=0.35),
    "chainsawing_trees": SoundRecipe(120, _harmonics(30), 0.5, noise_centre=3000, noise_bandwidth=2000, noise_level=0.5, envelope="tremolo", envelope_rate=1.5, tremolo_depth=0.4),
    "cap_gun_shooting": SoundRecipe(noise_centre=4000, noise_bandwidth=8000, noise_level=1.0, envelope="pulses", envelope_rate=0.9, decay=0.15),
    "lawn_mowing": SoundRecipe(38, _harmonics(30), 0.5, noise_centre=700, noise_bandwidth=500, noise_level=1.0, envelope="tremolo", envelope_rate=25.0, tremolo_depth=0.3),
}
# fmt: on

# Unit-amplitude periodic waves; ``cycles`` counts periods.
_WAVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sine": lambda cycles: np.sin(2 * np.pi * cycles),
    "saw": lambda cycles: 2.0 * (cycles % 1.0) - 1.0,
    "square": lambda cycles: np.where(cycles % 1.0 < 0.5, 1.0, -1.0),
}


def _tonal_part(recipe: SoundRecipe, t: np.ndarray, pitch: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Partials on a frequency-modulated fundamental, normalised to unit RMS."""
    octaves = recipe.fm_depth * _WAVES[recipe.fm_wave](recipe.fm_rate * rate * t + rng.uniform())
    frequency = recipe.f0 * pitch * 2.0**octaves  # instantaneous, [n]
    phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for n, ratio in enumerate(recipe.partials, start=1):
        below_nyquist = ratio * frequency < 0.45 * SAMPLE_RATE  # drop partials that would alias
        offset = rng.uniform(0, 2 * np.pi)
        wave += n**-recipe.rolloff * np.sin(ratio * phase + offset) * below_nyquist
    return wave / (np.sqrt(np.mean(wave**2)) + 1e-12)


def _noise_band(centre: float, bandwidth: float, length: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a Gaussian band-pass (in the FFT domain), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    spectrum *= np.exp(-0.5 * ((frequencies - centre) / (bandwidth / 2)) ** 2)
    band = np.fft.irfft(spectrum, n=length)
    return band / (np.sqrt(np.mean(band**2)) + 1e-12)


def _envelope(recipe: SoundRecipe, t: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Amplitude over time: constant, a slow/fast tremolo, or decaying pulses (notes, barks)."""
    if recipe.envelope == "steady":
        return np.ones_like(t)
    speed = recipe.envelope_rate * rate
    if recipe.envelope == "tremolo":
        swing = 0.5 - 0.5 * np.cos(2 * np.pi * (speed * t + rng.uniform()))
        return 1.0 - recipe.tremolo_depth * swing
    if recipe.envelope == "pulses":
        period = 1.0 / speed
        onsets = np.arange(-period * rng.uniform(), t[-1] + period, period)
        onsets = np.sort(onsets + rng.normal(0.0, recipe.onset_jitter * period, onsets.size))
        last = np.searchsorted(onsets, t, side="right") - 1
        since = np.where(last >= 0, t - onsets[np.maximum(last, 0)], np.inf)
        attack = np.clip(since / 0.003, 0.0, 1.0)  # 3 ms ramp: no click at each onset
        return attack * np.exp(-since / recipe.decay)
    raise ValueError(f"unknown envelope {recipe.envelope!r}; expected steady, tremolo or pulses")


def _pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with 1/f power (equal energy per octave), as room and street backgrounds roughly are."""
    pink = np.fft.rfft(rng.standard_normal(length))
    pink /= np.sqrt(np.maximum(np.fft.rfftfreq(length), 1.0 / length))  # 1/f power
    return np.fft.irfft(pink, n=length)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` plus ``noise`` at ``snr_db`` (mean power), float32; scaled down whole (SNR kept) to fit [-1, 1]."""
    if signal.shape != noise.shape:
        raise ValueError(f"signal {signal.shape} and noise {noise.shape} must have the same shape")
    signal = signal.astype(np.float64)
    signal_power, noise_power = np.mean(signal**2), np.mean(noise.astype(np.float64) ** 2)
    if noise_power == 0:
        raise ValueError("the noise is silent: no SNR can be set with it")
    scale = math.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    mixture = signal + scale * noise
    peak = np.abs(mixture).max()
    if peak > 1.0:
        mixture *= 0.99 / peak
    return mixture.astype(np.float32)


def synthesize_sound(category: int | str, rng: np.random.Generator) -> np.ndarray:
    """One clip's sound of a class at 16 kHz, float32 in [-1, 1]; per-clip pitch (±4 %), tempo
    (±10 %), gain, phases and faint pink noise keep two clips of a class apart."""
    name = S4_CATEGORIES[int(category)] if isinstance(category, int | np.integer) else category
    if name not in CLASS_SOUNDS:
        raise ValueError(f"no sound recipe for category {name!r}; expected one of {', '.join(S4_CATEGORIES)}")
    recipe = CLASS_SOUNDS[name]
    length = CLIP_SECONDS * SAMPLE_RATE
    t = np.arange(length) / SAMPLE_RATE
    pitch = math.exp(rng.uniform(math.log(0.96), math.log(1.04)))
    rate = rng.uniform(0.9, 1.1)
    signal = np.zeros(length)
    if recipe.f0 > 0:
        signal += _tonal_part(recipe, t, pitch, rate, rng)
    if recipe.noise_level > 0:
        signal += recipe.noise_level * _noise_band(recipe.noise_centre * pitch, recipe.noise_bandwidth, length, rng)
    signal *= _envelope(recipe, t, rate, rng)
    gain = rng.uniform(0.3, 0.8)
    signal *= gain / (np.abs(signal).max() + 1e-12)
    background = _pink_noise(length, rng)
    background *= gain * rng.uniform(0.005, 0.02) / (np.sqrt(np.mean(background**2)) + 1e-12)
    return np.clip(signal + background, -1.0, 1.0).astype(np.float32)


# --- Parameters and the plan of the whole dataset ---
@dataclass(frozen=True)
class SynthParams:
    """Everything that decides the generated bytes (stored in ``info.json``)."""

    videos_per_split: tuple[int, int, int] = (240, 60, 60)  # train, val, test
    image_size: int = 224
    seed: int = 0
    max_distractors: int = 2
    eval_distractor_fraction: float = 1.0  # val/test clips that get at least one distractor
    small_object_probability: float = 0.25  # any object (sounding or not) may be small
    overlap_probability: float = 0.35  # one object is placed against another
    occluder_probability: float = 0.25  # a foreground bar crosses a random object
    min_visible_fraction: float = 0.4  # every object keeps this much of itself in every frame
    # Only the first N of the 23 S4 categories are drawn: fewer classes, more clips per class,
    # so a small model from scratch can learn which sound goes with which look sooner.
    num_classes: int = NUM_CLASSES
    shift: ShiftParams | None = None  # a shifted split's departures (None: the clean data; not in info.json)
    # The test split drawn from a seed of its own (names, classes, layouts, sounds): a fresh test
    # split that no probe has seen, with train and val unchanged. None: from `seed` (not in info.json).
    test_seed: int | None = None

    def __post_init__(self) -> None:
        fewest_classes = self.max_distractors + 1
        check_fields(self, {
            "videos_per_split": (lambda v: len(v) == 3 and min(v) >= 1, "3 positive counts (train, val, test)"),
            "image_size": (lambda n: n >= 32, "at least 32 pixels"),
            "max_distractors": (lambda n: 0 <= n <= 4, "between 0 and 4"),
            **{name: (lambda p: 0.0 <= p <= 1.0, "a probability in [0, 1]") for name in (
                "eval_distractor_fraction", "small_object_probability", "overlap_probability", "occluder_probability")},
            "num_classes": (lambda n: fewest_classes <= n <= NUM_CLASSES,
                            f"between max_distractors + 1 = {fewest_classes} and {NUM_CLASSES}"),
            "min_visible_fraction": (lambda f: 0.0 < f <= 1.0, "in (0, 1]"),
        })


@dataclass(frozen=True)
class ClipPlan:
    """One clip decided before drawing: its name, its sounding class and its distractors."""

    split: str
    index: int  # position in its split; seeds the clip's own random generator
    name: str
    start: int
    classes: tuple[int, ...]  # [0] sounds, [1:] are silent distractors of other classes
    swap_partner: str  # a clip of this split whose category is one of classes[1:], or ""
    sounding_on_screen: bool = True  # False: object 0 is heard but not drawn (shifted splits)

    @property
    def category(self) -> str:
        return S4_CATEGORIES[self.classes[0]]


def _unique_names(count: int, rng: np.random.Generator) -> list[str]:
    alphabet = np.array(list(_NAME_ALPHABET))
    names: dict[str, None] = {}  # an ordered set: a repeated draw is skipped
    while len(names) < count:
        names.setdefault("".join(rng.choice(alphabet, _NAME_LENGTH)))
    return list(names)


def _plan_split(split: str, names: list[str], params: SynthParams, rng: np.random.Generator) -> list[ClipPlan]:
    count = len(names)
    # Balanced classes: repeated shuffles of all N classes, so each appears once per N clips.
    classes = params.num_classes
    repeats = math.ceil(count / classes)
    categories = np.concatenate([rng.permutation(classes) for _ in range(repeats)])[:count]
    with_distractor = set()  # val/test clips that get at least one distractor
    if split != "train":
        with_distractor = set(rng.permutation(count)[: round(params.eval_distractor_fraction * count)].tolist())
    present = sorted(set(categories.tolist()))
    clips_of = {c: [i for i in range(count) if categories[i] == c] for c in present}
    plans = []
    for i, category in enumerate(categories.tolist()):
        low = int(i in with_distractor)
        wanted = int(rng.integers(low, params.max_distractors + 1)) if params.max_distractors else 0
        # Prefer classes that some clip of this split sounds, so a swap partner exists.
        here = [c for c in present if c != category]
        elsewhere = [c for c in range(classes) if c != category and c not in present]
        from_here = rng.permutation(here)[:wanted].tolist()
        from_elsewhere = rng.permutation(elsewhere)[: wanted - len(from_here)].tolist()
        partner = ""
        if from_here:
            partner_class = from_here[int(rng.integers(len(from_here)))]
            partner = names[clips_of[partner_class][int(rng.integers(len(clips_of[partner_class])))]]
        start = int(rng.integers(0, 300))
        plans.append(ClipPlan(split, i, names[i], start, (category, *from_here, *from_elsewhere), partner))
    return plans


def _clip_seed(params: SynthParams, split: str) -> int:
    """The seed a split's clips are drawn from: `test_seed` for a fresh test split, else `seed`."""
    return params.test_seed if split == "test" and params.test_seed is not None else params.seed


def plan_clips(params: SynthParams) -> list[ClipPlan]:
    """Names, classes, distractors and swap partners of every clip, in CSV order."""
    rng = np.random.default_rng([params.seed, 7919])
    names = _unique_names(sum(params.videos_per_split), rng)
    plans: list[ClipPlan] = []
    offset = 0
    for split, count in zip(SPLITS, params.videos_per_split, strict=True):
        if split == "test" and params.test_seed is not None:  # its own names and plan, none reused
            fresh = np.random.default_rng([params.test_seed, 7919, 3])
            taken = {p.name for p in plans}
            chosen = [n for n in _unique_names(count + len(taken), fresh) if n not in taken][:count]
            plans += _plan_split(split, chosen, params, fresh)
        else:
            plans += _plan_split(split, names[offset : offset + count], params, rng)
        offset += count
    return plans


# --- Drawing one clip ---
@dataclass(frozen=True)
class _ObjectTrack:
    """One object's look and its pose in each of the 5 frames (pixels, radians)."""

    look: ClassLook
    centres: np.ndarray  # [5, 2] (x, y)
    radii: np.ndarray  # [5]
    angles: np.ndarray  # [5]
    brightness: float


@dataclass(frozen=True)
class RenderedClip:
    """Pixels, sound and per-object ground truth of one clip (object 0 sounds)."""

    frames: np.ndarray  # uint8 [5, S, S, 3]
    masks: np.ndarray  # uint8 [K, 5, S, S] in {0, 1}, visible pixels after occlusion
    boxes: np.ndarray  # int64 [K, 5, 4] whole-silhouette boxes, 0-based, exclusive max
    visible_fraction: np.ndarray  # float32 [K, 5] visible / whole silhouette pixels
    drawing_order: np.ndarray  # int64 [K] object indices, back to front
    waveform: np.ndarray  # float32 [5 * 16000]


def _draw_object(track: _ObjectTrack, frame: int, size: int) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Window (rows, columns), silhouette [h, w] and RGB [h, w, 3] of an object in one frame."""
    (cx, cy), radius, angle, look = track.centres[frame], track.radii[frame], track.angles[frame], track.look
    x0, x1 = max(int(cx - radius) - 1, 0), min(int(cx + radius) + 2, size)
    y0, y1 = max(int(cy - radius) - 1, 0), min(int(cy + radius) + 2, size)
    dx = (np.arange(x0, x1) + 0.5 - cx)[None, :]  # pixel centres, [1, w]
    dy = (np.arange(y0, y1) + 0.5 - cy)[:, None]  # [h, 1]
    cos, sin = math.cos(angle), math.sin(angle)
    u = (dx * cos + dy * sin) / radius  # [h, w] object coordinates
    v = (-dx * sin + dy * cos) / radius
    inside = _SILHOUETTES[look.shape](u, v, u**2 + v**2)
    pattern = _TEXTURES[look.texture](look.pattern_frequency, look.pattern_angle, u, v)[..., None]  # [h, w, 1]
    shading = (1.0 - 0.25 * np.clip(u**2 + v**2, 0, 1))[..., None]  # a little roundness
    rgb = np.where(pattern, look.pattern_colour, look.colour) * shading * track.brightness
    return (slice(y0, y1), slice(x0, x1)), inside, rgb


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A muted gradient, smooth blotches and faint lines: clutter that is no class."""
    ramp = np.linspace(-0.5, 0.5, size)
    direction = rng.uniform(0, 2 * np.pi)
    mix = 0.5 + math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None]  # [S, S]
    low, high = (np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.25), rng.uniform(0.35, 0.75)))
                 for _ in range(2))
    image = low + np.clip(mix, 0, 1)[..., None] * (high - low)  # [S, S, 3]
    # Blotches: a 6x6 grid of random colour offsets, bilinearly enlarged.
    coarse = rng.normal(0.0, 0.05, (6, 6, 3)).astype(np.float32)
    image = image + np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize((size, size), Image.BILINEAR))
                              for c in range(3)], axis=-1)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(int(rng.integers(3, 9))):
        shade = rng.uniform(-0.1, 0.1, 3)
        cx, cy = rng.uniform(0, size, 2)
        if rng.uniform() < 0.5:  # a soft blob
            sigma = rng.uniform(0.05, 0.2) * size
            image += shade * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))[..., None]
        else:  # a faint line through (cx, cy)
            angle = rng.uniform(0, np.pi)
            distance = np.abs((xs - cx) * math.sin(angle) - (ys - cy) * math.cos(angle))
            image += shade * (distance < rng.uniform(0.5, 1.5))[..., None]
    return image


def _object_tracks(looks: list[ClassLook], size: int, params: SynthParams,
                   rng: np.random.Generator) -> list[_ObjectTrack]:
    """Sizes, start positions and motion, drawn by the same rules for every object."""
    count = len(looks)
    small = rng.uniform(size=count) < params.small_object_probability
    base = np.where(small, rng.uniform(0.07, 0.11, count), rng.uniform(0.12, 0.24, count)) * size
    base = np.maximum(base, 3.0)
    low, high = base, size - base  # whole object inside the frame
    centres0 = np.stack([rng.uniform(low, high), rng.uniform(low, high)], axis=1)  # [K, 2]
    if count > 1 and rng.uniform() < params.overlap_probability:
        i, j = rng.choice(count, 2, replace=False)
        angle = rng.uniform(0, 2 * np.pi)
        centres0[j] = centres0[i] + 0.75 * (base[i] + base[j]) * np.array([math.cos(angle), math.sin(angle)])
    steps = np.arange(FRAMES_PER_CLIP) - (FRAMES_PER_CLIP - 1) / 2  # motion centred on frame 3
    tracks = []
    for k, look in enumerate(looks):
        velocity = rng.uniform(-0.035, 0.035, 2) * size
        radii = base[k] * np.clip(1 + rng.normal(0, 0.06, FRAMES_PER_CLIP), 0.88, 1.12)
        centres = centres0[k] + steps[:, None] * velocity  # [5, 2]
        centres = np.clip(centres, radii[:, None], size - radii[:, None])  # stay inside the frame
        angles = rng.uniform(0, 2 * np.pi) + steps * rng.uniform(-0.15, 0.15)
        tracks.append(_ObjectTrack(look, centres, radii, angles, float(rng.uniform(0.85, 1.1))))
    return tracks


def _occluder(tracks: list[_ObjectTrack], size: int, rng: np.random.Generator) -> np.ndarray:
    """[S, S] bool: a foreground bar (a pole, a branch) across a random object, sounding or not."""
    target = tracks[int(rng.integers(len(tracks)))]
    cx, cy = target.centres[FRAMES_PER_CLIP // 2] + rng.normal(0, 0.3 * target.radii[0], 2)
    angle = rng.uniform(0, np.pi)
    half_width = max(rng.uniform(0.02, 0.04) * size, 1.0)
    half_length = rng.uniform(0.3, 0.6) * size
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    along = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
    across = -(xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle)
    return (np.abs(along) <= half_length) & (np.abs(across) <= half_width)


def _compose(tracks: list[_ObjectTrack], order: np.ndarray, bar: np.ndarray | None,
             size: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Lay objects in ``order`` (later on top), then the bar: each pixel's owner [5, S, S] (-1 for
    background or bar), each object's whole silhouette [K, 5, S, S], and the paint strokes."""
    owner = np.full((FRAMES_PER_CLIP, size, size), -1, dtype=np.int8)
    whole = np.zeros((len(tracks), FRAMES_PER_CLIP, size, size), dtype=bool)
    paint = []
    for t in range(FRAMES_PER_CLIP):
        for k in order:
            window, inside, rgb = _draw_object(tracks[k], t, size)
            whole[k, t][window] = inside
            owner[t][window][inside] = k
            paint.append((t, window, inside, rgb))
        if bar is not None:
            owner[t][bar] = -1
    return owner, whole, paint


def _shifted_looks(classes: Sequence[int], shift: ShiftParams, rng: np.random.Generator) -> list[ClassLook]:
    """The look each object wears on a shifted split (a variant of its class, maybe recoloured)."""
    looks = []
    for category in classes:
        look = look_variant(int(category), int(rng.integers(shift.looks_per_class)))
        if shift.shared_colours:
            look = dataclasses.replace(look, **_hue_colours(SHARED_HUES[int(rng.integers(len(SHARED_HUES)))]))
        looks.append(look)
    return looks


def _layout(plan: ClipPlan, looks: list[ClassLook], params: SynthParams,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, list]:
    """Redraw layouts until every object stays visible enough: order, bar, visible, whole, fraction, paint."""
    size = params.image_size
    for _attempt in range(200):
        tracks = _object_tracks(looks, size, params, rng)
        order = rng.permutation(len(tracks))  # drawing order says nothing about who sounds
        bar = _occluder(tracks, size, rng) if rng.uniform() < params.occluder_probability else None
        owner, whole, paint = _compose(tracks, order, bar, size)
        visible = owner[None] == np.arange(len(tracks))[:, None, None, None]  # [K, 5, S, S]
        visible_pixels = visible.sum(axis=(2, 3))
        fraction = visible_pixels / whole.sum(axis=(2, 3))
        if (fraction >= params.min_visible_fraction).all() and (visible_pixels >= 8).all():
            return order, bar, visible, whole, fraction, paint
    raise RuntimeError(f"could not place the objects of clip {plan.name} visibly; try a larger image_size")


def render_clip(plan: ClipPlan, params: SynthParams) -> RenderedClip:
    """Draw the 5 frames, the per-object masks and boxes, and the sound of one clip. A shift's looks and
    noise come from a second generator, so an on-screen clip keeps its clean twin's layout and sound."""
    key = [_clip_seed(params, plan.split), SPLITS.index(plan.split), plan.index]
    rng, shift_rng, shift = np.random.default_rng(key), np.random.default_rng([*key, 1]), params.shift
    drawn = plan.classes if plan.sounding_on_screen else plan.classes[1:]
    if not drawn:
        raise ValueError(f"clip {plan.name}: an off-screen sounding object needs a distractor on screen")
    looks = [CLASS_LOOKS[c] for c in drawn] if shift is None else _shifted_looks(drawn, shift, shift_rng)
    size = params.image_size
    background = _background(size, rng)
    order, bar, visible, whole, fraction, paint = _layout(plan, looks, params, rng)
    frames = np.repeat(background[None].astype(np.float32), FRAMES_PER_CLIP, axis=0)  # [5, S, S, 3]
    for t, window, inside, rgb in paint:
        frames[t][window][inside] = rgb[inside]
    if bar is not None:
        frames[:, bar] = colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.3), rng.choice([0.25, 0.8]))
    frames += 0.012 * rng.standard_normal(frames.shape, dtype=np.float32)  # sensor noise, new in every frame
    masks, boxes, fraction = visible.astype(np.uint8), _tight_boxes(whole), fraction.astype(np.float32)
    if not plan.sounding_on_screen:  # object 0, heard but not drawn: no visible pixel, the whole frame as box
        masks = np.concatenate([np.zeros((1, *masks.shape[1:]), dtype=masks.dtype), masks])
        boxes = np.concatenate([np.tile(np.array([0, 0, size, size], dtype=np.int64), (1, FRAMES_PER_CLIP, 1)), boxes])
        fraction = np.concatenate([np.zeros((1, FRAMES_PER_CLIP), dtype=fraction.dtype), fraction])
        order = order + 1  # the drawn objects are 1..K-1
    waveform = synthesize_sound(plan.classes[0], rng)
    snr_db = None if shift is None else shift.snr_db
    if shift is not None and snr_db is None and shift.snr_db_range is not None:
        snr_db = float(shift_rng.uniform(*shift.snr_db_range))
    if snr_db is not None:
        waveform = mix_at_snr(waveform, _pink_noise(len(waveform), shift_rng), snr_db)
    return RenderedClip(frames=np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8), masks=masks, boxes=boxes,
                        visible_fraction=fraction, drawing_order=order.astype(np.int64), waveform=waveform)


def _tight_boxes(silhouettes: np.ndarray) -> np.ndarray:
    """[K, 5, S, S] bool -> [K, 5, 4] int64 boxes (xmin, ymin, xmax, ymax), exclusive max."""
    rows, columns = silhouettes.any(axis=3), silhouettes.any(axis=2)  # [K, 5, S] each
    size = silhouettes.shape[-1]
    x0, y0 = columns.argmax(axis=-1), rows.argmax(axis=-1)  # first occupied column / row
    x1 = size - columns[..., ::-1].argmax(axis=-1)  # one past the last occupied column
    y1 = size - rows[..., ::-1].argmax(axis=-1)
    return np.stack([x0, y0, x1, y1], axis=-1).astype(np.int64)


# --- Writing files ---
def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so the bytes depend on the data only."""
    def write(file: BinaryIO) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, array in arrays.items():
                entry = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                entry.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(entry, "w", force_zip64=True) as npy:
                    np.lib.format.write_array(npy, np.asanyarray(array), allow_pickle=False)
    write_atomically(path, write)


def _write_clip(task: tuple[str, ClipPlan, SynthParams]) -> None:
    """Render one clip and write all its files where the reader looks (run in a worker process)."""
    root, plan, params = task
    clip = render_clip(plan, params)
    paths = clip_paths(S4_LAYOUT, root, ClipRecord(plan.name, plan.category, plan.split))
    for i, (frame_path, xml) in enumerate(zip(paths.frames, paths.crop_labels, strict=True)):
        frame_path.parent.mkdir(parents=True, exist_ok=True)
        # Fast zlib: the frames are noisy, so stronger compression costs time and saves little.
        Image.fromarray(clip.frames[i]).save(frame_path, compress_level=1)
        # A root-relative image path keeps the XML identical wherever the dataset lives.
        write_voc(xml, tuple(int(v) for v in clip.boxes[0, i]), name=plan.category,
                  image_path=frame_path.relative_to(root), image_size=(params.image_size, params.image_size))
    for k, mask_path in zip(paths.mask_frames, paths.masks, strict=True):
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(clip.masks[0, k] * np.uint8(255)).save(mask_path, compress_level=1)  # [S, S] in {0, 255}
    write_wav(paths.wav, clip.waveform, SAMPLE_RATE)
    sidecar = {"classes": np.asarray(plan.classes, dtype=np.int64), "masks": clip.masks, "boxes": clip.boxes,
               "visible_fraction": clip.visible_fraction, "swap_partner": np.asarray(plan.swap_partner)}
    if params.shift is not None:  # only shifted splits say it: clean sidecars keep their bytes
        sidecar["sounding_on_screen"] = np.asarray(plan.sounding_on_screen)
    _save_npz(Path(root) / SIDECAR_DIR / plan.split / f"{plan.name}.npz", sidecar)


def _write_meta(root: Path, plans: list[ClipPlan]) -> None:
    with open(root / META_FILE, "w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows([("name", "start", "category", "split"),
                                                         *((p.name, p.start, p.category, p.split) for p in plans)])


# --- The public entry points ---
@dataclass
class SynthInfo:
    """What ``make_dataset`` wrote (its counts: ``read_info``), and what it cost."""

    root: Path
    clips: dict[str, int]  # per split
    seconds: float  # 0.0 when an ``ensure_*`` function found the data already there
    bytes_on_disk: int


def _per_split(plans: list[ClipPlan], keep: Callable[[ClipPlan], bool]) -> dict[str, int]:
    return {split: sum(p.split == split and keep(p) for p in plans) for split in SPLITS}


def synth_info_json(params: SynthParams, plans: list[ClipPlan] | None = None) -> dict:
    """The info.json a dataset made with `params` (from `plans`, default all of them) holds."""
    plans = plan_clips(params) if plans is None else plans
    parameters = json.loads(json.dumps(asdict(params)))  # tuples as lists, as JSON reads them back
    # Options added later are left out while unset, so older datasets' info.json stays as it was.
    for key in ("test_seed", "shift"):
        if parameters[key] is None:
            del parameters[key]
    clips = _per_split(plans, lambda p: True)
    counts = {
        "clips": clips,
        "frames": FRAMES_PER_CLIP * len(plans),
        "gt_masks": clips["train"] + FRAMES_PER_CLIP * (clips["val"] + clips["test"]),
        "wavs": len(plans),
        "crop_labels": FRAMES_PER_CLIP * len(plans),
        "sidecars": len(plans),
        "clips_with_distractors": _per_split(plans, lambda p: len(p.classes) > 1),
        "clips_with_swap_partner": _per_split(plans, lambda p: p.swap_partner != ""),
        "counts_by_category": {split: {c: sum(p.split == split and p.category == c for p in plans)
                                       for c in S4_CATEGORIES} for split in SPLITS},
    }
    if params.shift is not None:
        if params.shift.snr_db_range is None:
            del parameters["shift"]["snr_db_range"]
        counts["clips_sounding_offscreen"] = _per_split(plans, lambda p: not p.sounding_on_screen)
    return {"generator": "avs_lib.data.synth", "version": GENERATOR_VERSION, "seed": params.seed,
            "parameters": parameters, "counts": counts}


def _synth_info(root: Path, counts: dict, seconds: float) -> SynthInfo:
    files = [root / META_FILE, *(root / "s4_data").rglob("*"), *(root / SIDECAR_DIR).rglob("*")]
    return SynthInfo(root, counts["clips"], seconds, sum(f.stat().st_size for f in files if f.is_file()))


def _clear(root: Path, overwrite: bool) -> None:
    existing = [p for p in (root / META_FILE, root / "s4_data", root / SIDECAR_DIR) if p.exists()]
    if not existing:
        return
    if not (root / SIDECAR_DIR / INFO_FILE).is_file():
        raise FileExistsError(f"{root} already holds files this generator did not write ({existing[0]}); "
                              "refusing to replace them (choose an empty directory)")
    if not overwrite:
        raise FileExistsError(f"{root} already holds a synthetic dataset; pass overwrite=True to replace it")
    (root / SIDECAR_DIR / INFO_FILE).unlink()  # first, so a half-deleted tree never looks complete
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _write_dataset(root: Path, params: SynthParams, plans: list[ClipPlan] | None = None, overwrite: bool = False,
                   workers: int | None = None, progress: bool = False) -> SynthInfo:
    """Write every planned clip (in `workers` processes, default: the usable CPUs), the metadata CSV,
    then info.json (its presence marks a complete dataset)."""
    began = time.perf_counter()
    plans = plan_clips(params) if plans is None else plans
    _clear(root, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    pool_size = max(1, min(workers, len(plans) // 4))  # a pool costs more than it saves on a few clips
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    tasks = [(str(root), plan, params) for plan in plans]
    with (multiprocessing.get_context(method).Pool(pool_size) if pool_size > 1 else contextlib.nullcontext()) as pool:
        done = map(_write_clip, tasks) if pool is None else pool.imap_unordered(_write_clip, tasks, chunksize=4)
        list(tqdm(done, total=len(tasks), desc="synthetic clips", unit="clip", disable=not progress))
    _write_meta(root, plans)
    info = synth_info_json(params, plans)
    write_text_atomically(root / SIDECAR_DIR / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return _synth_info(root, info["counts"], time.perf_counter() - began)


def _ensure(root: str | Path, params: SynthParams, plans: list[ClipPlan], workers: int | None,
            progress: bool) -> SynthInfo:
    """Reuse `root` when its info.json is the one these plans write; else (re)write it."""
    root = Path(root)
    info = synth_info_json(params, plans)
    if (root / SIDECAR_DIR / INFO_FILE).is_file() and read_info(root) == info:
        return _synth_info(root, info["counts"], seconds=0.0)
    return _write_dataset(root, params, plans, True, workers, progress)


def profile_params(spec) -> SynthParams:
    """The generator parameters of a profile's `profiles.SyntheticData`, the one mapping every caller uses."""
    shift = ShiftParams(looks_per_class=spec.looks_per_class, shared_colours=spec.shared_colours,
                        snr_db_range=spec.snr_db_range)
    return SynthParams(tuple(spec.videos_per_split), spec.image_size, num_classes=spec.num_classes,
                       test_seed=spec.test_seed, shift=None if shift == ShiftParams() else shift)


def make_profile_dataset(root: str | Path, spec, progress: bool = True) -> SynthInfo:
    """Write a profile's synthetic dataset (`profiles.SyntheticData`) under `root`, a clean folder."""
    return _write_dataset(Path(root), profile_params(spec), progress=progress)


def make_dataset(root: str | Path, videos_per_split: Sequence[int] = SynthParams.videos_per_split, *,
                 workers: int | None = None, overwrite: bool = False, progress: bool = True,
                 **options: Any) -> SynthInfo:
    """Write a synthetic S4 dataset of (train, val, test) clips under ``root``; ``options`` are the other
    `SynthParams` fields. The bytes do not depend on ``workers``; an existing synthetic dataset is
    replaced only with ``overwrite=True``."""
    params = SynthParams(tuple(videos_per_split), **options)
    return _write_dataset(Path(root), params, None, overwrite, workers, progress)


def ensure_development_test(root: str | Path, params: SynthParams, *, workers: int | None = None,
                            progress: bool = False) -> SynthInfo:
    """The test split `params` would draw without its `test_seed` (the *development* test split, used
    while the recipe was chosen), byte for byte, as a test-only root; made once, then reused."""
    old = dataclasses.replace(params, test_seed=None, shift=None)
    return _ensure(root, old, [p for p in plan_clips(old) if p.split == "test"], workers, progress)


def plan_shifted_test(params: SynthParams) -> list[ClipPlan]:
    """The clean test split's plans, with ``params.shift.offscreen_fraction`` of them, drawn among
    the clips with a distractor, made off-screen."""
    if params.shift is None:
        raise ValueError("plan_shifted_test needs params.shift (a ShiftParams)")
    plans = [p for p in plan_clips(params) if p.split == "test"]
    wanted = round(params.shift.offscreen_fraction * len(plans))
    eligible = [i for i, p in enumerate(plans) if len(p.classes) > 1]
    if wanted > len(eligible):
        raise ValueError(f"offscreen_fraction {params.shift.offscreen_fraction} asks for {wanted} off-screen clips, "
                         f"but only {len(eligible)} of {len(plans)} test clips have a distractor to show instead")
    rng = np.random.default_rng([_clip_seed(params, "test"), 7919, 2])
    chosen = set(rng.permutation(eligible)[:wanted].tolist())
    return [dataclasses.replace(p, sounding_on_screen=False) if i in chosen else p for i, p in enumerate(plans)]


def ensure_shifted_test(root: str | Path, base_params: SynthParams, shift: ShiftParams, *,
                        workers: int | None = None, progress: bool = False) -> SynthInfo:
    """The shifted twin of ``base_params``' test split as a test-only root (for ``evaluate(..., data_root=root)``),
    written unless ``root`` holds it. Off-screen clips: empty masks, the whole frame as crop box."""
    if base_params.shift is not None:
        raise ValueError("base_params must be the clean data's parameters (shift=None)")
    params = dataclasses.replace(base_params, shift=shift)
    return _ensure(root, params, plan_shifted_test(params), workers, progress)


def shifted_test_name(shift: ShiftParams) -> str:
    """A folder name that says what a shifted split changes, e.g. ``shifted_looks3_colours_offscreen0.2_snr10db``."""
    parts = ["shifted", f"looks{shift.looks_per_class}" if shift.looks_per_class > 1 else "",
             "colours" if shift.shared_colours else "",
             f"offscreen{shift.offscreen_fraction:g}" if shift.offscreen_fraction > 0 else "",
             "" if shift.snr_db is None else f"snr{shift.snr_db:g}db"]
    return "_".join(part for part in parts if part)
