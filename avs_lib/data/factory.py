"""Datasets by name from the experiment config (the only place the engine chooses a reader)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from avs_lib.data.avsbench import AVSBenchMS3, AVSBenchS4

if TYPE_CHECKING:
    from avs_lib.config import ExperimentConfig


class ClipSubset(Dataset):
    """The first `limit` clips of a dataset, keeping its clip-level helpers (sidecar, load_audio...)."""

    def __init__(self, base: Dataset, limit: int):
        self.base = base
        self.limit = min(limit, len(base))
        self.clips = base.clips[: self.limit]

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.limit:
            raise IndexError(f"clip index {index} out of range for {self.limit} clips")
        return self.base[index]

    def __getattr__(self, name: str):
        if name == "base":  # not yet set (during unpickling in a worker): avoid recursing
            raise AttributeError(name)
        return getattr(self.base, name)


def build_dataset(cfg: ExperimentConfig, split: str) -> Dataset:
    """The reader for `cfg.data.dataset` on `split`, limited as the config says."""
    d = cfg.data
    if d.dataset == "s4":
        ds = AVSBenchS4(d.root, split, image_size=d.image_size, audio=d.audio,
                        crop_labels=d.crop_labels, cache_dir=d.cache_dir)
    else:
        ds = AVSBenchMS3(d.root, split, image_size=d.image_size, audio=d.audio, cache_dir=d.cache_dir)
    limit = d.train_limit if split == "train" else d.eval_limit
    return ClipSubset(ds, limit) if limit is not None else ds
