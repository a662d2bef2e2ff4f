"""The factories that turn a `ModelConfig` into modules, with their starting weights.

`build_model`, `build_audio_encoder` and `build_crop_classifier` build (and load weights into)
the three parts.
"""

from __future__ import annotations

from torch import nn

from avs_lib.data.categories import NUM_CLASSES
from avs_lib.models.avs_model import AVSModel
from avs_lib.models.config import ModelConfig
from avs_lib.models.crop import CropClassifier
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.models.resnet import ResNetEncoder
from avs_lib.models.vggish import VGGish
from avs_lib.models.weights import load_imagenet_resnet, load_small_audio, load_vggish


def build_model(cfg: ModelConfig) -> AVSModel:
    """The AVS model of `cfg`, with ImageNet weights in its encoder if `cfg.resnet_weights` is set."""
    cfg.validate()
    model = AVSModel(cfg)
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


def build_crop_classifier(cfg: ModelConfig, shared_encoder: ResNetEncoder | None = None) -> CropClassifier:
    """The thesis' crop classifier; for crop_trunk="shared" pass the AVS model's `resnet`."""
    cfg.validate()
    if cfg.crop_trunk == "shared":
        if shared_encoder is None:
            raise ValueError("crop_trunk='shared' needs the AVS model's encoder: pass shared_encoder=model.resnet")
        return CropClassifier(NUM_CLASSES, trunk=shared_encoder, final_relu=cfg.crop_final_relu)
    crop = CropClassifier(NUM_CLASSES, trunk=cfg.crop_trunk_name, final_relu=cfg.crop_final_relu)
    load_imagenet_resnet(crop, cfg.crop_weights)
    return crop
