"""The frozen-encoder feature cache: same losses as without it, and a fresh cache when weights or data change."""

import os

import pytest
import torch
import torchvision

from avs_lib.data import collate_clips
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.datasets import build_dataset
from avs_lib.engine.features import WithFrozenFeatures, frozen_features, frozen_parts
from avs_lib.engine.system import AVSSystem
from avs_lib.engine.train import fit, read_steps
from avs_lib.models.logmel_cnn import LogMelCNN


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Stand-ins for pretrained files: a torchvision ResNet-18 and a LogMelCNN, random but fixed,
    with BatchNorm statistics that are not the identity (so eval mode matters)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(11)
    resnet, audio = torchvision.models.resnet18(), LogMelCNN()
    for module in [*resnet.modules(), *audio.modules()]:
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(resnet.state_dict(), folder / "resnet.pth")
    torch.save(audio.state_dict(), folder / "audio.pth")
    return folder / "resnet.pth", folder / "audio.pth"


def frozen_config(root, weights, out, method="thesis_counterfactual", data=None, **top):
    resnet, audio = weights
    overrides = {
        "data": {"root": str(root), "crop_size": 32, **(data or {})},
        "model": {"resnet_weights": str(resnet), "crop_weights": str(resnet), "freeze_backbone": True,
                  "audio_weights": str(audio), "freeze_audio": True},
        "optim": {"epochs": 1, "steps_per_epoch": 3},
        "output_dir": str(out), "device": "cpu", "quiet": True, **top,
    }
    return build_config("smoke", method, overrides=overrides)


def test_a_run_with_cached_features_has_the_losses_of_a_run_without(tiny_synth, weight_files, tmp_path):
    # thesis_counterfactual: cached visual stages, cached audio and counterfactual-audio embeddings,
    # crops cut from the frames: every path the cache touches.
    cached = fit(frozen_config(tiny_synth, weight_files, tmp_path / "cached"))
    live = fit(frozen_config(tiny_synth, weight_files, tmp_path / "live", feature_cache=False))
    assert any((tmp_path / "cached" / "feature_cache").glob("train-*/stage0.npy"))
    assert any((tmp_path / "cached" / "feature_cache").glob("val-*/audio.npy"))  # validation reads them too
    assert not (tmp_path / "live" / "feature_cache").exists()
    steps_cached, steps_live = read_steps(cached.run_dir), read_steps(live.run_dir)
    assert len(steps_cached) == len(steps_live) == 3
    for a, b in zip(steps_cached, steps_live, strict=True):
        for key in ("total", "crop_ce", "audio_crop_cosine", "counterfactual"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert cached.best_val_miou == pytest.approx(live.best_val_miou, abs=1e-6)
    for key in ("miou", "miou_silent", "miou_swapped"):
        assert cached.test_metrics[key] == pytest.approx(live.test_metrics[key], abs=1e-6), key
    # Validation reads the partner's cached embedding and the embedding of silence instead of
    # running the audio encoder on those tracks: the same diagnostics.
    (val_cached,), (val_live,) = cached.history, live.history
    for key in ("val_miou", "val_miou_silent", "val_miou_swapped", "val_listening_rate", "val_following_rate"):
        assert val_cached[key] == pytest.approx(val_live[key], abs=1e-6), key


def test_evaluation_with_cached_audio_does_not_run_the_audio_encoder_on_swapped_or_silent_tracks(
        tiny_synth, weight_files, tmp_path, monkeypatch):
    from avs_lib.engine.evaluate import evaluate_system
    from avs_lib.engine.features import feature_cache_folder

    cfg = frozen_config(tiny_synth, weight_files, tmp_path, method="tpavi")
    system = AVSSystem(cfg).eval()
    dataset = build_dataset(cfg, "val")
    features = frozen_features(system, dataset, feature_cache_folder(None, str(tmp_path)), torch.device("cpu"))
    with_features = WithFrozenFeatures(dataset, features)
    plain = evaluate_system(system, cfg, "val", torch.device("cpu"), dataset=dataset)
    clips = []
    encoder = system.audio_encoder.forward
    monkeypatch.setattr(system.audio_encoder, "forward", lambda x: clips.append(len(x)) or encoder(x))
    fast = evaluate_system(system, cfg, "val", torch.device("cpu"), dataset=with_features)
    assert clips == [5]  # one silent clip's 5 frames, once per evaluation
    for key in ("miou", "miou_silent", "miou_swapped", "listening_rate", "following_rate", "silent_area_change"):
        assert fast[key] == pytest.approx(plain[key], abs=1e-6), key


def test_items_kept_in_memory_give_the_same_run_bit_for_bit(tiny_synth, weight_files, tmp_path):
    configs = [frozen_config(tiny_synth, weight_files, tmp_path / "kept"),
               frozen_config(tiny_synth, weight_files, tmp_path / "read", data={"memory_cache_mb": 0})]
    for cfg in configs:
        cfg.optim.epochs = 3  # items are read again from memory in epochs 2 and 3
    kept, read = (fit(cfg) for cfg in configs)
    assert len(read_steps(kept.run_dir)) == 9
    assert read_steps(kept.run_dir) == read_steps(read.run_dir)
    assert kept.history == read.history


def test_in_memory_items_are_copies_and_the_budget_holds(tiny_synth):
    from avs_lib.engine.datasets import InMemory

    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    base = build_dataset(cfg, "val")
    one = sum(v.nbytes for v in base[0].values() if isinstance(v, torch.Tensor))
    memory = InMemory(base, budget_bytes=2 * one + 1)
    first = memory[0]
    first["added_by_a_wrapper"] = 1
    assert "added_by_a_wrapper" not in memory[0]
    for i in range(len(base)):
        assert torch.equal(memory[i]["frames"], base[i]["frames"])
    assert sorted(memory.items) == [0, 1]  # the budget held two items; the rest are read each time
    assert memory.used <= memory.budget


def test_cached_features_are_the_encoders_outputs(tiny_synth, weight_files, tmp_path):
    cfg = frozen_config(tiny_synth, weight_files, tmp_path, method="tpavi")
    system = AVSSystem(cfg).eval()
    dataset = build_dataset(cfg, "train")
    features = frozen_features(system, dataset, tmp_path / "cache", torch.device("cpu"), batch_size=3)
    batch = collate_clips([WithFrozenFeatures(dataset, features)[i] for i in (5, 2)])
    with torch.no_grad():
        stages = system.model.encode(batch["frames"].flatten(0, 1))
        audio = system.embed_audio(batch["audio"])
    for i, stage in enumerate(stages):
        torch.testing.assert_close(batch[f"encoder_stage{i}"].flatten(0, 1), stage, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch["audio_embedding"].flatten(0, 1), audio, rtol=1e-5, atol=1e-6)


def test_the_cache_is_computed_again_when_the_encoder_weights_change(tiny_synth, weight_files, tmp_path):
    cfg = frozen_config(tiny_synth, weight_files, tmp_path, method="tpavi")
    system = AVSSystem(cfg)
    dataset = build_dataset(cfg, "train")
    first = frozen_features(system, dataset, tmp_path / "cache", torch.device("cpu"))
    with torch.no_grad():
        system.model.resnet.layer4_1[0].conv1.weight.mul_(2.0)
    second = frozen_features(system, dataset, tmp_path / "cache", torch.device("cpu"))
    assert second.folder != first.folder
    assert not torch.equal(torch.from_numpy(first.stages[3][0].copy()), torch.from_numpy(second.stages[3][0].copy()))
    torch.testing.assert_close(torch.from_numpy(first.stages[0][0].copy()),
                               torch.from_numpy(second.stages[0][0].copy()))  # before layer4: unchanged
    again = frozen_features(system, dataset, tmp_path / "cache", torch.device("cpu"))
    assert again.folder == second.folder  # unchanged weights and data: reused


def test_the_cache_is_computed_again_when_a_frame_changes(tiny_synth, weight_files, tmp_path):
    import shutil

    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(tiny_synth, root)
    cfg = frozen_config(root, weight_files, tmp_path, method="tpavi")
    system = AVSSystem(cfg)
    first = frozen_features(system, build_dataset(cfg, "train"), tmp_path / "cache", torch.device("cpu"))
    dataset = build_dataset(cfg, "train")
    frame = dataset.paths(0).frames[0]
    Image.new("RGB", Image.open(frame).size, (255, 0, 0)).save(frame)
    stat = os.stat(frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a clock tick coarser than the edit
    second = frozen_features(system, build_dataset(cfg, "train"), tmp_path / "cache", torch.device("cpu"))
    assert second.folder != first.folder
    assert not torch.equal(torch.from_numpy(first.stages[0][0].copy()), torch.from_numpy(second.stages[0][0].copy()))
    torch.testing.assert_close(torch.from_numpy(first.stages[0][1].copy()), torch.from_numpy(second.stages[0][1].copy()))


def test_nothing_is_cached_for_trained_encoders(tiny_synth, tmp_path):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    system = AVSSystem(cfg)
    assert not frozen_parts(system).any
    assert frozen_features(system, build_dataset(cfg, "train"), tmp_path, torch.device("cpu")) is None


def test_cached_features_for_a_trained_encoder_are_refused(tiny_synth):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    system = AVSSystem(cfg)
    batch = collate_clips([build_dataset(cfg, "train")[0]])
    batch.update({f"encoder_stage{i}": torch.zeros(1, 5, 1) for i in range(4)})
    with pytest.raises(ValueError, match="freeze_backbone"):
        system(batch)


def test_evaluation_computes_the_visual_maps_once_for_several_audio_tracks(tiny_synth, monkeypatch):
    from avs_lib.engine.evaluate import predict_logits

    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    system = AVSSystem(cfg).eval()
    batch = collate_clips([build_dataset(cfg, "val")[i] for i in (0, 1)])
    silent = torch.full_like(batch["audio"], -4.6)
    calls = []
    project = system.model.project
    monkeypatch.setattr(system.model, "project", lambda stages: calls.append(1) or project(stages))
    true_audio = predict_logits(system, batch, torch.device("cpu"))
    with_silence = predict_logits(system, batch, torch.device("cpu"), silent)
    assert len(calls) == 1
    with torch.no_grad():
        visual = system.model.project(system.model.encode(batch["frames"].flatten(0, 1)))
        decode = system.model.fuse_and_decode_projected
        assert torch.equal(with_silence, decode(visual, system.embed_audio(silent))[0])
        assert torch.equal(true_audio, decode(visual, system.embed_audio(batch["audio"]))[0])


def test_a_weight_change_drops_the_kept_visual_maps(tiny_synth):
    from avs_lib.engine.evaluate import predict_logits

    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    system = AVSSystem(cfg).eval()
    batch = collate_clips([build_dataset(cfg, "val")[0]])
    before = predict_logits(system, batch, torch.device("cpu"))
    with torch.no_grad():
        system.model.conv1.conv2d_list[0].weight.mul_(3.0)
    after = predict_logits(system, batch, torch.device("cpu"))
    with torch.no_grad():
        fresh = system.model(batch["frames"].flatten(0, 1), system.embed_audio(batch["audio"]))[0]
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh)


def test_evaluating_a_run_through_the_feature_cache_gives_its_scores(tiny_synth, weight_files, tmp_path):
    from avs_lib.engine.evaluate import evaluate

    run = fit(frozen_config(tiny_synth, weight_files, tmp_path / "runs", method="tpavi", evaluate_test=False))
    cache = tmp_path / "cache"
    plain = evaluate(run.run_dir, "test", device="cpu", out_dir=tmp_path / "plain")
    cached = evaluate(run.run_dir, "test", device="cpu", out_dir=tmp_path / "cached", feature_cache=cache)
    assert len(list(cache.glob("test-*/stage0.npy"))) == 1 and len(list(cache.glob("test-*/audio.npy"))) == 1
    for key in ("miou", "miou_silent", "miou_swapped", "f_score_split", "listening_rate", "following_rate"):
        assert cached[key] == pytest.approx(plain[key], abs=1e-6), key


def test_best_checkpoint_holds_the_weights_and_last_holds_the_resume_state(tiny_synth, weight_files, tmp_path):
    from avs_lib.engine.checkpoint import load_checkpoint
    from avs_lib.engine.system import load_system

    run = fit(frozen_config(tiny_synth, weight_files, tmp_path, method="thesis"))
    best, last = load_checkpoint(run.run_dir / "best.pt"), load_checkpoint(run.run_dir / "last.pt")
    assert {"optimizer", "scheduler", "rng"} <= set(last) and not {"optimizer", "scheduler", "rng"} & set(best)
    assert (run.run_dir / "best.pt").stat().st_size < (run.run_dir / "last.pt").stat().st_size / 2
    system, _ = load_system(run.run_dir / "best.pt")  # evaluation needs nothing else
    assert all(torch.equal(system.state_dict()[k], v) for k, v in best["system"].items())


def test_a_run_loaded_back_has_the_encoders_it_was_trained_with_frozen(tiny_synth, weight_files, tmp_path):
    from avs_lib.engine.features import frozen_parts
    from avs_lib.engine.system import load_system

    run = fit(frozen_config(tiny_synth, weight_files, tmp_path, method="tpavi", evaluate_test=False))
    system, _ = load_system(run.run_dir / "best.pt")
    assert frozen_parts(system).visual and frozen_parts(system).audio  # so test and shifted splits read the cache
