"""The experiment as data: dataclasses with defaults, named profiles and methods, overrides.

A config is built as defaults <- profile <- method <- YAML file <- overrides (dicts or
`section.key=value` strings), in that order; every key is checked against the dataclasses, so a
typo is an error that names the key instead of a setting that silently does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from avs_lib.atomic import write_text_atomically
from avs_lib.configtools import (
    ConfigError,
    deep_merge,
    from_dict,
    load_yaml,
    parse_assignment,
    to_dict,
)
from avs_lib.losses import LossWeights
from avs_lib.models.build import ModelConfig


@dataclass
class DataConfig:
    root: str = "data/synth"
    dataset: Literal["s4", "ms3"] = "s4"
    image_size: int = 224
    audio: Literal["wav", "pkl"] = "wav"
    crop_labels: bool = True
    crop_size: int = 224  # crops are resized to this before the crop classifier (thesis: 224)
    cache_dir: str | None = None
    num_workers: int = 0
    train_limit: int | None = None  # use only the first N training clips (smoke runs)
    eval_limit: int | None = None  # use only the first N val/test clips
    # Synthetic data only: supervise all 5 training frames with the sounding object's masks from
    # the generator's sidecar (S4 train has one annotated frame; this is 5x the mask signal).
    dense_train_masks: bool = False

    def validate(self) -> None:
        for name in ("image_size", "crop_size"):
            if getattr(self, name) < 32:
                raise ValueError(f"{name} must be at least 32 pixels, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}")


@dataclass
class OptimConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 4  # clips per step (global, over all processes)
    epochs: int = 15
    steps_per_epoch: int | None = None  # cap (None: one pass over the training split)
    scheduler: Literal["none", "cosine"] = "none"
    warmup_steps: int = 0
    grad_clip: float | None = None

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or null, got {self.steps_per_epoch}")


@dataclass
class ExperimentConfig:
    name: str = "tpavi"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast, used only on CUDA
    channels_last: bool = True  # used only on CUDA
    compile: bool = False
    # Frozen encoders (model.freeze_backbone, a frozen audio encoder) run once per training split
    # and their outputs are read back from disk (avs_lib.engine.features): the same numbers, and
    # no encoder forward per step. Off: they run every step.
    feature_cache: bool = True
    output_dir: str = "runs"
    eval_batch_size: int = 4  # clips per batch of the official F-score (official test.sh: 4)
    eval_every: int = 1  # epochs between validations
    quiet: bool = False
    # BatchNorm layers keep their running statistics during training (eval mode). Multi-process
    # runs on CUDA use SyncBatchNorm instead; on the CPU (gloo) that does not exist, so exact
    # 1-process == N-process equivalence needs frozen BatchNorm.
    freeze_bn: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.eval_batch_size < 1 or self.eval_every < 1:
            raise ValueError("eval_batch_size and eval_every must be >= 1")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / f"{self.name}_seed{self.seed}"


# Profiles: how big and where. Each is a set of overrides on the defaults above.
PROFILES: dict[str, dict[str, Any]] = {
    # Seconds on 2 CPU cores: proves the pipeline runs, not that it learns much.
    "smoke": {
        "data": {"image_size": 64, "crop_size": 64, "train_limit": 8, "eval_limit": 4},
        "model": {"backbone": "resnet18", "channel": 32, "audio_encoder": "small"},
        "optim": {"lr": 1e-3, "batch_size": 2, "epochs": 2, "steps_per_epoch": 3},
        "eval_batch_size": 2,
    },
    # The synthetic benchmark on a laptop: small images, a small backbone, every training frame
    # supervised (the generator knows all five masks). The report starts from frozen encoders
    # pretrained on the synthetic training split (`experiments.profile_weights`), and the fusion
    # blocks start open (`fusion_gate_init`): with the official closed start, or from random
    # encoders, no method used the audio within this budget. Two runs at a time, 1 thread each.
    "cpu": {
        "data": {"image_size": 64, "crop_size": 32, "dense_train_masks": True},
        "model": {"backbone": "resnet18", "channel": 32, "audio_encoder": "small", "fusion_gate_init": 1.0},
        "optim": {"lr": 2e-3, "batch_size": 4, "epochs": 6, "scheduler": "cosine", "warmup_steps": 20},
    },
    # A GPU box with the synthetic data: the official architecture at the official size.
    "gpu": {
        "data": {"image_size": 224, "root": "data/synth_gpu", "num_workers": 8},
        "model": {"backbone": "resnet50", "channel": 256, "audio_encoder": "small"},
        "optim": {"lr": 2e-4, "batch_size": 8, "epochs": 20, "scheduler": "cosine", "warmup_steps": 100},
    },
    # AVSBench S4 with the official recipe; weights come from local files given by the user.
    "paper": {
        "data": {"root": "data/AVSBench/Single-source", "image_size": 224, "audio": "pkl",
                 "crop_labels": False, "num_workers": 8},
        "model": {"backbone": "resnet50", "channel": 256, "audio_encoder": "vggish",
                  "freeze_audio": True, "tpavi_stages": (0, 1, 2, 3)},
        "optim": {"optimizer": "adam", "lr": 1e-4, "batch_size": 4, "epochs": 15},
    },
}

# Methods: what is compared. Each is a set of overrides applied after the profile.
THESIS_LOSSES = {"crop_ce": 1.0, "crop_pairwise": 1.0, "audio_crop_cosine": 1.0}
METHODS: dict[str, dict[str, Any]] = {
    "visual_only": {"model": {"fusion": "none"}},
    "tpavi": {},
    "tpavi_avm": {"loss": {"avm": 0.5}},
    "thesis": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "separate"}},
    "thesis_shared": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "shared"}},
    # The write-up puts a ReLU on the crop classifier's class scores; once every score is <= 0 the
    # crop CE is stuck at ln(23) with no gradient (seen in the cpu grid). Not in the default grids.
    "thesis_no_relu": {"loss": dict(THESIS_LOSSES), "model": {"crop_trunk": "separate", "crop_final_relu": False}},
    "cross_attention": {"model": {"fusion": "cross_attention"}},
    "counterfactual": {"loss": {"counterfactual": 1.0}},
    "thesis_counterfactual": {"loss": {**THESIS_LOSSES, "counterfactual": 1.0},
                              "model": {"crop_trunk": "separate"}},
    # Leave-one-out ablations of the thesis' three crop losses.
    "thesis_minus_crop_ce": {"loss": {**THESIS_LOSSES, "crop_ce": 0.0}},
    "thesis_minus_pairwise": {"loss": {**THESIS_LOSSES, "crop_pairwise": 0.0}},
    "thesis_minus_cosine": {"loss": {**THESIS_LOSSES, "audio_crop_cosine": 0.0}},
}


def _lookup(table: dict[str, dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    if name not in table:
        raise ConfigError(f"unknown {what} {name!r}; valid {what}s: {', '.join(table)}")
    return table[name]


def build_config(
    profile: str = "cpu",
    method: str | None = None,
    yaml_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    **top_level: Any,
) -> ExperimentConfig:
    """Resolve defaults <- profile <- method <- YAML <- overrides into a validated config."""
    values = deep_merge({}, _lookup(PROFILES, profile, "profile"))
    if method is not None:
        values = deep_merge(values, _lookup(METHODS, method, "method"))
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


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved by `save_config` (e.g. from a checkpoint or run directory)."""
    return from_dict(ExperimentConfig, values)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_text_atomically(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


__all__ = [
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "METHODS",
    "OptimConfig",
    "PROFILES",
    "build_config",
    "config_from_dict",
    "save_config",
    "to_dict",
]
