"""The synthetic S4 generator: exact layout, truthful masks and boxes, audio-only identity."""

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from avs_lib.data.audio import waveform_to_examples
from avs_lib.data.avsbench import S4_LAYOUT, ClipPaths, ClipRecord, clip_paths, read_crop_label
from avs_lib.data.boxes import box_from_mask
from avs_lib.data.categories import CATEGORY_TO_INDEX, NUM_CLASSES, S4_CATEGORIES
from avs_lib.data.sidecar import read_info, read_sidecar
from avs_lib.datatools.synth import (
    CLASS_LOOKS,
    CLASS_SOUNDS,
    SynthParams,
    make_dataset,
    plan_clips,
    render_clip,
    synthesize_sound,
)
from avs_lib.report.ceiling import visual_only_ceiling

TINY = {"videos_per_split": (6, 4, 4), "image_size": 64, "seed": 3}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "data"
    make_dataset(path, **TINY, workers=2, progress=False)
    return path


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "s4_meta_data.csv", newline="") as file:
        return list(csv.DictReader(file))


def _paths(root: Path, row: dict[str, str]) -> ClipPaths:
    return clip_paths(S4_LAYOUT, root, ClipRecord(row["name"], row["category"], row["split"]))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_meta_csv_has_the_s4_header_and_youtube_like_names(root):
    header = (root / "s4_meta_data.csv").read_text().splitlines()[0]
    rows = _rows(root)
    assert header == "name,start,category,split"
    assert [r["split"] for r in rows] == ["train"] * 6 + ["val"] * 4 + ["test"] * 4
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", r["name"]) for r in rows)
    assert len({r["name"] for r in rows}) == len(rows)
    assert all(r["start"].isdigit() and r["category"] in CATEGORY_TO_INDEX for r in rows)


def test_every_clip_has_five_rgb_frames_of_the_requested_size(root):
    for row in _rows(root):
        folder = _paths(root, row).frames[0].parent
        names = sorted(p.name for p in folder.iterdir())
        assert names == [f"{row['name']}_{i}.png" for i in range(1, 6)]
        with Image.open(folder / names[0]) as image:
            assert (image.mode, image.size) == ("RGB", (64, 64))


def test_train_split_has_only_the_first_mask_and_eval_splits_all_five(root):
    for row in _rows(root):
        folder = _paths(root, row).masks[0].parent
        found = sorted(p.name for p in folder.iterdir())
        frames = [1] if row["split"] == "train" else [1, 2, 3, 4, 5]
        assert found == [f"{row['name']}_{i}.png" for i in frames]


def test_wav_is_five_seconds_of_16khz_int16_mono(root):
    for row in _rows(root):
        info = soundfile.info(_paths(root, row).wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == 5 * 16000


def test_gt_masks_are_binary_and_equal_the_sidecar_sounding_mask(root):
    for row in _rows(root):
        sidecar = read_sidecar(root, row["split"], row["name"])
        folder = _paths(root, row).masks[0].parent
        for path in folder.iterdir():
            i = int(path.stem.rsplit("_", 1)[1])
            with Image.open(path) as image:
                assert image.mode == "L"
                mask = np.asarray(image)
            assert set(np.unique(mask)) <= {0, 255}
            np.testing.assert_array_equal(mask // 255, sidecar.masks[0, i - 1])


def test_sounding_mask_is_never_empty(root):
    for row in _rows(root):
        sidecar = read_sidecar(root, row["split"], row["name"])
        assert sidecar.masks[0].sum(axis=(1, 2)).min() > 0


def test_sidecar_object_masks_do_not_overlap(root):
    for row in _rows(root):
        masks = read_sidecar(root, row["split"], row["name"]).masks  # [K, 5, H, W]
        assert masks.sum(axis=0).max() <= 1


def test_crop_box_is_the_sounding_object_box_and_covers_its_visible_mask(root):
    for row in _rows(root):
        sidecar = read_sidecar(root, row["split"], row["name"])
        folder = _paths(root, row).crop_labels[0].parent
        for i in range(1, 6):
            box, _ = read_crop_label(folder / f"{row['name']}_{i}.xml", row["category"], None)
            assert box == tuple(sidecar.boxes[0, i - 1])
            x0, y0, x1, y1 = box_from_mask(sidecar.masks[0, i - 1])
            assert box[0] <= x0 and box[1] <= y0 and box[2] >= x1 and box[3] >= y1


def test_box_is_tight_on_the_mask_when_nothing_hides_the_object(root):
    unoccluded = 0
    for row in _rows(root):
        sidecar = read_sidecar(root, row["split"], row["name"])
        for k, t in zip(*np.nonzero(sidecar.visible_fraction == 1.0), strict=True):
            assert tuple(sidecar.boxes[k, t]) == box_from_mask(sidecar.masks[k, t])
            unoccluded += 1
    assert unoccluded > 0


def test_every_object_keeps_a_visible_part_in_every_frame(root):
    minimum = SynthParams().min_visible_fraction
    for row in _rows(root):
        sidecar = read_sidecar(root, row["split"], row["name"])
        assert sidecar.visible_fraction.min() >= minimum
        assert sidecar.masks.sum(axis=(2, 3)).min() > 0


def test_distractors_are_other_classes_than_the_sounding_one_and_each_other(root):
    for row in _rows(root):
        classes = read_sidecar(root, row["split"], row["name"]).classes.tolist()
        assert classes[0] == CATEGORY_TO_INDEX[row["category"]]
        assert len(set(classes)) == len(classes)


def test_every_eval_clip_has_a_distractor_and_a_valid_swap_partner(root):
    rows = _rows(root)
    for split in ("val", "test"):
        category_of = {r["name"]: r["category"] for r in rows if r["split"] == split}
        for name in category_of:
            sidecar = read_sidecar(root, split, name)
            assert len(sidecar.classes) >= 2
            assert sidecar.swap_partner in category_of
            assert category_of[sidecar.swap_partner] in sidecar.distractor_categories


def test_objects_move_between_frames(root):
    boxes = [read_sidecar(root, r["split"], r["name"]).boxes for r in _rows(root)]
    moved = [np.any(b[:, 1:] != b[:, :1]) for b in boxes]
    assert all(moved)


def test_drawing_order_and_size_do_not_say_which_object_sounds():
    params = SynthParams((1, 30, 1), 32, seed=5, max_distractors=1)
    plans = [p for p in plan_clips(params) if p.split == "val"]  # one distractor each
    clips = [render_clip(plan, params) for plan in plans]
    on_top = np.mean([c.drawing_order[-1] == 0 for c in clips])
    larger = np.mean([c.masks[0].sum() > c.masks[1].sum() for c in clips])
    assert all(len(p.classes) == 2 for p in plans)
    assert 0.25 <= on_top <= 0.75
    assert 0.25 <= larger <= 0.75


def test_generation_is_byte_identical_for_a_seed_whatever_the_worker_count(root, tmp_path):
    again = tmp_path / "again"
    make_dataset(again, **TINY, workers=1, progress=False)
    assert _tree_digest(again) == _tree_digest(root)


def test_another_seed_gives_other_clips():
    first = plan_clips(SynthParams((6, 4, 4), 64, seed=0))
    second = plan_clips(SynthParams((6, 4, 4), 64, seed=1))
    assert [p.name for p in first] != [p.name for p in second]


def test_fewer_classes_draw_only_the_first_categories_and_keep_the_rest_of_the_plan():
    params = SynthParams((40, 20, 20), 64, seed=0, num_classes=5)
    plans = plan_clips(params)
    assert {c for p in plans for c in p.classes} == set(range(5))
    for split in ("train", "val", "test"):  # balanced: each class sounds in ~1/5 of the clips
        counts = np.bincount([p.classes[0] for p in plans if p.split == split], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert all(p.swap_partner for p in plans if p.split != "train")
    # the default (all 23) plans exactly as before the option existed
    assert plan_clips(SynthParams((6, 4, 4), 64, seed=0)) == plan_clips(
        SynthParams((6, 4, 4), 64, seed=0, num_classes=NUM_CLASSES))


def test_info_json_records_parameters_and_counts(root):
    info = read_info(root)
    assert info["parameters"]["videos_per_split"] == [6, 4, 4]
    assert info["parameters"]["image_size"] == 64
    assert info["counts"]["gt_masks"] == 6 + 5 * (4 + 4)
    assert info["counts"]["clips_with_swap_partner"]["val"] == 4


def test_every_class_has_its_own_shape_and_texture():
    looks = {(look.shape, look.texture) for look in CLASS_LOOKS}
    assert len(looks) == NUM_CLASSES
    assert set(CLASS_SOUNDS) == set(S4_CATEGORIES)


def _log_mel_features(waveform: np.ndarray) -> np.ndarray:
    frames = waveform_to_examples(waveform, 16000).numpy().reshape(-1, 64)  # [5*96, 64]
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])


def test_class_sounds_are_told_apart_by_log_mel_statistics():
    torch.set_num_threads(1)
    clips_per_class = 3
    features, labels = [], []
    for category in range(NUM_CLASSES):
        for j in range(clips_per_class):
            waveform = synthesize_sound(category, np.random.default_rng([11, category, j]))
            features.append(_log_mel_features(waveform))
            labels.append(category)
    x, y = np.stack(features), np.array(labels)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
    distances = ((x[:, None] - x[None]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest_neighbour_accuracy = (y[distances.argmin(axis=1)] == y).mean()
    same = distances[(y[:, None] == y[None]) & np.isfinite(distances)]
    other = distances[y[:, None] != y[None]]
    assert nearest_neighbour_accuracy >= 0.9
    assert np.median(other) > 3 * np.median(same)


def test_two_clips_of_a_class_sound_different_but_alike():
    a = synthesize_sound("dog_barking", np.random.default_rng(1))
    b = synthesize_sound("dog_barking", np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == (80000,) and np.abs(a).max() <= 1.0
    assert not np.array_equal(a, b)


def test_visual_only_strategies_score_well_below_the_listening_oracle(root):
    # val and test together (8 clips, 40 frames): too few frames per split for a stable mean.
    ceilings = [visual_only_ceiling(root, split) for split in ("val", "test")]
    for strategy in ("largest_object", "most_central_object", "random_object", "union_of_objects"):
        score = np.mean([c[strategy] for c in ceilings])
        assert score < 0.75, (strategy, score)
    assert all(c["sounding_object"] == pytest.approx(1.0) for c in ceilings)


def test_existing_dataset_is_kept_without_overwrite(root):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_dataset(root, **TINY, progress=False)


def test_a_folder_not_written_by_the_generator_is_never_replaced(tmp_path):
    (tmp_path / "s4_data").mkdir()
    (tmp_path / "s4_meta_data.csv").write_text("name,start,category,split\n")
    with pytest.raises(FileExistsError, match="did not write"):
        make_dataset(tmp_path, **TINY, overwrite=True, progress=False)
    assert (tmp_path / "s4_meta_data.csv").read_text() == "name,start,category,split\n"


def test_missing_sidecar_is_reported_with_its_path(root):
    with pytest.raises(FileNotFoundError, match="nobody"):
        read_sidecar(root, "val", "nobody")


def test_sidecar_without_masks_is_a_format_error(tmp_path):
    from avs_lib.data.errors import DataFormatError

    path = tmp_path / "synth_sidecar" / "val" / "broken.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, classes=np.array([1]), swap_partner=np.asarray(""))
    with pytest.raises(DataFormatError, match="masks"):
        read_sidecar(tmp_path, "val", "broken")


@pytest.mark.parametrize(
    "bad",
    [
        {"videos_per_split": (0, 1, 1)},
        {"image_size": 16},
        {"max_distractors": 9},
        {"occluder_probability": 1.5},
        {"num_classes": 2},  # fewer than max_distractors + 1: no room for two distractors
        {"num_classes": NUM_CLASSES + 1},
    ],
)
def test_bad_parameters_are_value_errors(bad, tmp_path):
    arguments = {**TINY, **bad}
    with pytest.raises(ValueError):
        make_dataset(tmp_path / "x", **arguments, progress=False)
    assert not (tmp_path / "x").exists()


def test_info_json_is_valid_json_written_last(root):
    assert (
        json.loads((root / "synth_sidecar" / "info.json").read_text())["generator"]
        == "avs_lib.data.synth"
    )
