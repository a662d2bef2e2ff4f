"""Specifications of avs_lib.models: shapes, official names, TPAVI maths, wiring, loaders.

Small on purpose: resnet18 with a narrow decoder and 64-px frames for almost everything; resnet50
only where its names and shapes are the point. Equalities are checked in float64.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from avs_lib.data.errors import DataFormatError
from avs_lib.models import (
    AVSModel,
    CropClassifier,
    ModelConfig,
    ResNetEncoder,
    VGGish,
    build_audio_encoder,
    build_crop_classifier,
    build_model,
    load_avs_checkpoint,
    load_imagenet_resnet,
)
from avs_lib.models.decoder import DILATIONS
from avs_lib.models.tpavi import TPAVI

FIXTURE = Path(__file__).parent / "fixtures" / "official_resnet50_keys.json"
T = 5


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def small_model(**kwargs) -> AVSModel:
    args = {"backbone": "resnet18", "channel": 8}
    args.update(kwargs)
    return AVSModel(ModelConfig(**args))


def randomise_tpavi_norms(model: AVSModel) -> None:
    """W_z's BatchNorm starts at zero (the block is then just LayerNorm(x)); make it non-trivial."""
    for stage in model.fusion_stages:
        bn = model.fusion_block(stage).W_z[1]
        torch.nn.init.normal_(bn.weight)
        torch.nn.init.normal_(bn.bias)
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)


def clip_inputs(batch: int, size: tuple[int, int], dtype=torch.float32):
    frames = torch.randn(batch * T, 3, *size, dtype=dtype)
    audio = torch.randn(batch * T, 128, dtype=dtype)
    return frames, audio


# --- shapes -------------------------------------------------------------------------------------


def test_forward_shapes_at_224_with_resnet18():
    model = small_model(channel=16).eval()
    frames, audio = clip_inputs(1, (224, 224))
    with torch.no_grad():
        logits, maps, aligned = model(frames, audio)
    assert logits.shape == (5, 1, 224, 224)
    assert [tuple(m.shape) for m in maps] == [(5, 16, s, s) for s in (56, 28, 14, 7)]
    assert [tuple(a.shape) for a in aligned] == [(1, 5, 16)] * 4


@pytest.mark.parametrize("size", [(96, 96), (64, 96)])
def test_forward_shapes_at_other_sizes(size):
    model = small_model(tpavi_stages=(0, 2)).eval()
    frames, audio = clip_inputs(2, size)
    with torch.no_grad():
        logits, maps, aligned = model(frames, audio)
    H, W = size
    assert logits.shape == (10, 1, H, W)
    assert [tuple(m.shape[-2:]) for m in maps] == [(H // s, W // s) for s in (4, 8, 16, 32)]
    assert aligned[1] is None and aligned[3] is None and aligned[0].shape == (2, 5, 8)


def test_frame_side_not_multiple_of_32_is_an_error():
    frames, audio = clip_inputs(1, (100, 96))
    with pytest.raises(ValueError, match="multiples of 32.*100x96"):
        small_model()(frames, audio)


def test_frame_count_not_a_multiple_of_clip_length_is_an_error():
    with pytest.raises(ValueError, match="T=5"):
        small_model()(torch.randn(7, 3, 64, 64), torch.randn(7, 128))


def test_missing_audio_is_an_error_for_audio_visual_fusion():
    with pytest.raises(ValueError, match="audio_emb is None"):
        small_model()(torch.randn(5, 3, 64, 64), None)


def test_encode_accepts_crops_of_any_count_and_size_but_decoder_needs_clips():
    model = small_model().eval()
    with torch.no_grad():
        stages = model.encode(torch.randn(3, 3, 48, 48))
        assert [tuple(s.shape[:2]) for s in stages] == [(3, 64), (3, 128), (3, 256), (3, 512)]
        with pytest.raises(ValueError, match="multiples of 32"):
            model.fuse_and_decode_projected(model.project(stages), torch.randn(3, 128))


def test_visual_only_model_has_no_fusion_blocks_and_needs_no_audio():
    model = small_model(fusion="none").eval()
    assert not any(k.startswith("tpavi_b") for k in model.state_dict())
    with torch.no_grad():
        logits, _, aligned = model(torch.randn(5, 3, 64, 64), None)
    assert logits.shape == (5, 1, 64, 64) and aligned == [None] * 4


# --- TPAVI --------------------------------------------------------------------------------------


def tpavi_both_ways(block: TPAVI, x: torch.Tensor, audio: torch.Tensor | None):
    block.impl = "naive"
    naive = block(x, audio)[0]
    block.impl = "fast"
    fast = block(x, audio)[0]
    return naive, fast


@pytest.mark.parametrize("side", [16, 8, 4, 2])  # the four stages of a 64-px frame
@pytest.mark.parametrize("with_audio", [True, False], ids=["audio-visual", "visual-visual"])
def test_tpavi_fast_equals_naive_at_64px_stage_sizes(side, with_audio):
    block = TPAVI(channels=8).double()
    torch.nn.init.normal_(block.W_z[1].weight)  # non-zero, else both give LayerNorm(x)
    x = torch.randn(2, 8, T, side, side, dtype=torch.float64, requires_grad=True)
    audio = torch.randn(2, T, 128, dtype=torch.float64) if with_audio else None
    naive, fast = tpavi_both_ways(block, x, audio)
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(naive)
    (grad_naive,) = torch.autograd.grad((naive * weights).sum(), x)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), x)
    torch.testing.assert_close(grad_fast, grad_naive, rtol=1e-10, atol=1e-10)


def test_tpavi_fast_equals_naive_at_stage0_size_of_224px():
    # N = 5*56*56 = 15680: the naive f matrix alone is 2 GB in float64 (narrow channels keep it quick).
    block = TPAVI(channels=16).double()
    torch.nn.init.normal_(block.W_z[1].weight)
    x = torch.randn(1, 16, T, 56, 56, dtype=torch.float64)
    audio = torch.randn(1, T, 128, dtype=torch.float64)
    with torch.no_grad():
        naive, fast = tpavi_both_ways(block, x, audio)
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)


def test_tpavi_starts_as_layernorm_of_its_input():
    block = TPAVI(channels=8)
    x = torch.randn(1, 8, T, 4, 4)
    z, aligned = block(x, torch.randn(1, T, 128))
    expected = F.layer_norm(x.permute(0, 2, 3, 4, 1), (8,)).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(z, expected)
    assert aligned.shape == (1, T, 8)


@pytest.mark.parametrize("fusion", ["tpavi", "cross_attention"])
def test_fusion_gate_init_opens_the_audio_path_at_step_zero(fusion):
    """Closed (official, 0): the fused maps ignore the audio until the gate grows, and theta/phi get
    no gradient. Open (> 0): the audio changes the maps and every fusion weight gets a gradient."""
    torch.manual_seed(0)
    frames, audio = clip_inputs(1, (64, 64))
    other = torch.randn_like(audio)
    for gate, listens in ((0.0, False), (1.0, True)):
        model = small_model(fusion=fusion, tpavi_stages=(2, 3), fusion_gate_init=gate).eval()
        with torch.no_grad():
            a = model(frames, audio)[0]
            b = model(frames, other)[0]
        assert (not torch.allclose(a, b)) is listens
        model(frames, audio)[0].sum().backward()
        block = model.fusion_block(3)
        first = block.theta.weight if fusion == "tpavi" else block.attention.in_proj_weight
        assert (first.grad.abs().sum() > 0).item() is listens


def test_fusion_gate_init_must_be_finite_and_not_negative():
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="fusion_gate_init"):
            ModelConfig(fusion_gate_init=bad).validate()


# --- whole-model wiring against a literal reference ----------------------------------------------


def conv1x1x1(conv, t):
    return torch.einsum("oc,bcthw->bothw", conv.weight[:, :, 0, 0, 0], t) + conv.bias.view(
        1, -1, 1, 1, 1
    )


def reference_tpavi(block, x, audio):
    """TPAVI "dot" mode as the AVSBench paper writes it, literally: x [B, C, T, H, W], audio [B, T, 128] or None (phi from x)."""
    B, C, T_, H, W = x.shape
    N = T_ * H * W
    aligned = None
    source = x
    if audio is not None:
        aligned = audio @ block.align_channel.weight.T + block.align_channel.bias  # [B, T, C]
        source = aligned.permute(0, 2, 1)[..., None, None].expand(B, C, T_, H, W)
    theta = conv1x1x1(block.theta, x).reshape(B, -1, N)
    phi = conv1x1x1(block.phi, source).reshape(B, -1, N)
    g = conv1x1x1(block.g, x).reshape(B, -1, N)
    f = theta.transpose(1, 2) @ phi / N  # [B, N, N]
    y = (f @ g.transpose(1, 2)).transpose(1, 2).reshape(B, -1, T_, H, W)  # [B, C', T, H, W]
    bn = block.W_z[1]
    wy = conv1x1x1(block.W_z[0], y)
    wy = (wy - bn.running_mean.view(1, -1, 1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1, 1) + bn.eps
    )
    wy = wy * bn.weight.view(1, -1, 1, 1, 1) + bn.bias.view(1, -1, 1, 1, 1)
    ln = block.norm_layer
    z = F.layer_norm((wy + x).permute(0, 2, 3, 4, 1), (C,), ln.weight, ln.bias, ln.eps)
    return z.permute(0, 4, 1, 2, 3), aligned


def reference_head(head, x):
    return sum(
        F.conv2d(x, c.weight, c.bias, padding=d, dilation=d)
        for c, d in zip(head.conv2d_list, DILATIONS, strict=True)
    )


def reference_rcu(unit, x):
    # The official unit's in-place ReLU makes its skip carry relu(x).
    x = F.relu(x)
    h = F.relu(F.conv2d(x, unit.conv1.weight, unit.conv1.bias, padding=1))
    return F.conv2d(h, unit.conv2.weight, unit.conv2.bias, padding=1) + x


def reference_path(path, coarse, skip=None):
    if skip is not None:
        coarse = coarse + reference_rcu(path.resConfUnit1, skip)
    out = reference_rcu(path.resConfUnit2, coarse)
    return F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)


def reference_forward(model, frames, audio_emb):
    r = model.resnet
    x = r.maxpool(r.relu(r.bn1(r.conv1(frames))))
    x1 = r.layer1(x)
    x2 = r.layer2(x1)
    x3 = r.layer3_1(x2)
    x4 = r.layer4_1(x3)
    maps = [
        reference_head(model.conv1, x1),
        reference_head(model.conv2, x2),
        reference_head(model.conv3, x3),
        reference_head(model.conv4, x4),
    ]
    audio = audio_emb.view(-1, T, 128)
    aligned = [None] * 4
    for i in model.fusion_stages:
        block = getattr(model, f"tpavi_b{i + 1}")
        n, C, h, w = maps[i].shape
        clip = maps[i].view(-1, T, C, h, w).permute(0, 2, 1, 3, 4)
        outs = []
        if model.tpavi_vv:
            outs.append(reference_tpavi(block, clip, None)[0])
        if model.tpavi_va:
            z, aligned[i] = reference_tpavi(block, clip, audio)
            outs.append(z)
        maps[i] = (sum(outs) / len(outs)).permute(0, 2, 1, 3, 4).reshape(n, C, h, w)
    d = reference_path(model.path4, maps[3])
    d = reference_path(model.path3, d, maps[2])
    d = reference_path(model.path2, d, maps[1])
    d = reference_path(model.path1, d, maps[0])
    oc = model.output_conv
    d = F.conv2d(d, oc[0].weight, oc[0].bias, padding=1)
    d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
    d = F.relu(F.conv2d(d, oc[2].weight, oc[2].bias, padding=1))
    logits = F.conv2d(d, oc[4].weight, oc[4].bias)
    return logits, [F.relu(m) for m in maps], aligned


@pytest.mark.parametrize(
    "stages, vv, va",
    [((0, 1, 2, 3), False, True), ((1, 3), True, True)],
    ids=["official", "vv+va@1,3"],
)
def test_model_equals_literal_reference(stages, vv, va):
    model = small_model(tpavi_stages=stages, tpavi_vv=vv, tpavi_va=va).double().eval()
    randomise_tpavi_norms(model)
    frames, audio = clip_inputs(2, (64, 64), torch.float64)
    with torch.no_grad():
        logits, maps, aligned = model(frames, audio)
        ref_logits, ref_maps, ref_aligned = reference_forward(model, frames, audio)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-9)
    for got, want in zip(maps, ref_maps, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    for got, want in zip(aligned, ref_aligned, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want)


def test_fuse_and_decode_reuses_visual_maps_without_changing_them():
    model = small_model().eval()
    frames, audio = clip_inputs(1, (64, 64))
    with torch.no_grad():
        visual = model.project(model.encode(frames))
        before = [v.clone() for v in visual]
        first = model.fuse_and_decode_projected(visual, audio)[0]
        other = model.fuse_and_decode_projected(visual, audio.flip(0))[0]
        again = model.fuse_and_decode_projected(visual, audio)[0]
        direct = model(frames, audio)[0]
    assert all(torch.equal(a, b) for a, b in zip(visual, before, strict=True))
    assert torch.equal(first, again) and torch.equal(first, direct)
    assert visual[-1].shape[1] == model.channel
    assert other.shape == first.shape


def test_gradients_reach_every_trainable_parameter():
    model = small_model(tpavi_vv=True).train()
    randomise_tpavi_norms(model)
    frames, audio = clip_inputs(1, (64, 64))
    logits, maps, aligned = model(frames, audio)
    (logits.sum() + sum(a.sum() for a in aligned)).backward()
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert no_grad == []


def test_second_branch_is_frozen_and_does_not_change_the_output():
    model = small_model(second_branch=True).eval()
    frames, audio = clip_inputs(1, (64, 64))
    with torch.no_grad():
        before = model(frames, audio)[0]
        for p in model.resnet.layer4_2.parameters():
            p.add_(1.0)
        after = model(frames, audio)[0]
    assert torch.equal(before, after)
    branch = [*model.resnet.layer3_2.parameters(), *model.resnet.layer4_2.parameters()]
    assert branch and not any(p.requires_grad for p in branch)


def test_cross_attention_attends_over_the_whole_clip():
    model = small_model(fusion="cross_attention", tpavi_stages=(3,), cross_attention_heads=2).eval()
    block = model.fusion_block(3)
    torch.nn.init.normal_(block.attention.out_proj.weight)  # starts at zero, like TPAVI's W_z
    frames, audio = clip_inputs(1, (64, 64))
    changed = audio.clone()
    changed[4] += 1.0  # only the last second's audio
    with torch.no_grad():
        _, maps, aligned = model(frames, audio)
        _, maps_changed, _ = model(frames, changed)
    assert aligned[3].shape == (1, 5, 8) and aligned[0] is None
    assert not torch.allclose(maps[3][0], maps_changed[3][0])  # frame 0 hears second 5 too


def test_official_resnet50_state_dict_names_and_shapes():
    # The fixture was written from the state_dict of the official layout: resnet50, 256, TPAVI at 0-3
    # after checking each name and shape by hand against the official AVSBench code (files and
    # commit recorded in the fixture); this test keeps the layout from drifting.
    model = AVSModel(ModelConfig(backbone="resnet50", channel=256, tpavi_stages=(0, 1, 2, 3)))
    fixture = json.loads(FIXTURE.read_text())
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert len(got) == 630 == fixture["count"]
    assert got == fixture["keys"]


# --- weight files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    return path, tv.state_dict()


def test_imagenet_resnet_loads_into_the_official_layout(resnet18_file):
    path, source = resnet18_file
    model = small_model()
    load_imagenet_resnet(model, path)
    own = model.resnet.state_dict()
    assert torch.equal(own["layer3_1.1.conv2.weight"], source["layer3.1.conv2.weight"])
    assert torch.equal(
        own["layer4_1.0.downsample.1.running_var"], source["layer4.0.downsample.1.running_var"]
    )
    assert all(
        torch.equal(own[k], source[k])
        for k in own
        if k.startswith(("conv1", "bn1", "layer1", "layer2"))
    )


def test_imagenet_resnet_also_fills_the_second_branch(resnet18_file):
    path, source = resnet18_file
    encoder = ResNetEncoder("resnet18", second_branch=True)
    load_imagenet_resnet(encoder, path)
    assert torch.equal(encoder.layer4_2[1].conv1.weight, source["layer4.1.conv1.weight"])


def test_imagenet_resnet_loads_into_crop_trunk(resnet18_file):
    path, source = resnet18_file
    crop = CropClassifier(trunk="resnet18")
    load_imagenet_resnet(crop, path)
    assert torch.equal(crop.trunk.layer3[0].conv1.weight, source["layer3.0.conv1.weight"])


def test_wrapped_checkpoint_with_module_prefix_and_old_batchnorm_loads(resnet18_file, tmp_path):
    path, source = resnet18_file
    old = {f"module.{k}": v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    wrapped = tmp_path / "wrapped.pth"
    # Legacy (pre-zip) serialisation, as the resnet50-19c8e357.pth the official code uses.
    torch.save({"state_dict": old, "epoch": 3}, wrapped, _use_new_zipfile_serialization=False)
    encoder = ResNetEncoder("resnet18")
    load_imagenet_resnet(encoder, wrapped)
    assert torch.equal(encoder.layer2[0].bn1.weight, source["layer2.0.bn1.weight"])


def test_resnet18_weights_for_a_resnet50_model_are_named(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(DataFormatError, match="looks like resnet18, model is resnet50"):
        load_imagenet_resnet(ResNetEncoder("resnet50"), path)


def test_truncated_weights_file_is_named(resnet18_file, tmp_path):
    path, _ = resnet18_file
    broken = tmp_path / "broken.pth"
    broken.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataFormatError, match="broken.pth.*truncated or corrupt"):
        load_imagenet_resnet(ResNetEncoder("resnet18"), broken)


def test_weights_file_holding_a_tensor_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(DataFormatError, match="expected a state_dict.*found a Tensor"):
        load_imagenet_resnet(ResNetEncoder("resnet18"), path)


class _NotWeights:
    pass


def test_weights_file_with_python_objects_is_refused(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"conv1.weight": _NotWeights()}, path)
    with pytest.raises(DataFormatError, match="refusing to unpickle"):
        load_imagenet_resnet(ResNetEncoder("resnet18"), path)


def test_weights_file_with_missing_keys_lists_them(resnet18_file, tmp_path):
    _, source = resnet18_file
    partial = {k: v for k, v in source.items() if not k.startswith("layer4.1.bn2")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(DataFormatError, match="missing keys: layer4.1.bn2.weight"):
        load_imagenet_resnet(ResNetEncoder("resnet18"), path)


def test_missing_weights_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_imagenet_resnet(ResNetEncoder("resnet18"), tmp_path / "nowhere.pth")


def test_no_weights_warns_random_initialisation():
    with pytest.warns(
        UserWarning, match="no pretrained weights given; using random initialisation"
    ):
        load_imagenet_resnet(ResNetEncoder("resnet18"), None)


def test_avs_checkpoint_round_trip(tmp_path):
    model = small_model(tpavi_stages=(2,))
    path = tmp_path / "avs.pth"
    torch.save(model.state_dict(), path)
    other = small_model(tpavi_stages=(2,))
    load_avs_checkpoint(other, path)
    assert torch.equal(other.tpavi_b3.phi.weight, model.tpavi_b3.phi.weight)
    with pytest.raises(DataFormatError, match="missing keys: tpavi_b1"):
        load_avs_checkpoint(small_model(tpavi_stages=(0, 2)), path)


# --- VGGish and the crop classifier ------------------------------------------------------------------


def test_vggish_names_output_and_channels_last_flatten():
    vggish = VGGish(freeze=True)
    names = [k for k, _ in vggish.named_parameters()]
    assert names[0] == "features.0.weight" and names[-1] == "embeddings.4.bias"
    assert all(n.startswith(("features.", "embeddings.")) for n in names)
    assert vggish.embeddings[0].in_features == 512 * 4 * 6
    assert not any(p.requires_grad for p in vggish.parameters())
    log_mel = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        out = vggish(log_mel)
        # [N, 512, 6, 4] -> [N, 6, 4, 512] -> [N, 12288]
        channels_last = vggish.features(log_mel).permute(0, 2, 3, 1).reshape(2, -1)
        expected = vggish.embeddings(channels_last)
    assert out.shape == (2, 128)
    torch.testing.assert_close(out, expected)
    assert out.grad_fn is None


def test_crop_classifier_at_224_matches_avgpool7_description():
    crop = CropClassifier(trunk="resnet18", final_relu=True).eval()
    crops = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        scores, embedding = crop(crops)
        pooled = torch.nn.AvgPool2d(7)(crop.trunk(crops)).flatten(1)  # [2, 512, 7, 7] -> [2, 512]
        expected_emb = crop.embedding(pooled)
    assert scores.shape == (2, 23) and embedding.shape == (2, 512)
    torch.testing.assert_close(embedding, expected_emb)
    torch.testing.assert_close(scores, torch.relu(crop.classifier(expected_emb)))


def test_crop_classifier_final_relu_switch():
    crop = CropClassifier(trunk="resnet18", final_relu=False).eval()
    with torch.no_grad():
        scores, embedding = crop(torch.randn(4, 3, 64, 64))
    torch.testing.assert_close(scores, crop.classifier(embedding))
    assert (scores < 0).any()


def test_final_relu_can_kill_the_crop_classifier_for_good():
    """Why the thesis' crop CE sat at ln(23) = 3.135 in the cpu grid: once every class score is
    <= 0 the ReLU outputs zeros, the softmax is uniform and no gradient reaches the classifier."""
    torch.manual_seed(0)
    crops, labels = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    for final_relu in (True, False):
        crop = CropClassifier(trunk="resnet18", final_relu=final_relu).eval()
        with torch.no_grad():
            crop.classifier.bias.fill_(-100.0)  # every score negative, as after a bad step
        scores, _ = crop(crops)
        loss = F.cross_entropy(scores, labels)
        loss.backward()
        grad = crop.classifier.weight.grad.abs().sum() + crop.embedding.weight.grad.abs().sum()
        if final_relu:
            assert loss.item() == pytest.approx(math.log(23), abs=1e-6) and grad.item() == 0.0
        else:
            assert grad.item() > 0.0


def test_shared_crop_classifier_uses_the_avs_encoder():
    model = small_model()
    crop = build_crop_classifier(
        ModelConfig(backbone="resnet18", channel=8, crop_trunk="shared"), model.resnet
    )
    assert crop.trunk is model.resnet and crop.embedding.in_features == 512
    scores, embedding = crop(torch.randn(2, 3, 64, 64))
    assert scores.shape == (2, 23) and embedding.shape == (2, 512)


# --- configuration and factories -----------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("backbone", "resnet99"),
        ("tpavi_stages", (0, 4)),
        ("recompute_stages", (0, 0)),
        ("fusion", "film"),
        ("tpavi_impl", "slow"),
        ("audio_encoder", "wav2vec"),
        ("crop_trunk", "vgg16"),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value}).validate()


def test_tpavi_without_vv_or_va_is_an_error():
    with pytest.raises(ValueError, match="tpavi_vv and tpavi_va"):
        ModelConfig(tpavi_va=False).validate()


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        ResNetEncoder("vit")


def test_build_model_and_parts_from_config():
    cfg = ModelConfig(
        backbone="resnet18",
        channel=8,
        tpavi_stages=[1],
        audio_encoder="small",
        crop_trunk="separate",
    )
    with pytest.warns(UserWarning, match="random initialisation"):
        model = build_model(cfg)
        crop = build_crop_classifier(cfg)
    assert isinstance(model, AVSModel) and model.fusion_stages == (1,)
    assert hasattr(model, "tpavi_b2") and not model.resnet.second_branch
    assert isinstance(crop.trunk, torch.nn.Sequential) and crop.embedding.in_features == 512
    audio = build_audio_encoder(cfg)
    assert audio(torch.randn(5, 1, 96, 64)).shape == (5, 128)
    assert build_audio_encoder(ModelConfig(fusion="none", audio_encoder="none")) is None
