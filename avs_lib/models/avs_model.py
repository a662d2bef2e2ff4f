"""The AVSBench ResNet model: encoder -> per-stage heads -> audio-visual fusion -> decoder.

    frames [B*T, 3, H, W] --resnet--> 4 stages --conv1..4--> 4 maps [B*T, channel, H/4..H/32]
      --tpavi_b1..4 (with audio [B*T, 128])--> fused maps --path4..1, output_conv--> logits [B*T, 1, H, W]

Parameter names and registration order follow the official `Pred_endecoder`, so an official
checkpoint loads with `load_state_dict(strict=True)` (see `weights.load_avs_checkpoint`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avs_lib.models.config import ModelConfig
from avs_lib.models.decoder import ClassifierModule, FeatureFusionBlock, output_head
from avs_lib.models.fusion import CrossModalAttention
from avs_lib.models.resnet import STAGE_STRIDES, ResNetEncoder
from avs_lib.models.tpavi import TPAVI

AUDIO_DIM = 128  # VGGish embedding width


class AVSModel(nn.Module):
    """AVSBench's ResNet encoder-decoder with audio-visual fusion at chosen encoder stages.

    Built from a `ModelConfig` (the default one is the official S4 ResNet-50 + TPAVI model; its
    docstring gives each field). Inputs are [B*T, ...] with a clip's frames adjacent; the fusion
    block of stage s is `tpavi_b{s+1}` (or `cross_attention_b{s+1}`), and tpavi_vv and tpavi_va
    share its weights, averaged when both are on, as the official code does. Weight files and
    freezing are the factory's (`build.build_model`).
    """

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg if cfg is not None else ModelConfig()
        cfg.validate()
        channel, fusion = cfg.channel, cfg.fusion
        self.frames = cfg.frames
        self.channel = channel
        self.fusion = fusion
        self.tpavi_vv = cfg.tpavi_vv and fusion == "tpavi"
        self.tpavi_va = cfg.tpavi_va and fusion != "none"
        self.fusion_stages: tuple[int, ...] = () if fusion == "none" else tuple(sorted(cfg.tpavi_stages))
        self._block_prefix = "cross_attention_b" if fusion == "cross_attention" else "tpavi_b"

        second_branch = cfg.second_branch if cfg.second_branch is not None else cfg.backbone == "resnet50"
        self.resnet = ResNetEncoder(cfg.backbone, second_branch=second_branch,
                                    recompute_stages=cfg.recompute_stages)
        self.encoder_channels = self.resnet.stage_channels
        c1, c2, c3, c4 = self.encoder_channels
        self.conv4 = ClassifierModule(c4, channel)
        self.conv3 = ClassifierModule(c3, channel)
        self.conv2 = ClassifierModule(c2, channel)
        self.conv1 = ClassifierModule(c1, channel)
        self.path4 = FeatureFusionBlock(channel)
        self.path3 = FeatureFusionBlock(channel)
        self.path2 = FeatureFusionBlock(channel)
        self.path1 = FeatureFusionBlock(channel)
        # path4 gets no skip input, so its resConfUnit1 never runs (in the official model too). It is
        # kept for checkpoint names and frozen, so DDP need not look for unused parameters.
        self.path4.resConfUnit1.requires_grad_(False)
        for stage in self.fusion_stages:
            if fusion == "tpavi":
                block: nn.Module = TPAVI(channel, AUDIO_DIM, impl=cfg.tpavi_impl, gate_init=cfg.fusion_gate_init)
            else:
                block = CrossModalAttention(channel, AUDIO_DIM, heads=cfg.cross_attention_heads,
                                            gate_init=cfg.fusion_gate_init)
            setattr(self, f"{self._block_prefix}{stage + 1}", block)
        self.output_conv = output_head(channel)

    def fusion_block(self, stage: int) -> nn.Module:
        """The fusion block of encoder stage 0-3 (`tpavi_b{stage+1}`)."""
        return getattr(self, f"{self._block_prefix}{stage + 1}")

    def forward(
        self, frames: torch.Tensor, audio_emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None]]:
        """frames [B*T, 3, H, W], audio_emb [B*T, 128] or None -> (logits [B*T, 1, H, W],
        4 fused maps [B*T, channel, h, w], 4 aligned audio features [B, T, channel] or None)."""
        H, W = frames.shape[-2:]
        if H % STAGE_STRIDES[-1] or W % STAGE_STRIDES[-1]:
            raise ValueError(f"frame height and width must be multiples of {STAGE_STRIDES[-1]} (the encoder's total "
                             f"stride) so the decoder's x2 upsamplings meet the skip maps; got {H}x{W}")
        return self.fuse_and_decode_projected(self.project(self.encode(frames)), audio_emb)

    def encode(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """The audio-independent encoder: [N, 3, H, W] -> 4 ResNet stages [N, C_i, H/s_i, W/s_i].

        Channels are `encoder_channels`; strides 4, 8, 16, 32. Any N and size (crops too); the
        decoder needs N = B*T and sides that are multiples of 32.
        """
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames [N, 3, H, W], got {tuple(frames.shape)}")
        return self.resnet(frames)

    def project(self, stages: list[torch.Tensor]) -> list[torch.Tensor]:
        """conv1..conv4 heads: 4 encoder stages -> 4 maps [B*T, channel, h, w] (audio-independent).

        At 224 px these heads cost more than the ResNet-50 itself, so a pass that varies only the
        audio can run `project` once and `fuse_and_decode_projected` per audio.
        """
        heads = (self.conv1, self.conv2, self.conv3, self.conv4)
        return [head(x) for head, x in zip(heads, stages, strict=True)]

    def fuse_and_decode_projected(
        self, maps: list[torch.Tensor], audio_emb: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None]]:
        """Maps from `project` + audio -> (logits, fused maps, aligned audio). Inputs are not modified.

        The returned maps are ReLU(fused map): the official decoder applies an in-place ReLU to the
        maps it reads, so the list it returns (and its AVM loss sees) holds the ReLU'd values.
        """
        sizes = [tuple(m.shape[-2:]) for m in maps]
        if any(sizes[i] != (2 * h, 2 * w) for i, (h, w) in enumerate(sizes[1:])):
            raise ValueError(f"stage maps of sizes {sizes} do not halve stage by stage: frame sides must be "
                             f"multiples of {STAGE_STRIDES[-1]}")
        if maps[0].shape[0] % self.frames:
            raise ValueError(f"expected B*T maps with T={self.frames}; got {maps[0].shape[0]}")
        audio = self._clip_audio(audio_emb, maps[0].shape[0])  # [B, T, 128] or None
        maps = list(maps)
        aligned: list[torch.Tensor | None] = [None] * 4
        for stage in self.fusion_stages:
            maps[stage], aligned[stage] = self._fuse(stage, maps[stage], audio)
        d4 = self.path4(maps[3])  # [B*T, C, H/16, W/16]
        d3 = self.path3(d4, maps[2])  # [B*T, C, H/8, W/8]
        d2 = self.path2(d3, maps[1])  # [B*T, C, H/4, W/4]
        d1 = self.path1(d2, maps[0])  # [B*T, C, H/2, W/2]
        logits = self.output_conv(d1)  # [B*T, 1, H, W]
        return logits, [F.relu(m) for m in maps], aligned

    def _clip_audio(self, audio_emb: torch.Tensor | None, n_frames: int) -> torch.Tensor | None:
        if not (self.fusion_stages and self.tpavi_va):  # no audio-visual fusion block
            return None
        if audio_emb is None:
            raise ValueError(f"this model fuses audio (tpavi_va=True at stages {self.fusion_stages}) "
                             "but audio_emb is None")
        if audio_emb.shape != (n_frames, AUDIO_DIM):
            raise ValueError(f"expected audio_emb [B*T, {AUDIO_DIM}] = [{n_frames}, {AUDIO_DIM}], "
                             f"got {tuple(audio_emb.shape)}")
        return audio_emb.reshape(-1, self.frames, AUDIO_DIM)  # [B*T, 128] -> [B, T, 128]

    def _fuse(self, stage: int, x: torch.Tensor,
              audio: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        block = self.fusion_block(stage)
        n, C, h, w = x.shape
        # [B*T, C, h, w] -> [B, T, C, h, w] -> [B, C, T, h, w]
        clip = x.view(-1, self.frames, C, h, w).permute(0, 2, 1, 3, 4)
        outputs = []
        aligned = None
        if self.tpavi_vv:
            outputs.append(block(clip, None)[0])
        if self.tpavi_va:
            fused, aligned = block(clip, audio)
            outputs.append(fused)
        z = outputs[0] if len(outputs) == 1 else sum(outputs) / len(outputs)
        z = z.permute(0, 2, 1, 3, 4).reshape(n, C, h, w)  # [B, C, T, h, w] -> [B*T, C, h, w]
        return z, aligned
