"""Activation checkpointing of the ResNet (`model.recompute_stages`) must not change a training step.

A recomputed stage runs its forward twice; in train mode its BatchNorms would update their running
statistics and `num_batches_tracked` twice. These tests compare a checkpointed step with the plain
one (loss, every gradient, every BatchNorm buffer), and check that the comparison catches the
naive checkpointing that counts the batch twice.
"""

import copy
from contextlib import nullcontext

import pytest
import torch

from avs_lib.models import resnet
from avs_lib.models.avs_model import AVSModel
from avs_lib.models.config import ModelConfig
from avs_lib.models.resnet import ResNetEncoder

ALL_STAGES = (0, 1, 2, 3)


def encoder_step(encoder: ResNetEncoder, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """One train-mode forward + backward: the loss, every gradient and every buffer, by name."""
    encoder.train()
    stages = encoder(frames)
    loss = sum((x * x).mean() for x in stages)
    loss.backward()
    grads = {f"grad {name}": p.grad for name, p in encoder.named_parameters() if p.grad is not None}
    return {"loss": loss.detach(), **grads, **dict(encoder.named_buffers())}


def differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names whose tensors are not equal to float tolerance (integers: exactly)."""
    assert a.keys() == b.keys()
    out = []
    for name in a:
        try:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
        except AssertionError:
            out.append(name)
    return out


def plain_and_recomputed(recompute_stages: tuple[int, ...]) -> tuple[ResNetEncoder, ResNetEncoder]:
    torch.manual_seed(0)
    plain = ResNetEncoder("resnet18")
    recomputed = copy.deepcopy(plain)
    recomputed.recompute_stages = recompute_stages
    return plain, recomputed


@pytest.mark.parametrize("stages", [ALL_STAGES, (0, 1, 2), (1, 3)])
def test_recomputed_step_has_the_plain_steps_loss_gradients_and_batchnorm_statistics(stages):
    plain, recomputed = plain_and_recomputed(stages)
    frames = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    expected, got = encoder_step(plain, frames), encoder_step(recomputed, frames)
    assert differing(expected, got) == []
    assert int(got["bn1.num_batches_tracked"]) == 1
    assert sum(name.startswith("grad ") for name in got) == sum(1 for _ in plain.parameters())


def test_the_comparison_catches_batchnorm_statistics_updated_twice(monkeypatch):
    # The naive checkpointing: the recomputation updates the running statistics again.
    monkeypatch.setattr(resnet, "buffers_kept", lambda module: nullcontext())
    plain, recomputed = plain_and_recomputed(ALL_STAGES)
    frames = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    wrong = differing(encoder_step(plain, frames), encoder_step(recomputed, frames))
    assert "bn1.num_batches_tracked" in wrong and "bn1.running_mean" in wrong
    assert "loss" not in wrong  # the forward itself is the same: only the statistics show it


def test_recomputed_avs_model_trains_as_the_plain_one_over_two_adam_steps():
    torch.manual_seed(0)
    cfg = dict(backbone="resnet18", channel=8, frames=2, tpavi_stages=(1, 2))
    plain = AVSModel(ModelConfig(**cfg, recompute_stages=()))
    recomputed = AVSModel(ModelConfig(**cfg, recompute_stages=ALL_STAGES))
    recomputed.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(2)
    frames, audio = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 128, generator=g)
    target = (torch.rand(2, 1, 64, 64, generator=g) > 0.5).float()
    losses = {}
    for name, model in (("plain", plain), ("recomputed", recomputed)):
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses[name] = []
        for _ in range(2):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(frames, audio)[0], target)
            loss.backward()
            optimizer.step()
            losses[name].append(float(loss.detach()))
    assert losses["recomputed"] == pytest.approx(losses["plain"], rel=1e-6)
    assert differing(plain.state_dict(), recomputed.state_dict()) == []


def count_checkpointed(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = resnet.checkpointed

    def counting(fn, x, owner):
        calls.append(1)
        return real(fn, x, owner)

    monkeypatch.setattr(resnet, "checkpointed", counting)
    return calls


def test_recomputes_only_in_a_training_forward_of_a_trained_encoder(monkeypatch):
    calls = count_checkpointed(monkeypatch)
    encoder = ResNetEncoder("resnet18", recompute_stages=ALL_STAGES)
    frames = torch.randn(2, 3, 32, 32)
    encoder.eval()
    encoder(frames)
    encoder.train()
    with torch.no_grad():
        encoder(frames)
    encoder.freeze()  # the frozen encoders of the cpu and smoke profiles: computed as before
    encoder.train()
    encoder(frames)
    assert calls == []
    unfrozen = ResNetEncoder("resnet18", recompute_stages=(0, 2)).train()
    unfrozen(frames)
    assert len(calls) == 3  # the stem and layer1 (stage 0), layer3 (stage 2)


def test_model_config_passes_recompute_stages_to_the_encoder():
    model = AVSModel(ModelConfig(backbone="resnet18", channel=8, recompute_stages=[2, 0]))
    assert model.resnet.recompute_stages == (2, 0)
    assert ModelConfig().recompute_stages == ()  # a memory option: off unless asked for
