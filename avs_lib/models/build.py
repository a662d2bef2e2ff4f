"""Model configuration as data, and the factories that turn it into modules.

`ModelConfig` names every architectural choice of the reproduction; `build_model`,
`build_audio_encoder` and `build_crop_classifier` build (and load weights into) the three parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from avs_lib.data.categories import NUM_CLASSES
from avs_lib.models.avs_model import AVSModel, check_fusion_options
from avs_lib.models.crop import CropClassifier
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.models.resnet import RESNETS, ResNetEncoder, check_resnet_name
from avs_lib.models.vggish import VGGish
from avs_lib.models.weights import load_imagenet_resnet, load_small_audio, load_vggish

# Backbones by name: name -> (torchvision builder, stage channels); `get_backbone` gives the encoder.
BACKBONES = RESNETS
AUDIO_ENCODERS = ("vggish", "small", "none")
CROP_TRUNKS = ("separate", "shared", *RESNETS)


def get_backbone(name: str) -> Callable[..., ResNetEncoder]:
    """The encoder builder registered under `name`; an unknown name lists the valid ones."""
    check_resnet_name(name)
    return partial(ResNetEncoder, name)


@dataclass
class ModelConfig:
    """Every architectural choice; defaults are the official S4 ResNet-50 + TPAVI model.

    backbone:        "resnet18" | "resnet34" | "resnet50"
    channel:         decoder / TPAVI width (official 256)
    tpavi_stages:    encoder stages (0-3) with a fusion block (also used by cross_attention)
    tpavi_vv:        visual-visual TPAVI (averaged with the audio-visual one if both are on)
    tpavi_va:        audio-visual TPAVI (the standard one)
    tpavi_impl:      "fast" (never forms the T*H*W square matrix) | "naive" (literal, as official)
    fusion:          "tpavi" | "cross_attention" | "none" (visual-only)
    fusion_gate_init: starting scale of each fusion block's residual branch (TPAVI: W_z's BatchNorm
                     weight). 0 = official: the blocks start closed and must grow in, which on the
                     small cpu budget never happened; > 0 starts them open
    cross_attention_heads: heads of the cross-attention fusion
    frames:          T, frames per clip
    second_branch:   build the official, unused, frozen layer3_2/layer4_2 so official checkpoints
                     load strictly; None = only for resnet50
    audio_encoder:   "vggish" (official, pretrained) | "small" (LogMelCNN) | "none"
    freeze_audio:    keep the audio encoder frozen (official for VGGish); a "small" encoder without
                     `audio_weights` starts random, so it is always trained
    crop_trunk:      "separate" (own ResNet of the backbone's kind, as the thesis: ResNet-50),
                     "resnet18" | "resnet34" | "resnet50" (own ResNet of that kind), or "shared"
                     (the AVS model's own encoder)
    crop_final_relu: ReLU on the crop classifier's scores (as the write-up describes)
    freeze_backbone: keep the AVS encoder (ResNet) frozen, BatchNorm statistics included; needs
                     `resnet_weights`. Not the official recipe (which fine-tunes it); the cpu report
                     uses it with its pretrained encoders to fit its time budget
    resnet_weights:  torchvision ImageNet ResNet file for the AVS encoder (None: random init)
    vggish_weights:  VGGish state_dict file, e.g. vggish-10086976.pth (None: random init)
    crop_weights:    torchvision ImageNet ResNet file for a separate crop trunk (None: random init)
    audio_weights:   LogMelCNN state_dict file for the "small" encoder, e.g. from
                     `avs_lib.engine.pretrain` (None: random init)
    """

    backbone: str = "resnet50"
    channel: int = 256
    tpavi_stages: tuple[int, ...] = (0, 1, 2, 3)
    tpavi_vv: bool = False
    tpavi_va: bool = True
    tpavi_impl: str = "fast"
    fusion: str = "tpavi"
    fusion_gate_init: float = 0.0
    cross_attention_heads: int = 8
    frames: int = 5
    second_branch: bool | None = None
    audio_encoder: str = "vggish"
    freeze_audio: bool = True
    crop_trunk: str = "separate"
    crop_final_relu: bool = True
    freeze_backbone: bool = False
    resnet_weights: str | None = None
    vggish_weights: str | None = None
    crop_weights: str | None = None
    audio_weights: str | None = None

    def __post_init__(self) -> None:
        self.tpavi_stages = tuple(self.tpavi_stages)  # YAML gives lists

    def validate(self) -> None:
        """Raise a ValueError naming the field for any value that cannot be built."""
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown {self.backbone!r}; valid: {', '.join(BACKBONES)}")
        check_fusion_options(
            tpavi_stages=self.tpavi_stages,
            tpavi_vv=self.tpavi_vv,
            tpavi_va=self.tpavi_va,
            fusion=self.fusion,
            tpavi_impl=self.tpavi_impl,
            frames=self.frames,
            channel=self.channel,
            cross_attention_heads=self.cross_attention_heads,
        )
        if not math.isfinite(self.fusion_gate_init) or self.fusion_gate_init < 0:
            raise ValueError(f"fusion_gate_init: expected a finite value >= 0, got {self.fusion_gate_init!r}")
        if self.audio_encoder not in AUDIO_ENCODERS:
            raise ValueError(
                f"audio_encoder: unknown {self.audio_encoder!r}; valid: {', '.join(AUDIO_ENCODERS)}"
            )
        uses_audio = self.fusion != "none" and bool(self.tpavi_stages) and self.tpavi_va
        if uses_audio and self.audio_encoder == "none":
            raise ValueError(
                "audio_encoder: 'none' but the model fuses audio (tpavi_va at stages "
                f"{self.tpavi_stages}); use fusion='none' for a visual-only model"
            )
        if self.crop_trunk not in CROP_TRUNKS:
            raise ValueError(
                f"crop_trunk: unknown {self.crop_trunk!r}; valid: {', '.join(CROP_TRUNKS)}"
            )
        if self.crop_trunk == "shared" and self.crop_weights not in (None, self.resnet_weights):
            raise ValueError(
                "crop_weights: must be None (or resnet_weights) with crop_trunk='shared' "
                "(the AVS encoder, loaded from resnet_weights, is used)"
            )
        if self.freeze_backbone and self.resnet_weights is None:
            raise ValueError(
                "freeze_backbone: a frozen encoder needs resnet_weights (random features would "
                "never be trained); give model.resnet_weights or set freeze_backbone=false"
            )
        if self.audio_weights is not None and self.audio_encoder != "small":
            raise ValueError(
                f"audio_weights: a LogMelCNN file is for audio_encoder='small', not "
                f"{self.audio_encoder!r} (VGGish reads vggish_weights)"
            )
        for name in ("resnet_weights", "vggish_weights", "crop_weights", "audio_weights"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: expected a file path or None, got {value!r}")

    @property
    def crop_trunk_name(self) -> str:
        """The ResNet a separate crop trunk is built as ("separate" means the backbone's kind)."""
        return self.backbone if self.crop_trunk == "separate" else self.crop_trunk


def build_model(cfg: ModelConfig) -> AVSModel:
    """The AVS model of `cfg`, with ImageNet weights in its encoder if `cfg.resnet_weights` is set."""
    cfg.validate()
    model = AVSModel(
        backbone=cfg.backbone,
        channel=cfg.channel,
        tpavi_stages=cfg.tpavi_stages,
        tpavi_vv=cfg.tpavi_vv,
        tpavi_va=cfg.tpavi_va,
        frames=cfg.frames,
        fusion=cfg.fusion,
        tpavi_impl=cfg.tpavi_impl,
        cross_attention_heads=cfg.cross_attention_heads,
        second_branch=cfg.second_branch,
        fusion_gate_init=cfg.fusion_gate_init,
    )
    load_imagenet_resnet(model, cfg.resnet_weights)
    if cfg.freeze_backbone:
        model.resnet.freeze()
    return model


def build_audio_encoder(cfg: ModelConfig) -> nn.Module | None:
    """VGGish (weights from `cfg.vggish_weights`), the small LogMelCNN, or None for "none"."""
    cfg.validate()
    if cfg.audio_encoder == "none":
        return None
    if cfg.audio_encoder == "small":
        if cfg.audio_weights is None:
            return LogMelCNN()  # random init, always trained: no warning, it is the small encoder's use
        return load_small_audio(LogMelCNN(freeze=cfg.freeze_audio), cfg.audio_weights)
    vggish = VGGish(freeze=cfg.freeze_audio)
    return load_vggish(vggish, cfg.vggish_weights)


def build_crop_classifier(
    cfg: ModelConfig, shared_encoder: ResNetEncoder | None = None
) -> CropClassifier:
    """The thesis' crop classifier; for crop_trunk="shared" pass the AVS model's `resnet`."""
    cfg.validate()
    if cfg.crop_trunk == "shared":
        if shared_encoder is None:
            raise ValueError(
                "crop_trunk='shared' needs the AVS model's encoder: pass shared_encoder=model.resnet"
            )
        return CropClassifier(NUM_CLASSES, trunk=shared_encoder, final_relu=cfg.crop_final_relu)
    crop = CropClassifier(NUM_CLASSES, trunk=cfg.crop_trunk_name, final_relu=cfg.crop_final_relu)
    load_imagenet_resnet(crop, cfg.crop_weights)
    return crop
