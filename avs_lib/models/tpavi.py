"""TPAVI: the temporal pixel-wise audio-visual interaction block of AVSBench ("dot" mode).

For visual features x [B, C, T, H, W] and audio a [B, T, 128] (N = T*H*W positions):

    a' = align_channel(a)                      [B, T, C], broadcast over H, W
    theta = theta(x), g = g(x), phi = phi(a')   1x1x1 convs to C' = C/2 channels, [B, C', N]
    f = theta^T phi / N                        [B, N, N]   (no softmax in "dot" mode)
    y = f g                                    [B, N, C']
    z = LayerNorm_C(W_z(y) + x)                W_z = Conv3d + BatchNorm3d, zero-initialised

Without audio (the visual-visual variant) phi is computed from x itself.

Two implementations give the same numbers:
- "naive" forms the N x N matrix f as the official code does (15680^2 floats per clip at stage 1
  of a 224-px input, about 1 GB in float32, twice over while f / N is built);
- "fast" uses associativity, y = theta^T (phi g^T)^T / N, so the largest intermediate is C' x C'.
  With audio, phi is constant over H, W, so phi g^T only needs g summed over each frame.
"""

from __future__ import annotations

import torch
from torch import nn

TPAVI_IMPLS = ("fast", "naive")


class TPAVI(nn.Module):
    """TPAVI block ("dot" mode). Parameter names are the official ones.

    Args:
        channels: C, the visual feature width (256 in the official model).
        audio_dim: width of the audio embedding (128 for VGGish).
        impl: "fast" (reassociated, O(N C'^2)) or "naive" (literal N x N matrix).
        gate_init: starting value of W_z's BatchNorm scale. 0 is the official init: the block
            starts as LayerNorm(x), and since the gradients of theta, phi and g are proportional to
            that scale, the audio path has to grow in from a saddle (notebook 03 shows what that
            did on the cpu profile). A positive value starts it open.

    Shape:
        x [B, C, T, H, W], audio [B, T, audio_dim] or None ->
        (z [B, C, T, H, W], aligned audio [B, T, C] or None)
    """

    def __init__(self, channels: int = 256, audio_dim: int = 128, impl: str = "fast",
                 gate_init: float = 0.0):
        super().__init__()
        if impl not in TPAVI_IMPLS:
            raise ValueError(f"unknown TPAVI impl {impl!r}; valid: {', '.join(TPAVI_IMPLS)}")
        self.impl = impl
        self.channels = channels
        self.inter_channels = max(channels // 2, 1)
        inter = self.inter_channels
        # Registration order follows the official module so state_dict order matches too.
        self.align_channel = nn.Linear(audio_dim, channels)
        self.norm_layer = nn.LayerNorm(channels)
        self.g = nn.Conv3d(channels, inter, kernel_size=1)
        self.W_z = nn.Sequential(
            nn.Conv3d(inter, channels, kernel_size=1), nn.BatchNorm3d(channels)
        )
        # BN scale = gate_init (official 0: the block starts as LayerNorm(x), attention grows in); shift 0.
        nn.init.constant_(self.W_z[1].weight, gate_init)
        nn.init.zeros_(self.W_z[1].bias)
        self.theta = nn.Conv3d(channels, inter, kernel_size=1)
        self.phi = nn.Conv3d(channels, inter, kernel_size=1)

    def forward(
        self, x: torch.Tensor, audio: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(f"TPAVI expects x [B, {self.channels}, T, H, W], got {tuple(x.shape)}")
        B, C, T, H, W = x.shape
        aligned = None
        if audio is not None:
            if audio.shape[:2] != (B, T):
                raise ValueError(f"TPAVI expects audio [{B}, {T}, D] for x {tuple(x.shape)}, got {tuple(audio.shape)}")
            aligned = self.align_channel(audio)  # [B, T, C]
        if self.impl == "naive":
            y = self._attend_naive(x, aligned)
        else:
            y = self._attend_fast(x, aligned)
        y = y.view(B, self.inter_channels, T, H, W)  # [B, C', N] -> [B, C', T, H, W]
        z = self.W_z(y) + x  # [B, C, T, H, W], residual
        z = self.norm_layer(z.permute(0, 2, 3, 4, 1))  # LayerNorm over channels: [B, T, H, W, C]
        return z.permute(0, 4, 1, 2, 3), aligned  # [B, C, T, H, W]

    def _attend_naive(self, x: torch.Tensor, aligned: torch.Tensor | None) -> torch.Tensor:
        """y = (theta^T phi / N) g with the N x N matrix formed, as the official code does."""
        B, C, T, H, W = x.shape
        if aligned is None:
            source = x
        else:
            # [B, T, C] -> [B, C, T, 1, 1] -> [B, C, T, H, W]: the audio broadcast over H, W
            source = aligned.permute(0, 2, 1)[..., None, None].repeat(1, 1, 1, H, W)
        g_x = self.g(x).flatten(2).permute(0, 2, 1)  # [B, N, C']
        theta_x = self.theta(x).flatten(2).permute(0, 2, 1)  # [B, N, C']
        phi_x = self.phi(source).flatten(2)  # [B, C', N]
        f = torch.matmul(theta_x, phi_x)  # [B, N, N]
        f_div_n = f / f.shape[-1]
        y = torch.matmul(f_div_n, g_x)  # [B, N, C']
        return y.permute(0, 2, 1)  # [B, C', N]

    def _attend_fast(self, x: torch.Tensor, aligned: torch.Tensor | None) -> torch.Tensor:
        """y = theta^T (phi g^T) / N: never forms the N x N matrix."""
        B, C, T, H, W = x.shape
        n = T * H * W
        g_x = self.g(x)  # [B, C', T, H, W]
        theta_x = self.theta(x).flatten(2)  # [B, C', N]
        if aligned is None:
            phi_x = self.phi(x).flatten(2)  # [B, C', N]
            phi_g = torch.matmul(phi_x, g_x.flatten(2).transpose(1, 2))  # [B, C'phi, C'g]
        else:
            # phi of the broadcast audio is the same at every (h, w): apply the 1x1x1 conv per frame.
            weight = self.phi.weight.flatten(1)  # [C', C]
            phi_a = torch.matmul(aligned, weight.t()) + self.phi.bias  # [B, T, C']
            g_per_frame = g_x.sum(dim=(3, 4))  # [B, C', T]: sum over H, W
            # [B, C'phi, T] @ [B, T, C'g] -> [B, C'phi, C'g]
            phi_g = torch.matmul(phi_a.transpose(1, 2), g_per_frame.transpose(1, 2))
        # y[c, n] = sum_k phi_g[k, c] theta[k, n] / N
        return torch.matmul(phi_g.transpose(1, 2), theta_x) / n  # [B, C'g, N]
