"""Synthetic encoder pretraining: crops and labels, files that load as real weights, determinism."""

import json

import pytest
import torch

from avs_lib.data.errors import DataFormatError
from avs_lib.models.build import ModelConfig, build_audio_encoder, build_model
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.pretrain import (
    AUDIO_FILE,
    REPORT_FILE,
    VISUAL_FILE,
    PretrainConfig,
    audio_examples,
    object_crops,
    pretrain_encoders,
)
from avs_lib.synth import read_sidecar

TINY = PretrainConfig(image_size=64, crop_size=32, visual_epochs=1, audio_epochs=1, batch_size=8)


def test_object_crops_cover_every_object_of_every_frame_with_its_class(tiny_synth):
    crops, labels = object_crops(tiny_synth, "train", image_size=64, crop_size=32)
    from avs_lib.data.avsbench import AVSBenchS4

    data = AVSBenchS4(tiny_synth, "train", image_size=64, crop_labels=False)
    expected = []
    for clip in data.clips:
        for cls in read_sidecar(tiny_synth, "train", clip.name).classes.tolist():
            expected += [cls] * 5
    assert crops.shape == (len(expected), 3, 32, 32)
    assert labels.tolist() == expected
    assert torch.isfinite(crops).all()


def test_a_crop_shows_its_object_not_the_background(tiny_synth):
    """The crop of an object is cut where the sidecar box says: its pixels differ from a crop elsewhere."""
    from avs_lib.data.avsbench import AVSBenchS4
    from avs_lib.data.boxes import crop_and_resize

    crops, _ = object_crops(tiny_synth, "train", image_size=64, crop_size=32)
    data = AVSBenchS4(tiny_synth, "train", image_size=64, crop_labels=False)
    side = read_sidecar(tiny_synth, "train", data.clips[0].name)
    scale = 64 / side.masks.shape[-1]
    box = torch.as_tensor(side.boxes[0, 0], dtype=torch.float32) * scale
    direct = crop_and_resize(data[0]["frames"][0], box.tolist(), size=32)
    assert torch.equal(crops[0], direct)


def test_audio_examples_are_labelled_with_the_sounding_class(tiny_synth):
    mels, labels = audio_examples(tiny_synth, "val")
    from avs_lib.data.avsbench import AVSBenchS4

    data = AVSBenchS4(tiny_synth, "val", image_size=64, crop_labels=False)
    assert mels.shape == (5 * len(data), 1, 96, 64)
    assert labels.tolist() == [c.category_index for c in data.clips for _ in range(5)]


@pytest.fixture(scope="module")
def pretrained(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("encoders")
    return out, pretrain_encoders(tiny_synth, out, TINY, quiet=True)


def test_pretraining_writes_files_that_load_as_pretrained_weights(pretrained):
    out, report = pretrained
    assert json.loads((out / REPORT_FILE).read_text()) == report
    for part in ("visual", "audio"):
        assert 0.0 <= report[part]["val_accuracy"] <= 1.0
        assert all(loss > 0 for loss in report[part]["epoch_losses"])
    cfg = ModelConfig(backbone="resnet18", channel=32, audio_encoder="small",
                      resnet_weights=str(out / VISUAL_FILE), audio_weights=str(out / AUDIO_FILE),
                      freeze_audio=True)
    model = build_model(cfg)
    saved = torch.load(out / VISUAL_FILE, weights_only=True)
    assert torch.equal(model.resnet.layer3_1[0].conv1.weight, saved["layer3.0.conv1.weight"])
    assert not any(k.startswith("fc.") for k in saved)
    audio = build_audio_encoder(cfg)
    audio_saved = torch.load(out / AUDIO_FILE, weights_only=True)
    assert torch.equal(audio.embeddings[0].weight, audio_saved["embeddings.0.weight"])


def test_pretraining_is_deterministic(tiny_synth, pretrained, tmp_path):
    out, _ = pretrained
    again = pretrain_encoders(tiny_synth, tmp_path, TINY, quiet=True)
    for name in (VISUAL_FILE, AUDIO_FILE):
        a = torch.load(out / name, weights_only=True)
        b = torch.load(tmp_path / name, weights_only=True)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert again["visual"]["epoch_losses"] == json.loads((out / REPORT_FILE).read_text())["visual"]["epoch_losses"]


def test_pretraining_needs_the_generators_sidecar(tiny_synth, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_synth, copy)
    shutil.rmtree(copy / "synth_sidecar")
    with pytest.raises(ValueError, match="synth_sidecar"):
        pretrain_encoders(copy, tmp_path / "out", TINY, quiet=True)


def test_bad_pretrain_config_names_the_field():
    with pytest.raises(ValueError, match="visual_epochs"):
        PretrainConfig(visual_epochs=0)
    with pytest.raises(ValueError, match="lr"):
        PretrainConfig(lr=0)


def test_frozen_small_audio_encoder_keeps_its_statistics_and_gets_no_gradient():
    encoder = LogMelCNN(freeze=True)
    encoder.train()
    assert not encoder.training and not any(m.training for m in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    before = encoder.features[0][1].running_mean.clone()
    encoder(torch.randn(4, 1, 96, 64) * 5 + 3)
    assert torch.equal(encoder.features[0][1].running_mean, before)
    trained = LogMelCNN()
    trained.train()
    assert trained.training


def test_audio_weights_only_for_the_small_encoder_and_must_fit(tmp_path):
    with pytest.raises(ValueError, match="audio_weights"):
        ModelConfig(audio_encoder="vggish", audio_weights="x.pth").validate()
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(DataFormatError, match="wrong.pth"):
        build_audio_encoder(ModelConfig(audio_encoder="small", audio_weights=str(wrong)))
