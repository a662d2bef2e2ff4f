"""Synthetic encoder pretraining: crops and labels, files that load as real weights, determinism."""

import json
from pathlib import Path

import pytest
import torch

from avs_lib.data.errors import DataFormatError
from avs_lib.data.sidecar import read_sidecar
from avs_lib.datatools.pretrain import (
    AUDIO_FILE,
    REPORT_FILE,
    VISUAL_FILE,
    PretrainConfig,
    audio_examples,
    object_crops,
    pretrain_encoders,
)
from avs_lib.models.build import build_audio_encoder, build_model
from avs_lib.models.config import ModelConfig
from avs_lib.models.logmel_cnn import LogMelCNN

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


def test_ensure_pretrained_reuses_an_up_to_date_report_and_redoes_a_stale_one(tiny_synth, pretrained, tmp_path):
    import shutil

    from avs_lib.datatools.pretrain import ensure_pretrained

    out, report = pretrained
    visual = out / VISUAL_FILE
    stamp = visual.stat().st_mtime_ns
    assert ensure_pretrained(tiny_synth, out, TINY, quiet=True) == report
    assert visual.stat().st_mtime_ns == stamp  # reused, not retrained

    # The same path with regenerated (different) data gets another fingerprint: pretrained again.
    copy = tmp_path / "data"
    shutil.copytree(tiny_synth, copy)
    first = ensure_pretrained(copy, tmp_path / "enc", TINY, quiet=True)
    meta = copy / "s4_meta_data.csv"
    meta.write_text(meta.read_text() + "\n")
    second = ensure_pretrained(copy, tmp_path / "enc", TINY, quiet=True)
    assert second["data_fingerprint"] != first["data_fingerprint"]
    # Another config is redone as well.
    other = PretrainConfig(image_size=64, crop_size=32, visual_epochs=1, audio_epochs=1, batch_size=8, seed=1)
    assert ensure_pretrained(copy, tmp_path / "enc", other, quiet=True)["config"]["seed"] == 1


def test_a_corrupt_report_is_an_error_naming_the_file(tiny_synth, tmp_path):
    from avs_lib.datatools.pretrain import ensure_pretrained

    (tmp_path / REPORT_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=REPORT_FILE):
        ensure_pretrained(tiny_synth, tmp_path, TINY, quiet=True)


def test_overrides_from_a_report_build_every_method(pretrained):
    from avs_lib.datatools.pretrain import weight_overrides_from
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.system import AVSSystem

    _, report = pretrained
    overrides = weight_overrides_from(report)
    saved = torch.load(report["visual_weights"], weights_only=True)
    for method in ("tpavi", "thesis", "thesis_shared"):
        cfg = build_config("smoke", method, overrides=overrides)
        system = AVSSystem(cfg)
        assert torch.equal(system.model.resnet.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])
        assert not any(p.requires_grad for p in system.audio_encoder.parameters())


def test_starting_weights_prefer_the_users_files_and_pretrain_only_on_synthetic_data(tmp_path):
    from avs_lib.report.runs import starting_weights

    given = starting_weights("cpu", tmp_path / "synth", resnet_weights="/w/r.pth")
    assert given == {"model": {"resnet_weights": "/w/r.pth", "crop_weights": "/w/r.pth"}}
    # Without the generator's sidecar the data is the user's: the recipe cannot run, random init.
    (tmp_path / "AVSBench").mkdir()
    assert starting_weights("cpu", tmp_path / "AVSBench") == {}
    (tmp_path / "synth" / "synth_sidecar").mkdir(parents=True)
    assert starting_weights("paper", tmp_path / "synth") == {}  # no recipe


def test_starting_weights_pretrain_the_smoke_data_once(tmp_path):
    from avs_lib.datatools.pretrain import PRETRAINED_FOLDER
    from avs_lib.report.runs import prepare_data, starting_weights

    root = prepare_data("smoke", tmp_path / "synth")
    first = starting_weights("smoke", root, quiet=True)
    files = [Path(first["model"][k]) for k in ("resnet_weights", "audio_weights")]
    assert all(f.is_file() and f.parent == root / PRETRAINED_FOLDER for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    assert starting_weights("smoke", root, quiet=True) == first
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_a_frozen_backbone_keeps_its_weights_and_statistics_through_a_training_step(tiny_synth, pretrained):
    from avs_lib.data import collate_clips
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.datasets import build_dataset
    from avs_lib.engine.system import AVSSystem
    from avs_lib.losses import TotalLoss

    out, _ = pretrained
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "model": {
        "resnet_weights": str(out / VISUAL_FILE), "freeze_backbone": True}})
    system = AVSSystem(cfg)
    system.train()
    resnet = system.model.resnet
    assert not resnet.training and not any(p.requires_grad for p in resnet.parameters())
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    trainable = [p for p in system.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    data = build_dataset(cfg, "train")
    batch = collate_clips([data[0], data[1]])
    total, _ = TotalLoss(cfg.loss)(system(batch), batch)
    total.backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in system.model.output_conv.parameters())


def test_freezing_a_random_backbone_is_an_error():
    with pytest.raises(ValueError, match="freeze_backbone"):
        ModelConfig(freeze_backbone=True).validate()


def test_a_run_names_its_frozen_encoders_files_and_loads_them_bit_for_bit(tiny_synth, pretrained, tmp_path):
    """A checkpoint stores what was trained, not copies of the frozen encoders: it names their weight
    files with a hash. Without those files loading says which file to put back; with them the
    run loads exactly as it was."""
    import shutil

    from avs_lib.datatools.pretrain import weight_overrides_from
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.system import load_system
    from avs_lib.engine.train import fit

    out, report = pretrained
    files = tmp_path / "encoders"
    shutil.copytree(out, files)
    moved = json.loads(json.dumps(report).replace(str(out.resolve()), str(files.resolve())))
    cfg = build_config("smoke", "tpavi", overrides={
        **weight_overrides_from(moved), "data": {"root": str(tiny_synth), "train_limit": 2, "eval_limit": 2},
        "optim": {"epochs": 1, "steps_per_epoch": 1}, "output_dir": str(tmp_path / "runs"), "quiet": True})
    fit(cfg)
    before, _ = load_system(cfg.run_dir / "best.pt")
    kept = tmp_path / "kept"
    shutil.move(files, kept)
    with pytest.raises(FileNotFoundError, match="put that file back"):
        load_system(cfg.run_dir / "best.pt")
    shutil.move(kept, files)
    system, saved = load_system(cfg.run_dir / "best.pt")
    assert saved.model.freeze_backbone and saved.model.resnet_weights.startswith(str(files.resolve()))
    assert system.model.resnet.frozen and not system.training
    state, expected = system.state_dict(), before.state_dict()
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


def test_pretraining_gives_the_same_weights_whatever_the_callers_thread_count(tiny_synth, tmp_path):
    # CPU float sums are split across threads: a pretraining run at 1 thread and one at 2 threads
    # gave other encoders (and another cpu report). The weights must depend on the config alone.
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = tmp_path / f"threads{threads}"
            pretrain_encoders(tiny_synth, out, TINY, quiet=True)
            assert torch.get_num_threads() == threads  # the caller's setting is given back
            outs.append(out)
    finally:
        torch.set_num_threads(before)
    for name in (VISUAL_FILE, AUDIO_FILE):
        a = torch.load(outs[0] / name, weights_only=True)
        b = torch.load(outs[1] / name, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((outs[0] / REPORT_FILE).read_text())["config"]["threads"] == TINY.threads
