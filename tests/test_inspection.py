"""inspection: the plain data behind the data figures, on a hand-written S4 tree."""

import numpy as np
import pytest
from official_layout import FRAME_SIZE, write_s4

from avs_lib.data import AVSBenchS4
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
