"""Crop labels: labelImg VOC / YOLO files, boxes from masks, scaling and cropping."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avs_lib.data.avsbench import read_crop_label
from avs_lib.data.boxes import (
    VocObject,
    box_from_mask,
    crop_and_resize,
    read_voc_annotation,
    read_yolo,
    scale_box,
    write_voc,
)
from avs_lib.data.errors import DataFormatError


def voc_xml(objects: str, width: int = 20, height: int = 10) -> str:
    return (
        "<annotation><folder>clip</folder><filename>clip_1.png</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objects}</annotation>"
    )


def voc_object(name: str, xmin, ymin, xmax, ymax, difficult: int = 0) -> str:
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
    )


@pytest.fixture
def write_text(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# --- VOC reading -----------------------------------------------------------------------------


def box_of(path) -> tuple:
    return read_voc_annotation(path).objects[0].box


def test_read_voc_converts_one_based_inclusive_to_zero_based_exclusive(write_text):
    path = write_text("a.xml", voc_xml(voc_object("dog_barking", 1, 2, 20, 10)))
    assert box_of(path) == (0, 1, 20, 10)


def test_read_voc_annotation_returns_names_and_boxes(write_text):
    xml = voc_xml(voc_object("cat", 3, 3, 5, 6) + voc_object("dog", 1, 1, 2, 2, difficult=1))
    path = write_text("a.xml", xml)
    assert read_voc_annotation(path).objects == [VocObject("cat", (2, 2, 5, 6)), VocObject("dog", (0, 0, 2, 2))]
    assert read_voc_annotation(path).image_size == (20, 10)


def test_read_voc_accepts_one_pixel_box(write_text):
    path = write_text("a.xml", voc_xml(voc_object("dog", 4, 4, 4, 4)))
    assert box_of(path) == (3, 3, 4, 4)


def test_read_voc_rounds_float_coordinates(write_text):
    path = write_text("a.xml", voc_xml(voc_object("dog", "2.0", "3.4", "10.6", "9")))
    assert box_of(path) == (1, 2, 11, 9)


def test_crop_label_with_two_objects_is_an_error(write_text):
    path = write_text("a.xml", voc_xml(voc_object("a", 1, 1, 2, 2) + voc_object("b", 1, 1, 2, 2)))
    with pytest.raises(DataFormatError, match=r"found 2 boxes, expected exactly 1") as error:
        read_crop_label(path, "a", None)
    assert error.value.path == path


def test_crop_label_without_object_is_an_error(write_text):
    path = write_text("a.xml", voc_xml(""))
    with pytest.raises(DataFormatError, match="found 0 boxes"):
        read_crop_label(path, "a", None)


def test_crop_label_checks_expected_name(write_text):
    path = write_text("a.xml", voc_xml(voc_object("helicopter", 1, 1, 2, 2)))
    with pytest.raises(DataFormatError, match=r"'helicopter', expected 'race_car'"):
        read_crop_label(path, "race_car", None)


def test_malformed_xml_names_file(write_text):
    path = write_text("bad.xml", "<annotation><size><width>3</width></annotation")
    with pytest.raises(DataFormatError, match="malformed XML") as error:
        read_voc_annotation(path)
    assert str(path) in str(error.value)


def test_wrong_root_element_is_an_error(write_text):
    path = write_text("a.xml", "<html></html>")
    with pytest.raises(DataFormatError, match=r"<html>, expected <annotation>"):
        read_voc_annotation(path)


def test_missing_size_is_an_error(write_text):
    path = write_text("a.xml", "<annotation>" + voc_object("a", 1, 1, 2, 2) + "</annotation>")
    with pytest.raises(DataFormatError, match="missing <size>"):
        read_voc_annotation(path)


def test_missing_bndbox_tag_is_an_error(write_text):
    obj = (
        "<object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax></bndbox></object>"
    )
    path = write_text("a.xml", voc_xml(obj))
    with pytest.raises(DataFormatError, match=r"missing <ymax> in <bndbox>") as error:
        read_voc_annotation(path)
    assert str(path) in str(error.value)


def test_non_numeric_coordinate_is_an_error(write_text):
    path = write_text("a.xml", voc_xml(voc_object("a", "one", 1, 2, 2)))
    with pytest.raises(DataFormatError, match=r"<bndbox/xmin> is 'one', expected a number"):
        read_voc_annotation(path)


@pytest.mark.parametrize(
    "coordinates", [(0, 1, 5, 5), (1, 0, 5, 5), (1, 1, 21, 5), (1, 1, 5, 11)], ids=str
)
def test_box_outside_image_is_an_error(write_text, coordinates):
    path = write_text("a.xml", voc_xml(voc_object("a", *coordinates), width=20, height=10))
    with pytest.raises(DataFormatError, match=r"lies outside the 20x10 image") as error:
        read_voc_annotation(path)
    assert str(path) in str(error.value)


def test_zero_area_box_is_an_error(write_text):
    path = write_text("a.xml", voc_xml(voc_object("a", 5, 5, 4, 8)))
    with pytest.raises(DataFormatError, match=r"zero-area box .*expected xmin <= xmax"):
        read_voc_annotation(path)


def test_missing_voc_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        read_voc_annotation(tmp_path / "nope.xml")


# --- VOC writing -----------------------------------------------------------------------------

LABELIMG_TREE = [
    "annotation",
    "annotation/folder",
    "annotation/filename",
    "annotation/path",
    "annotation/source",
    "annotation/source/database",
    "annotation/size",
    "annotation/size/width",
    "annotation/size/height",
    "annotation/size/depth",
    "annotation/segmented",
    "annotation/object",
    "annotation/object/name",
    "annotation/object/pose",
    "annotation/object/truncated",
    "annotation/object/difficult",
    "annotation/object/bndbox",
    "annotation/object/bndbox/xmin",
    "annotation/object/bndbox/ymin",
    "annotation/object/bndbox/xmax",
    "annotation/object/bndbox/ymax",
]


def element_paths(element: ET.Element, prefix: str = "") -> list[str]:
    here = f"{prefix}{element.tag}"
    return [here] + [p for child in element for p in element_paths(child, here + "/")]


def test_write_voc_then_read_voc_round_trips(tmp_path):
    path = tmp_path / "crop" / "clip_1.xml"  # parent folder is created
    write_voc(
        path,
        (0, 3, 224, 100),
        name="ambulance_siren",
        image_path="f/clip_1.png",
        image_size=(224, 224),
    )
    assert read_crop_label(path, "ambulance_siren", (224, 224)) == ((0, 3, 224, 100), (224, 224))


def test_write_voc_has_exactly_labelimg_tag_structure(tmp_path):
    path = tmp_path / "a.xml"
    image = tmp_path / "frames" / "clip_2.png"
    write_voc(path, (4, 5, 10, 12), name="lawn_mowing", image_path=image, image_size=(32, 24))
    root = ET.parse(path).getroot()
    assert element_paths(root) == LABELIMG_TREE
    texts = {
        tag: root.findtext(tag)
        for tag in ("folder", "filename", "path", "source/database", "segmented")
    }
    assert texts == {
        "folder": "frames",
        "filename": "clip_2.png",
        "path": str(image),
        "source/database": "Unknown",
        "segmented": "0",
    }
    assert [root.findtext(f"size/{t}") for t in ("width", "height", "depth")] == ["32", "24", "3"]
    assert [root.findtext(f"object/{t}") for t in ("name", "pose", "truncated", "difficult")] == [
        "lawn_mowing",
        "Unspecified",
        "0",
        "0",
    ]
    assert [root.findtext(f"object/bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == [
        "5",
        "6",
        "10",
        "12",
    ]


def test_write_voc_refuses_zero_area_box(tmp_path):
    with pytest.raises(ValueError, match="zero-area"):
        write_voc(
            tmp_path / "a.xml", (3, 3, 3, 8), name="a", image_path="a.png", image_size=(10, 10)
        )
    assert not (tmp_path / "a.xml").exists()


def test_write_voc_refuses_box_outside_image(tmp_path):
    with pytest.raises(ValueError, match="outside the 10x10 image"):
        write_voc(
            tmp_path / "a.xml", (3, 3, 11, 8), name="a", image_path="a.png", image_size=(10, 10)
        )


def test_write_voc_leaves_no_temporary_files(tmp_path):
    write_voc(tmp_path / "a.xml", (0, 0, 2, 2), name="a", image_path="a.png", image_size=(4, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.xml"]


# --- YOLO ------------------------------------------------------------------------------------


def test_read_yolo_converts_normalised_centre_to_pixel_box(write_text):
    write_text("classes.txt", "dog\ncat\n")
    labels = write_text("a.txt", "1 0.250000 0.500000 0.500000 1.000000\n0 0.5 0.5 0.1 0.2\n\n")
    assert read_yolo(labels, image_size=(40, 20)) == [
        ("cat", (0, 0, 20, 20)),
        ("dog", (18, 8, 22, 12)),
    ]


@pytest.fixture
def yolo(write_text):
    """A YOLO label file with the given lines, and labelImg's classes.txt beside it."""
    def write(lines: str, classes: str = "dog\n"):
        write_text("classes.txt", classes)
        return write_text("a.txt", lines)

    return write


def test_yolo_wrong_field_count_names_line(yolo):
    labels = yolo("0 0.5 0.5 1 1\n0 0.5 0.5 1\n")
    with pytest.raises(
        DataFormatError, match=r"line 2 has 4 fields, expected 5 \(class cx cy w h\)"
    ) as error:
        read_yolo(labels, image_size=(8, 6))
    assert error.value.path == labels


def test_yolo_class_id_out_of_range_is_an_error(yolo):
    labels = yolo("2 0.5 0.5 1 1\n", classes="dog\ncat\n")
    with pytest.raises(DataFormatError, match=r"class id 2 is outside 0..1"):
        read_yolo(labels, image_size=(8, 6))


def test_yolo_value_above_one_is_an_error(yolo):
    labels = yolo("0 0.5 1.5 0.2 0.2\n")
    with pytest.raises(DataFormatError, match=r"expected values in \[0, 1\]"):
        read_yolo(labels, image_size=(8, 6))


def test_yolo_box_reaching_past_edge_is_an_error(yolo):
    labels = yolo("0 0.1 0.5 0.5 0.2\n")
    with pytest.raises(DataFormatError, match=r"outside the 100x100 image"):
        read_yolo(labels, image_size=(100, 100))


def test_yolo_zero_width_box_is_an_error(yolo):
    labels = yolo("0 0.5 0.5 0 0.2\n")
    with pytest.raises(DataFormatError, match="zero-area"):
        read_yolo(labels, image_size=(100, 100))


def test_yolo_non_numeric_field_is_an_error(yolo):
    labels = yolo("dog 0.5 0.5 0.1 0.2\n")
    with pytest.raises(DataFormatError, match="expected an int and 4 numbers"):
        read_yolo(labels, image_size=(100, 100))


def test_empty_classes_file_is_an_error(yolo):
    labels = yolo("", classes="\n")
    with pytest.raises(DataFormatError, match="no class names"):
        read_yolo(labels, image_size=(100, 100))


def test_missing_classes_file_is_an_error(write_text):
    labels = write_text("a.txt", "0 0.5 0.5 1 1\n")
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        read_yolo(labels, image_size=(8, 6))


# --- masks, scaling, cropping ----------------------------------------------------------------


def test_box_from_mask_is_tight_and_exclusive():
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2, 3] = 1
    mask[4, 6] = 255
    assert box_from_mask(mask) == (3, 2, 7, 5)
    assert box_from_mask(torch.from_numpy(mask)) == (3, 2, 7, 5)


def test_box_from_empty_mask_raises():
    with pytest.raises(ValueError, match="empty"):
        box_from_mask(np.zeros((4, 4)))


def test_box_from_mask_rejects_3d_input():
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        box_from_mask(np.ones((1, 4, 4)))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_box_from_mask_recovers_random_rectangle(data):
    height, width = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    ymin = data.draw(st.integers(0, height - 1))
    ymax = data.draw(st.integers(ymin + 1, height))
    xmin = data.draw(st.integers(0, width - 1))
    xmax = data.draw(st.integers(xmin + 1, width))
    mask = np.zeros((height, width), dtype=bool)
    mask[ymin:ymax, xmin:xmax] = True
    assert box_from_mask(mask) == (xmin, ymin, xmax, ymax)


def test_scale_box_doubles_coordinates():
    assert scale_box((1, 2, 3, 4), (10, 10), (20, 40)) == (2, 8, 6, 16)


def test_scale_box_keeps_at_least_one_pixel():
    assert scale_box((5, 5, 6, 6), (100, 100), (10, 10)) == (1, 1, 2, 2)


def test_scale_box_rejects_box_outside_source():
    with pytest.raises(ValueError, match="outside the 10x10 image"):
        scale_box((0, 0, 11, 5), (10, 10), (20, 20))


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_scale_box_up_then_down_round_trips(data):
    width, height = data.draw(st.integers(1, 300)), data.draw(st.integers(1, 300))
    big = (data.draw(st.integers(width, 900)), data.draw(st.integers(height, 900)))
    xmin = data.draw(st.integers(0, width - 1))
    ymin = data.draw(st.integers(0, height - 1))
    box = (
        xmin,
        ymin,
        data.draw(st.integers(xmin + 1, width)),
        data.draw(st.integers(ymin + 1, height)),
    )
    scaled = scale_box(box, (width, height), big)
    assert 0 <= scaled[0] < scaled[2] <= big[0] and 0 <= scaled[1] < scaled[3] <= big[1]
    assert scale_box(scaled, big, (width, height)) == box


def test_crop_and_resize_identity_when_box_is_whole_image_of_target_size():
    frame = torch.arange(3 * 4 * 4, dtype=torch.float64).reshape(3, 4, 4)
    assert torch.equal(crop_and_resize(frame, (0, 0, 4, 4), size=4), frame)


def test_crop_and_resize_takes_the_boxed_pixels():
    frame = torch.zeros(3, 8, 8, dtype=torch.float64)
    frame[:, 2:4, 5:7] = 1.0
    crop = crop_and_resize(frame, (5, 2, 7, 4), size=6)
    assert crop.shape == (3, 6, 6)
    assert torch.equal(crop, torch.ones(3, 6, 6, dtype=torch.float64))


def test_crop_and_resize_batch_matches_single_crops_and_passes_gradient():
    frames = torch.randn(2, 3, 10, 12, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[0, 0, 5, 5], [2, 3, 12, 10]], dtype=torch.float32)
    crops = crop_and_resize(frames, boxes, size=7)
    assert crops.shape == (2, 3, 7, 7)
    assert torch.equal(crops[1], crop_and_resize(frames[1], (2, 3, 12, 10), size=7))
    crops.sum().backward()
    assert frames.grad[0, :, :5, :5].abs().sum() > 0
    assert frames.grad[0, :, 5:, :].abs().sum() == 0  # outside box 0: no gradient


def test_crop_and_resize_rejects_mismatched_boxes():
    with pytest.raises(ValueError, match=r"boxes \[N,4\]"):
        crop_and_resize(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4), size=4)


def test_crop_and_resize_rejects_box_outside_frame():
    with pytest.raises(ValueError, match="outside the 8x8 image"):
        crop_and_resize(torch.zeros(3, 8, 8), (0, 0, 9, 4), size=4)
