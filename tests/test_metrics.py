"""Specifications of avs_lib.metrics: the official IoU / F-score rules, the split accumulator,
and the audio-reliance measures."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avs_lib.metrics import (
    Evaluator,
    audio_following_rate,
    f_curves,
    f_score_curves,
    frame_iou,
    listening_rate,
    mask_iou,
    moved_to_swapped,
)


def _logits_of(probabilities) -> torch.Tensor:
    """Logits whose sigmoid is the given probabilities (float64)."""
    p = torch.as_tensor(probabilities, dtype=torch.float64)
    return torch.log(p) - torch.log1p(-p)


def _as_logits(mask: torch.Tensor) -> torch.Tensor:
    """A confident prediction of a binary mask."""
    return mask.double() * 20 - 10


# ---------------------------------------------------------------- IoU


def test_mask_iou_hand_case():
    logits = _as_logits(torch.tensor([[[1, 1], [0, 0]]]))
    target = torch.tensor([[[1, 0], [1, 0]]])
    assert mask_iou(logits, target).tolist() == pytest.approx([1 / 3])


def test_empty_ground_truth_scores_fraction_predicted_background():
    logits = _as_logits(torch.tensor([[[1, 0], [0, 0]]]))
    assert mask_iou(logits, torch.zeros(1, 2, 2)).tolist() == pytest.approx([3 / 4])


@pytest.mark.parametrize(
    ("logit", "target", "expected"),
    [(1.0, 1.0, 1.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)],
)
def test_constant_frames_follow_the_official_rules(logit, target, expected):
    # logit 0 -> sigmoid 0.5, which is not > 0.5: predicted background
    iou = mask_iou(torch.full((2, 5, 5), logit), torch.full((2, 5, 5), target))
    assert iou.tolist() == pytest.approx([expected, expected], abs=1e-6)


def test_tiny_positive_logit_is_background_as_sigmoid_rounds_to_half():
    # float32 sigmoid(1e-9) == 0.5 exactly, so the official rule says background
    logits = torch.full((1, 2, 2), 1e-9, dtype=torch.float32)
    assert mask_iou(logits, torch.ones(1, 2, 2)).tolist() == [0.0]


def test_mask_iou_accepts_channel_dimension():
    logits = _as_logits(torch.tensor([[[[1, 1], [0, 0]]]]))
    target = torch.tensor([[[[1, 0], [1, 0]]]])
    assert mask_iou(logits, target).shape == (1,)


def test_mask_iou_rejects_non_binary_target():
    with pytest.raises(ValueError, match="binary"):
        mask_iou(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5))


def test_mask_iou_agrees_with_torchmetrics_on_non_empty_frames():
    from torchmetrics.classification import (
        BinaryJaccardIndex,
    )  # imported here: DDP workers re-import this file

    torch.manual_seed(0)
    logits = torch.randn(6, 16, 16)
    target = torch.rand(6, 16, 16) > 0.6
    ours = mask_iou(logits, target)
    for i in range(6):
        reference = BinaryJaccardIndex(threshold=0.5)(torch.sigmoid(logits[i]), target[i].int())
        assert ours[i].item() == pytest.approx(reference.item(), abs=1e-6)


masks = st.lists(st.booleans(), min_size=9, max_size=9).map(
    lambda bits: torch.tensor(bits).reshape(1, 3, 3)
)


@settings(max_examples=60, deadline=None)
@given(pred=masks, target=masks)
def test_iou_lies_in_unit_interval(pred, target):
    iou = mask_iou(_as_logits(pred), target).item()
    assert 0.0 <= iou <= 1.0


@settings(max_examples=60, deadline=None)
@given(pred=masks, target=masks)
def test_iou_is_symmetric_for_non_empty_masks(pred, target):
    if pred.any() and target.any():
        forward = mask_iou(_as_logits(pred), target).item()
        backward = mask_iou(_as_logits(target), pred).item()
        assert forward == pytest.approx(backward, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(mask=masks)
def test_iou_of_identical_masks_is_one(mask):
    assert mask_iou(_as_logits(mask), mask).item() == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- F-score


def _one_frame(probabilities, target):
    return _logits_of(probabilities).reshape(1, 2, 2), torch.tensor(target).reshape(1, 2, 2)


def f_score(logits, target):
    """The official F-score of one test batch, as `Evaluator` computes it (here one clip)."""
    evaluator = Evaluator(official_batch_size=1)
    evaluator.update(logits, target, ["clip"], ["x"], list(range(len(logits))))
    return evaluator.compute()["f_score_official"]


def test_f_score_curves_hand_values():
    # thresholds are i / 254; index 127 is exactly 0.5
    logits, target = _one_frame([0.9, 0.6, 0.3, 0.1], [1, 1, 0, 0])
    precision, recall, valid = f_score_curves(logits, target)
    assert precision.shape == recall.shape == (1, 255)
    assert (precision[0, 0].item(), recall[0, 0].item()) == pytest.approx(
        (0.5, 1.0)
    )  # all 4 positive
    assert (precision[0, 127].item(), recall[0, 127].item()) == pytest.approx(
        (1.0, 1.0)
    )  # 0.9, 0.6
    assert (precision[0, 254].item(), recall[0, 254].item()) == (0.0, 0.0)  # none reaches 1.0
    assert valid.tolist() == [True]


def test_last_threshold_is_exactly_one_as_in_float32():
    logits = torch.full((1, 2, 2), 40.0)  # sigmoid saturates to 1.0 in float32
    precision, recall, _ = f_score_curves(logits, torch.ones(1, 2, 2))
    assert (precision[0, 254].item(), recall[0, 254].item()) == (1.0, 1.0)


def test_f_score_curves_match_a_threshold_by_threshold_count():
    torch.manual_seed(1)
    logits = torch.randn(3, 8, 8) * 3
    target = torch.rand(3, 8, 8) > 0.5
    precision, recall, _ = f_score_curves(logits, target)
    probs = torch.sigmoid(logits)
    for i, threshold in enumerate(torch.linspace(0, 1 - 1e-10, 255)):
        positive = probs >= threshold
        tp = (positive & target).flatten(1).sum(1).double()
        assert torch.allclose(precision[:, i], tp / (positive.flatten(1).sum(1) + 1e-20))
        assert torch.allclose(recall[:, i], tp / (target.flatten(1).sum(1) + 1e-20))


def test_f_score_of_a_separable_frame_is_one():
    logits, target = _one_frame([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert f_score(logits, target) == pytest.approx(1.0)


def test_f_score_skips_frames_with_empty_ground_truth():
    logits, target = _one_frame([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    with_empty = f_score(
        torch.cat([logits, torch.zeros(1, 2, 2)]),
        torch.cat([target, torch.zeros(1, 2, 2, dtype=torch.long)]),
    )
    assert with_empty == pytest.approx(1.0)


def test_f_score_of_a_batch_without_ground_truth_is_zero():
    assert f_score(torch.randn(2, 2, 2), torch.zeros(2, 2, 2)) == 0.0


def test_f_score_averages_per_frame_f_curves_then_takes_the_max():
    a_logits, a_target = _one_frame([0.3, 0.3, 0.1, 0.1], [1, 1, 0, 0])
    b_logits, b_target = _one_frame([0.9, 0.9, 0.6, 0.6], [1, 1, 0, 0])
    logits, target = torch.cat([a_logits, b_logits]), torch.cat([a_target, b_target])
    curves = f_curves(*f_score_curves(logits, target)[:2])
    assert f_score(logits, target) == pytest.approx(curves.mean(0).max().item())
    # hand value: at thresholds in (0.1, 0.3] frame a is perfect (F = 1) and frame b predicts
    # everything (P = 0.5, R = 1, F = 1.3 * 0.5 / (0.3 * 0.5 + 1))
    assert f_score(logits, target) == pytest.approx((1 + 0.65 / 1.15) / 2)


# ---------------------------------------------------------------- Evaluator


def _clip(probabilities, target, frames=1):
    logits, mask = _one_frame(probabilities, target)
    return logits.repeat(frames, 1, 1), mask.repeat(frames, 1, 1)


def _two_clips_with_disjoint_best_thresholds():
    """Clip a is perfectly separated at thresholds in (0.1, 0.3], clip b in (0.6, 0.9]."""
    return _clip([0.3, 0.3, 0.1, 0.1], [1, 1, 0, 0]), _clip([0.9, 0.9, 0.6, 0.6], [1, 1, 0, 0])


def _evaluate(batch_size, clips, names):
    evaluator = Evaluator(official_batch_size=batch_size)
    for (logits, target), name in zip(clips, names, strict=True):
        evaluator.update(logits, target, [name], ["dog_barking"], torch.arange(logits.shape[0]))
    return evaluator.compute()


def test_official_f_score_changes_with_batch_size_but_split_f_score_does_not():
    clips = _two_clips_with_disjoint_best_thresholds()
    one = _evaluate(1, clips, ["a", "b"])
    two = _evaluate(2, clips, ["a", "b"])
    assert one["f_score_official"] == pytest.approx(1.0)  # each batch has its own best threshold
    assert two["f_score_official"] == pytest.approx((1 + 0.65 / 1.15) / 2)  # one shared threshold
    assert one["f_score_split"] == two["f_score_split"] == pytest.approx((1 + 0.65 / 1.15) / 2)
    assert (one["official_batch_size"], two["official_batch_size"]) == (1, 2)


def test_official_batch_groups_clips_not_frames():
    # clips of 2 frames each; batch size 1 clip keeps both frames of a clip together
    (a_logits, a_target), (b_logits, b_target) = _two_clips_with_disjoint_best_thresholds()
    evaluator = Evaluator(official_batch_size=1)
    logits = torch.cat([a_logits, a_logits, b_logits, b_logits])
    target = torch.cat([a_target, a_target, b_target, b_target])
    evaluator.update(logits, target, ["a", "b"], ["x", "y"], [0, 1, 0, 1])
    result = evaluator.compute()
    assert result["f_score_official"] == pytest.approx(1.0)
    assert result["n_clips"] == 2 and result["n_frames"] == 4


def test_split_f_score_does_not_depend_on_update_chunking():
    torch.manual_seed(2)
    logits, target = torch.randn(6, 4, 4), torch.rand(6, 4, 4) > 0.5
    names = ["a", "a", "b", "b", "c", "c"]
    whole = Evaluator()
    whole.update(logits, target, names, ["x"] * 6, [0, 1] * 3)
    pieces = Evaluator()
    for i in range(6):
        pieces.update(logits[i : i + 1], target[i : i + 1], [names[i]], ["x"], [i % 2])
    assert pieces.compute()["f_score_split"] == pytest.approx(
        whole.compute()["f_score_split"], rel=1e-12
    )


def test_evaluator_tables_per_frame_clip_and_category():
    logits = _as_logits(torch.tensor([[[1, 1], [0, 0]], [[1, 0], [0, 0]], [[1, 1], [1, 1]]]))
    target = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]], [[1, 1], [1, 1]]])
    evaluator = Evaluator(official_batch_size=1)
    evaluator.update(logits[:2], target[:2], ["a"], ["dog_barking"], [0, 1])
    evaluator.update(logits[2:], target[2:], ["b"], ["helicopter"], [0])
    result = evaluator.compute()
    frames = result["per_frame"]
    assert list(frames.columns) == ["name", "category", "frame", "iou", "has_gt"]
    assert frames["iou"].tolist() == pytest.approx([1 / 3, 3 / 4, 1.0], abs=1e-6)
    assert frames["has_gt"].tolist() == [True, False, True]
    clips = result["per_clip"].set_index("name")
    assert clips.loc["a", "iou"] == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert clips.loc["a", "n_frames"] == 2
    categories = result["per_category"].set_index("category")
    assert categories.loc["helicopter", "miou"] == pytest.approx(1.0, abs=1e-6)
    assert categories.loc["dog_barking", "n_clips"] == 1
    assert result["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1) / 3, abs=1e-6)


def test_evaluator_rejects_a_frame_seen_twice():
    evaluator = Evaluator()
    evaluator.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), ["a"], ["x"], [0])
    evaluator.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), ["a"], ["x"], [0])
    with pytest.raises(ValueError, match="more than once"):
        evaluator.compute()


def test_evaluator_reset_forgets_frames():
    evaluator = Evaluator()
    evaluator.update(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), ["a"], ["x"], [0])
    evaluator.reset()
    with pytest.raises(ValueError, match="update"):
        evaluator.compute()


def test_evaluator_rejects_names_that_fit_neither_frames_nor_clips():
    with pytest.raises(ValueError, match="names"):
        Evaluator().update(
            torch.zeros(5, 2, 2), torch.ones(5, 2, 2), ["a", "b"], ["x"], list(range(5))
        )


# ---------------------------------------------------------------- audio reliance


def _objects():
    """Two frames, each with a sounding object on the left and a distractor on the right."""
    original = torch.zeros(2, 4, 4, dtype=torch.bool)
    swapped = torch.zeros(2, 4, 4, dtype=torch.bool)
    original[:, :, :2] = True
    swapped[:, 1:3, 3] = True
    return original, swapped


def test_listening_rate_is_one_for_a_model_that_follows_the_audio():
    original, swapped = _objects()
    assert listening_rate(swapped, original, swapped) == 1.0


def test_listening_rate_is_zero_for_a_model_that_ignores_the_audio():
    original, swapped = _objects()
    assert listening_rate(original, original, swapped) == 0.0


def test_listening_rate_counts_ties_as_not_moved():
    original, swapped = _objects()
    empty = torch.zeros_like(original)
    assert listening_rate(empty, original, swapped) == 0.0


def test_listening_rate_excludes_frames_without_either_object():
    original, swapped = _objects()
    original[1], swapped[1] = False, False
    pred = swapped.clone()
    pred[1] = True  # would not count either way
    moved, valid = moved_to_swapped(pred, original, swapped)
    assert valid.tolist() == [True, False]
    assert listening_rate(pred, original, swapped) == 1.0


def test_listening_rate_without_any_object_is_an_error():
    empty = torch.zeros(2, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="nothing to measure"):
        listening_rate(empty, empty, empty)


def test_listening_rate_thresholds_logits():
    original, swapped = _objects()
    assert listening_rate(_as_logits(swapped), original.float(), swapped.float()) == 1.0


def test_following_rate_is_zero_for_any_model_that_ignores_the_audio():
    # An audio-ignoring model that prefers the swapped-in object by its looks scores 1.0 on the
    # listening rate; the paired rate sees that its mask never moved.
    original, swapped = _objects()
    for fixed in (original, swapped, original | swapped, torch.zeros_like(original)):
        assert audio_following_rate(fixed, fixed, original, swapped) == 0.0
    assert listening_rate(swapped, original, swapped) == 1.0


def test_following_rate_is_one_for_a_model_that_follows_the_audio():
    original, swapped = _objects()
    assert audio_following_rate(original, swapped, original, swapped) == 1.0
    assert audio_following_rate(_as_logits(original), _as_logits(swapped), original, swapped) == 1.0


def test_following_rate_counts_frames_separately():
    original, swapped = _objects()
    pred_true = original.clone()
    pred_true[1] = swapped[1]  # frame 1 is on the wrong object even with the true audio
    assert audio_following_rate(pred_true, swapped, original, swapped) == 0.5


def test_iou_overlap_does_not_favour_the_larger_object():
    original, swapped = _objects()  # original 8 pixels, swapped 2
    pred = torch.zeros_like(original)
    pred[:, 0:3, 0] = True  # 3 pixels of the original (IoU 3/8)
    pred[:, 1:3, 3] = True  # all of the swapped-in object (IoU 2/5)
    assert listening_rate(pred, original, swapped, overlap="pixels") == 0.0
    assert listening_rate(pred, original, swapped, overlap="iou") == 1.0


def test_frame_iou_of_an_empty_ground_truth_is_the_background_fraction():
    pred = np.zeros((2, 2), dtype=bool)
    pred[0, 0] = True
    assert frame_iou(pred, np.zeros((2, 2), dtype=bool)) == pytest.approx(0.75)
    assert frame_iou(pred, pred) == pytest.approx(1.0)


def test_binary_iou_is_the_one_definition_used_for_logits_masks_and_single_frames():
    from avs_lib.metrics import binary_iou

    pred = torch.tensor([[[True, False], [False, False]], [[False, False], [False, False]]])
    target = torch.tensor([[[True, True], [False, False]], [[False, False], [False, False]]])
    # frame 0: inter 1 / union 2; frame 1: empty target, every pixel predicted background
    assert binary_iou(pred, target).tolist() == pytest.approx([0.5, 1.0], abs=1e-6)
    logits = torch.where(pred, 5.0, -5.0)
    assert mask_iou(logits, target).tolist() == binary_iou(pred, target).tolist()
    assert frame_iou(pred[1].numpy(), target[1].numpy()) == binary_iou(pred[1:], target[1:]).item()
    # an empty target with a non-empty prediction scores its background share, not 0 or 1
    assert binary_iou(np.ones((2, 2), bool), np.zeros((2, 2), bool)).item() == pytest.approx(0.0, abs=1e-6)
    assert binary_iou(np.eye(2, dtype=bool), np.zeros((2, 2), bool)).item() == pytest.approx(0.5, abs=1e-6)
