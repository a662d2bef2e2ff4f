"""inspection: the plain data behind the data figures, on a hand-written S4 tree."""

import numpy as np
import pandas as pd
import pytest
from official_layout import FRAME_SIZE, write_s4

from avs_lib.data import AVSBenchS4
from avs_lib.report import inspection
from avs_lib.report.inspection import clip_view, first_of_categories, mask_areas


@pytest.fixture
def s4_root(tmp_path):
    write_s4(tmp_path)
    return tmp_path


def test_mask_areas_one_row_per_mask_file_with_its_share_of_the_frame(s4_root):
    areas = mask_areas(s4_root)
    # train clips carry 1 mask, val and test clips 5: 1 + 1 + 5 + 5
    assert areas.groupby("split").size().to_dict() == {"train": 2, "val": 5, "test": 5}
    assert areas["area_fraction"].tolist() == pytest.approx([120 / FRAME_SIZE**2] * 12)


def test_clip_view_has_no_mask_where_the_train_split_has_none(s4_root):
    view = clip_view(AVSBenchS4(s4_root, "train", image_size=FRAME_SIZE, crop_labels=True), 0)
    assert view["frames"].shape == (5, FRAME_SIZE, FRAME_SIZE, 3) and view["frames"].dtype == np.uint8
    assert view["gt"][0].sum() == 120 and view["gt"][1:] == [None] * 4
    assert view["boxes"].shape == (5, 4)


def test_first_of_categories_picks_one_clip_per_category(s4_root):
    assert first_of_categories(AVSBenchS4(s4_root, "train", image_size=FRAME_SIZE), 2) == [0, 1]


def test_pick_swap_changes_takes_the_clips_whose_swapped_audio_mask_changes_most_and_least(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "audio_change_per_clip.csv").write_text(
        "audio,name,area_true,area_changed,iou_to_true,moved\n"
        "silent,a,0.1,0.0,0.0,True\nswapped,a,0.1,0.1,0.9,False\nswapped,b,0.1,0.3,0.2,True\nswapped,c,0.1,0.1,0.9,False\n")
    picked, rule = inspection.pick_swap_changes(tmp_path)
    assert (picked["most changed"]["name"], picked["least changed"]["name"]) == ("b", "c")
    assert "lowest IoU to its own-audio mask" in rule and "3 clips with a swap partner" in rule


def test_pick_swap_changes_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="audio_change_per_clip.csv"):
        inspection.pick_swap_changes(tmp_path)


class _MovingPredictor:
    """Two test clips, each the other's swap partner; the swapped audio moves the mask on frame 3 only."""

    def __init__(self, dataset):
        self.dataset, self.partners = dataset, [1, 0]

    def probabilities(self, run, index, audio):
        masks = np.zeros((5, FRAME_SIZE, FRAME_SIZE))
        masks[:, :4] = 1.0
        if audio == "swapped":
            masks[2] = masks[2][::-1]
        return masks


def test_real_swap_examples_ring_the_ground_truth_on_the_frame_whose_mask_moved_most(tmp_path):
    write_s4(tmp_path, clips=(("clip0", "helicopter", "train"), ("clip1", "helicopter", "test"),
                              ("clip2", "dog_barking", "test")))
    predictor = _MovingPredictor(AVSBenchS4(tmp_path, "test", image_size=FRAME_SIZE))
    rows = inspection.swap_example_rows(predictor, "tpavi_seed0", {"most changed": pd.Series({"name": "clip2"})})
    assert rows[0]["title"] == "clip2 (audio from clip1), frame 3"
    assert rows[0]["swapped_in"] is None and rows[0]["follows"] is None and rows[0]["sounding"].sum() == 120
    assert [label for label, _ in rows[0]["panels"]] == ["true audio", "swapped audio", "silent audio"]
