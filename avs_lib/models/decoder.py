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
        return sum(reachable_taps_conv(conv, x) for conv in self.conv2d_list)


def reachable_taps_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for a 3x3 conv with padding = dilation = d, skipping taps that only see padding.

    The kernel rows at offsets +-d read rows y +- d, which lie in the zero padding for every output
    row y of an h-row map when d >= h; they add exact zeros to the output (and get exact zero
    gradients), so dropping them, with their padding, leaves the numbers unchanged. Same for
    columns. At 224 px this makes conv4's dilations 12 and 18 (7x7 map) and conv3's 18 (14x14)
    1x1 convs; at 64 px (maps 16..2) most of the head. The CPU backward of a 3x3 conv on a 2x2
    map with padding 18 was several times slower than the 1x1 conv it equals.
    """
    d_h, d_w = conv.dilation
    h, w = x.shape[-2:]
    keep_rows, keep_cols = d_h < h, d_w < w
    rows = slice(None) if keep_rows else slice(1, 2)  # all 3 kernel rows, or only the centre one
    cols = slice(None) if keep_cols else slice(1, 2)
    weight = conv.weight[:, :, rows, cols]  # [C_out, C_in, 3 or 1, 3 or 1]
    padding = (conv.padding[0] if keep_rows else 0, conv.padding[1] if keep_cols else 0)
    # A 1-tap direction gets dilation 1: the same conv, and the CPU picks a faster kernel for it.
    dilation = (d_h if keep_rows else 1, d_w if keep_cols else 1)
    return F.conv2d(x, weight, conv.bias, padding=padding, dilation=dilation)


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
