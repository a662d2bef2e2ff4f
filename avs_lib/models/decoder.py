"""The AVSBench decoder parts: per-stage dilated-conv heads, fusion blocks and the output head.

Names (`conv2d_list`, `resConfUnit1`, ...) are the official ones so checkpoints interchange.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DILATIONS = (3, 6, 12, 18)


class ClassifierModule(nn.Module):
    """Sum of four parallel 3x3 convs with dilations 3, 6, 12, 18: [N, C_in, h, w] -> [N, C_out, h, w].

    Maps each encoder stage to the decoder width while looking at several context sizes.
    """

    def __init__(self, in_channels: int, out_channels: int, dilations: tuple[int, ...] = DILATIONS):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d, bias=True)
            for d in dilations
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)  # as the official head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(conv(x) for conv in self.conv2d_list)


class ResidualConvUnit(nn.Module):
    """relu -> conv1 -> relu -> conv2, plus a skip connection that carries relu(x), not x.

    The official unit applies an in-place ReLU to its input before the skip is added, so the skip
    (and the caller's tensor) hold relu(x). We compute the same values without mutating the input.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    """Merge a coarser decoder map with a skip map, refine, and upsample x2 (align_corners=True).

    path(coarse)       = up(resConfUnit2(coarse))
    path(coarse, skip) = up(resConfUnit2(coarse + resConfUnit1(skip)))
    """

    def __init__(self, channels: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            coarse = coarse + self.resConfUnit1(skip)
        out = self.resConfUnit2(coarse)  # [N, C, h, w]
        # [N, C, h, w] -> [N, C, 2h, 2w]
        return F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)


def output_head(channels: int) -> nn.Sequential:
    """conv 3x3 C->C/2, x2 bilinear (align_corners=False), conv 3x3 C/2->min(32, C/2), ReLU, conv 1x1 ->1.

    At the official C=256 this is exactly the official `output_conv` (256->128->32->1; parameters
    at indices 0, 2, 4). Narrower models scale the head with C: the full-resolution 3x3 conv is the
    most expensive layer of a CPU training step (128->32 at 96 px took a quarter of it).
    """
    mid = channels // 2
    last = min(32, mid)
    return nn.Sequential(
        nn.Conv2d(channels, mid, 3, padding=1),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(mid, last, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(last, 1, 1),
    )
