"""Synthetic stand-ins for ImageNet and AudioSet pretraining of the two encoders.

Why: the official model starts from an ImageNet ResNet-50 and an AudioSet VGGish. Both already
tell classes apart, so TPAVI only has to learn which look goes with which sound. Trained from
scratch on a few hundred synthetic clips, the `cpu` profile must learn looks, sounds and their
pairing at once, and in the session-2 grid no method learned to follow the audio (following rate
0.000 for every method, also after 4x the steps). Here each encoder is pretrained *alone* on the
training split's classes - the ResNet on object crops (every visible object, sounding or not,
labelled with its class), the log-mel CNN on 0.96-s examples labelled with the sounding class -
so the segmentation model starts, as in the paper, from class-aware encoders that have never seen
which sound belongs to which object. The pairing still has to be learned by the fusion.

Only the training split is read for training; the validation split gives the reported accuracy.
The files written are a torchvision ResNet state_dict (loaded by `load_imagenet_resnet`) and a
`LogMelCNN` state_dict (loaded by `load_small_audio`), so they are used exactly as real
pretrained weights would be: `model.resnet_weights`, `model.crop_weights`, `model.audio_weights`.
"""

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
from avs_lib.config import PretrainConfig
from avs_lib.data.avsbench import AVSBenchS4
from avs_lib.data.boxes import crop_and_resize
from avs_lib.data.categories import NUM_CLASSES
from avs_lib.engine.checkpoint import atomic_torch_save
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.models.resnet import torchvision_resnet

VISUAL_FILE = "resnet_synth.pth"
AUDIO_FILE = "logmel_cnn_synth.pth"
REPORT_FILE = "pretrain.json"
PRETRAINED_FOLDER = "pretrained"  # default output folder, inside the dataset root


def object_crops(root: str | Path, split: str, image_size: int, crop_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every object of every frame of a synthetic split: crops [N, 3, c, c] (normalised), classes [N].

    Boxes come from the generator's sidecar (whole silhouette, in the stored frame's pixels) and are
    scaled to ``image_size``; the crops are cut from the frames exactly as the reader delivers them.
    """
    data = AVSBenchS4(root, split, image_size=image_size, crop_labels=False)
    crops, labels = [], []
    for index, clip in enumerate(data.clips):
        side = data.sidecar(clip.name)
        if side is None:
            raise ValueError(f"{root} has no synth_sidecar/: pretraining needs a synthetic dataset")
        stored = side.masks.shape[-1]  # the generator's frame side, which the boxes are in
        tensor = data[index]["frames"]  # [5, 3, s, s] normalised, resized
        scale = image_size / stored
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


class _AudioClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = LogMelCNN()
        self.head = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _fit_classifier(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, cfg: PretrainConfig,
    what: str, quiet: bool,
) -> list[float]:
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
    """sha256 of the dataset's metadata (and the generator's info.json for synthetic data).

    Regenerated data under the same path gets another fingerprint, so stale weights are not reused.
    """
    digest = hashlib.sha256()
    for name in ("s4_meta_data.csv", "synth_sidecar/info.json"):
        path = Path(root) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def pretrain_encoders(
    data_root: str | Path, out_dir: str | Path, cfg: PretrainConfig | None = None, quiet: bool = False
) -> dict:
    """Pretrain the visual and audio encoders on ``data_root``'s train split; write them to ``out_dir``.

    Returns (and writes as ``pretrain.json``) the config, the paths, per-epoch losses, val accuracies
    and the chance level. Deterministic on the CPU for a config: it runs with `cfg.threads` intra-op
    threads and gives the caller's thread count back afterwards.
    """
    cfg = cfg or PretrainConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _pretrain(data_root, out_dir, cfg, quiet)
    finally:
        torch.set_num_threads(before)


def _pretrain(data_root: str | Path, out_dir: str | Path, cfg: PretrainConfig, quiet: bool) -> dict:
    out = Path(out_dir)
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
    audio = _AudioClassifier()
    audio_losses = _fit_classifier(audio, a_train, b_train, cfg.audio_epochs, cfg, "audio", quiet)
    audio_accuracy = _accuracy(audio, a_val, b_val)
    atomic_torch_save(audio.encoder.state_dict(), out / AUDIO_FILE)

    classes = int(torch.unique(y_train).numel())
    report = {
        "config": asdict(cfg),
        "data_root": str(Path(data_root).resolve()),
        "data_fingerprint": metadata_digest(data_root),
        "visual_weights": str((out / VISUAL_FILE).resolve()),
        "audio_weights": str((out / AUDIO_FILE).resolve()),
        "visual": {"train_crops": len(x_train), "val_crops": len(x_val), "epoch_losses": visual_losses,
                   "val_accuracy": visual_accuracy},
        "audio": {"train_examples": len(a_train), "val_examples": len(a_val), "epoch_losses": audio_losses,
                  "val_accuracy": audio_accuracy},
        "classes": classes,
        "chance_accuracy": 1.0 / classes,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomically(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return report


def ensure_pretrained(
    data_root: str | Path, out_dir: str | Path, cfg: PretrainConfig | None = None, quiet: bool = False
) -> dict:
    """``pretrain.json`` of ``out_dir`` when it was made from ``data_root`` with ``cfg``, else pretrain.

    Pretraining is the first few minutes of the `cpu` report; a rerun of the notebooks reuses it,
    as `runs.prepare_data` reuses the data. A report that lists another config, data root or
    data fingerprint (regenerated data), or whose weight files are missing, is redone.
    """
    cfg = cfg or PretrainConfig()
    report_path = Path(out_dir) / REPORT_FILE
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{report_path}: not valid JSON ({error}); delete it to pretrain again") from error
        same = (report.get("config") == asdict(cfg)
                and report.get("data_root") == str(Path(data_root).resolve())
                and report.get("data_fingerprint") == metadata_digest(data_root)
                and all(Path(report.get(key, "")).is_file() for key in ("visual_weights", "audio_weights")))
        if same:
            return report
    return pretrain_encoders(data_root, out_dir, cfg, quiet=quiet)


def weight_overrides_from(report: dict) -> dict:
    """Config overrides that start a run from the pretrained files of a ``pretrain.json`` report.

    Both encoders stay frozen: the audio one like VGGish in the paper recipe, the ResNet unlike it
    (the paper fine-tunes it; the cpu report freezes it for its budget, and notebook 03 shows the
    probes that chose this). A method can unfreeze it (`thesis_shared_trainable`): methods apply
    after these overrides. The ResNet file also initialises a separate crop trunk, which is
    trained (as the ImageNet file does in the thesis recipe).
    """
    visual = report["visual_weights"]
    return {"model": {"backbone": report["config"]["backbone"], "resnet_weights": visual,
                      "freeze_backbone": True, "crop_weights": visual, "audio_encoder": "small",
                      "audio_weights": report["audio_weights"], "freeze_audio": True}}
