"""check_dataset lists every problem of an AVSBench folder, each with its path and what was expected."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from official_layout import (
    FRAME_SIZE,
    voc_xml,
    write_frame,
    write_mask,
    write_ms3,
    write_s4,
    write_wav,
)
from PIL import Image

from avs_lib.datatools.check import Problem, Report, check_dataset

TRAIN, VAL, TEST = 0, 2, 3  # positions in official_layout.S4_CLIPS


@pytest.fixture
def s4(tmp_path):
    root = tmp_path / "Single-source"
    return root, write_s4(root)


def check(root: Path, **options) -> Report:
    return check_dataset(root, progress=False, **options)


def only_problem(report: Report) -> Problem:
    assert len(report.problems) == 1, report.summary()
    return report.problems[0]


# ---------------------------------------------------------------------------------- clean


def test_clean_s4_dataset_has_no_problems(s4):
    root, _ = s4
    report = check(root)
    assert report.ok and report.problems == []
    assert report.layout == "s4"
    assert report.counts == {
        "train": {"helicopter": 1, "dog_barking": 1},
        "val": {"dog_barking": 1},
        "test": {"helicopter": 1},
    }
    # 20 frames, 1+1+5+5 masks, 4 WAV, 4 pkl, 20 crop labels
    assert report.files_checked == 60
    assert "No problems found" in report.summary()


def test_clean_ms3_dataset_has_no_problems(tmp_path):
    write_ms3(tmp_path)
    report = check(tmp_path)
    assert report.ok, report.summary()
    assert report.layout == "ms3"
    assert report.counts == {"train": {"": 2}, "val": {"": 1}, "test": {"": 1}}


def test_counts_frame_has_categories_by_split(s4):
    root, _ = s4
    frame = check(root).counts_frame()
    assert list(frame.columns) == ["train", "val", "test"]
    assert frame.loc["dog_barking"].tolist() == [1, 1, 0]


def test_splits_option_checks_only_those_clips(s4):
    root, specs = s4
    specs[TRAIN].files["frame1"].unlink()
    report = check(root, splits=["val"])
    assert report.ok and report.counts == {"val": {"dog_barking": 1}}


def test_audio_cache_and_extra_train_masks_are_not_problems(s4):
    root, specs = s4
    spec = specs[TRAIN]
    write_mask(spec.files["mask1"].with_name(f"{spec.name}_3.png"), spec.boxes[2])
    (spec.files["wav"].with_name(f"{spec.name}.logmel.npy")).write_bytes(b"cache")
    assert check(root).ok


def test_no_metadata_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="s4_meta_data.csv"):
        check(tmp_path)


# ------------------------------------------------------------------------------- frames


def test_truncated_png_is_unreadable(s4):
    root, specs = s4
    frame = specs[VAL].files["frame2"]
    frame.write_bytes(frame.read_bytes()[:60])
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (frame, "unreadable")
    assert "expected a readable frame 2" in problem.message


def test_missing_frame_is_reported(s4):
    root, specs = s4
    specs[TEST].files["frame4"].unlink()
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[TEST].files["frame4"], "missing_file")
    assert "5 frames" in problem.message


def test_frame_of_another_size_than_its_clip_is_reported(s4):
    root, specs = s4
    frame = specs[VAL].files["frame3"]
    Image.new("RGB", (40, 32)).save(frame)
    report = check(root)
    # the reader would refuse its mask and box too: both must match their own frame
    kinds = {(p.path, p.kind) for p in report.problems}
    assert kinds == {(frame, "frame_size"), (specs[VAL].files["mask3"], "mask_size"),
                     (specs[VAL].files["xml3"], "crop_label")}
    message = next(p.message for p in report.problems if p.kind == "frame_size")
    assert "frame is 40x32, expected 32x32" in message


def test_image_size_option_requires_that_size(s4):
    root, _ = s4
    report = check(root, image_size=224)
    assert report.kinds()["frame_size"] == 20
    assert "expected 224x224" in report.problems[0].message


def test_greyscale_frame_is_not_rgb(s4):
    root, specs = s4
    frame = specs[TRAIN].files["frame1"]
    Image.open(frame).convert("L").save(frame)
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (frame, "frame_not_rgb")
    assert "mode L, expected RGB" in problem.message


# -------------------------------------------------------------------------------- masks


def test_mask_of_another_size_is_reported(s4):
    root, specs = s4
    mask = specs[VAL].files["mask4"]
    write_mask(mask, (1, 1, 5, 5), size=16)
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (mask, "mask_size")
    assert "mask is 16x16, expected 32x32" in problem.message


def test_non_binary_mask_is_reported_with_its_values(s4):
    root, specs = s4
    mask = specs[TRAIN].files["mask1"]
    pixels = np.asarray(Image.open(mask)).copy()
    pixels[0, 0] = 128  # an antialiased edge
    Image.fromarray(pixels, mode="L").save(mask)
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (mask, "mask_not_binary")
    assert "{0, 128, 255}" in problem.message and "expected only 0 and 255" in problem.message


def test_zero_one_masks_are_binary(s4):
    root, specs = s4
    write_mask(specs[VAL].files["mask1"], specs[VAL].boxes[0])
    pixels = (np.asarray(Image.open(specs[VAL].files["mask1"])) > 0).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(specs[VAL].files["mask1"])
    assert check(root).ok


def test_val_clip_missing_a_mask_is_reported(s4):
    root, specs = s4
    specs[VAL].files["mask5"].unlink()
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[VAL].files["mask5"], "missing_file")
    assert "val clips need masks _1 .. _5" in problem.message


# -------------------------------------------------------------------------------- audio


def test_three_second_wav_is_short(s4):
    root, specs = s4
    write_wav(specs[VAL].files["wav"], 3.0, 440.0)
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[VAL].files["wav"], "audio_short")
    assert "audio lasts 3.00 s, expected 5 s" in problem.message


def test_garbage_wav_is_unreadable(s4):
    root, specs = s4
    specs[TEST].files["wav"].write_bytes(b"not a wav at all")
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[TEST].files["wav"], "unreadable")
    assert "expected a PCM or float WAV" in problem.message  # the reader's own message


def test_pkl_of_the_wrong_shape_is_reported(s4):
    root, specs = s4
    specs[TRAIN].files["pkl"].write_bytes(pickle.dumps(torch.zeros(5, 96, 64)))
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[TRAIN].files["pkl"], "log_mel_shape")
    assert "expected [5, 1, 96, 64]" in problem.message


class _CreatesFile:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pkl_is_refused_without_running(s4, tmp_path):
    root, specs = s4
    marker = tmp_path / "pwned"
    specs[VAL].files["pkl"].write_bytes(pickle.dumps(_CreatesFile(marker)))
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[VAL].files["pkl"], "unreadable")
    assert "refused" in problem.message
    assert not marker.exists()


def test_audio_option_requires_the_folder(s4):
    root, specs = s4
    for spec in specs:
        spec.files["pkl"].unlink()
    (root / "s4_data" / "audio_log_mel").rename(root / "elsewhere")
    assert check(root).ok  # "auto" checks the audio that is there
    problem = only_problem(check(root, audio="pkl"))
    assert (problem.path, problem.kind) == (root / "s4_data" / "audio_log_mel", "missing_dir")


# ---------------------------------------------------------------------------------- CSV


def test_csv_missing_a_column_is_the_only_problem(s4):
    root, _ = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text("name,category,split\nabc,helicopter,train\n")
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (csv, "csv")
    assert "expected header name,start,category,split" in problem.message


def test_unknown_split_and_category_and_duplicates_are_all_listed(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    text = csv.read_text().replace(",val\n", ",valid\n").replace("0,helicopter,", "0,helicopters,")
    csv.write_text(text + f"{specs[TEST].name},1,helicopter,test\n")
    report = check(root)
    csv_problems = {p.kind: p.message for p in report.problems if p.path == csv}
    assert "unknown split 'valid' on line 4" in csv_problems["unknown_split"]
    assert "unknown category 'helicopters' on line 2" in csv_problems["unknown_category"]
    assert f"clip '{specs[TEST].name}' appears on lines 5, 6" in csv_problems["duplicate_name"]


def test_row_without_files_reports_each_missing_file(s4):
    root, _ = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text() + "ghost_clip01,2,lawn_mowing,val\n")
    report = check(root)
    missing = {p.path for p in report.problems if p.kind == "missing_file"}
    data = root / "s4_data"
    where = Path("val") / "lawn_mowing"
    assert data / "visual_frames" / where / "ghost_clip01" / "ghost_clip01_1.png" in missing
    assert data / "gt_masks" / where / "ghost_clip01" / "ghost_clip01_5.png" in missing
    assert data / "audio_wav" / where / "ghost_clip01.wav" in missing
    assert data / "audio_log_mel" / where / "ghost_clip01.pkl" in missing
    assert data / "crop_labels" / where / "ghost_clip01" / "ghost_clip01_3.xml" in missing
    assert len(report.problems) == len(missing) == 5 + 5 + 1 + 1 + 5


def test_clip_folder_without_a_row_is_an_orphan(s4):
    root, _ = s4
    folder = root / "s4_data" / "visual_frames" / "train" / "helicopter" / "stray_clip"
    for i in range(1, 6):
        write_frame(folder / f"stray_clip_{i}.png", (0, 0, 0), (1, 1, 3, 3))
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (folder, "orphan_clip")
    assert "5 file(s)" in problem.message and "no row in s4_meta_data.csv" in problem.message


def test_audio_file_without_a_row_is_an_orphan(tmp_path):
    write_ms3(tmp_path)
    wav = tmp_path / "ms3_data" / "audio_wav" / "val" / "stray.wav"
    write_wav(wav, 5.0, 200.0)
    problem = only_problem(check(tmp_path))
    assert (problem.path, problem.kind) == (wav, "orphan_file")
    assert "no row in ms3_meta_data.csv" in problem.message


def test_every_problem_is_listed_not_just_the_first(s4):
    root, specs = s4
    specs[TRAIN].files["frame1"].unlink()
    specs[VAL].files["mask2"].unlink()
    write_wav(specs[TEST].files["wav"], 2.0, 300.0)
    specs[VAL].files["xml1"].write_text("<annotation>")
    report = check(root)
    assert report.kinds() == {"missing_file": 2, "audio_short": 1, "crop_label": 1}
    frame = report.to_frame()
    assert list(frame.columns) == ["path", "kind", "message"] and len(frame) == 4
    summary = report.summary()
    assert "4 problems" in summary and str(specs[VAL].files["mask2"]) in summary


# --------------------------------------------------------------------------- crop labels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<annotation><size>", "malformed XML"),
        (voc_xml(Path("f.png"), (20, 4, 40, 12), "dog_barking"), "outside the 32x32 image"),
        (voc_xml(Path("f.png"), (10, 4, 10, 12), "dog_barking"), "zero-area"),
        (voc_xml(Path("f.png"), (1, 1, 9, 9), "male_speech"), "expected 'dog_barking'"),
    ],
    ids=["malformed", "outside", "zero_area", "wrong_name"],
)
def test_bad_crop_label_is_reported(s4, text, expected):
    root, specs = s4
    xml = specs[VAL].files["xml2"]
    xml.write_text(text)
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (xml, "crop_label")
    assert expected in problem.message


def test_missing_crop_label_is_reported(s4):
    root, specs = s4
    specs[TRAIN].files["xml5"].unlink()
    problem = only_problem(check(root))
    assert (problem.path, problem.kind) == (specs[TRAIN].files["xml5"], "missing_file")
    assert "labelImg" in problem.message


def test_crop_labels_are_skipped_when_absent(tmp_path):
    write_s4(tmp_path, crop_labels=False)
    assert check(tmp_path).ok
    problem = only_problem(check(tmp_path, crop_labels=True))
    assert (problem.path, problem.kind) == (tmp_path / "s4_data" / "crop_labels", "missing_dir")


def test_frame_size_uses_the_clip_majority(s4):
    """One odd frame among five is the odd one out, not the other four."""
    root, specs = s4
    frame = specs[TEST].files["frame1"]
    Image.new("RGB", (FRAME_SIZE, 20)).save(frame)
    report = check(root)
    assert [p.path for p in report.problems if p.kind == "frame_size"] == [frame]
