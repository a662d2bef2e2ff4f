"""Synthetic stand-ins for ImageNet and AudioSet pretraining of the two encoders: from random weights
the `cpu` profile learns no listening within its budget (notebook 03's recipe ladder). Each encoder is
pretrained alone on the train split's classes (the ResNet on every object's crop, the log-mel CNN on
the sounding class), never seeing which sound belongs to which object."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avs_lib.atomic import write_text_atomically
from avs_lib.data.avsbench import AVSBenchS4
from avs_lib.data.boxes import crop_and_resize
from avs_lib.data.categories import NUM_CLASSES
from avs_lib.datatools.profiles import PretrainConfig
from avs_lib.engine.checkpoint import atomic_torch_save
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.models.resnet import torchvision_resnet

VISUAL_FILE = "resnet_synth.pth"
AUDIO_FILE = "logmel_cnn_synth.pth"
REPORT_FILE = "pretrain.json"
PRETRAINED_FOLDER = "pretrained"  # default output folder, inside the dataset root


def object_crops(root: str | Path, split: str, image_size: int, crop_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every object of every frame of a synthetic split: crops [N, 3, c, c] (normalised), classes [N];
    the sidecar's boxes, scaled to ``image_size``, cut from the frames as the reader delivers them."""
    data = AVSBenchS4(root, split, image_size=image_size, crop_labels=False)
    crops, labels = [], []
    for index, clip in enumerate(data.clips):
        side = data.sidecar(clip.name)
        if side is None:
            raise ValueError(f"{root} has no synth_sidecar/: pretraining needs a synthetic dataset")
        scale = image_size / side.masks.shape[-1]  # the boxes are in the generator's frame side
        tensor = data[index]["frames"]  # [5, 3, s, s] normalised, resized
        for k, cls in enumerate(side.classes.tolist()):
            boxes = torch.as_tensor(side.boxes[k], dtype=torch.float32) * scale  # [5, 4]
            crops.append(crop_and_resize(tensor, boxes, size=crop_size))
            labels += [cls] * len(boxes)
    return torch.cat(crops), torch.tensor(labels, dtype=torch.int64)


def audio_examples(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every 0.96-s log-mel example of a split [N, 1, 96, 64] with its clip's sounding class [N]."""
    data = AVSBenchS4(root, split, image_size=32, crop_labels=False)
    mels, labels = [], []
    for index, clip in enumerate(data.clips):
        mel = data.load_audio(index)  # [5, 1, 96, 64]
        mels.append(mel)
        labels += [clip.category_index] * len(mel)
    return torch.cat(mels), torch.tensor(labels, dtype=torch.int64)


def _fit_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, cfg: PretrainConfig,
                    what: str, quiet: bool) -> list[float]:
    """Adam with cosine decay over shuffled mini-batches; returns the mean loss of each epoch."""
    if len(x) < 2:
        raise ValueError(f"pretraining the {what} encoder needs at least 2 examples, got {len(x)}")
    batch_size = min(cfg.batch_size, len(x))  # a tiny dataset still gets one batch per epoch
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = epochs * (len(x) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    model.train()
    for _ in tqdm(range(epochs), desc=f"pretrain {what}", disable=quiet):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, count = total + loss.item(), count + 1
        if not np.isfinite(total):
            raise FloatingPointError(f"pretraining the {what} encoder diverged (loss {total})")
        losses.append(total / count)
    return losses


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((predictions == y).float().mean())


def metadata_digest(root: str | Path) -> str:
    """sha256 of the metadata and the generator's info.json: regenerated data gets another one."""
    digest = hashlib.sha256()
    for name in ("s4_meta_data.csv", "synth_sidecar/info.json"):
        path = Path(root) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def pretrain_encoders(data_root: str | Path, out_dir: str | Path, cfg: PretrainConfig | None = None,
                      quiet: bool = False) -> dict:
    """Pretrain both encoders on the train split into ``out_dir``; returns (and writes as
    ``pretrain.json``) losses, val accuracies and chance. Runs with `cfg.threads` threads (deterministic)."""
    cfg = cfg or PretrainConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _pretrain(data_root, Path(out_dir), cfg, quiet)
    finally:
        torch.set_num_threads(before)


def _pretrain(data_root: str | Path, out: Path, cfg: PretrainConfig, quiet: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    x_train, y_train = object_crops(data_root, "train", cfg.image_size, cfg.crop_size)
    x_val, y_val = object_crops(data_root, "val", cfg.image_size, cfg.crop_size)
    resnet = torchvision_resnet(cfg.backbone)
    resnet.fc = nn.Linear(resnet.fc.in_features, NUM_CLASSES)
    visual_losses = _fit_classifier(resnet, x_train, y_train, cfg.visual_epochs, cfg, "visual", quiet)
    visual_accuracy = _accuracy(resnet, x_val, y_val)
    atomic_torch_save({k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}, out / VISUAL_FILE)

    torch.manual_seed(cfg.seed)
    a_train, b_train = audio_examples(data_root, "train")
    a_val, b_val = audio_examples(data_root, "val")
    audio = nn.Sequential(LogMelCNN(), nn.Linear(128, NUM_CLASSES))  # encoder, class head
    audio_losses = _fit_classifier(audio, a_train, b_train, cfg.audio_epochs, cfg, "audio", quiet)
    audio_accuracy = _accuracy(audio, a_val, b_val)
    atomic_torch_save(audio[0].state_dict(), out / AUDIO_FILE)

    classes = int(torch.unique(y_train).numel())
    report = {
        "config": asdict(cfg), "data_root": str(Path(data_root).resolve()), "data_fingerprint": metadata_digest(data_root),
        "visual_weights": str((out / VISUAL_FILE).resolve()), "audio_weights": str((out / AUDIO_FILE).resolve()),
        "visual": {"train_crops": len(x_train), "val_crops": len(x_val), "epoch_losses": visual_losses,
                   "val_accuracy": visual_accuracy},
        "audio": {"train_examples": len(a_train), "val_examples": len(a_val), "epoch_losses": audio_losses,
                  "val_accuracy": audio_accuracy},
        "classes": classes, "chance_accuracy": 1.0 / classes, "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomically(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return report


def ensure_pretrained(data_root: str | Path, out_dir: str | Path, cfg: PretrainConfig | None = None,
                      quiet: bool = False) -> dict:
    """``out_dir``'s ``pretrain.json`` when made from this data and ``cfg`` with its files present, else pretrain."""
    cfg = cfg or PretrainConfig()
    report_path = Path(out_dir) / REPORT_FILE
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{report_path}: not valid JSON ({error}); delete it to pretrain again") from error
        if (report.get("config") == asdict(cfg) and report.get("data_root") == str(Path(data_root).resolve())
                and report.get("data_fingerprint") == metadata_digest(data_root)
                and all(Path(report.get(key, "")).is_file() for key in ("visual_weights", "audio_weights"))):
            return report
    return pretrain_encoders(data_root, out_dir, cfg, quiet=quiet)


def weight_overrides_from(report: dict) -> dict:
    """Overrides starting a run from a ``pretrain.json``'s files, both encoders frozen (the paper
    fine-tunes the ResNet; the cpu report freezes it for its budget, notebook 03 shows why; a method
    may unfreeze it). The ResNet file also starts a separate, trained crop trunk."""
    visual = report["visual_weights"]
    return {"model": {"backbone": report["config"]["backbone"], "resnet_weights": visual,
                      "freeze_backbone": True, "crop_weights": visual, "audio_encoder": "small",
                      "audio_weights": report["audio_weights"], "freeze_audio": True}}
