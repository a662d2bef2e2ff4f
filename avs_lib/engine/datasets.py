"""Datasets by name from the experiment config (the only place the engine chooses a reader)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from avs_lib.data.avsbench import open_split, resize_square
from avs_lib.data.counterfactual import CounterfactualPairs

if TYPE_CHECKING:
    from avs_lib.config import ExperimentConfig


class ClipsWrapper(Dataset):
    """A dataset around another that keeps its clip-level helpers (clips, sidecar, load_audio...)."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str):
        if name == "base":  # not yet set (during unpickling in a worker): avoid recursing
            raise AttributeError(name)
        return getattr(self.base, name)


def full_split(dataset) -> Dataset:
    """The reader underneath any stack of wrappers: the whole split, whose clip indices partners refer to."""
    while hasattr(dataset, "base"):
        dataset = dataset.base
    return dataset


class InMemory(ClipsWrapper):
    """Items kept after their first read, up to `budget_bytes` (the readers have no random augmentation, so
    an item never changes). Shallow copies sharing tensors: never write into them in place."""

    def __init__(self, base: Dataset, budget_bytes: int):
        super().__init__(base)
        self.budget, self.used = budget_bytes, 0
        self.items: dict[int, dict] = {}

    def __getitem__(self, index: int) -> dict:
        item = self.items.get(index)
        if item is None:
            item = self.base[index]
            size = sum(v.nbytes for v in item.values() if isinstance(v, torch.Tensor))
            if self.used + size <= self.budget:
                self.items[index], self.used = item, self.used + size
        return dict(item)


def kept_in_memory(cfg: ExperimentConfig, dataset: Dataset) -> Dataset:
    if cfg.data.memory_cache_mb <= 0 or cfg.data.num_workers > 0:
        return dataset
    return InMemory(dataset, cfg.data.memory_cache_mb * 2**20)


class ClipSubset(ClipsWrapper):
    """The first `limit` clips of a dataset."""

    def __init__(self, base: Dataset, limit: int):
        super().__init__(base)
        self.limit = min(limit, len(base))
        self.clips = base.clips[: self.limit]

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.limit:
            raise IndexError(f"clip index {index} out of range for {self.limit} clips")
        return self.base[index]


class DenseSidecarMasks(ClipsWrapper):
    """Synthetic training clips with the sounding object's mask on all 5 frames (S4 annotates only
    the first), from the generator's sidecar: ``masks`` [5, 1, S, S], ``mask_frames`` [0..4]."""

    def __init__(self, base: Dataset):
        super().__init__(base)
        if base.sidecar(base.clips[0].name) is None:
            raise ValueError(f"data.dense_train_masks needs a synthetic dataset with a sidecar "
                             f"(synth_sidecar/ next to the data); {getattr(base, 'root', '?')} has none")

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        sounding = self.base.sidecar(item["name"]).masks[0]  # [5, H, W]: object 0 sounds
        size = item["frames"].shape[-1]
        # Resized exactly as the reader resizes the annotated PNG masks.
        resized = [np.asarray(resize_square(Image.fromarray((m > 0).astype(np.uint8)), size, Image.Resampling.NEAREST))
                   for m in sounding]
        item["masks"] = torch.from_numpy(np.stack(resized)[:, None].astype(np.float32))
        item["mask_frames"] = torch.arange(len(resized), dtype=torch.int64)
        return item


def reads_crop_labels(cfg: ExperimentConfig, split: str) -> bool:
    """`data.crop_labels`, or None: read for the training split when a crop loss is on."""
    return bool(cfg.data.crop_labels or (split == "train" and cfg.loss.crop_losses))


def build_dataset(cfg: ExperimentConfig, split: str) -> Dataset:
    d = cfg.data
    ds = open_split(d.root, split, d.dataset, image_size=d.image_size, audio=d.audio,
                    crop_labels=reads_crop_labels(cfg, split), cache_dir=d.cache_dir)
    limit = d.train_limit if split == "train" else d.eval_limit
    if limit is not None:
        ds = ClipSubset(ds, limit)
    if split == "train" and d.dense_train_masks:
        ds = DenseSidecarMasks(ds)
    return ds


def as_fed(cfg: ExperimentConfig, train_set: Dataset) -> Dataset:
    """The training split as `train.fit` feeds it: in counterfactual pairs when that loss is on."""
    return CounterfactualPairs(train_set, seed=cfg.seed) if cfg.loss.counterfactual > 0 else train_set
