"""The shifted test split: new looks, shared colours, noisy sound, off-screen sounding objects."""

import colorsys
import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from avs_lib.data.audio import read_wav
from avs_lib.data.avsbench import AVSBenchS4, read_crop_label
from avs_lib.data.sidecar import read_info, read_sidecar, sounding_on_screen
from avs_lib.datatools.synth import (
    CLASS_LOOKS,
    SHARED_HUES,
    ShiftParams,
    SynthParams,
    _shifted_looks,
    ensure_shifted_test,
    look_variant,
    make_dataset,
    mix_at_snr,
    plan_clips,
    plan_shifted_test,
    render_clip,
)

BASE = SynthParams((2, 2, 6), 64, seed=3, num_classes=8)
SHIFT = ShiftParams(looks_per_class=3, shared_colours=True, snr_db=0.0, offscreen_fraction=0.5)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    root = tmp_path_factory.mktemp("shifted") / "snr0"
    ensure_shifted_test(root, BASE, SHIFT, workers=1)
    return root


def _meta_names(root):
    return [line.split(",")[0] for line in (root / "s4_meta_data.csv").read_text().splitlines()[1:]]


def test_shifted_split_is_the_clean_test_plan_and_holds_only_a_test_split(shifted):
    clean = [p for p in plan_clips(BASE) if p.split == "test"]
    plans = plan_shifted_test(dataclasses.replace(BASE, shift=SHIFT))
    assert [(p.name, p.classes, p.swap_partner) for p in plans] == [(p.name, p.classes, p.swap_partner) for p in clean]
    assert _meta_names(shifted) == [p.name for p in clean]
    assert {line.split(",")[3] for line in (shifted / "s4_meta_data.csv").read_text().splitlines()[1:]} == {"test"}


def test_off_screen_clips_have_empty_targets_valid_files_and_say_so(shifted):
    data = AVSBenchS4(shifted, "test", image_size=64, crop_labels=True)
    offscreen = 0
    for index, clip in enumerate(data.clips):
        sidecar = read_sidecar(shifted, "test", clip.name)
        masks = data[index]["masks"]  # [5, 1, S, S] from the PNG files
        if sidecar.sounding_on_screen:
            assert sidecar.masks[0].any() and masks.sum() > 0
            continue
        offscreen += 1
        assert sidecar.category == clip.category  # it is still heard
        assert not sidecar.masks[0].any() and masks.sum() == 0
        assert (sidecar.visible_fraction[0] == 0).all() and sidecar.masks[1:].any()
        xml = data.paths(index).crop_labels[0]
        assert read_crop_label(xml, clip.category, None)[0] == (0, 0, 64, 64)
    assert offscreen == 3 == read_info(shifted)["counts"]["clips_sounding_offscreen"]["test"]


def test_on_screen_table_names_every_clip_and_marks_the_off_screen_ones(shifted, tiny_synth):
    table = sounding_on_screen(shifted, "test")
    assert sorted(table) == sorted(_meta_names(shifted)) and sum(not v for v in table.values()) == 3
    assert all(sounding_on_screen(tiny_synth, "test").values())
    with pytest.raises(FileNotFoundError, match="synth_sidecar"):
        sounding_on_screen(shifted, "train")


def test_clean_sidecars_do_not_store_the_on_screen_flag(tiny_synth):
    name = _meta_names(tiny_synth)[0]
    with np.load(next((tiny_synth / "synth_sidecar" / "train").glob("*.npz"))) as archive:
        assert "sounding_on_screen" not in archive.files
    assert "shift" not in read_info(tiny_synth)["parameters"]
    assert read_sidecar(tiny_synth, "train", name).sounding_on_screen


def test_a_neutral_shift_draws_exactly_the_clean_clip():
    plan = [p for p in plan_clips(BASE) if p.split == "test"][0]
    clean = render_clip(plan, BASE)
    neutral = render_clip(plan, dataclasses.replace(BASE, shift=ShiftParams()))
    for field in ("frames", "masks", "boxes", "visible_fraction", "waveform"):
        assert np.array_equal(getattr(clean, field), getattr(neutral, field)), field


def test_look_variant_zero_is_the_training_look_and_others_change_shape_and_texture():
    for index in range(8):
        assert look_variant(index, 0) == CLASS_LOOKS[index]
        others = {(look_variant(index, v).shape, look_variant(index, v).texture) for v in (1, 2, 3)}
        assert (CLASS_LOOKS[index].shape, CLASS_LOOKS[index].texture) not in others and len(others) == 3


def test_shifted_objects_wear_several_looks_and_colours_shared_across_classes():
    rng = np.random.default_rng(0)
    looks = [_shifted_looks([c], SHIFT, rng)[0] for c in [0, 1] * 40]
    for category in (0, 1):
        assert len({(look.shape, look.texture) for look in looks[category::2]}) == 3
    palette = {tuple(round(v, 6) for v in look.colour) for look in looks}
    assert palette <= {tuple(round(v, 6) for v in colorsys.hsv_to_rgb(h, 0.85, 0.95)) for h in SHARED_HUES}
    assert {tuple(round(v, 6) for v in look.colour) for look in looks[0::2]} & {
        tuple(round(v, 6) for v in look.colour) for look in looks[1::2]}  # two classes share a colour


def test_mix_at_snr_sets_the_power_ratio():
    rng = np.random.default_rng(0)
    signal, noise = 0.1 * rng.standard_normal(16000), rng.standard_normal(16000)
    for snr in (10.0, 0.0):
        added = mix_at_snr(signal, noise, snr).astype(np.float64) - signal
        assert 10 * math.log10(np.mean(signal**2) / np.mean(added**2)) == pytest.approx(snr, abs=1e-3)


def test_a_loud_mixture_is_scaled_down_whole_keeping_its_snr():
    signal = np.full(100, 0.9)
    noise = np.random.default_rng(1).standard_normal(100)
    mixed = mix_at_snr(signal, noise, 0.0).astype(np.float64)
    unscaled = signal + math.sqrt(np.mean(signal**2) / np.mean(noise**2)) * noise  # peaks above 1
    assert np.abs(unscaled).max() > 1.0 and np.abs(mixed).max() == pytest.approx(0.99, abs=1e-6)
    ratio = mixed / unscaled
    assert ratio == pytest.approx(np.full(100, ratio[0]), rel=1e-5)  # one factor: the SNR is kept


def test_rendered_sound_carries_noise_at_the_asked_snr():
    plan = [p for p in plan_clips(BASE) if p.split == "test"][0]
    clean = render_clip(plan, BASE).waveform.astype(np.float64)
    noisy = render_clip(plan, dataclasses.replace(BASE, shift=ShiftParams(snr_db=10.0)))
    mixed = noisy.waveform.astype(np.float64)
    scale = (mixed @ clean) / (clean @ clean)  # 1 unless the mixture was scaled down to fit
    noise = mixed / scale - clean
    assert 10 * math.log10(np.mean(clean**2) / np.mean(noise**2)) == pytest.approx(10.0, abs=0.3)


def test_written_wavs_are_valid_five_second_clips(shifted):
    for wav in (shifted / "s4_data" / "audio_wav" / "test").rglob("*.wav"):
        waveform, rate = read_wav(wav)
        assert rate == 16000 and len(waveform) == 80000


def test_the_shifted_split_is_deterministic(shifted, tmp_path):
    again = tmp_path / "again"
    ensure_shifted_test(again, BASE, SHIFT, workers=1)
    written = [p for p in again.rglob("*") if p.is_file()]
    assert len(written) > 6 * 16
    for path in written:
        assert (shifted / path.relative_to(again)).read_bytes() == path.read_bytes(), path


def test_ensure_shifted_test_reuses_a_matching_root_and_remakes_another(shifted, tmp_path):
    assert ensure_shifted_test(shifted, BASE, SHIFT).seconds == 0.0
    other = ShiftParams(looks_per_class=2, snr_db=10.0)
    info = ensure_shifted_test(shifted.parent / "remade", BASE, other)
    assert info.seconds > 0 and read_info(info.root)["parameters"]["shift"]["snr_db"] == 10.0


@pytest.mark.parametrize("bad", [{"looks_per_class": 0}, {"looks_per_class": 5}, {"snr_db": math.inf},
                                 {"offscreen_fraction": 1.5}, {"snr_db_range": (10.0, 0.0)},
                                 {"snr_db_range": (0.0, math.nan)}, {"snr_db_range": (0.0, 5.0), "snr_db": 3.0}])
def test_bad_shift_parameters_are_value_errors(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ShiftParams(**bad)


def test_more_off_screen_clips_than_clips_with_distractors_is_an_error(tmp_path):
    no_distractors = SynthParams((1, 1, 4), 48, seed=0, max_distractors=0, num_classes=8)
    with pytest.raises(ValueError, match="have a distractor"):
        ensure_shifted_test(tmp_path / "x", no_distractors, ShiftParams(offscreen_fraction=0.5))


def test_a_shifted_base_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shift=None"):
        ensure_shifted_test(tmp_path / "x", dataclasses.replace(BASE, shift=SHIFT), SHIFT)


def test_a_trained_model_is_evaluated_on_the_shifted_root_without_retraining(tmp_path):
    from avs_lib.config import to_dict
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.checkpoint import atomic_torch_save
    from avs_lib.engine.evaluate import evaluate
    from avs_lib.engine.system import AVSSystem

    base = SynthParams((4, 2, 4), 64, seed=3, num_classes=8)
    clean = tmp_path / "clean"
    make_dataset(clean, base.videos_per_split, image_size=64, seed=3, num_classes=8, workers=1, progress=False)
    shifted = tmp_path / "shifted"
    ensure_shifted_test(shifted, base, ShiftParams(3, True, 10.0, 0.5), workers=1)
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(clean)}, "quiet": True,
                                                    "output_dir": str(tmp_path / "runs")})
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = AVSSystem(cfg)
    run_dir = cfg.run_dir
    atomic_torch_save({"config": to_dict(cfg), "system": system.state_dict()}, run_dir / "best.pt")
    metrics = evaluate(run_dir, split="test", device="cpu", data_root=str(shifted), out_dir=tmp_path / "eval")
    assert metrics["frames"] == 4 * 5 and 0.0 <= metrics["miou"] <= 1.0
    assert metrics["listening_frames"] > 0
    per_clip = (tmp_path / "eval" / "per_clip.csv").read_text().splitlines()
    assert len(per_clip) == 1 + 4
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["frames"] == 20
    with Image.open(next((tmp_path / "eval" / "pred_masks").rglob("*.png"))) as image:
        assert image.size == (64, 64)


# ---------------------------------------------------------------- a fresh test split, and the development one


def _plans_by_split(params):
    from avs_lib.datatools.synth import plan_clips
    plans = plan_clips(params)
    return {split: [(p.name, p.classes, p.swap_partner, p.start) for p in plans if p.split == split]
            for split in ("train", "val", "test")}


def test_a_test_seed_redraws_only_the_test_split_with_names_of_its_own():
    from avs_lib.datatools.synth import synth_info_json
    base = SynthParams((16, 8, 8), 64, num_classes=8)
    fresh = dataclasses.replace(base, test_seed=1)
    old, new = _plans_by_split(base), _plans_by_split(fresh)
    assert old["train"] == new["train"] and old["val"] == new["val"]
    assert old["test"] != new["test"] and len(new["test"]) == 8
    names = [n for split in new.values() for n, *_ in split]
    assert len(set(names)) == len(names)  # no fresh test clip reuses a train/val name
    assert "test_seed" not in synth_info_json(base)["parameters"]  # the old data's info.json is unchanged
    assert synth_info_json(fresh)["parameters"]["test_seed"] == 1


def test_the_development_test_root_is_the_old_test_split_byte_for_byte(tmp_path):
    from avs_lib.datatools.synth import ensure_development_test
    counts = (6, 4, 4)
    make_dataset(tmp_path / "old", counts, image_size=64, num_classes=8, workers=1, progress=False)
    make_dataset(tmp_path / "fresh", counts, image_size=64, num_classes=8, test_seed=1, workers=1, progress=False)
    fresh_params = SynthParams(counts, 64, num_classes=8, test_seed=1)
    made = ensure_development_test(tmp_path / "devtest", fresh_params, workers=1)

    def test_files(root):
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file() and "/test/" in f.as_posix()}

    assert test_files(tmp_path / "devtest") == test_files(tmp_path / "old") != test_files(tmp_path / "fresh")
    assert made.seconds > 0 and ensure_development_test(tmp_path / "devtest", fresh_params, workers=1).seconds == 0.0
    train = [f for f in (tmp_path / "old").rglob("*") if f.is_file() and "/train/" in f.as_posix()]
    assert train and all(f.read_bytes() == (tmp_path / "fresh" / f.relative_to(tmp_path / "old")).read_bytes()
                         for f in train)


def test_only_a_profile_with_a_fresh_test_split_has_a_development_test(tmp_path):
    from avs_lib.datatools.profiles import get_profile
    from avs_lib.report.shifted import development_test_roots
    assert development_test_roots("smoke", tmp_path) == {}  # one test split: nothing to keep aside
    assert get_profile("cpu").synthetic.test_seed is not None  # the committed report's test split is fresh


def _snr_db(clean, mixed):
    clean, mixed = clean.astype(np.float64), mixed.astype(np.float64)
    scale = (mixed @ clean) / (clean @ clean)  # 1 unless the mixture was scaled down to fit
    return 10 * math.log10(np.mean(clean**2) / np.mean((mixed / scale - clean) ** 2))


def test_an_snr_range_draws_each_clips_noise_level_inside_it_and_differently_per_clip():
    params = dataclasses.replace(BASE, shift=ShiftParams(snr_db_range=(2.0, 18.0)))
    levels = [_snr_db(render_clip(p, BASE).waveform, render_clip(p, params).waveform)
              for p in plan_clips(BASE) if p.split == "train"]
    assert all(1.7 <= level <= 18.3 for level in levels), levels
    assert max(levels) - min(levels) > 0.5  # drawn per clip, not one level for all


def test_a_harder_profile_applies_its_shift_to_every_split_and_reads_back_as_the_same_data(tmp_path):
    from avs_lib.datatools.profiles import SyntheticData
    from avs_lib.datatools.synth import make_profile_dataset, profile_params, synth_info_json
    spec = SyntheticData((2, 2, 2), 64, num_classes=8, looks_per_class=3, shared_colours=True, snr_db_range=(0.0, 20.0))
    assert profile_params(spec).shift == ShiftParams(3, True, snr_db_range=(0.0, 20.0))
    assert profile_params(SyntheticData((2, 2, 2), 64)).shift is None  # the plain profiles' data is as before
    make_profile_dataset(tmp_path / "hard", spec, progress=False)
    assert read_info(tmp_path / "hard") == synth_info_json(profile_params(spec))  # tuples survive JSON
    assert {line.split(",")[3] for line in (tmp_path / "hard" / "s4_meta_data.csv").read_text().splitlines()[1:]} \
        == {"train", "val", "test"}


def test_a_harder_profile_has_no_shifted_or_development_splits_of_its_own(tmp_path):
    from avs_lib.report.shifted import development_test_roots, shifted_roots
    assert shifted_roots("cpu_multilook", tmp_path) == {} and development_test_roots("cpu_noisy", tmp_path) == {}
