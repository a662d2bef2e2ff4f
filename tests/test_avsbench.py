"""AVSBenchS4 / AVSBenchMS3 read a hand-written official layout back exactly, and bad files fail loudly."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from official_layout import (
    FRAME_SIZE,
    OBJECT_COLOUR,
    voc_xml,
    write_mask,
    write_ms3,
    write_s4,
    write_wav,
)
from PIL import Image

import avs_lib.data.audio as audio_module
from avs_lib.data.avsbench import AVSBenchMS3, AVSBenchS4, collate_clips
from avs_lib.data.categories import CATEGORY_TO_INDEX
from avs_lib.data.errors import DataFormatError

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
TRAIN, VAL = 0, 2  # positions in official_layout.S4_CLIPS


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def s4(tmp_path):
    root = tmp_path / "Single-source"
    return root, write_s4(root)


@pytest.fixture
def ms3(tmp_path):
    root = tmp_path / "Multi-sources"
    return root, write_ms3(root)


def normalised(rgb) -> np.ndarray:
    return (np.asarray(rgb) / 255.0 - MEAN) / STD


def rectangle(box, size=FRAME_SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.float32)
    xmin, ymin, xmax, ymax = box
    mask[ymin:ymax, xmin:xmax] = 1.0
    return mask


# --------------------------------------------------------------------------------- reading


def test_frames_are_imagenet_normalised_at_known_pixels(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl")[0]
    spec = specs[VAL]
    assert item["frames"].shape == (5, 3, FRAME_SIZE, FRAME_SIZE)
    assert item["frames"].dtype == torch.float32
    for i in range(5):
        background = item["frames"][i, :, 0, 0].double().numpy()
        np.testing.assert_allclose(background, normalised(spec.backgrounds[i]), atol=1e-6)
        xmin, ymin = spec.boxes[i][:2]
        inside = item["frames"][i, :, ymin, xmin].double().numpy()
        np.testing.assert_allclose(inside, normalised(OBJECT_COLOUR), atol=1e-6)


def test_train_clip_has_only_the_first_mask(s4):
    root, specs = s4
    item = AVSBenchS4(root, "train", image_size=FRAME_SIZE, audio="pkl")[0]
    assert item["masks"].shape == (1, 1, FRAME_SIZE, FRAME_SIZE)
    assert item["mask_frames"].tolist() == [0]
    np.testing.assert_array_equal(item["masks"][0, 0].numpy(), rectangle(specs[TRAIN].boxes[0]))


def test_val_clip_has_five_binary_masks_of_the_object(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl")[0]
    assert item["masks"].shape == (5, 1, FRAME_SIZE, FRAME_SIZE)
    assert item["masks"].dtype == torch.float32
    assert item["mask_frames"].tolist() == [0, 1, 2, 3, 4]
    for i in range(5):
        np.testing.assert_array_equal(item["masks"][i, 0].numpy(), rectangle(specs[VAL].boxes[i]))


def test_masks_resized_to_image_size_stay_binary(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", image_size=16, audio="pkl")[0]
    masks = item["masks"]
    assert masks.shape == (5, 1, 16, 16)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    # 10x12 boxes at even offsets: nearest halving keeps a quarter of the pixels.
    assert masks[0].sum().item() == 10 * 12 / 4


def test_zero_one_mask_is_read_as_binary(s4):
    root, specs = s4
    pixels = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    pixels[2, 3] = pixels[5, 7] = 1  # a 0/1 mask, as some tools save them
    Image.fromarray(pixels, mode="L").save(specs[VAL].files["mask1"])
    mask = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl")[0]["masks"][0, 0]
    assert mask.sum().item() == 2 and mask[2, 3] == 1 and mask[5, 7] == 1


def test_mask_with_compression_noise_is_refused_naming_the_file(s4):
    root, specs = s4
    pixels = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    pixels[2, 3], pixels[5, 7] = 255, 3  # a JPEG-like stray value
    Image.fromarray(pixels, mode="L").save(specs[VAL].files["mask1"])
    with pytest.raises(DataFormatError, match="not binary") as caught:
        AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl")[0]
    assert caught.value.path == specs[VAL].files["mask1"]


def test_category_and_names_come_from_the_csv(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", audio="pkl", image_size=FRAME_SIZE)[0]
    assert item["category"].dtype == torch.int64
    assert item["category"].item() == CATEGORY_TO_INDEX["dog_barking"]
    assert item["category_name"] == "dog_barking"
    assert item["name"] == specs[VAL].name
    assert item["index"] == 0


def test_clips_hold_the_split_rows_in_csv_order(s4):
    root, specs = s4
    dataset = AVSBenchS4(root, "train", audio="pkl")
    assert [clip.name for clip in dataset.clips] == [specs[0].name, specs[1].name]
    assert dataset.clips[0].category == "helicopter" and dataset.clips[0].split == "train"


def test_boxes_are_scaled_to_image_size(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", image_size=16, audio="pkl", crop_labels=True)[0]
    expected = torch.tensor(specs[VAL].boxes, dtype=torch.float32) / 2
    assert item["boxes"].dtype == torch.float32
    torch.testing.assert_close(item["boxes"], expected)


def test_voc_size_other_than_the_frame_is_refused(s4):
    root, specs = s4
    spec = specs[VAL]
    doubled = tuple(2 * v for v in spec.boxes[0])  # a label drawn on a 64x64 copy
    spec.files["xml1"].write_text(voc_xml(spec.files["frame1"], doubled, spec.category, (64, 64)))
    with pytest.raises(DataFormatError, match="<size> is 64x64 but its frame is 32x32") as caught:
        AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl", crop_labels=True)[0]
    assert caught.value.path == spec.files["xml1"]


def test_yolo_crop_label_gives_the_same_box(s4):
    root, specs = s4
    spec = specs[VAL]
    xmin, ymin, xmax, ymax = spec.boxes[2]
    cx, cy = (xmin + xmax) / 2 / FRAME_SIZE, (ymin + ymax) / 2 / FRAME_SIZE
    w, h = (xmax - xmin) / FRAME_SIZE, (ymax - ymin) / FRAME_SIZE
    spec.files["xml3"].unlink()
    folder = spec.files["xml3"].parent
    (folder / "classes.txt").write_text("dog_barking\n")
    (folder / spec.files["xml3"].with_suffix(".txt").name).write_text(
        f"0 {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
    )
    boxes = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl", crop_labels=True)[0]["boxes"]
    assert boxes[2].tolist() == [float(v) for v in spec.boxes[2]]


def test_crop_labels_false_gives_no_boxes(s4):
    root, _ = s4
    assert "boxes" not in AVSBenchS4(root, "val", audio="pkl", crop_labels=False)[0]


def test_the_defaults_open_a_download_without_crop_labels(tmp_path):
    write_s4(tmp_path / "s4", crop_labels=False)
    write_ms3(tmp_path / "ms3")
    assert "boxes" not in AVSBenchS4(tmp_path / "s4", "val", audio="pkl")[0]
    assert "boxes" not in AVSBenchMS3(tmp_path / "ms3", "val")[0]


def test_asking_for_missing_crop_labels_says_how_to_make_them(tmp_path):
    write_s4(tmp_path, crop_labels=False)
    with pytest.raises(FileNotFoundError, match="python -m avs_lib crop-labels") as raised:
        AVSBenchS4(tmp_path, "val", audio="pkl", crop_labels=True)
    assert str(tmp_path / "s4_data" / "crop_labels") in str(raised.value)


def test_a_missing_crop_label_file_fails_when_the_dataset_is_built(s4):
    root, specs = s4
    specs[VAL].files["xml4"].unlink()
    with pytest.raises(FileNotFoundError, match="1 crop label file") as raised:
        AVSBenchS4(root, "val", audio="pkl", crop_labels=True)
    assert str(specs[VAL].files["xml4"]) in str(raised.value)


def test_pkl_audio_equals_the_pickled_tensor(s4):
    root, specs = s4
    item = AVSBenchS4(root, "val", audio="pkl")[0]
    assert item["audio"].dtype == torch.float32
    assert torch.equal(item["audio"], specs[VAL].log_mel)


def test_wav_audio_is_five_vggish_examples(s4):
    root, specs = s4
    audio = AVSBenchS4(root, "val", audio="wav", image_size=FRAME_SIZE)[0]["audio"]
    assert audio.shape == (5, 1, 96, 64) and audio.dtype == torch.float32
    assert torch.equal(audio, audio_module.load_audio_examples(specs[VAL].files["wav"]))


def test_wav_log_mel_cache_is_written_once_then_reused(s4, tmp_path, monkeypatch):
    root, specs = s4
    cache_dir = tmp_path / "cache"
    dataset = AVSBenchS4(root, "val", audio="wav", cache_dir=cache_dir)
    first = dataset[0]["audio"]
    cached = list(cache_dir.rglob("*.logmel.npy"))
    assert cached == [audio_module.log_mel_cache_path(specs[VAL].files["wav"], cache_dir)]

    def recompute(*args, **kwargs):
        raise AssertionError("log-mel recomputed although the cache is fresh")

    monkeypatch.setattr(audio_module, "load_audio_examples", recompute)
    assert torch.equal(dataset[0]["audio"], first)


def test_paths_are_the_official_file_names(s4):
    root, specs = s4
    spec = specs[VAL]
    paths = AVSBenchS4(root, "val", audio="pkl").paths(0)
    assert paths.frames == tuple(spec.files[f"frame{i}"] for i in range(1, 6))
    assert paths.masks == tuple(spec.files[f"mask{i}"] for i in range(1, 6))
    assert paths.crop_labels == tuple(spec.files[f"xml{i}"] for i in range(1, 6))
    assert (paths.wav, paths.log_mel) == (spec.files["wav"], spec.files["pkl"])
    assert all(p.is_file() for p in (*paths.frames, *paths.masks, paths.wav, paths.log_mel, *paths.crop_labels))


def test_load_frames_raw_gives_uint8_pixels(s4):
    root, specs = s4
    raw = AVSBenchS4(root, "val", image_size=FRAME_SIZE, audio="pkl").load_frames_raw(0)
    assert raw.shape == (5, FRAME_SIZE, FRAME_SIZE, 3) and raw.dtype == np.uint8
    assert tuple(raw[1, 0, 0]) == specs[VAL].backgrounds[1]


def test_sidecar_is_none_for_a_real_dataset(s4):
    root, specs = s4
    assert AVSBenchS4(root, "val", audio="pkl").sidecar(specs[VAL].name) is None


def test_sidecar_is_read_through_the_sidecar_reader_when_present(s4, monkeypatch):
    root, specs = s4
    (root / "synth_sidecar").mkdir()
    calls = []
    monkeypatch.setattr(
        "avs_lib.data.avsbench.read_sidecar", lambda *args: calls.append(args) or "clip"
    )
    assert AVSBenchS4(root, "val", audio="pkl").sidecar(specs[VAL].name) == "clip"
    assert calls == [(root, "val", specs[VAL].name)]


def test_collate_stacks_tensors_and_lists_strings(s4):
    root, specs = s4
    dataset = AVSBenchS4(root, "train", image_size=FRAME_SIZE, audio="pkl", crop_labels=True)
    batch = collate_clips([dataset[0], dataset[1]])
    assert batch["frames"].shape == (2, 5, 3, FRAME_SIZE, FRAME_SIZE)
    assert batch["audio"].shape == (2, 5, 1, 96, 64)
    assert batch["masks"].shape == (2, 1, 1, FRAME_SIZE, FRAME_SIZE)
    assert batch["boxes"].shape == (2, 5, 4)
    assert batch["category"].tolist() == [
        CATEGORY_TO_INDEX["helicopter"],
        CATEGORY_TO_INDEX["dog_barking"],
    ]
    assert batch["name"] == [specs[0].name, specs[1].name]
    assert batch["index"].tolist() == [0, 1]


def test_collate_keeps_boxes_only_when_every_item_has_them(s4):
    root, _ = s4
    with_boxes = AVSBenchS4(root, "train", audio="pkl", crop_labels=True)[0]
    without = AVSBenchS4(root, "train", audio="pkl", crop_labels=False)[1]
    batch = collate_clips([with_boxes, without])
    assert "boxes" not in batch and batch["frames"].shape[0] == 2


def test_collate_refuses_items_with_different_mask_counts(s4):
    root, _ = s4
    train = AVSBenchS4(root, "train", audio="pkl")[0]
    val = AVSBenchS4(root, "val", audio="pkl")[0]
    with pytest.raises(ValueError, match="masks"):
        collate_clips([train, val])


def test_ms3_reads_five_masks_in_every_split_and_no_category(ms3):
    root, specs = ms3
    dataset = AVSBenchMS3(root, "train", image_size=FRAME_SIZE)
    item = dataset[1]
    spec = specs[1]
    assert item["masks"].shape == (5, 1, FRAME_SIZE, FRAME_SIZE)
    np.testing.assert_array_equal(item["masks"][4, 0].numpy(), rectangle(spec.boxes[4]))
    assert item["category"].item() == -1 and item["category_name"] == ""
    assert item["name"] == spec.name and "boxes" not in item
    assert torch.equal(item["audio"], spec.log_mel)  # pkl is MS3's default
    np.testing.assert_allclose(
        item["frames"][3, :, 0, 0].double().numpy(), normalised(spec.backgrounds[3]), atol=1e-6
    )
    assert dataset.paths(1).frames[0] == spec.files["frame1"]


def test_ms3_wav_audio_is_five_examples(ms3):
    root, specs = ms3
    audio = AVSBenchMS3(root, "test", audio="wav")[0]["audio"]
    assert torch.equal(audio, audio_module.load_audio_examples(specs[3].files["wav"]))


# ------------------------------------------------------------------------------ bad inputs


def test_truncated_png_names_the_frame(s4):
    root, specs = s4
    frame = specs[VAL].files["frame3"]
    frame.write_bytes(frame.read_bytes()[:60])
    with pytest.raises(DataFormatError, match="expected a readable frame 3") as raised:
        AVSBenchS4(root, "val", audio="pkl")[0]
    assert raised.value.path == frame


def test_missing_frame_is_file_not_found_with_its_path(s4):
    root, specs = s4
    specs[VAL].files["frame5"].unlink()
    with pytest.raises(FileNotFoundError, match="frame 5") as raised:
        AVSBenchS4(root, "val", audio="pkl")[0]
    assert str(specs[VAL].files["frame5"]) in str(raised.value)


def test_mask_of_another_size_than_its_frame_is_refused(s4):
    root, specs = s4
    mask = specs[VAL].files["mask2"]
    write_mask(mask, (1, 1, 4, 4), size=16)
    with pytest.raises(DataFormatError, match="mask is 16x16, expected .*32x32") as raised:
        AVSBenchS4(root, "val", audio="pkl")[0]
    assert raised.value.path == mask


def test_three_second_wav_is_refused(s4):
    root, specs = s4
    wav = specs[VAL].files["wav"]
    write_wav(wav, 3.0, 440.0)
    with pytest.raises(DataFormatError, match="expected at least") as raised:
        AVSBenchS4(root, "val", audio="wav")[0]
    assert raised.value.path == wav


def test_missing_wav_suggests_the_pkl(s4):
    root, specs = s4
    specs[VAL].files["wav"].unlink()
    with pytest.raises(FileNotFoundError, match="audio='pkl'") as raised:
        AVSBenchS4(root, "val", audio="wav")[0]
    assert str(specs[VAL].files["wav"]) in str(raised.value)


def test_pkl_of_the_wrong_shape_is_refused(s4):
    root, specs = s4
    pkl = specs[VAL].files["pkl"]
    pkl.write_bytes(pickle.dumps(torch.zeros(4, 1, 96, 64)))
    with pytest.raises(DataFormatError, match=r"expected \[5, 1, 96, 64\]") as raised:
        AVSBenchS4(root, "val", audio="pkl")[0]
    assert raised.value.path == pkl


class _CreatesFile:
    """A pickle payload: unpickling it calls open(path, "w"), creating the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pkl_is_refused_without_running(s4, tmp_path):
    root, specs = s4
    proof = tmp_path / "proof_that_payloads_run"
    pickle.loads(pickle.dumps(_CreatesFile(proof))).close()  # plain pickle does run it
    assert proof.exists()
    marker = tmp_path / "pwned"
    pkl = specs[VAL].files["pkl"]
    pkl.write_bytes(pickle.dumps(_CreatesFile(marker)))
    with pytest.raises(DataFormatError) as raised:
        AVSBenchS4(root, "val", audio="pkl")[0]
    assert raised.value.path == pkl
    assert not marker.exists()


def rewrite_csv(root: Path, text: str) -> Path:
    csv = root / "s4_meta_data.csv"
    csv.write_text(text)
    return csv


def test_csv_missing_a_column_names_the_expected_header(s4):
    root, specs = s4
    csv = rewrite_csv(root, "name,category,split\n" + f"{specs[VAL].name},dog_barking,val\n")
    with pytest.raises(
        DataFormatError, match="missing column.*start.*name,start,category,split"
    ) as raised:
        AVSBenchS4(root, "val", audio="pkl")
    assert raised.value.path == csv


def test_columns_are_read_by_name_not_position(s4):
    root, specs = s4
    rows = [f"{s.split},{s.category},{s.name},0" for s in specs]
    rewrite_csv(root, "split,category,name,start\n" + "\n".join(rows) + "\n")
    assert AVSBenchS4(root, "val", audio="pkl").clips[0].name == specs[VAL].name


def test_row_with_an_extra_field_is_refused_not_shifted(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text().replace(",val\n", ",val,oops\n"))
    with pytest.raises(DataFormatError, match="line 4: number of fields differs") as raised:
        AVSBenchS4(root, "val", audio="pkl")
    assert raised.value.path == csv


def test_csv_saved_with_a_byte_order_mark_reads(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text("\ufeff" + csv.read_text(), encoding="utf-8")
    assert AVSBenchS4(root, "val", audio="pkl").clips[0].name == specs[VAL].name


def test_unknown_split_names_the_csv_and_line(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text().replace(",val\n", ",validation\n"))
    with pytest.raises(DataFormatError, match="unknown split 'validation' on line 4") as raised:
        AVSBenchS4(root, "train", audio="pkl")
    assert raised.value.path == csv


def test_unknown_category_names_the_csv_and_line(s4):
    root, _ = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text().replace("0,helicopter,train", "0,Helicopter,train"))
    with pytest.raises(DataFormatError, match="unknown category 'Helicopter' on line 2") as raised:
        AVSBenchS4(root, "train", audio="pkl")
    assert raised.value.path == csv


def test_duplicate_clip_names_name_both_lines(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text() + f"{specs[TRAIN].name},9,helicopter,test\n")
    with pytest.raises(DataFormatError, match=r"appears on lines 2, 6") as raised:
        AVSBenchS4(root, "train", audio="pkl")
    assert raised.value.path == csv


def test_split_without_clips_is_an_error(s4):
    root, specs = s4
    csv = root / "s4_meta_data.csv"
    csv.write_text(csv.read_text().replace(",test\n", ",val\n"))
    with pytest.raises(DataFormatError, match="no clips with split 'test'"):
        AVSBenchS4(root, "test", audio="pkl")


def test_malformed_voc_xml_names_the_label(s4):
    root, specs = s4
    xml = specs[VAL].files["xml2"]
    xml.write_text(xml.read_text()[:200])
    with pytest.raises(DataFormatError, match="malformed XML") as raised:
        AVSBenchS4(root, "val", audio="pkl", crop_labels=True)[0]
    assert raised.value.path == xml


def test_box_outside_the_image_is_refused(s4):
    root, specs = s4
    spec = specs[VAL]
    spec.files["xml1"].write_text(voc_xml(spec.files["frame1"], (20, 4, 40, 12), spec.category))
    with pytest.raises(DataFormatError, match="outside the 32x32 image") as raised:
        AVSBenchS4(root, "val", audio="pkl", crop_labels=True)[0]
    assert raised.value.path == spec.files["xml1"]


def test_zero_area_box_is_refused(s4):
    root, specs = s4
    spec = specs[VAL]
    # 1-based inclusive xmin=11, xmax=10 (what a 0-based (10, 4, 10, 12) becomes)
    spec.files["xml4"].write_text(voc_xml(spec.files["frame4"], (10, 4, 10, 12), spec.category))
    with pytest.raises(DataFormatError, match="zero-area") as raised:
        AVSBenchS4(root, "val", audio="pkl", crop_labels=True)[0]
    assert raised.value.path == spec.files["xml4"]


def test_crop_label_naming_another_object_is_refused(s4):
    root, specs = s4
    spec = specs[VAL]
    spec.files["xml5"].write_text(voc_xml(spec.files["frame5"], spec.boxes[4], "male_speech"))
    with pytest.raises(DataFormatError, match="expected 'dog_barking'") as raised:
        AVSBenchS4(root, "val", audio="pkl", crop_labels=True)[0]
    assert raised.value.path == spec.files["xml5"]


def test_ms3_missing_mask_in_train_is_an_error(ms3):
    root, specs = ms3
    specs[0].files["mask3"].unlink()
    with pytest.raises(FileNotFoundError, match="mask 3") as raised:
        AVSBenchMS3(root, "train")[0]
    assert str(specs[0].files["mask3"]) in str(raised.value)


def test_bad_arguments_are_value_errors(s4):
    root, _ = s4
    with pytest.raises(ValueError, match="split"):
        AVSBenchS4(root, "training")
    with pytest.raises(ValueError, match="audio"):
        AVSBenchS4(root, "train", audio="mp3")
    with pytest.raises(ValueError, match="image_size"):
        AVSBenchS4(root, "train", image_size=0)
