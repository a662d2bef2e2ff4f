"""The benchmark's presets: named profiles (how big, which data, which encoders' start), the methods
the report compares (each a set of overrides), and `build_config`, which resolves them into a checked
`ExperimentConfig`. The core never reads them: a run computes from its `ExperimentConfig` alone."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from avs_lib.config import SIZE_LIMITS, ExperimentConfig
from avs_lib.configtools import (
    ConfigError,
    at_least,
    check_at_most,
    check_fields,
    deep_merge,
    from_dict,
    load_yaml,
    parse_assignment,
    shorten,
)


@dataclass(frozen=True)
class PretrainConfig:
    """How the two encoders are pretrained on a synthetic train split (`avs_lib.datatools.pretrain`),
    the stand-in for ImageNet/AudioSet weights; stored next to the weights in ``pretrain.json``."""

    backbone: str = "resnet18"
    image_size: int = 64  # frames are read at the size the AVS model sees them
    crop_size: int = 32  # object crops are resized to this (objects are ~10-40 px at 64 px)
    visual_epochs: int = 6
    audio_epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    # CPU float sums are split across intra-op threads, so weights depend on the thread count: pretraining
    # always uses this many, so the encoders (and all results on them) match on machines of one CPU kind.
    threads: int = 2

    def __post_init__(self) -> None:
        check_fields(self, {name: (at_least(1), ">= 1") for name in
                            ("image_size", "crop_size", "visual_epochs", "audio_epochs", "batch_size", "threads")})
        check_at_most(self, {**SIZE_LIMITS, "batch_size": (1024, "pretraining's default is 64")})
        check_fields(self, {"lr": (at_least(0, strict=True), "a finite number > 0")})


@dataclass(frozen=True)
class SyntheticData:
    """How a profile's synthetic AVSBench-format dataset is generated (`avs_lib.datatools.synth`)."""

    videos_per_split: tuple[int, int, int]
    image_size: int
    num_classes: int = 23
    test_seed: int | None = None  # `SynthParams.test_seed`: a fresh test split; the seed's own is the development one
    # A harder benchmark on every split (`synth.ShiftParams`): several looks per class, colours shared by
    # all classes (the look no longer names the class), noise at an SNR drawn per clip from (low, high) dB.
    looks_per_class: int = 1
    shared_colours: bool = False
    snr_db_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class Profile:
    """What a profile's runs need: how big, which data, where the encoders start; its grids: `report.grids`."""

    overrides: dict[str, Any]
    data_root: str  # relative to where the command runs (the repository root for `make`)
    synthetic: SyntheticData | None = None  # None: the user's data, which must exist at data_root
    pretrain: PretrainConfig | None = None  # None: random init unless weight files are given


# The cpu profile's settings and data, shared by its companions on harder data.
_CPU_DATA = SyntheticData((240, 60, 60), 96, num_classes=8, test_seed=1)
_CPU_OVERRIDES = {
    "data": {"image_size": 64, "crop_size": 32, "dense_train_masks": True},
    "model": {"backbone": "resnet18", "channel": 32, "audio_encoder": "small", "fusion_gate_init": 1.0},
    "optim": {"lr": 2e-3, "batch_size": 4, "epochs": 6, "scheduler": "cosine", "warmup_steps": 20},
    "threads": 1,
}

PROFILES: dict[str, Profile] = {
    # Seconds on 2 CPU cores: proves the pipeline runs (pretraining included), not that it learns.
    "smoke": Profile(
        overrides={
            "data": {"image_size": 64, "crop_size": 64, "train_limit": 8, "eval_limit": 4},
            "model": {"backbone": "resnet18", "channel": 32, "audio_encoder": "small"},
            "optim": {"lr": 1e-3, "batch_size": 2, "epochs": 2, "steps_per_epoch": 3},
            "eval_batch_size": 2,
            "threads": 1,
        },
        data_root="data/synth_smoke", synthetic=SyntheticData((6, 4, 4), 64),
        pretrain=PretrainConfig(visual_epochs=1, audio_epochs=1, batch_size=16),
    ),
    # The synthetic benchmark on a laptop: 8 of 23 classes, small images and backbone, every training frame
    # supervised (the generator knows all five masks). Both encoders start pretrained on the synthetic train
    # split and frozen (`pretrain`; a method may unfreeze); the fusion blocks start open (`fusion_gate_init`):
    # with the official closed start, or random encoders, no method used the audio in budget (notebook 03).
    "cpu": Profile(_CPU_OVERRIDES, "data/synth", synthetic=_CPU_DATA, pretrain=PretrainConfig()),
    # The cpu benchmark made harder where loss A could matter: three looks per class and colours
    # shared by all classes, so a crop's class is not its colour (pretraining and every split).
    "cpu_multilook": Profile(_CPU_OVERRIDES, "data/synth_multilook", pretrain=PretrainConfig(),
                             synthetic=replace(_CPU_DATA, looks_per_class=3, shared_colours=True)),
    # Listening that survives noise: cpu with each clip's sound under background noise at an SNR drawn from
    # 0-20 dB (pretraining and every split); the cpu report scores it on clean and noise-only test splits.
    "cpu_noisy": Profile(_CPU_OVERRIDES, "data/synth_noisy", pretrain=PretrainConfig(),
                         synthetic=replace(_CPU_DATA, snr_db_range=(0.0, 20.0))),
    # A GPU box with the synthetic data: the official architecture at the official size.
    "gpu": Profile(
        overrides={
            "data": {"image_size": 224, "num_workers": 8},
            "model": {"backbone": "resnet50", "channel": 256, "audio_encoder": "small"},
            "optim": {"lr": 2e-4, "batch_size": 8, "epochs": 20, "scheduler": "cosine", "warmup_steps": 100},
        },
        data_root="data/synth_gpu", synthetic=SyntheticData((240, 60, 60), 224),
    ),
    # AVSBench S4 with the official recipe; weights come from local files given by the user.
    "paper": Profile(
        overrides={
            "data": {"image_size": 224, "audio": "pkl", "num_workers": 8},
            "model": {"backbone": "resnet50", "channel": 256, "audio_encoder": "vggish",
                      "freeze_audio": True, "tpavi_stages": (0, 1, 2, 3)},
            "optim": {"optimizer": "adam", "lr": 1e-4, "batch_size": 4, "epochs": 15},
        },
        data_root="data/AVSBench/Single-source",
    ),
}

# Methods: what is compared. Each is a set of overrides applied after the profile.
THESIS_LOSSES = {"crop_ce": 1.0, "crop_pairwise": 1.0, "audio_crop_cosine": 1.0}
_RANDOM_START = {"resnet_weights": None, "crop_weights": None, "audio_weights": None,
                 "freeze_backbone": False, "freeze_audio": False}
_TRAINED_SEPARATE = {"crop_trunk": "separate", "freeze_backbone": False}  # a separate crop trunk, the encoder trained
METHODS: dict[str, dict[str, Any]] = {
    "visual_only": {"model": {"fusion": "none"}},
    "tpavi": {},
    "tpavi_avm": {"loss": {"avm": 0.5}},
    "thesis": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "separate"}},
    "thesis_shared": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "shared"}},
    # The shared trunk with the encoder trained: the one wiring in which crop CE (A) and the
    # pairwise distance (B) reach the segmentation model's own parameters.
    "thesis_shared_trainable": {"loss": dict(THESIS_LOSSES),
                                "model": {"crop_trunk": "shared", "freeze_backbone": False}},
    # The write-up puts a ReLU on the crop classifier's class scores; once every score is <= 0 the
    # crop CE is stuck at ln(23) with no gradient. Not in the default grids.
    "thesis_no_relu": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "separate", "crop_final_relu": False}},
    # Loss C read literally (the write-up: the cosine of each crop with the clip's averaged audio
    # features): the audio encoder's frozen embedding, not TPAVI's. With a separate trunk none of
    # A, B, C then reaches the segmentation model (`report.gradflow` traces it).
    "thesis_literal_c": {"loss": {**THESIS_LOSSES, "cosine_audio": "frozen"}, "model": {"crop_trunk": "separate"}},
    # The thesis as written: the AVS encoder trained together with a separate crop trunk, A+B+C.
    # A trained encoder is never read from the feature cache (`engine.features.frozen_parts`).
    "thesis_trained": {"loss": dict(THESIS_LOSSES), "model": dict(_TRAINED_SEPARATE)},
    "thesis_trained_literal_c": {"loss": {**THESIS_LOSSES, "cosine_audio": "frozen"}, "model": dict(_TRAINED_SEPARATE)},
    # thesis_trained's control: the same training with no crop losses (compared paired with it).
    "tpavi_trained": {"model": {"freeze_backbone": False}},
    # Twice the profile's epochs (the cosine schedule stretched with them), checkpoint still by val.
    "tpavi_2x": {"optim": {"epochs": 12}},
    "thesis_2x": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "separate"}, "optim": {"epochs": 12}},
    # The crop-loss weight of thesis_trained, chosen on val (1 is thesis_trained itself).
    **{f"thesis_trained_lambda{w:g}": {"loss": {"crop_ce": w, "crop_pairwise": w, "audio_crop_cosine": w},
                                       "model": dict(_TRAINED_SEPARATE), "evaluate_test": False} for w in (0.1, 0.01)},
    "cross_attention": {"model": {"fusion": "cross_attention"}},
    "counterfactual": {"loss": {"counterfactual": 1.0}},
    "thesis_counterfactual": {"loss": {**THESIS_LOSSES, "counterfactual": 1.0}, "model": {"crop_trunk": "separate"}},
    # Recipe-ladder starts (notebook 03 compares them on val): encoder weights and fusion gate, tpavi loss;
    # "random" drops the profile's pretrained weights (the gpu profile's start); "closed": the official gate.
    "tpavi_random_closed": {"model": {**_RANDOM_START, "fusion_gate_init": 0.0}},
    "tpavi_random_open": {"model": {**_RANDOM_START, "fusion_gate_init": 1.0}, "evaluate_test": False},
    "tpavi_pretrained_closed": {"model": {"fusion_gate_init": 0.0}, "evaluate_test": False},
    "tpavi_pretrained_trained": {"model": {"freeze_backbone": False}, "evaluate_test": False},
    "counterfactual_random_closed": {"loss": {"counterfactual": 1.0},
                                     "model": {**_RANDOM_START, "fusion_gate_init": 0.0}},
    # Leave-one-out ablations of the thesis' three crop losses.
    "thesis_minus_crop_ce": {"loss": {**THESIS_LOSSES, "crop_ce": 0.0}},
    "thesis_minus_pairwise": {"loss": {**THESIS_LOSSES, "crop_pairwise": 0.0}},
    "thesis_minus_cosine": {"loss": {**THESIS_LOSSES, "audio_crop_cosine": 0.0}},
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {shorten(name)}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def build_config(profile: str = "cpu", method: str | None = None, yaml_file: str | Path | None = None,
                 overrides: list[str] | dict[str, Any] | None = None, weights: dict[str, Any] | None = None,
                 **top_level: Any) -> ExperimentConfig:
    """Resolve defaults <- profile <- starting weights <- method <- YAML <- overrides into a
    validated config. `weights` are the overrides naming the encoders' starting files
    (`avs_lib.report.runs.starting_weights`); a method may still change what they leave frozen."""
    spec = get_profile(profile)
    values = deep_merge({"data": {"root": spec.data_root}}, spec.overrides)
    values = deep_merge(values, weights or {})
    if method is not None:
        if method not in METHODS:
            raise ConfigError(f"unknown method {shorten(method)}; valid methods: {', '.join(METHODS)}")
        values = deep_merge(values, METHODS[method])
        values.setdefault("name", method)
    if yaml_file is not None:
        values = deep_merge(values, load_yaml(yaml_file))
    if isinstance(overrides, dict):
        values = deep_merge(values, overrides)
    else:
        for text in overrides or []:
            values = deep_merge(values, parse_assignment(text))
    values = deep_merge(values, top_level)
    return from_dict(ExperimentConfig, values)
