"""The model described as data: every architectural choice of the reproduction, checked once.

`AVSModel(cfg)` and the factories of `avs_lib.models.build` read a `ModelConfig`; nothing else
lists the options, so adding one means adding a field here and reading it where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from avs_lib.configtools import at_least, check_at_most, check_fields, one_of
from avs_lib.models.fusion import FUSIONS
from avs_lib.models.resnet import RESNETS
from avs_lib.models.tpavi import TPAVI_IMPLS

BACKBONES = RESNETS
AUDIO_ENCODERS = ("vggish", "small", "none")
CROP_TRUNKS = ("separate", "shared", *RESNETS)
# Upper bounds, each with its reason: the widths and clip lengths the field uses, with room to spare.
MODEL_LIMITS = {
    "channel": (1024, "the official decoder and TPAVI width is 256"),
    "frames": (10, "an AVSBench clip has 5 frames (S4, MS3; AVSS: 10)"),
}


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
    recompute_stages: encoder stages (0-3, 0 with the stem) whose activations are recomputed in the
                     backward instead of kept (activation checkpointing), while the encoder trains;
                     the same numbers, BatchNorm statistics included, for less memory and one more
                     forward of those stages. Off by default: it only costs time where memory is not
                     short; (0, 1, 2) holds most of a ResNet's activations. A frozen encoder has no
                     backward: nothing to recompute
    freeze_backbone: keep the AVS encoder (ResNet) frozen, BatchNorm statistics included; needs
                     `resnet_weights`. Not the official recipe (which fine-tunes it); the cpu report
                     uses it with its pretrained encoders to fit its time budget
    resnet_weights:  torchvision ImageNet ResNet file for the AVS encoder (None: random init)
    vggish_weights:  VGGish state_dict file, e.g. vggish-10086976.pth (None: random init)
    crop_weights:    torchvision ImageNet ResNet file for a separate crop trunk (None: random init)
    audio_weights:   LogMelCNN state_dict file for the "small" encoder, e.g. from
                     `avs_lib.datatools.pretrain` (None: random init)
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
    recompute_stages: tuple[int, ...] = ()
    freeze_backbone: bool = False
    resnet_weights: str | None = None
    vggish_weights: str | None = None
    crop_weights: str | None = None
    audio_weights: str | None = None

    def __post_init__(self) -> None:
        self.tpavi_stages = tuple(self.tpavi_stages)  # YAML gives lists
        self.recompute_stages = tuple(self.recompute_stages)

    def validate(self) -> None:
        """Raise a ValueError naming the field for any value that cannot be built."""
        distinct_stages = (lambda value: all(s in (0, 1, 2, 3) for s in value) and len(set(value)) == len(value),
                           "distinct stages among 0, 1, 2, 3")
        check_fields(self, {
            "backbone": one_of(BACKBONES), "fusion": one_of(FUSIONS), "tpavi_impl": one_of(TPAVI_IMPLS),
            "audio_encoder": one_of(AUDIO_ENCODERS), "crop_trunk": one_of(CROP_TRUNKS),
            "tpavi_stages": distinct_stages, "recompute_stages": distinct_stages,
            "frames": (at_least(1), ">= 1"), "channel": (at_least(2), ">= 2"),
            "fusion_gate_init": (at_least(0), "a finite number >= 0"),
            **{name: (lambda value: value is None or isinstance(value, str), "a file path or None")
               for name in ("resnet_weights", "vggish_weights", "crop_weights", "audio_weights")},
        })
        check_at_most(self, MODEL_LIMITS)
        if self.fusion == "tpavi" and self.tpavi_stages and not (self.tpavi_vv or self.tpavi_va):
            raise ValueError("tpavi_vv and tpavi_va cannot both be False when tpavi_stages is not empty "
                             "(tpavi_vv: visual self-attention; tpavi_va: the standard audio-visual attention)")
        if self.fusion == "cross_attention":
            if self.tpavi_vv or not self.tpavi_va:
                raise ValueError("fusion='cross_attention' is audio-visual only: set tpavi_va=True, tpavi_vv=False")
            if self.cross_attention_heads < 1 or self.channel % self.cross_attention_heads:
                raise ValueError(
                    f"cross_attention_heads ({self.cross_attention_heads}) must divide channel ({self.channel})"
                )
        uses_audio = self.fusion != "none" and bool(self.tpavi_stages) and self.tpavi_va
        if uses_audio and self.audio_encoder == "none":
            raise ValueError("audio_encoder: 'none' but the model fuses audio (tpavi_va at stages "
                             f"{self.tpavi_stages}); use fusion='none' for a visual-only model")
        if self.crop_trunk == "shared" and self.crop_weights not in (None, self.resnet_weights):
            raise ValueError("crop_weights: must be None (or resnet_weights) with crop_trunk='shared' "
                             "(the AVS encoder, loaded from resnet_weights, is used)")
        if self.freeze_backbone and self.resnet_weights is None:
            raise ValueError("freeze_backbone: a frozen encoder needs resnet_weights (random features would "
                             "never be trained); give model.resnet_weights or set freeze_backbone=false")
        if self.audio_weights is not None and self.audio_encoder != "small":
            raise ValueError(f"audio_weights: a LogMelCNN file is for audio_encoder='small', not "
                             f"{self.audio_encoder!r} (VGGish reads vggish_weights)")

    @property
    def crop_trunk_name(self) -> str:
        """The ResNet a separate crop trunk is built as ("separate" means the backbone's kind)."""
        return self.backbone if self.crop_trunk == "separate" else self.crop_trunk
