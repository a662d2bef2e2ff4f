"""The experiment as data: the dataclasses a run is computed from, with their defaults and checks.

Every key is checked against the dataclasses, so a typo is an error naming the key, not a silent
no-op. The named profiles and methods, and `build_config` that resolves them into a config, are the
benchmark's presets (`avs_lib.datatools.profiles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from avs_lib.atomic import write_text_atomically
from avs_lib.configtools import at_least, check_at_most, check_fields, from_dict, shorten, to_dict
from avs_lib.data.errors import crop_labels_instruction
from avs_lib.losses import LossWeights
from avs_lib.models.config import ModelConfig

# Upper bounds of the size-like keys and why (memory grows with an image size squared, a batch linearly).
SIZE_LIMITS = {"image_size": (1024, "the official AVSBench recipe uses 224"),
               "crop_size": (1024, "the thesis resizes crops to 224")}
BATCH_LIMIT = (256, "the official recipe uses 4 clips of 5 frames, the gpu profile 8")


@dataclass
class DataConfig:
    root: str = "data/synth"
    dataset: Literal["s4", "ms3"] = "s4"
    image_size: int = 224
    audio: Literal["wav", "pkl"] = "wav"
    # Crop labels (this project's boxes): None reads them for the training split exactly when a crop loss
    # is on; True for every split; False never (a method with a crop loss then stops before training).
    crop_labels: bool | None = None
    crop_size: int = 224  # crops are resized to this before the crop classifier (thesis: 224)
    cache_dir: str | None = None
    num_workers: int = 0
    # Decoded train/val items kept in RAM after their first read (MiB; 0: off): the same tensors, read
    # from disk once per run instead of once per epoch. Not with num_workers.
    memory_cache_mb: int = 2048
    train_limit: int | None = None  # use only the first N training clips (smoke runs)
    eval_limit: int | None = None  # use only the first N val/test clips
    # Synthetic data only: supervise all 5 training frames with the sidecar's masks (S4 train annotates one).
    dense_train_masks: bool = False

    def validate(self) -> None:
        check_fields(self, {
            "image_size": (at_least(32), "at least 32 pixels"), "crop_size": (at_least(32), "at least 32 pixels"),
            "root": (bool, "the dataset folder, not empty"),
            "cache_dir": (lambda value: value != "", "a folder or null (default ~/.cache/avs_lib/logmel)"),
            "num_workers": (at_least(0), ">= 0"), "memory_cache_mb": (at_least(0), ">= 0 (0: off)"),
            **{limit: (at_least(1, optional=True), ">= 1 or null") for limit in ("train_limit", "eval_limit")},
        })
        check_at_most(self, SIZE_LIMITS)


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
        check_fields(self, {
            "lr": (at_least(0, strict=True), "a finite number > 0"),
            "weight_decay": (at_least(0), "a finite number >= 0"),
            "batch_size": (at_least(1), ">= 1"), "epochs": (at_least(1), ">= 1"),
            "steps_per_epoch": (at_least(1, optional=True), ">= 1 or null"),
            "warmup_steps": (at_least(0), ">= 0"),
            # A negative clip norm would scale the gradient by a negative factor: ascent, not descent.
            "grad_clip": (at_least(0, optional=True, strict=True), "a finite number > 0 or null"),
        })
        check_at_most(self, {"batch_size": BATCH_LIMIT})


# Dotted keys that change where or how fast a run goes, not what it computes: a run may resume with other
# values (`engine.train`), and runs differing only in them are the same run (`report.experiments`).
RESUME_FREE_KEYS = frozenset({"quiet", "device", "output_dir", "data.num_workers", "data.cache_dir",
                              "data.memory_cache_mb", "feature_cache", "model.recompute_stages"})


@dataclass
class ExperimentConfig:
    name: str = "tpavi"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast, used only on CUDA
    channels_last: bool = True  # used only on CUDA
    compile: bool = False
    # Intra-op CPU threads (None: the process's setting). CPU float sums are split across threads, so a fixed
    # count gives the same numbers on 2 cores or 16 (the report then trains cores // threads runs at once).
    threads: int | None = None
    # Frozen encoders (model.freeze_backbone, a frozen audio encoder) run once per split and their outputs
    # are read back from disk (avs_lib.engine.features): the same numbers, no encoder forward per step.
    feature_cache: bool = True
    output_dir: str = "runs"
    eval_batch_size: int = 4  # clips per batch of the official F-score (official test.sh: 4)
    eval_every: int = 1  # epochs between validations
    # Silent/swapped-audio checks at each validation (listening, following rates); best.pt still by val mIoU.
    val_diagnostics: bool = True
    evaluate_test: bool = True  # False for the val-only probes that chose the recipe (they never see test)
    quiet: bool = False
    # BatchNorm keeps its running statistics in training (eval mode). Multi-process CUDA runs use
    # SyncBatchNorm; the CPU (gloo) has none, so 1-process == N-process exactly needs frozen BatchNorm.
    freeze_bn: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        check_fields(self, {
            "device": (lambda d: d in ("auto", "cpu", "cuda") or d.startswith("cuda:"), "auto, cpu, cuda or cuda:N"),
            "threads": (at_least(1, optional=True), ">= 1 or null"),
            "eval_batch_size": (at_least(1), ">= 1"), "eval_every": (at_least(1), ">= 1"),
            "seed": (lambda seed: 0 <= seed < 2**32, "in [0, 2**32) (numpy's seed range)"),
            "name": (lambda name: bool(name) and name not in (".", "..") and not set(name) & set("/\\"),
                     "a plain folder name (it names the run folder)"),
            "output_dir": (bool, "a folder, not empty"),
        })
        check_at_most(self, {"eval_batch_size": BATCH_LIMIT})
        if self.loss.crop_losses and self.data.crop_labels is False:
            raise ValueError(f"method {shorten(self.name)} has crop losses, which need crop labels, but "
                             "data.crop_labels is false; set it to null or true "
                             f"({crop_labels_instruction(self.data.root)})")
        if self.data.dataset == "ms3" and self.loss.crop_ce > 0:
            raise ValueError("loss.crop_ce: MS3 clips have no category to classify crops by (several sources "
                             "sound); set loss.crop_ce=0 or train on S4")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / f"{self.name}_seed{self.seed}"


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Rebuild a config saved by `save_config` (e.g. from a checkpoint or run directory)."""
    return from_dict(ExperimentConfig, values)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    write_text_atomically(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))

