"""crop_review: box/mask agreement of the labelImg crop labels, on a hand-written S4 tree.

In tests/official_layout.py every box equals its mask's rectangle (10 x 12 pixels), so an
untouched frame scores IoU 1 and a moved box scores what is computed by hand below.
"""

import math

import numpy as np
import pandas as pd
import pytest
from official_layout import FRAME_SIZE, voc_xml, write_mask, write_ms3, write_s4

from avs_lib.data import AVSBenchS4
from avs_lib.datatools.crop_labels import bootstrap_crop_labels
from avs_lib.report.crop_review import (
    box_iou,
    box_statistics,
    coverage,
    crop_examples,
    label_status,
    review_all,
    review_crop_labels,
    review_splits,
    review_summary,
    save_review,
    with_boxes,
)


def test_box_iou_of_identical_boxes_is_one():
    assert box_iou((1, 2, 5, 6), (1, 2, 5, 6)) == 1.0


def test_box_iou_of_a_half_shifted_box_is_one_third():
    # 4x4 boxes overlapping in a 2x4 strip: 8 / (16 + 16 - 8)
    assert box_iou((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(1 / 3)


def test_box_iou_of_disjoint_boxes_is_zero():
    assert box_iou((0, 0, 2, 2), (3, 3, 5, 5)) == 0.0


def test_box_iou_rejects_an_empty_box():
    with pytest.raises(ValueError, match="max > min"):
        box_iou((2, 2, 2, 5), (0, 0, 4, 4))


@pytest.fixture
def s4(tmp_path):
    specs = write_s4(tmp_path)
    return tmp_path, {spec.name: spec for spec in specs}


def test_untouched_labels_agree_with_their_masks(s4):
    root, _ = s4
    review = review_crop_labels(AVSBenchS4(root, "val", image_size=FRAME_SIZE))
    assert review["iou"].tolist() == [1.0] * 5
    assert not review["flagged"].any()
    assert review["box_area_fraction"].tolist() == pytest.approx([120 / FRAME_SIZE**2] * 5)


def test_train_frames_without_a_mask_have_a_box_but_no_iou(s4):
    root, _ = s4
    review = review_crop_labels(AVSBenchS4(root, "train", image_size=FRAME_SIZE))
    first = review[review["name"] == "-_wznbUu3DY"]
    assert first["has_gt"].tolist() == [True, False, False, False, False]
    assert first["iou"].iloc[0] == 1.0 and first["iou"].iloc[1:].isna().all()


def test_a_moved_box_is_flagged_with_its_iou(s4):
    root, specs = s4
    spec = specs["3mJ2tN8xYbQ"]  # the val clip
    xmin, ymin, xmax, ymax = spec.boxes[2]
    moved = (xmin + 5, ymin, xmax + 5, ymax)  # 10x12 box shifted by half its width
    spec.files["xml3"].write_text(voc_xml(spec.files["frame3"], moved, spec.category))
    review = review_crop_labels(AVSBenchS4(root, "val", image_size=FRAME_SIZE))
    row = review[review["frame"] == 3].iloc[0]
    assert row["iou"] == pytest.approx(60 / 180)
    assert row["flagged"] and "IoU 0.33 < 0.5" in row["reason"]
    assert review["flagged"].sum() == 1


def test_a_missing_label_is_a_flagged_row_naming_the_file(s4):
    root, specs = s4
    specs["3mJ2tN8xYbQ"].files["xml4"].unlink()
    review = review_crop_labels(AVSBenchS4(root, "val", image_size=FRAME_SIZE))
    row = review[review["frame"] == 4].iloc[0]
    assert row["flagged"] and "3mJ2tN8xYbQ_4.xml" in row["reason"]
    assert math.isnan(row["iou"])


def test_an_empty_mask_with_a_box_is_flagged(s4):
    root, specs = s4
    spec = specs["3mJ2tN8xYbQ"]
    write_mask(spec.files["mask2"], (0, 0, 0, 0))
    review = review_crop_labels(AVSBenchS4(root, "val", image_size=FRAME_SIZE))
    assert review.loc[review["frame"] == 2, "reason"].item() == "the ground-truth mask is empty but the frame has a box"


def test_save_review_writes_only_the_flagged_rows(tmp_path):
    review = pd.DataFrame({"name": ["a", "b"], "flagged": [True, False], "reason": ["bad box", ""]})
    path = save_review(review, tmp_path / "out" / "review.csv")
    assert pd.read_csv(path)["name"].tolist() == ["a"]


def test_box_statistics_count_flags_per_category(s4):
    root, _ = s4
    review = review_crop_labels(AVSBenchS4(root, "train", image_size=FRAME_SIZE))
    stats = box_statistics(review)
    assert stats.loc["dog_barking", "frames"] == 5 and stats.loc["dog_barking", "frames_with_gt"] == 1
    assert stats["flagged"].sum() == 0


def test_crop_examples_show_the_object_colour_the_classifier_sees(s4):
    root, _ = s4
    crops, labels = crop_examples(AVSBenchS4(root, "val", image_size=FRAME_SIZE, crop_labels=True), [0], size=16)
    assert crops.shape == (1, 16, 16, 3) and crops.dtype == np.uint8
    assert labels == ["dog_barking"]
    # The box holds only the object: every pixel of the crop is its colour, give or take rounding.
    assert np.abs(crops[0].astype(int) - np.array([250, 200, 20])).max() <= 1


# ---------------------------------------------------------------- trees as AVSBench ships them


@pytest.mark.parametrize("subset", ["s4", "ms3"])
def test_the_notebooks_review_of_a_tree_without_labels_says_how_to_make_them(tmp_path, subset):
    if subset == "s4":
        write_s4(tmp_path, crop_labels=False)
    else:
        write_ms3(tmp_path)
    splits = review_splits(tmp_path, subset, image_size=FRAME_SIZE)
    status = label_status(splits)
    review = review_all(splits, status)
    assert not status.found and with_boxes(splits, status) == {}
    assert f"python -m avs_lib crop-labels {tmp_path}" in status.message
    assert review.empty and coverage(review).empty and box_statistics(review).empty
    assert save_review(review, tmp_path / "review.csv").is_file()
    summary = review_summary(review, status)
    assert not summary["found"] and summary["frames"] == summary["flagged"] == 0


def test_coverage_counts_the_boxes_by_where_they_came_from(tmp_path):
    write_s4(tmp_path, crop_labels=False)
    bootstrap_crop_labels(tmp_path)
    splits = review_splits(tmp_path, image_size=FRAME_SIZE)
    status = label_status(splits)
    review = review_all(splits, status)
    table = coverage(review)
    assert table.loc["train", ["frames", "labelled", "from_mask", "copied", "drawn"]].tolist() == [10, 10, 2, 8, 0]
    assert table.loc["val", "coverage"] == 1.0 and table.loc["val", "mean_iou"] == 1.0
    summary = review_summary(review, status)  # notebook 02's closing sentence reads these
    assert summary["frames"] == table["frames"].sum()
    assert [summary[k] for k in ("from_mask", "copied", "drawn")] == [table[k].sum() for k in ("from_mask", "copied", "drawn")]
    assert summary["flagged"] == int(review[review["has_gt"]]["flagged"].sum())


def test_hand_drawn_labels_count_as_drawn(s4):
    root, _ = s4
    splits = review_splits(root, image_size=FRAME_SIZE)
    review = review_all(splits, label_status(splits))
    assert set(review["origin"]) == {"drawn"}


def test_a_tree_labelled_for_training_only_shows_boxes_for_training_only(tmp_path):
    write_s4(tmp_path, crop_labels=False)
    bootstrap_crop_labels(tmp_path, splits=["train"])
    splits = review_splits(tmp_path, image_size=FRAME_SIZE)
    status = label_status(splits)
    assert status.missing == {"train": 0, "val": 5, "test": 5} and "files missing" in status.message
    assert list(with_boxes(splits, status)) == ["train"]
    assert coverage(review_all(splits, status)).loc["val", "coverage"] == 0.0
