"""Audio-change diagnostics that need no sidecar: the maths, and a run on official-layout S4 and MS3."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from official_layout import write_ms3, write_s4

from avs_lib.datatools.profiles import build_config
from avs_lib.engine.datasets import build_dataset
from avs_lib.engine.evaluate import evaluate_system, swap_partners
from avs_lib.engine.system import AVSSystem
from avs_lib.metrics import SIDECAR_ONLY_NOTE, AudioChangeMeter, predicted_area, prediction_iou

ON, OFF = 10.0, -10.0  # logits far on either side of the 0.5 threshold


def _logits(*rows: str) -> torch.Tensor:
    """Frames from strings, rows split by "/": "1" predicted object, "0" background."""
    return torch.tensor([[[ON if c == "1" else OFF for c in row] for row in frame.split("/")] for frame in rows])


# ---------------------------------------------------------------- the maths


def test_predicted_area_is_the_share_of_object_pixels():
    assert predicted_area(_logits("11/00", "00/00")).tolist() == [0.5, 0.0]


def test_prediction_iou_compares_two_masks_and_two_empty_masks_agree():
    assert prediction_iou(_logits("11/00", "00/00"), _logits("10/00", "00/00")).tolist() == [0.5, 1.0]


def test_a_mask_moves_when_it_overlaps_its_true_audio_mask_less_than_half():
    meter = AudioChangeMeter()
    true = _logits("11/00", "11/00", "11/00", "11/00")  # two clips of two frames
    changed = _logits("11/00", "11/00", "01/10", "00/11")  # clip b: IoU 1/3 then 0
    meter.update(true, changed, ["a", "b"])
    result = meter.compute()
    assert result["per_clip"]["moved"].tolist() == [False, True]
    assert result["per_clip"]["iou_to_true"].tolist() == pytest.approx([1.0, 1 / 6])
    assert result["moved_share"] == 0.5 and result["area_change"] == 0.0


def test_area_change_is_signed_and_its_absolute_value_is_kept_too():
    meter = AudioChangeMeter()
    meter.update(_logits("11/00", "00/00"), _logits("00/00", "11/11"), ["shrinks", "grows"])
    result = meter.compute()
    assert result["area_change"] == pytest.approx(0.25) and result["abs_area_change"] == pytest.approx(0.75)


def test_an_empty_meter_reports_nan_and_no_clips():
    result = AudioChangeMeter().compute()
    assert result["clips"] == 0 and math.isnan(result["moved_share"])


# ---------------------------------------------------------------- on official-layout data


def _cfg(root, method: str, dataset: str):
    return build_config("smoke", method, overrides={
        "data": {"root": str(root), "dataset": dataset, "image_size": 32, "audio": "pkl",
                 "train_limit": None, "eval_limit": None},
        "eval_batch_size": 2, "quiet": True, "device": "cpu",
    })


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    write_s4(root / "s4", crop_labels=False)
    write_ms3(root / "ms3")
    return {"s4": root / "s4", "ms3": root / "ms3"}


def _evaluate(trees, dataset: str, method: str, out_dir=None):
    torch.manual_seed(0)
    cfg = _cfg(trees[dataset], method, dataset)
    system = AVSSystem(cfg)
    return evaluate_system(system, cfg, "train", torch.device("cpu"), out_dir=out_dir)


@pytest.mark.parametrize("dataset", ["s4", "ms3"])
def test_real_data_gets_the_audio_change_metrics(trees, dataset):
    metrics = _evaluate(trees, dataset, "tpavi")
    for mode in ("silent", "swapped"):
        assert metrics[f"{mode}_clips"] == 2
        for key in ("area_change", "abs_area_change", "iou_to_true", "moved_share", "miou_change"):
            assert math.isfinite(metrics[f"{mode}_{key}"]), f"{mode}_{key}"
        assert metrics[f"{mode}_miou_change"] == pytest.approx(metrics[f"miou_{mode}"] - metrics["miou"])


@pytest.mark.parametrize("dataset", ["s4", "ms3"])
def test_the_sidecar_only_rates_are_labelled_synthetic_only(trees, dataset):
    metrics = _evaluate(trees, dataset, "tpavi")
    assert math.isnan(metrics["listening_rate"]) and math.isnan(metrics["following_rate"])
    assert metrics["listening_rate_note"] == SIDECAR_ONLY_NOTE and "synthetic-only" in SIDECAR_ONLY_NOTE


def test_a_model_that_hears_nothing_never_moves(trees):
    metrics = _evaluate(trees, "s4", "visual_only")
    assert metrics["swapped_iou_to_true"] == 1.0 and metrics["swapped_moved_share"] == 0.0
    assert metrics["silent_area_change"] == 0.0 and metrics["silent_miou_change"] == 0.0


def test_ms3_clips_swap_in_another_clips_audio(trees):
    dataset = build_dataset(_cfg(trees["ms3"], "tpavi", "ms3"), "train")
    assert swap_partners(dataset) == [1, 0]


def test_the_per_clip_changes_are_written_beside_the_metrics(trees, tmp_path):
    _evaluate(trees, "ms3", "tpavi", out_dir=tmp_path)
    table = pd.read_csv(tmp_path / "audio_change_per_clip.csv")
    assert table["audio"].tolist() == ["silent", "silent", "swapped", "swapped"]
    assert {"area_true", "area_changed", "iou_to_true", "moved", "gt_iou_true", "gt_iou_changed"} <= set(table)
    assert table["gt_iou_true"].notna().all()
