"""Outputs of frozen encoders, computed once per split (the reader has no random augmentation) and
read back memory-mapped from ``{folder}/{split}-{key}/``, keyed by the encoders' weights and the data's
files: ``stage0..3.npy`` (float32 [clips, T, C_i, h_i, w_i]) and/or ``audio.npy`` ([clips, T, 128])."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from avs_lib.data import collate_clips
from avs_lib.data.audio import content_key
from avs_lib.engine.checkpoint import is_frozen
from avs_lib.engine.datasets import ClipsWrapper, full_split

STAGES = 4
FORMAT_VERSION = 1  # bump when the layout or what is cached changes


@dataclass(frozen=True)
class FrozenParts:
    visual: bool
    audio: bool

    @property
    def any(self) -> bool:
        return self.visual or self.audio


def frozen_parts(system: nn.Module) -> FrozenParts:
    return FrozenParts(visual=is_frozen(system.model.resnet), audio=is_frozen(system.audio_encoder))


def module_digest(module: nn.Module) -> str:
    """SHA-256 of a module's class and state (names, dtypes, shapes and bytes of every tensor)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_fingerprint(dataset) -> str:
    """SHA-256 of what the encoders read: reader kind, root, split, image size, audio source, the
    clips in order, and the content (not size and mtime, which `cp -p` keeps) of their frame and audio files."""
    h = hashlib.sha256()
    base = full_split(dataset)
    h.update(f"{type(base).__name__}|{Path(base.root).resolve()}|{base.split}|{base.image_size}|"
             f"{base.audio}|".encode())
    for index, clip in enumerate(dataset.clips):
        paths = dataset.paths(index)
        audio_file = paths.wav if base.audio == "wav" else paths.log_mel
        h.update(f"{clip.name}|".encode())
        for path in (*paths.frames, audio_file):
            h.update(f"{Path(path).name}|{_content_key(Path(path))}|".encode())
    return h.hexdigest()


_CONTENT_KEYS: dict[tuple, str] = {}


def _content_key(path: Path) -> str:
    """`content_key`, read once per process while inode, size and times stay (a rewrite changes the
    ctime, which no tool sets back); a file changed in the last 2 s is read again."""
    stat = path.stat()
    key = (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _CONTENT_KEYS:
        digest = content_key(path)
        if time.time_ns() - stat.st_ctime_ns < 2 * 10**9:
            return digest
        _CONTENT_KEYS[key] = digest
    return _CONTENT_KEYS[key]


def cache_key(system: nn.Module, parts: FrozenParts, dataset) -> str:
    """The key of a split's cached features: encoder weights + data files + what is cached."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}|visual={parts.visual}|audio={parts.audio}|"
                       f"frames={system.frames}|".encode())
    if parts.visual:
        h.update(module_digest(system.model.resnet).encode())
    if parts.audio:
        h.update(module_digest(system.audio_encoder).encode())
    h.update(data_fingerprint(dataset).encode())
    return h.hexdigest()[:24]


@dataclass
class FrozenFeatures:
    folder: Path
    stages: list[np.ndarray] | None  # 4 x [clips, T, C_i, h_i, w_i]
    audio: np.ndarray | None  # [clips, T, 128]

    def __len__(self) -> int:
        return len(self.stages[0]) if self.stages is not None else len(self.audio)


@torch.no_grad()
def _compute(system: nn.Module, parts: FrozenParts, dataset, device: torch.device,
             batch_size: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The frozen encoders over every clip, in order; no DataLoader, whose iterator draws from the
    global RNG (a cached run must draw what an uncached one draws)."""
    stages: list[list[np.ndarray]] = [[] for _ in range(STAGES)]
    audio: list[np.ndarray] = []
    for start in range(0, len(dataset), batch_size):
        batch = collate_clips([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        B, T = batch["frames"].shape[:2]
        if parts.visual:
            outputs = system.model.encode(batch["frames"].flatten(0, 1).to(device))  # 4 x [B*T, C, h, w]
            for i, x in enumerate(outputs):
                stages[i].append(x.float().cpu().view(B, T, *x.shape[1:]).numpy())  # -> [B, T, C, h, w]
        if parts.audio:
            emb = system.embed_audio(batch["audio"].to(device))  # [B*T, 128]
            audio.append(emb.float().cpu().view(B, T, -1).numpy())  # -> [B, T, 128]
    return ([np.concatenate(s) for s in stages] if parts.visual else [],
            np.concatenate(audio) if parts.audio else None)


def _write(folder: Path, stages: list[np.ndarray], audio: np.ndarray | None, meta: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.parent / f".{folder.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    temp.mkdir()  # the umask's mode, like every other output (mkdtemp would give 0700)
    try:
        for i, array in enumerate(stages):
            np.save(temp / f"stage{i}.npy", array)
        if audio is not None:
            np.save(temp / "audio.npy", audio)
        (temp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.replace(temp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not another process's complete copy
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def frozen_features(system: nn.Module, dataset, folder: str | Path, device: torch.device,
                    batch_size: int = 8) -> FrozenFeatures | None:
    """The frozen encoders' outputs on `dataset`, cached on first use; None when no encoder is frozen."""
    parts = frozen_parts(system)
    if not parts.any:
        return None
    split = getattr(dataset, "split", "data")
    target = Path(folder) / f"{split}-{cache_key(system, parts, dataset)}"
    if not (target / "meta.json").is_file():
        was_training = system.training
        system.eval()  # frozen encoders are in eval mode anyway; this only makes it explicit
        stages, audio = _compute(system, parts, dataset, device, batch_size)
        system.train(was_training)
        meta = {"format": FORMAT_VERSION, "split": split, "clips": len(dataset), "visual": parts.visual,
                "audio": parts.audio, "shapes": [list(a.shape) for a in stages]
                + ([list(audio.shape)] if audio is not None else [])}
        _write(target, stages, audio, meta)
    stages = [np.load(target / f"stage{i}.npy", mmap_mode="r") for i in range(STAGES)] if parts.visual else None
    audio = np.load(target / "audio.npy", mmap_mode="r") if parts.audio else None
    features = FrozenFeatures(target, stages, audio)
    if len(features) != len(dataset):
        raise ValueError(f"{target}: cached features of {len(features)} clips, expected {len(dataset)}; "
                         "delete the folder to have it computed again")
    return features


class WithFrozenFeatures(ClipsWrapper):
    """Items also carrying ``encoder_stage0..3`` [T, C_i, h_i, w_i] and/or ``audio_embedding`` [T, 128], and
    ``cf_audio_embedding`` of an item's ``cf_index`` (wrap the counterfactual pairs, not vice versa)."""

    def __init__(self, base: Dataset, features: FrozenFeatures):  # `frozen_features` checked their count
        super().__init__(base)
        self.features = features

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        f = self.features
        if f.stages is not None:
            for i, stage in enumerate(f.stages):
                item[f"encoder_stage{i}"] = torch.from_numpy(np.array(stage[index]))
        if f.audio is not None:
            item["audio_embedding"] = torch.from_numpy(np.array(f.audio[index]))
            if "cf_index" in item:
                item["cf_audio_embedding"] = torch.from_numpy(np.array(f.audio[int(item["cf_index"])]))
        return item


def with_frozen_features(system: nn.Module, dataset, folder: str | Path, device: torch.device):
    features = frozen_features(system, dataset, folder, device)
    return dataset if features is None else WithFrozenFeatures(dataset, features)


def feature_cache_folder(cache_dir: str | None, output_dir: str) -> Path:
    """``{data.cache_dir}/features``, else ``{output_dir}/feature_cache`` (shared by a grid's runs)."""
    return Path(cache_dir) / "features" if cache_dir is not None else Path(output_dir) / "feature_cache"
