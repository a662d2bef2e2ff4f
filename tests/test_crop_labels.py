"""Crop labels bootstrapped from the masks: where each box comes from, what is kept, and that the
files read back through the readers; methods with crop losses stop before training without them."""

from __future__ import annotations

import numpy as np
import pytest
from official_layout import FRAME_SIZE, voc_xml, write_mask, write_ms3, write_s4

from avs_lib.cli import main
from avs_lib.data import AVSBenchMS3, AVSBenchS4
from avs_lib.data.boxes import read_voc_annotation
from avs_lib.datatools.crop_labels import (
    ORIGIN_COPIED,
    ORIGIN_MASK,
    bootstrap_crop_labels,
    derive_boxes,
)
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.datasets import build_dataset, reads_crop_labels
from avs_lib.engine.train import fit

TRAIN, VAL = 0, 2  # positions in official_layout.S4_CLIPS


def _mask(box, size=8):
    mask = np.zeros((size, size), dtype=bool)
    xmin, ymin, xmax, ymax = box
    mask[ymin:ymax, xmin:xmax] = True
    return mask


# ---------------------------------------------------------------- where a box comes from


def test_a_frame_with_a_mask_gets_the_box_of_its_mask():
    derived = derive_boxes({0: _mask((1, 2, 4, 6)), 1: _mask((2, 2, 5, 6))}, frames=2)
    assert [(d.box, d.origin, d.from_frame) for d in derived] == [
        ((1, 2, 4, 6), ORIGIN_MASK, 0), ((2, 2, 5, 6), ORIGIN_MASK, 1)]


def test_frames_without_a_mask_copy_the_first_frames_box():
    derived = derive_boxes({0: _mask((1, 2, 4, 6))}, frames=5)
    assert [d.box for d in derived] == [(1, 2, 4, 6)] * 5
    assert [d.origin for d in derived] == [ORIGIN_MASK] + [ORIGIN_COPIED] * 4
    assert {d.from_frame for d in derived} == {0}


def test_an_empty_mask_copies_the_nearest_box_and_the_earlier_one_on_a_tie():
    masks = {0: _mask((0, 0, 2, 2)), 1: np.zeros((8, 8), bool), 2: _mask((4, 4, 6, 6))}
    derived = derive_boxes(masks, frames=3)
    assert (derived[1].box, derived[1].origin, derived[1].from_frame) == ((0, 0, 2, 2), ORIGIN_COPIED, 0)


def test_a_clip_whose_masks_are_all_empty_gets_no_box():
    assert derive_boxes({0: np.zeros((8, 8), bool)}, frames=5) == [None] * 5


# ---------------------------------------------------------------- the files


@pytest.fixture
def s4(tmp_path):
    root = tmp_path / "Single-source"
    return root, write_s4(root, crop_labels=False)


def test_written_labels_read_back_as_the_mask_boxes(s4):
    root, specs = s4
    bootstrap_crop_labels(root)
    boxes = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl", crop_labels=True)[0]["boxes"]
    assert boxes.tolist() == [[float(v) for v in box] for box in specs[VAL].boxes]


def test_train_frames_read_back_the_first_frames_box(s4):
    root, specs = s4
    bootstrap_crop_labels(root, splits=["train"])
    boxes = AVSBenchS4(root, "train", image_size=FRAME_SIZE, audio="pkl", crop_labels=True)[0]["boxes"]
    assert boxes.tolist() == [[float(v) for v in specs[TRAIN].boxes[0]]] * 5


def test_each_file_says_how_its_box_was_made(s4):
    root, specs = s4
    bootstrap_crop_labels(root, splits=["train"])
    folder = root / "s4_data" / "crop_labels" / "train" / specs[TRAIN].category / specs[TRAIN].name
    first = read_voc_annotation(folder / f"{specs[TRAIN].name}_1.xml")
    third = read_voc_annotation(folder / f"{specs[TRAIN].name}_3.xml")
    assert (first.derived["origin"], first.derived["from_frame"]) == (ORIGIN_MASK, "1")
    assert (third.derived["origin"], third.derived["from_frame"]) == (ORIGIN_COPIED, "1")
    assert third.objects[0].name == specs[TRAIN].category and third.image_size == (FRAME_SIZE, FRAME_SIZE)


def test_only_the_chosen_splits_are_written(s4):
    root, _ = s4
    report = bootstrap_crop_labels(root, splits=["val"])
    assert report.written == {ORIGIN_MASK: 5, ORIGIN_COPIED: 0}
    assert not (root / "s4_data" / "crop_labels" / "train").exists()


def test_a_hand_drawn_label_is_kept(s4):
    root, specs = s4
    spec = specs[VAL]
    xml = root / "s4_data" / "crop_labels" / "val" / spec.category / spec.name / f"{spec.name}_2.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(voc_xml(spec.files["frame2"], (0, 0, 5, 5), spec.category))  # no <derived> mark
    report = bootstrap_crop_labels(root, splits=["val"])
    assert report.kept == [xml] and report.written[ORIGIN_MASK] == 4
    assert read_voc_annotation(xml).objects[0].box == (0, 0, 5, 5)


def test_overwrite_replaces_a_hand_drawn_label(s4):
    root, specs = s4
    spec = specs[VAL]
    xml = root / "s4_data" / "crop_labels" / "val" / spec.category / spec.name / f"{spec.name}_2.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(voc_xml(spec.files["frame2"], (0, 0, 5, 5), spec.category))
    bootstrap_crop_labels(root, splits=["val"], overwrite=True)
    assert read_voc_annotation(xml).objects[0].box == spec.boxes[1]


def test_a_second_run_rewrites_its_own_files(s4):
    root, _ = s4
    bootstrap_crop_labels(root, splits=["val"])
    again = bootstrap_crop_labels(root, splits=["val"])
    assert again.kept == [] and again.written[ORIGIN_MASK] == 5


def test_a_clip_with_only_empty_masks_is_listed_and_gets_no_file(s4):
    root, specs = s4
    spec = specs[VAL]
    for i in range(1, 6):
        write_mask(spec.files[f"mask{i}"], (0, 0, 0, 0))
    report = bootstrap_crop_labels(root, splits=["val"])
    assert report.unboxed_clips == [f"val/{spec.name}"] and "draw their boxes" in report.summary()
    assert not (root / "s4_data" / "crop_labels" / "val").exists()


def test_ms3_labels_read_back_as_the_mask_boxes(tmp_path):
    specs = write_ms3(tmp_path)
    bootstrap_crop_labels(tmp_path, splits=["test"])
    xml = tmp_path / "ms3_data" / "crop_labels" / "test" / specs[3].name / f"{specs[3].name}.mp4_1.xml"
    assert read_voc_annotation(xml).objects[0].name == "sounding"
    boxes = AVSBenchMS3(tmp_path, "test", image_size=FRAME_SIZE, crop_labels=True)[0]["boxes"]
    assert boxes.tolist() == [[float(v) for v in box] for box in specs[3].boxes]


def test_the_command_writes_the_labels_and_prints_what_it_did(s4, capsys):
    root, _ = s4
    assert main(["crop-labels", str(root), "--split", "val", "--quiet"]) == 0
    assert "wrote 5 file(s) (5 box of the frame's own mask" in capsys.readouterr().out
    assert AVSBenchS4(root, "val", audio="pkl", crop_labels=True)[0]["boxes"].shape == (5, 4)


# ---------------------------------------------------------------- methods that need them


def _paper(root, method, tmp_path, **data):
    return build_config("paper", method, overrides={
        "data": {"root": str(root), "image_size": 32, "num_workers": 0, **data},
        "model": {"backbone": "resnet18", "channel": 32},
        "optim": {"epochs": 1, "batch_size": 2}, "output_dir": str(tmp_path / "runs"), "quiet": True,
    })


def test_the_paper_profile_reads_no_crop_labels_for_a_method_without_crop_losses(s4, tmp_path):
    root, _ = s4
    cfg = _paper(root, "tpavi", tmp_path)
    assert not reads_crop_labels(cfg, "train")
    assert len(build_dataset(cfg, "train")) == 2


def test_a_thesis_method_reads_crop_labels_only_for_training(s4, tmp_path):
    root, _ = s4
    cfg = _paper(root, "thesis", tmp_path)
    assert reads_crop_labels(cfg, "train") and not reads_crop_labels(cfg, "val")


def test_a_thesis_method_without_crop_labels_stops_before_training(s4, tmp_path):
    root, _ = s4
    cfg = _paper(root, "thesis", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m avs_lib crop-labels"):
        fit(cfg)
    assert not (cfg.run_dir / "last.pt").exists() and not (cfg.run_dir / "steps.jsonl").exists()


def test_a_thesis_method_with_crop_labels_switched_off_says_how_to_make_them(s4, tmp_path):
    root, _ = s4
    with pytest.raises(ValueError, match="crop-labels"):
        _paper(root, "thesis", tmp_path, crop_labels=False)  # the config refuses it


def test_the_crop_classifier_on_ms3_stops_before_training(tmp_path):
    write_ms3(tmp_path / "ms3")
    with pytest.raises(ValueError, match="MS3 clips have no category"):
        _paper(tmp_path / "ms3", "thesis", tmp_path, dataset="ms3")  # the config refuses it
