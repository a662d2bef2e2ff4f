"""VGGish: the audio encoder of AVSBench, one 128-d embedding per 0.96 s log-mel example.

Layout and names (`features.*`, `embeddings.*`) are those of the public PyTorch port whose
checkpoint `vggish-10086976.pth` the official code loads; load it with `weights.load_vggish`.
"""

from __future__ import annotations

import torch
from torch import nn

# 3x3 convs (channels) and 2x2 max-pools ("M"), as VGG configuration "A" cut short.
VGGISH_LAYERS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
EMBEDDING_DIM = 128


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 1
    for v in VGGISH_LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            in_channels = int(v)
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """Log-mel examples [N, 1, 96, 64] -> embeddings [N, 128] (after the final ReLU, no PCA).

    Args:
        freeze: keep every parameter at requires_grad=False (the official setting: VGGish frozen).
    """

    def __init__(self, freeze: bool = True):
        super().__init__()
        self.features = _features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),
            nn.ReLU(inplace=True),
        )
        self.frozen = freeze
        if freeze:
            self.requires_grad_(False)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 4 or tuple(log_mel.shape[1:]) != (1, 96, 64):
            raise ValueError(f"expected log-mel examples [N, 1, 96, 64], got {tuple(log_mel.shape)}")
        x = self.features(log_mel)  # [N, 512, 6, 4]
        # The TensorFlow original flattens channels-last; the checkpoint's first Linear expects that.
        x = x.permute(0, 2, 3, 1).flatten(1)  # [N, 512, 6, 4] -> [N, 6, 4, 512] -> [N, 12288]
        return self.embeddings(x)  # [N, 128]
