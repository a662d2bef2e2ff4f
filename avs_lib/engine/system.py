"""Everything a training step runs, in one module (so one optimiser, state_dict, DDP wrapper and
checkpoint cover it): audio encoder, AVS model, crop branch. `forward` returns what `TotalLoss` reads."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
from torch import nn

from avs_lib.config import ExperimentConfig, config_from_dict
from avs_lib.data.boxes import crop_and_resize
from avs_lib.engine.checkpoint import load_checkpoint, restore_weights
from avs_lib.models.avs_model import AUDIO_DIM
from avs_lib.models.build import build_audio_encoder, build_crop_classifier, build_model
from avs_lib.models.logmel_cnn import LogMelCNN


class AVSSystem(nn.Module):
    """Audio encoder + AVS model (+ crop classifier and its 512 -> 256 projection for Loss C)."""

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        self.cfg = cfg
        self.frames = cfg.model.frames
        self._visual_memo: tuple | None = None  # see visual_maps
        self.model = build_model(cfg.model)
        self.audio_encoder = build_audio_encoder(cfg.model) if cfg.model.fusion != "none" else None
        loss = cfg.loss
        self.needs_crops = loss.crop_losses
        self.crop_classifier: nn.Module | None = None
        self.crop_to_audio: nn.Module | None = None
        if self.needs_crops:
            # "shared": the crops go through the AVS model's own encoder (same parameters).
            shared = self.model.resnet if cfg.model.crop_trunk == "shared" else None
            self.crop_classifier = build_crop_classifier(cfg.model, shared_encoder=shared)
            # Loss C compares crops with the 256-d audio the segmentation model consumes, or (the
            # write-up read literally, loss.cosine_audio="frozen") with the audio encoder's 128-d one.
            width = AUDIO_DIM if loss.cosine_audio == "frozen" else cfg.model.channel
            self.crop_to_audio = nn.Linear(512, width)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor | None:
        """Log-mel [B, T, 1, 96, 64] -> embeddings [B*T, 128] (None for the visual-only model)."""
        if self.audio_encoder is None:
            return None
        return self.audio_encoder(audio.flatten(0, 1))  # [B*T, 1, 96, 64] -> [B*T, 128]

    def visual_maps(self, batch: dict) -> list[torch.Tensor]:
        """`model.project` of the encoder stages: 4 maps [B*T, C, h, w], audio-independent. In evaluation the
        last result is reused for the same frames and weights, so silent/swapped passes compute it once."""
        frames = batch["frames"]
        reuse = not self.training and not torch.is_grad_enabled()
        key = (frames._version, torch.is_autocast_enabled(frames.device.type),
               tuple(p._version for p in self.model.parameters()))
        memo = self._visual_memo
        if reuse and memo is not None and memo[0] is frames and memo[1] == key:
            return memo[2]
        maps = self.model.project(self.encoder_stages(batch))
        self._visual_memo = (frames, key, maps) if reuse else None
        return maps

    def train(self, mode: bool = True) -> AVSSystem:
        self._visual_memo = None
        return super().train(mode)

    def encoder_stages(self, batch: dict) -> list[torch.Tensor]:
        """The ResNet's 4 stage outputs [B*T, C_i, h_i, w_i]: a frozen encoder's cached ones, or computed."""
        if "encoder_stage0" not in batch:
            return self.model.encode(batch["frames"].flatten(0, 1))  # [B*T, 3, S, S] -> 4 stages
        if not self.model.resnet.frozen:
            raise ValueError("the batch carries cached encoder features, but this system's ResNet "
                             "is trained (model.freeze_backbone=False): its features change every step")
        return [batch[f"encoder_stage{i}"].flatten(0, 1) for i in range(4)]  # [B, T, ...] -> [B*T, ...]

    def audio_embedding(self, batch: dict, key: str = "audio") -> torch.Tensor | None:
        """Embeddings [B*T, 128] of `batch[key]` ("audio" or "cf_audio"), cached ones where the batch has them."""
        cached = batch.get(f"{key}_embedding")
        if cached is None or self.audio_encoder is None:
            return self.embed_audio(batch[key])
        if not getattr(self.audio_encoder, "frozen", False):
            raise ValueError("the batch carries cached audio embeddings, but this system's audio "
                             "encoder is trained (model.freeze_audio=False)")
        return cached.flatten(0, 1)  # [B, T, 128] -> [B*T, 128]

    def forward(self, batch: dict, cf_audio: torch.Tensor | None = None) -> dict:
        frames = batch["frames"]  # [B, T, 3, S, S]
        B, T = frames.shape[:2]
        flat = frames.flatten(0, 1)  # [B*T, 3, S, S]
        maps = self.visual_maps(batch)  # 4 x [B*T, C, h, w], audio-independent
        audio_emb = self.audio_embedding(batch)
        logits, feature_maps, aligned = self.model.fuse_and_decode_projected(maps, audio_emb)
        out = {"logits": logits, "feature_maps": feature_maps, "aligned_audio": aligned}
        if cf_audio is not None:
            # The counterfactual pass reuses the visual features: only fusion and decoder run twice.
            cached = cf_audio is batch.get("cf_audio")  # the batch's own partner audio
            cf_emb = self.audio_embedding(batch, "cf_audio") if cached else self.embed_audio(cf_audio)
            out["cf_logits"] = self.model.fuse_and_decode_projected(maps, cf_emb)[0]
        if self.needs_crops:
            cosine_audio = aligned  # Loss C's audio: TPAVI's aligned audio per stage
            if self.cfg.loss.cosine_audio == "frozen":  # the write-up read literally: the encoder's own
                cosine_audio = [None if audio_emb is None else audio_emb.reshape(B, T, -1)]  # [B*T, 128] -> [B, T, 128]
            out.update(self._crop_outputs(batch, flat, cosine_audio, B, T))
        return out

    def _crop_outputs(self, batch: dict, flat: torch.Tensor, aligned: list, B: int, T: int) -> dict:
        if "boxes" not in batch:
            raise ValueError("the crop losses need crop boxes: read the data with crop_labels=True "
                             "(labelImg files under s4_data/crop_labels) or set loss.crop_ce, loss.crop_pairwise "
                             "and loss.audio_crop_cosine to 0")
        boxes = batch["boxes"].flatten(0, 1)  # [B, T, 4] -> [B*T, 4]
        crops = crop_and_resize(flat, boxes, size=self.cfg.data.crop_size)  # [B*T, 3, c, c]
        scores, emb = self.crop_classifier(crops)  # [B*T, 23], [B*T, 512]
        out = {"crop_scores": scores, "crop_emb": emb.view(B, T, -1)}  # [B*T, 512] -> [B, T, 512]
        stages = [a for a in aligned if a is not None]
        if stages:  # Loss C: mean over the TPAVI stages of the aligned audio, [B, T, C]
            out["crop_audio"] = torch.stack(stages).mean(0)
            out["crop_emb_audio_space"] = self.crop_to_audio(emb).view(B, T, -1)
        return out


def select_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: CUDA when asked for or available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
    return device


def load_system(path: str | Path, device: str | torch.device = "cpu") -> tuple[AVSSystem, ExperimentConfig]:
    """Rebuild a trained system, in eval mode, from its checkpoint alone (the config travels inside),
    under the run's seed so that a frozen encoder from a random start comes back as trained."""
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    no_files = dataclasses.replace(cfg.model, resnet_weights=None, vggish_weights=None, crop_weights=None,
                                   audio_weights=None, freeze_backbone=False)
    build_cfg = dataclasses.replace(cfg, model=no_files)
    with warnings.catch_warnings(), torch.random.fork_rng():  # the checkpoint's weights replace the random init
        warnings.filterwarnings("ignore", message="no pretrained weights given")
        torch.manual_seed(cfg.seed)  # as `train.fit` seeds before building
        system = AVSSystem(build_cfg)
    restore_weights(system, ckpt, path)
    if cfg.model.freeze_backbone:
        system.model.resnet.freeze()
    audio = system.audio_encoder
    if cfg.model.freeze_audio and cfg.model.audio_weights is not None and isinstance(audio, LogMelCNN):
        # Built without its weight file, the small encoder came up trainable; it was frozen in
        # training (and its outputs cacheable, `avs_lib.engine.features`): frozen again.
        audio.freeze()
    return system.to(device).eval(), cfg
