"""Specifications of avs_lib.losses: hand-computed values, gradient routing, TotalLoss wiring."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avs_lib import losses
from avs_lib.losses import (
    LossWeights,
    TotalLoss,
    audio_crop_cosine,
    avm_loss,
    counterfactual_bce,
    crop_ce,
    crop_pairwise_distance,
    selected_frames_bce,
)

LN2 = math.log(2.0)


def _official_first_frame_bce(logits, masks):
    """The official S4 formula restated: sigmoid, frames 0, 5, 10, ..., nn.BCELoss (mean)."""
    return nn.BCELoss()(torch.sigmoid(logits)[0::5], masks.reshape(-1, 1, *masks.shape[-2:]))


# ---------------------------------------------------------------- BCE terms


def _first_frames(n_clips):
    """mask_frames of S4 training: one mask per clip, on its first frame."""
    return torch.zeros(n_clips, 1, dtype=torch.long)


def test_first_frame_bce_matches_official_sigmoid_then_bceloss():
    torch.manual_seed(0)
    logits = torch.randn(10, 1, 3, 3, dtype=torch.float64)
    masks = (torch.rand(2, 1, 1, 3, 3) > 0.5).double()
    assert selected_frames_bce(logits, masks, _first_frames(2)).item() == pytest.approx(
        _official_first_frame_bce(logits, masks).item(), rel=1e-12
    )


def test_first_frame_bce_ignores_frames_two_to_five():
    torch.manual_seed(0)
    logits = torch.randn(10, 1, 3, 3, dtype=torch.float64)
    masks = (torch.rand(2, 1, 1, 3, 3) > 0.5).double()
    changed = logits.clone()
    changed[[1, 2, 3, 4, 6, 7, 8, 9]] = 50.0
    assert selected_frames_bce(changed, masks, _first_frames(2)).item() == pytest.approx(
        selected_frames_bce(logits, masks, _first_frames(2)).item(), rel=1e-12
    )


def test_first_frame_bce_of_zero_logits_is_ln2():
    logits = torch.zeros(5, 1, 2, 2)
    masks = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).reshape(1, 1, 1, 2, 2)
    assert selected_frames_bce(logits, masks, _first_frames(1)).item() == pytest.approx(LN2)


def test_selected_frames_bce_rejects_a_batch_that_is_not_whole_clips():
    with pytest.raises(ValueError, match="whole number of clips"):
        selected_frames_bce(torch.zeros(7, 1, 2, 2), torch.zeros(1, 1, 1, 2, 2), _first_frames(1))


def test_all_frames_bce_matches_official_sigmoid_then_bceloss():
    torch.manual_seed(1)
    logits = torch.randn(10, 1, 3, 3, dtype=torch.float64)
    masks = (torch.rand(2, 5, 1, 3, 3) > 0.5).double()
    expected = nn.BCELoss()(torch.sigmoid(logits), masks.flatten(0, 1))
    every = selected_frames_bce(logits, masks, torch.arange(5).repeat(2, 1))
    assert every.item() == pytest.approx(expected.item(), rel=1e-12)


def test_selected_frames_bce_picks_each_mask_s_own_frame():
    torch.manual_seed(2)
    logits = torch.randn(10, 1, 3, 3, dtype=torch.float64)
    masks = (torch.rand(2, 2, 1, 3, 3) > 0.5).double()
    expected = nn.BCELoss()(torch.sigmoid(logits[[1, 3, 5, 9]]), masks.flatten(0, 1))
    picked = selected_frames_bce(logits, masks, torch.tensor([[1, 3], [0, 4]]))
    assert picked.item() == pytest.approx(expected.item(), rel=1e-12)


def test_counterfactual_bce_averages_frames_by_weight():
    # frame 0: logits 0 -> ln 2; frame 1: confidently right -> ~0
    cf_logits = torch.stack([torch.zeros(1, 2, 2), torch.full((1, 2, 2), 40.0)]).double()
    cf_masks = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    assert counterfactual_bce(
        cf_logits, cf_masks, torch.tensor([1.0, 0.0])
    ).item() == pytest.approx(LN2)
    assert counterfactual_bce(
        cf_logits, cf_masks, torch.tensor([0.0, 1.0])
    ).item() == pytest.approx(0.0, abs=1e-12)
    assert counterfactual_bce(
        cf_logits, cf_masks, torch.tensor([1.0, 1.0])
    ).item() == pytest.approx(LN2 / 2)


def test_counterfactual_bce_without_valid_frames_is_zero_and_differentiable():
    cf_logits = torch.zeros(2, 1, 2, 2, requires_grad=True)
    loss = counterfactual_bce(cf_logits, torch.ones(2, 1, 2, 2), torch.zeros(2))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(cf_logits.grad, torch.zeros_like(cf_logits))


# ---------------------------------------------------------------- AVM


def _one_stage(audio, v_map, n_stages=4):
    """Put one stage's tensors at every stage index."""
    return [audio] * n_stages, [v_map] * n_stages


def test_avm_kl_matches_hand_computed_divergence():
    # logits 0 -> soft mask sigmoid(0) = 0.5 everywhere; 1x1 visual map [2, 0] -> pooled [1, 0]
    logits = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    audio_feats, maps = _one_stage(
        torch.zeros(1, 1, 2, dtype=torch.float64),
        torch.tensor([2.0, 0.0]).double().reshape(1, 2, 1, 1),
    )
    q1, q2 = math.e / (math.e + 1), 1 / (math.e + 1)  # softmax([1, 0])
    expected = 0.5 * math.log(0.5 / q1) + 0.5 * math.log(
        0.5 / q2
    )  # KL(softmax(audio) || softmax(visual))
    assert avm_loss(logits, audio_feats, maps, [0]).item() == pytest.approx(expected, rel=1e-12)


def test_avm_kl_is_summed_over_frames_not_averaged():
    torch.manual_seed(3)
    logits = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    audio = torch.randn(1, 5, 3, dtype=torch.float64)
    v_map = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    one = avm_loss(logits, *_one_stage(audio, v_map), [1])
    two = avm_loss(
        logits.repeat(2, 1, 1, 1), *_one_stage(audio.repeat(2, 1, 1), v_map.repeat(2, 1, 1, 1)), [1]
    )
    assert two.item() == pytest.approx(2 * one.item(), rel=1e-12)


def test_avm_cosine_matches_hand_computed_negative_log_cosine():
    # confident mask everywhere; visual feature [1, 0], audio [1, 1] -> cos = 1/sqrt(2)
    logits = torch.full((1, 1, 4, 4), 10.0, dtype=torch.float64)
    v_map = torch.tensor([1.0, 0.0]).double().reshape(1, 2, 1, 1).expand(1, 2, 2, 2)
    audio = torch.ones(1, 1, 2, dtype=torch.float64)
    loss = avm_loss(logits, *_one_stage(audio, v_map), [2], recipe="cosine")
    assert loss.item() == pytest.approx(-math.log(1 / math.sqrt(2) + 1e-6), rel=1e-9)


def test_avm_cosine_ignores_pixels_outside_the_thresholded_mask():
    logits = torch.full((1, 1, 2, 2), -10.0, dtype=torch.float64)
    logits[..., 0, 0] = 10.0  # object only at the top-left cell
    v_map = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    v_map[0, 0, 0, 0] = 1.0  # object feature [1, 0]
    v_map[0, 1, 1, 1] = 100.0  # background feature, must not count
    audio = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    loss = avm_loss(logits, *_one_stage(audio, v_map), [0], recipe="cosine")
    assert loss.item() == pytest.approx(-math.log(1 + 1e-6), abs=1e-9)


def test_avm_max_pooling_keeps_a_small_object_that_avg_pooling_loses():
    # one confident pixel out of 4 per cell: avg prob ~0.25 (< 0.5, dropped), max ~1 (kept)
    logits = torch.full((1, 1, 2, 2), -10.0, dtype=torch.float64)
    logits[..., 0, 0] = 10.0
    v_map = torch.tensor([1.0, 0.0]).double().reshape(1, 2, 1, 1)
    audio = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    avg = avm_loss(logits, *_one_stage(audio, v_map), [0], recipe="cosine", mask_pooling="avg")
    top = avm_loss(logits, *_one_stage(audio, v_map), [0], recipe="cosine", mask_pooling="max")
    assert avg.item() == pytest.approx(-math.log(1e-6), rel=1e-6)  # empty mask: zero feature, cos 0
    assert top.item() == pytest.approx(0.0, abs=1e-5)


def test_avm_averages_over_stages():
    torch.manual_seed(4)
    logits = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    audio = [torch.randn(1, 5, 3, dtype=torch.float64) for _ in range(4)]
    maps = [torch.randn(5, 3, 8 // 2**s, 8 // 2**s, dtype=torch.float64) for s in range(4)]
    each = [avm_loss(logits, audio, maps, [s]).item() for s in (0, 3)]
    assert avm_loss(logits, audio, maps, [0, 3]).item() == pytest.approx(sum(each) / 2, rel=1e-12)


def test_avm_rejects_a_stage_without_audio():
    audio = [None, torch.zeros(1, 5, 3), None, None]
    maps = [torch.zeros(5, 3, 2, 2)] * 4
    with pytest.raises(ValueError, match="stage 0 has no aligned audio"):
        avm_loss(torch.zeros(5, 1, 4, 4), audio, maps, [0, 1])


def test_avm_rejects_unknown_pooling_and_recipe():
    audio, maps = _one_stage(torch.zeros(1, 5, 3), torch.zeros(5, 3, 2, 2))
    with pytest.raises(ValueError, match="pooling"):
        avm_loss(torch.zeros(5, 1, 4, 4), audio, maps, [0], mask_pooling="median")
    with pytest.raises(ValueError, match="recipe"):
        avm_loss(torch.zeros(5, 1, 4, 4), audio, maps, [0], recipe="l2")


def test_avm_kl_gradient_reaches_mask_audio_and_visual_map():
    logits = torch.randn(5, 1, 4, 4, requires_grad=True)
    audio = torch.randn(1, 5, 3, requires_grad=True)
    v_map = torch.randn(5, 3, 2, 2, requires_grad=True)
    avm_loss(logits, *_one_stage(audio, v_map), [0]).backward()
    for tensor in (logits, audio, v_map):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_avm_cosine_gives_no_gradient_to_the_mask():
    logits = torch.randn(5, 1, 4, 4, requires_grad=True)
    audio = torch.randn(1, 5, 3, requires_grad=True)
    v_map = torch.randn(5, 3, 2, 2, requires_grad=True)
    avm_loss(logits, *_one_stage(audio, v_map), (0,), mask_pooling="max", recipe="cosine").backward()
    assert logits.grad is None
    assert audio.grad.abs().sum() > 0 and v_map.grad.abs().sum() > 0


# ---------------------------------------------------------------- the thesis' three


def test_crop_ce_of_uniform_scores_is_log_of_class_count():
    scores = torch.zeros(10, 23)
    assert crop_ce(scores, torch.arange(10)).item() == pytest.approx(math.log(23))


def test_crop_ce_on_ms3_is_refused_by_the_config_before_training():
    from avs_lib.datatools.profiles import build_config

    with pytest.raises(ValueError, match="MS3 clips have no category"):
        build_config("smoke", "thesis", overrides={"data": {"dataset": "ms3"}})


def test_crop_pairwise_distance_all_pairs_on_a_line():
    emb = torch.tensor([[[0.0], [1.0], [3.0]]], dtype=torch.float64)  # distances 1, 3, 2
    assert crop_pairwise_distance(emb, "all").item() == pytest.approx(2.0, abs=1e-5)


def test_crop_pairwise_distance_consecutive_pairs_on_a_line():
    emb = torch.tensor([[[0.0], [1.0], [3.0]]], dtype=torch.float64)  # distances 1, 2
    assert crop_pairwise_distance(emb, "consecutive").item() == pytest.approx(1.5, abs=1e-5)


def test_crop_pairwise_distance_means_over_clips():
    emb = torch.tensor([[[0.0], [2.0]], [[0.0], [4.0]]], dtype=torch.float64)
    assert crop_pairwise_distance(emb).item() == pytest.approx(3.0, abs=1e-5)


def test_crop_pairwise_distance_rejects_unknown_pairs():
    with pytest.raises(ValueError, match="pairs"):
        crop_pairwise_distance(torch.zeros(1, 5, 2), "random")


def test_audio_crop_cosine_hand_value():
    audio = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # clip audio [1, 0]
    crops = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # cos 1 and 0
    assert audio_crop_cosine(audio, crops).item() == pytest.approx(0.5)


def test_audio_crop_cosine_compares_crops_with_the_clip_mean_audio():
    audio = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # mean [0.5, 0.5]
    crops = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])  # per-second cosines would be 1/sqrt(2)
    assert audio_crop_cosine(audio, crops).item() == pytest.approx(0.0, abs=1e-6)


def test_audio_crop_cosine_gradient_reaches_audio_and_crops():
    audio = torch.randn(2, 5, 4, requires_grad=True)
    crops = torch.randn(2, 5, 4, requires_grad=True)
    audio_crop_cosine(audio, crops).backward()
    assert audio.grad.abs().sum() > 0 and crops.grad.abs().sum() > 0


# ---------------------------------------------------------------- TotalLoss


class StandIn(nn.Module):
    """A tiny model with the same outputs as the real one, each from its own parameters."""

    def __init__(self):
        super().__init__()
        self.visual = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, 1, 1)
        self.audio_align = nn.Linear(2, 4)
        self.crop_encoder = nn.Linear(3, 6)
        self.crop_classifier = nn.Linear(6, 23)
        self.crop_to_audio = nn.Linear(6, 4)
        self.cf_fuse = nn.Linear(2, 4)

    def forward(self, frames, audio, crops, cf_audio):
        n_clips = frames.shape[0] // 5
        fmap = self.visual(frames)  # [B*T, 4, 8, 8]
        aligned = self.audio_align(audio).reshape(n_clips, 5, 4)  # [B*T, 4] -> [B, T, 4]
        crop_emb = self.crop_encoder(crops)  # [B*T, 6]
        return {
            "logits": self.head(fmap),
            "feature_maps": [F.avg_pool2d(fmap, 2**s) for s in range(4)],
            "aligned_audio": [aligned] * 4,
            "crop_scores": self.crop_classifier(crop_emb),
            "crop_emb": crop_emb,
            "crop_emb_audio_space": self.crop_to_audio(crop_emb),
            "crop_audio": aligned,
            "cf_logits": self.head(fmap + self.cf_fuse(cf_audio)[:, :, None, None]),
        }


def _batch(n_clips=2):
    torch.manual_seed(5)
    n = n_clips * 5
    inputs = (torch.randn(n, 3, 8, 8), torch.randn(n, 2), torch.randn(n, 3), torch.randn(n, 2))
    batch = {
        "masks": (torch.rand(n_clips, 1, 1, 8, 8) > 0.5).float(),
        "mask_frames": torch.zeros(n_clips, 1, dtype=torch.long),
        "category": torch.tensor([3, 7][:n_clips]),
        "cf_masks": (torch.rand(n, 1, 8, 8) > 0.5).float(),
        "cf_valid": torch.ones(n),
    }
    return inputs, batch


ONLY = {name: {other: 0.0 for other in losses.TERMS} | {name: 1.0} for name in losses.TERMS}
EXPECTED_PARAMETERS = {
    "avs_bce": {"visual", "head"},
    "avm": {"visual", "head", "audio_align"},
    "crop_ce": {"crop_encoder", "crop_classifier"},
    "crop_pairwise": {"crop_encoder"},
    "audio_crop_cosine": {"audio_align", "crop_encoder", "crop_to_audio"},
    "counterfactual": {"visual", "head", "cf_fuse"},
}


@pytest.mark.parametrize("term", losses.TERMS)
def test_each_term_trains_exactly_its_own_parameters(term):
    model = StandIn()
    inputs, batch = _batch()
    total, _ = TotalLoss(LossWeights(**ONLY[term]))(model(*inputs), batch)
    total.backward()
    trained = {
        name.split(".")[0]
        for name, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert trained == EXPECTED_PARAMETERS[term]


def test_total_is_the_weighted_sum_of_components():
    model = StandIn()
    inputs, batch = _batch()
    weights = LossWeights(
        avs_bce=1.0,
        avm=0.5,
        crop_ce=2.0,
        crop_pairwise=0.1,
        audio_crop_cosine=3.0,
        counterfactual=0.7,
    )
    total, components = TotalLoss(weights)(model(*inputs), batch)
    expected = sum(getattr(weights, name) * components[name] for name in losses.TERMS)
    assert set(components) == set(losses.TERMS) | {"total"}
    assert all(type(value) is float for value in components.values())
    assert components["total"] == pytest.approx(expected, rel=1e-6)
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_default_weights_need_only_logits_and_masks():
    logits = torch.zeros(10, 1, 2, 2, requires_grad=True)
    batch = {"masks": torch.ones(2, 1, 1, 2, 2), "mask_frames": torch.zeros(2, 1, dtype=torch.long)}
    total, components = TotalLoss()({"logits": logits}, batch)
    assert set(components) == {"avs_bce", "total"}
    assert total.item() == pytest.approx(LN2)


def test_zero_weight_terms_are_never_computed(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a zero-weight term was computed")

    for name in (
        "avm_loss",
        "crop_ce",
        "crop_pairwise_distance",
        "audio_crop_cosine",
        "counterfactual_bce",
    ):
        monkeypatch.setattr(losses, name, must_not_run)
    logits = torch.zeros(5, 1, 2, 2)
    batch = {"masks": torch.ones(1, 1, 1, 2, 2), "mask_frames": torch.zeros(1, 1, dtype=torch.long)}
    total, components = TotalLoss(LossWeights())({"logits": logits}, batch)
    assert set(components) == {"avs_bce", "total"}


def test_zero_weight_bce_is_skipped_even_without_masks():
    crops = torch.randn(10, 6)
    total, components = TotalLoss(LossWeights(avs_bce=0.0, crop_pairwise=1.0))(
        {"crop_emb": crops}, {}
    )
    assert set(components) == {"crop_pairwise", "total"}


@pytest.mark.parametrize(
    ("term", "key"),
    [
        ("avm", "feature_maps"),
        ("crop_ce", "crop_scores"),
        ("crop_pairwise", "crop_emb"),
        ("audio_crop_cosine", "crop_audio"),
        ("counterfactual", "cf_logits"),
    ],
)
def test_missing_output_of_a_weighted_term_names_key_and_weight(term, key):
    model = StandIn()
    inputs, batch = _batch()
    outputs = model(*inputs)
    del outputs[key]
    with pytest.raises(ValueError, match=rf"{term}=1\.0.*{key}"):
        TotalLoss(LossWeights(**{term: 1.0}))(outputs, batch)


def test_missing_batch_key_of_a_weighted_term_is_named():
    model = StandIn()
    inputs, batch = _batch()
    del batch["cf_valid"]
    with pytest.raises(ValueError, match=r"counterfactual=0\.5.*batch\['cf_valid'\]"):
        TotalLoss(LossWeights(counterfactual=0.5))(model(*inputs), batch)


def test_crop_ce_labels_every_crop_with_its_clips_category():
    scores = torch.randn(10, 23, dtype=torch.float64)
    _, components = TotalLoss(LossWeights(avs_bce=0.0, crop_ce=1.0))(
        {"crop_scores": scores}, {"category": torch.tensor([3, 7])}
    )
    expected = F.cross_entropy(scores, torch.tensor([3] * 5 + [7] * 5))
    assert components["crop_ce"] == pytest.approx(expected.item(), rel=1e-12)


def test_audio_crop_cosine_uses_projected_crops_when_given():
    audio = torch.randn(2, 5, 4)
    projected = torch.randn(10, 4)
    outputs = {
        "crop_audio": audio,
        "crop_emb": torch.randn(10, 6),
        "crop_emb_audio_space": projected,
    }
    _, components = TotalLoss(LossWeights(avs_bce=0.0, audio_crop_cosine=1.0))(outputs, {})
    assert components["audio_crop_cosine"] == pytest.approx(
        audio_crop_cosine(audio, projected.reshape(2, 5, 4)).item()
    )


def _literal_cosine_outputs(audio: torch.Tensor, crops: torch.Tensor) -> dict:
    # crop_emb (512-d in the system) is only read by Loss B; C reads the projected crops
    return {"crop_audio": audio, "crop_emb": torch.zeros(crops.shape[0], crops.shape[1], 6),
            "crop_emb_audio_space": crops}


def test_literal_cosine_compares_crops_with_the_clips_mean_frozen_audio():
    # one clip of T=2: per-second audio [1, 0] and [0, 1] average to [0.5, 0.5] (the write-up
    # averages the five audio features first); crops along it (cos 1) and along [1, 0] (cos 1/sqrt 2)
    audio = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, T=2, D=2]
    crops = torch.tensor([[[2.0, 2.0], [3.0, 0.0]]])
    weights = LossWeights(avs_bce=0.0, audio_crop_cosine=1.0, cosine_audio="frozen", frames=2)
    _, components = TotalLoss(weights)(_literal_cosine_outputs(audio, crops), {})
    assert components["audio_crop_cosine"] == pytest.approx((0.0 + (1 - 1 / math.sqrt(2))) / 2, rel=1e-6)


def test_literal_cosine_gives_no_gradient_to_the_frozen_audio_features():
    audio = torch.randn(2, 5, 4, requires_grad=True)
    crops = torch.randn(2, 5, 4, requires_grad=True)
    literal = LossWeights(avs_bce=0.0, audio_crop_cosine=1.0, cosine_audio="frozen")
    total, _ = TotalLoss(literal)(_literal_cosine_outputs(audio, crops), {})
    total.backward()
    assert audio.grad is None  # detached: the audio encoder never learns from the literal C
    assert crops.grad.abs().sum() > 0
    today = TotalLoss(LossWeights(avs_bce=0.0, audio_crop_cosine=1.0))  # TPAVI's audio: trained
    today(_literal_cosine_outputs(audio, crops), {})[0].backward()
    assert audio.grad.abs().sum() > 0


def test_literal_cosine_has_the_value_of_todays_on_the_same_tensors():
    audio, crops = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    outputs = _literal_cosine_outputs(audio, crops)
    literal = TotalLoss(LossWeights(avs_bce=0.0, audio_crop_cosine=1.0, cosine_audio="frozen"))(outputs, {})
    today = TotalLoss(LossWeights(avs_bce=0.0, audio_crop_cosine=1.0))(outputs, {})
    assert literal[1] == today[1]  # the readings differ in which audio is given and what learns


@pytest.mark.parametrize(
    "overrides",
    [
        {"crop_ce": -1.0},
        {"avm": float("nan")},
        {"avm_pooling": "median"},
        {"avm_recipe": "l1"},
        {"pairs": "random"},
        {"cosine_audio": "vggish"},
        {"avm_stages": (4,)},
        {"avs_bce": 0.0},
    ],
)
def test_loss_weights_reject_bad_values(overrides):
    with pytest.raises(ValueError):
        LossWeights(**overrides)


def test_total_loss_accepts_clip_major_crop_and_counterfactual_shapes():
    model = StandIn()
    inputs, batch = _batch()
    outputs = model(*inputs)
    weights = LossWeights(crop_pairwise=1.0, audio_crop_cosine=1.0, counterfactual=1.0)
    _, flat = TotalLoss(weights)(outputs, batch)
    for key in ("crop_emb", "crop_emb_audio_space"):
        outputs[key] = outputs[key].reshape(2, 5, -1)  # [B*T, D] -> [B, T, D]
    batch["cf_masks"] = batch["cf_masks"].reshape(2, 5, 1, 8, 8)
    batch["cf_valid"] = batch["cf_valid"].reshape(2, 5)
    _, clip_major = TotalLoss(weights)(outputs, batch)
    assert clip_major == pytest.approx(flat, rel=1e-6)
