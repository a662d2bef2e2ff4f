"""Alternative audio-visual fusion: multi-head cross-attention (the thesis' "Transformer-style" variant).

Visual tokens are the queries; the clip's T aligned audio embeddings are the keys and values.
Attention runs over the whole clip (every pixel of every frame may attend to every second of audio),
not per frame: with one audio key per frame the softmax would be over a single key, always 1, and the
block would reduce to adding a projected audio vector that ignores the visual query. TPAVI likewise
mixes all T*H*W positions of the clip.
"""

from __future__ import annotations

import torch
from torch import nn

FUSIONS = ("tpavi", "cross_attention", "none")


class CrossModalAttention(nn.Module):
    """z = LayerNorm_C(x + MHA(q=x, k=v=align_channel(audio))), with the same interface as TPAVI.

    The attention's output projection starts at zero, so the block starts as LayerNorm(x), like TPAVI
    with its zero-initialised W_z; a positive `gate_init` instead keeps PyTorch's default init of
    that projection, scaled by `gate_init` (the same switch as TPAVI's).

    Shape:
        x [B, C, T, H, W], audio [B, T, audio_dim] -> (z [B, C, T, H, W], aligned audio [B, T, C])
    """

    def __init__(self, channels: int = 256, audio_dim: int = 128, heads: int = 8,
                 gate_init: float = 0.0):
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"cross-attention heads ({heads}) must divide channels ({channels})")
        self.channels = channels
        self.align_channel = nn.Linear(audio_dim, channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_layer = nn.LayerNorm(channels)
        with torch.no_grad():
            self.attention.out_proj.weight.mul_(gate_init)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if audio is None:
            raise ValueError("cross-attention fusion needs audio embeddings, got None")
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(f"expected x [B, {self.channels}, T, H, W], got {tuple(x.shape)}")
        B, C, T, H, W = x.shape
        if audio.shape[:2] != (B, T):
            raise ValueError(f"expected audio [{B}, {T}, D] for x {tuple(x.shape)}, got {tuple(audio.shape)}")
        aligned = self.align_channel(audio)  # [B, T, C]
        queries = x.flatten(2).transpose(1, 2)  # [B, C, T, H, W] -> [B, T*H*W, C]
        attended, _ = self.attention(queries, aligned, aligned, need_weights=False)  # [B, THW, C]
        z = self.norm_layer(queries + attended)  # [B, THW, C]
        z = z.transpose(1, 2).reshape(B, C, T, H, W)  # [B, THW, C] -> [B, C, T, H, W]
        return z, aligned
