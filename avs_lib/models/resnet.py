"""The ResNet encoder, laid out as the official AVSBench `B2_ResNet` names it.

The official model keeps torchvision's ResNet-50 but renames `layer3`/`layer4` to `layer3_1`/`layer4_1`
and carries a second, never-used branch `layer3_2`/`layer4_2` (inherited from a two-branch saliency
network). Official checkpoints contain that branch, so a ResNet-50 encoder builds it by default
(frozen: it gets no gradient either way) to keep `load_state_dict(strict=True)` working both ways.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint

# name -> (torchvision builder, output channels of layer1..layer4)
RESNETS: dict[str, tuple[Callable[..., torchvision.models.ResNet], tuple[int, int, int, int]]] = {
    "resnet18": (torchvision.models.resnet18, (64, 128, 256, 512)),
    "resnet34": (torchvision.models.resnet34, (64, 128, 256, 512)),
    "resnet50": (torchvision.models.resnet50, (256, 512, 1024, 2048)),
}

# Stride of each stage relative to the input: an input side must be a multiple of the last one.
STAGE_STRIDES = (4, 8, 16, 32)


@contextmanager
def buffers_kept(module: nn.Module) -> Iterator[None]:
    """Within: `module`'s buffers may change; on leaving, they hold their values from before again.

    For the recomputation of a checkpointed segment: its BatchNorms, in train mode, normalise by the
    batch as the first forward did, and would update their running statistics and
    `num_batches_tracked` a second time; the recomputation must give the same values, not count twice.
    """
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in zip(module.buffers(), saved, strict=True):
                b.copy_(value)


def checkpointed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 owner: nn.Module) -> torch.Tensor:
    """`fn(x)` keeping only `x` for the backward, which runs `fn` again; `owner` holds fn's BatchNorms."""
    return checkpoint(fn, x, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), buffers_kept(owner)))


def torchvision_resnet(name: str) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (never downloads: weights=None)."""
    if name not in RESNETS:
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(RESNETS)}")
    return RESNETS[name][0](weights=None)


class ResNetEncoder(nn.Module):
    """ResNet stages 1-4 as a feature pyramid: [N, 3, H, W] -> 4 maps at strides 4, 8, 16, 32.

    Parameter names follow the official `resnet.*` layout (`layer3_1`, `layer4_1`, and with
    `second_branch=True` the unused `layer3_2`, `layer4_2`).

    `recompute_stages` (activation checkpointing): in a training forward with gradients, those stages
    keep only their input, and the backward runs them again. Less memory for one more forward of
    them; the same loss, gradients and BatchNorm statistics (`buffers_kept`).
    """

    def __init__(self, name: str = "resnet50", second_branch: bool = False,
                 recompute_stages: tuple[int, ...] = ()):
        super().__init__()
        base = torchvision_resnet(name)
        self.name = name
        self.stage_channels: tuple[int, int, int, int] = RESNETS[name][1]
        self.conv1 = base.conv1
        self.bn1 = base.bn1
        self.relu = base.relu
        self.maxpool = base.maxpool
        self.layer1 = base.layer1
        self.layer2 = base.layer2
        self.layer3_1 = base.layer3
        self.layer4_1 = base.layer4
        self.second_branch = second_branch
        if second_branch:
            # Same shapes as layer3/layer4 (both take layer2's output); kept only for checkpoints.
            self.layer3_2 = copy.deepcopy(base.layer3)
            self.layer4_2 = copy.deepcopy(base.layer4)
            for p in [*self.layer3_2.parameters(), *self.layer4_2.parameters()]:
                p.requires_grad_(False)

        self.frozen = False
        # Stages (0 with the stem) whose activations the backward recomputes while the encoder trains.
        self.recompute_stages = tuple(recompute_stages)

    def freeze(self) -> None:
        """Stop training the encoder: no gradients, and BatchNorm keeps its (pretrained) statistics.

        A frozen encoder also needs no backward pass at all (nothing before it takes gradients),
        which is most of the saving (the training-step benchmark in benchmarks/ measures it).
        """
        self.frozen = True
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> ResNetEncoder:
        return super().train(mode and not self.frozen)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [N, 3, H, W] -> [N, 64, H/4, W/4]

    def _run(self, stage: int, layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             owner: nn.Module) -> torch.Tensor:
        """`layer(x)`, checkpointed if `stage` is recomputed and this forward trains the encoder."""
        if stage in self.recompute_stages and self.training and torch.is_grad_enabled():
            return checkpointed(layer, x, owner)
        return layer(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._run(0, self.stem, x, self.bn1)  # [N, 64, H/4, W/4]
        x1 = self._run(0, self.layer1, x, self.layer1)  # [N, C1, H/4, W/4]
        x2 = self._run(1, self.layer2, x1, self.layer2)  # [N, C2, H/8, W/8]
        x3 = self._run(2, self.layer3_1, x2, self.layer3_1)  # [N, C3, H/16, W/16]
        x4 = self._run(3, self.layer4_1, x3, self.layer4_1)  # [N, C4, H/32, W/32]
        return [x1, x2, x3, x4]
