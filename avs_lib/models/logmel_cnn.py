"""A small log-mel encoder for CPU work, trained with the rest of the model.

Why it exists: the official model hears through a *pretrained, frozen* VGGish. Those weights cannot
be downloaded here, and a frozen, randomly initialised VGGish is not the same model; training the
72M-parameter VGGish from scratch on a laptop costs more than the whole segmentation network. This
encoder keeps VGGish's interface (one 128-d embedding per 0.96 s log-mel example) at ~0.1% of its cost,
so the `smoke`, `cpu` and `gpu` profiles can learn to listen without VGGish. It starts random or from
a file (`model.audio_weights`, e.g. pretrained on the synthetic sounds by `avs_lib.datatools.pretrain`), and
is then trained or, like the official VGGish, frozen. The `paper` profile uses VGGish with its
pretrained weights.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class LogMelCNN(nn.Module):
    """Log-mel example [N, 1, 96, 64] -> embedding [N, 128], like VGGish but small and trainable."""

    def __init__(self, embed_dim: int = 128, width: int = 16, freeze: bool = False):
        super().__init__()
        self.frozen = freeze
        self.features = nn.Sequential(
            _block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width), _block(4 * width, 8 * width)
        )
        self.embeddings = nn.Sequential(nn.Linear(8 * width, embed_dim), nn.ReLU(inplace=True))
        if freeze:
            self.freeze()

    def freeze(self) -> LogMelCNN:
        """No gradients, and eval mode for good (BatchNorm statistics kept), as a pretrained encoder."""
        self.frozen = True
        self.requires_grad_(False)
        return self.train()  # i.e. eval mode

    def train(self, mode: bool = True) -> LogMelCNN:
        # A frozen (pretrained) encoder keeps its BatchNorm statistics: it stays in eval mode.
        return super().train(mode and not self.frozen)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 4 or log_mel.shape[1:] != (1, 96, 64):
            raise ValueError(f"expected log-mel examples [N, 1, 96, 64], got {tuple(log_mel.shape)}")
        x = self.features(log_mel)  # [N, 8w, 6, 4]
        x = x.mean(dim=(2, 3))  # [N, 8w]: time-frequency average
        return self.embeddings(x)  # [N, 128]
