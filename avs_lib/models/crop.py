"""The thesis' crop classifier: what is inside the sounding object's box?

ResNet without its avgpool and fc -> average pool to 1x1 -> Linear(C, 512) -> Linear(512, 23)
(-> ReLU, as the write-up describes). The 512-d output of the first Linear is the crop embedding
used by the pairwise (Loss B) and audio-crop (Loss C) losses.

The write-up pools with AvgPool2d(7), which at a 224-px crop is exactly the mean over the 7x7 map;
we take the mean over the map (adaptive pooling to 1x1), which is the same at 224 and still a
global average for other crop sizes (where AvgPool2d(7) would average only a 7x7 corner).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from avs_lib.data.categories import NUM_CLASSES
from avs_lib.models.resnet import RESNETS, ResNetEncoder, torchvision_resnet

EMBEDDING_DIM = 512


def resnet_trunk(name: str) -> nn.Sequential:
    """A torchvision ResNet minus avgpool and fc, keeping torchvision's child names."""
    base = torchvision_resnet(name)
    return nn.Sequential(
        OrderedDict((k, m) for k, m in base.named_children() if k not in ("avgpool", "fc"))
    )


class CropClassifier(nn.Module):
    """Crops [N, 3, S, S] -> (class scores [N, num_classes], embedding [N, 512]).

    Args:
        num_classes: 23 for AVSBench S4.
        trunk: "resnet18", "resnet34", "resnet50" for a separate ImageNet-style trunk, or a
            `ResNetEncoder` to share (the AVS model's own encoder; its deepest stage is used).
        final_relu: ReLU on the class scores, as the write-up describes (switchable).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        trunk: str | ResNetEncoder = "resnet50",
        final_relu: bool = True,
    ):
        super().__init__()
        if isinstance(trunk, ResNetEncoder):
            self.trunk: nn.Module = trunk
            self.shared = True
            out_channels = trunk.stage_channels[-1]
        else:
            if trunk not in RESNETS:
                raise ValueError(
                    f"unknown crop trunk {trunk!r}; valid: {', '.join(RESNETS)} or a ResNetEncoder"
                )
            self.trunk = resnet_trunk(trunk)
            self.shared = False
            out_channels = RESNETS[trunk][1][-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Linear(out_channels, EMBEDDING_DIM)
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes)
        self.final_relu = final_relu

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"expected crops [N, 3, S, S], got {tuple(crops.shape)}")
        feat = self.trunk(crops)
        if self.shared:
            feat = feat[-1]  # deepest encoder stage
        pooled = self.pool(feat).flatten(1)  # [N, C, h, w] -> [N, C]
        embedding = self.embedding(pooled)  # [N, 512]
        scores = self.classifier(embedding)  # [N, num_classes]
        if self.final_relu:
            scores = torch.relu(scores)
        return scores, embedding
