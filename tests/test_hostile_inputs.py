"""A family of broken datasets, each made from the synthetic generator's output by one edit.

For every case, check-data and the training reader must agree: both refuse with an error that
names the broken file (or the metadata file and its row), or -- for the conversions the
readers do on purpose (stereo or non-16 kHz WAVs, as VGGish does) -- both say so, the reader
with one warning per dataset that names the files and their count. Nothing is written outside
the cache folder the reader is given, and nothing is read through a name like ``../../x``.
"""

import io
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from avs_lib.data import AVSBenchS4, load_audio_examples
from avs_lib.data.avsbench import S4_LAYOUT, clip_paths, read_metadata
from avs_lib.datatools.check import check_dataset
from avs_lib.engine.evaluate import _save_masks

SIZE = 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """2 train / 2 val / 2 test clips at 32 px, with official-style log-mel pickles added."""
    from avs_lib.datatools.synth import make_dataset

    root = tmp_path_factory.mktemp("hostile") / "base"
    make_dataset(root, videos_per_split=(2, 2, 2), image_size=SIZE, seed=0, progress=False, workers=1)
    for clip in read_metadata(root, S4_LAYOUT):
        paths = clip_paths(S4_LAYOUT, root, clip)
        paths.log_mel.parent.mkdir(parents=True, exist_ok=True)
        with open(paths.log_mel, "wb") as file:  # as the official preprocessing: pickle.dump
            pickle.dump(load_audio_examples(paths.wav), file)
    return root


def _val_clip(root: Path):
    clip = next(c for c in read_metadata(root, S4_LAYOUT) if c.split == "val")
    return clip, clip_paths(S4_LAYOUT, root, clip)


def _write_csv_row(root: Path, row: str) -> Path:
    csv = root / S4_LAYOUT.csv_name
    csv.write_text(csv.read_text() + row + "\n")
    return csv


def _replace_first_val_row(root: Path, old: str, new: str) -> Path:
    clip, _ = _val_clip(root)
    csv = root / S4_LAYOUT.csv_name
    lines = csv.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(f"{clip.name},"))
    lines[row] = lines[row].replace(old.format(clip=clip), new)
    csv.write_text("\n".join(lines) + "\n")
    return csv


def _float_wav(path: Path, waveform: np.ndarray, rate: int = 16000) -> Path:
    soundfile.write(str(path), waveform, rate, subtype="FLOAT", format="WAV")
    return path


def _tone(seconds: float = 5.0, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


# --- the edits: each breaks one thing and returns the file that must be named ----------------


def unsafe_name(root):
    _write_csv_row(root, "../../evil,0,dog_barking,val")
    return root / S4_LAYOUT.csv_name


def unsafe_category(root):
    return _replace_first_val_row(root, ",{clip.category},", ",../dog_barking,")


def absolute_name(root):
    return _replace_first_val_row(root, "{clip.name},", "/etc/passwd,")


def name_with_separator(root):
    return _replace_first_val_row(root, "{clip.name},", "a/b,")


def ragged_row(root):
    _write_csv_row(root, "x,0,dog_barking,val,extra")
    return root / S4_LAYOUT.csv_name


def duplicate_name(root):
    clip, _ = _val_clip(root)
    _write_csv_row(root, f"{clip.name},0,{clip.category},val")
    return root / S4_LAYOUT.csv_name


def noisy_mask(root):
    _, paths = _val_clip(root)
    values = np.asarray(Image.open(paths.masks[2]).convert("L")).copy()
    values[values == 0] = 3  # JPEG-like noise on the background
    Image.fromarray(values, mode="L").save(paths.masks[2])
    return paths.masks[2]


def mask_drawn_only_in_alpha(root):
    _, paths = _val_clip(root)
    values = np.asarray(Image.open(paths.masks[2]).convert("L"))
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    rgba[..., 3] = values  # black everywhere; the object only in the alpha channel
    Image.fromarray(rgba, mode="RGBA").save(paths.masks[2])
    return paths.masks[2]


def mask_of_another_size(root):
    _, paths = _val_clip(root)
    Image.new("L", (SIZE // 2, SIZE // 2)).save(paths.masks[1])
    return paths.masks[1]


def missing_mask(root):
    _, paths = _val_clip(root)
    paths.masks[4].unlink()
    return paths.masks[4]


def greyscale_frame(root):
    _, paths = _val_clip(root)
    Image.open(paths.frames[0]).convert("L").save(paths.frames[0])
    return paths.frames[0]


def palette_frame(root):
    _, paths = _val_clip(root)
    Image.open(paths.frames[1]).convert("P").save(paths.frames[1])
    return paths.frames[1]


def frame_of_another_size(root):
    _, paths = _val_clip(root)
    Image.open(paths.frames[3]).resize((SIZE + 8, SIZE)).save(paths.frames[3])
    return paths.frames[3]


def truncated_frame(root):
    _, paths = _val_clip(root)
    paths.frames[2].write_bytes(paths.frames[2].read_bytes()[:40])
    return paths.frames[2]


def voc_size_disagrees(root):
    _, paths = _val_clip(root)
    xml = paths.crop_labels[0]
    xml.write_text(xml.read_text().replace(f"<width>{SIZE}</width>", f"<width>{2 * SIZE}</width>"))
    return xml


def crop_label_of_another_object(root):
    clip, paths = _val_clip(root)
    xml = paths.crop_labels[1]
    xml.write_text(xml.read_text().replace(f"<name>{clip.category}</name>", "<name>lion_roaring</name>"))
    return xml


def wav_with_nan(root):
    _, paths = _val_clip(root)
    waveform = _tone()
    waveform[1000] = np.nan
    return _float_wav(paths.wav, waveform)


def wav_absurdly_scaled(root):
    _, paths = _val_clip(root)
    return _float_wav(paths.wav, _tone() * 32767.0)  # integer-scaled samples in a float WAV


def wav_short(root):
    _, paths = _val_clip(root)
    return _float_wav(paths.wav, _tone(seconds=2.0))


def wav_not_audio(root):
    _, paths = _val_clip(root)
    paths.wav.write_text("not a wav")
    return paths.wav


def pkl_with_nan(root):
    _, paths = _val_clip(root)
    log_mel = load_audio_examples(paths.wav)
    log_mel[0, 0, 0, 0] = float("inf")
    paths.log_mel.write_bytes(pickle.dumps(log_mel))
    return paths.log_mel


def pkl_of_another_shape(root):
    _, paths = _val_clip(root)
    paths.log_mel.write_bytes(pickle.dumps(torch.zeros(5, 96, 64)))
    return paths.log_mel


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def pkl_that_runs_code(root):
    _, paths = _val_clip(root)
    paths.log_mel.write_bytes(pickle.dumps(_RunsCode()))
    return paths.log_mel


def stereo_wav(root):
    _, paths = _val_clip(root)
    return _float_wav(paths.wav, _tone(channels=2))


def wav_at_8_khz(root):
    _, paths = _val_clip(root)
    return _float_wav(paths.wav, _tone(rate=8000), rate=8000)


@dataclass(frozen=True)
class Case:
    edit: Callable[[Path], Path]
    check_kind: str  # the kind check-data reports; "converted" for a documented conversion
    audio: str = "wav"  # which audio the reader reads


CASES = [
    Case(unsafe_name, "unsafe_name"),
    Case(unsafe_category, "unsafe_name"),
    Case(absolute_name, "unsafe_name"),
    Case(name_with_separator, "unsafe_name"),
    Case(ragged_row, "csv"),
    Case(duplicate_name, "duplicate_name"),
    Case(noisy_mask, "mask_not_binary"),
    Case(mask_drawn_only_in_alpha, "mask_alpha"),
    Case(mask_of_another_size, "mask_size"),
    Case(missing_mask, "missing_file"),
    Case(greyscale_frame, "frame_not_rgb"),
    Case(palette_frame, "frame_not_rgb"),
    Case(frame_of_another_size, "frame_size"),
    Case(truncated_frame, "unreadable"),
    Case(voc_size_disagrees, "crop_label"),
    Case(crop_label_of_another_object, "crop_label"),
    Case(wav_with_nan, "audio_values"),
    Case(wav_absurdly_scaled, "audio_values"),
    Case(wav_short, "audio_short"),
    Case(wav_not_audio, "unreadable"),
    Case(pkl_with_nan, "log_mel_values", audio="pkl"),
    Case(pkl_of_another_shape, "log_mel_shape", audio="pkl"),
    Case(pkl_that_runs_code, "unreadable", audio="pkl"),
    Case(stereo_wav, "converted"),
    Case(wav_at_8_khz, "converted"),
]
REFUSED = [case for case in CASES if case.check_kind != "converted"]
CONVERTED = [case for case in CASES if case.check_kind == "converted"]


def _files(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def broken(base, tmp_path, request):
    """A copy of the base dataset with the case's edit, and the file the edit broke."""
    root = tmp_path / "work" / "data"
    shutil.copytree(base, root)
    victim = request.param.edit(root)
    return request.param, root, victim


def _read_everything(root: Path, audio: str, cache_dir: Path) -> None:
    for split in ("train", "val", "test"):
        dataset = AVSBenchS4(root, split, image_size=SIZE, audio=audio, crop_labels=True, cache_dir=cache_dir)
        for index in range(len(dataset)):
            dataset[index]


def test_the_family_covers_every_kind_of_break():
    assert len(CASES) == 25
    assert {case.check_kind for case in CASES} >= {
        "unsafe_name", "mask_not_binary", "frame_not_rgb", "frame_size", "crop_label",
        "audio_values", "log_mel_values", "converted",
    }


@pytest.mark.parametrize("broken", REFUSED, indirect=True, ids=lambda case: case.edit.__name__)
def test_check_data_names_the_broken_file(broken):
    case, root, victim = broken
    report = check_dataset(root, progress=False)
    assert (victim, case.check_kind) in {(p.path, p.kind) for p in report.problems}, report.summary()


@pytest.mark.parametrize("broken", REFUSED, indirect=True, ids=lambda case: case.edit.__name__)
def test_reader_refuses_naming_the_broken_file_and_writes_only_its_cache(broken, tmp_path):
    case, root, victim = broken
    before = _files(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        _read_everything(root, case.audio, tmp_path / "cache")
    assert str(victim) in str(caught.value)
    written = {p for p in _files(tmp_path).keys() - before.keys()}
    assert all(p.is_relative_to(tmp_path / "cache") for p in written), written
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize("broken", CONVERTED, indirect=True, ids=lambda case: case.edit.__name__)
def test_conversion_is_listed_by_check_data_and_warned_once_by_the_reader(broken, tmp_path):
    case, root, victim = broken
    report = check_dataset(root, progress=False)
    assert report.ok, report.summary()
    assert [(n.path, n.kind) for n in report.notes] == [(victim, "converted")]
    assert "converted on reading" in report.summary()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _read_everything(root, case.audio, tmp_path / "cache")
    messages = [str(w.message) for w in caught if "converted on reading" in str(w.message)]
    assert len(messages) == 1  # once for the val split, whose clip it is; none for the others
    assert "1 WAV file(s)" in messages[0] and str(victim) in messages[0]


def test_unsafe_name_is_refused_naming_the_metadata_file_and_row(base, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(base, root)
    csv = _write_csv_row(root, "../../evil,0,dog_barking,val")
    rows = len(csv.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"name '../../evil' on line {rows} is not a single path component"):
        AVSBenchS4(root, "val", image_size=SIZE, cache_dir=tmp_path / "cache")


def test_saved_masks_never_leave_their_output_folder(tmp_path):
    out = tmp_path / "run" / "pred_masks"
    batch = {"name": ["../../evil"], "category_name": [""]}
    with pytest.raises(ValueError, match="outside the output folder"):
        _save_masks(torch.zeros(5, 1, 4, 4), batch, out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == []


def test_saved_masks_of_a_plain_name_stay_inside(tmp_path):
    out = tmp_path / "pred_masks"
    _save_masks(torch.zeros(5, 1, 4, 4), {"name": ["clip"], "category_name": ["dog_barking"]}, out)
    assert sorted(p.name for p in (out / "dog_barking" / "clip").iterdir()) == [f"clip_{i}.png" for i in range(1, 6)]


# --- atomic writes ----------------------------------------------------------------------------


def test_atomic_write_gives_the_mode_a_plain_open_gives(tmp_path):
    from avs_lib.atomic import write_text_atomically

    old = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "a.txt", "x")
        with open(tmp_path / "plain.txt", "w") as file:
            file.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_atomic_write_removes_the_temporary_a_killed_write_left(tmp_path):
    from avs_lib.atomic import write_text_atomically

    killed = tmp_path / ".last.pt.abc123.tmp"  # what SIGKILL during a checkpoint write leaves
    killed.write_bytes(b"half a checkpoint")
    os.utime(killed, (1, 1))
    live = tmp_path / ".last.pt.def456.tmp"  # another process writing right now
    live.write_bytes(b"being written")
    other = tmp_path / ".best.pt.abc123.tmp"  # another target's temporary is not ours to judge
    other.write_bytes(b"")
    os.utime(other, (1, 1))
    write_text_atomically(tmp_path / "last.pt", "new")
    assert not killed.exists() and live.exists() and other.exists()


def test_full_disk_during_an_atomic_write_names_the_file_and_leaves_no_temporary(tmp_path):
    import errno

    from avs_lib.atomic import write_atomically

    def full(file):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as caught:
        write_atomically(tmp_path / "metrics.json", full)
    assert caught.value.filename == str(tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []


def test_torch_save_failure_is_an_os_error_naming_the_checkpoint(tmp_path, monkeypatch):
    from avs_lib.engine import checkpoint

    def enforce_fail(obj, file):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint.torch, "save", enforce_fail)
    with pytest.raises(OSError, match="is the disk full") as caught:
        checkpoint.atomic_torch_save({"a": 1}, tmp_path / "last.pt")
    assert caught.value.filename == str(tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


# --- config ranges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.grad_clip=-1", "grad_clip"),
        ("optim.grad_clip=0", "grad_clip"),
        ("optim.grad_clip=.nan", "grad_clip"),
        ("optim.weight_decay=-0.1", "weight_decay"),
        ("optim.warmup_steps=-5", "warmup_steps"),
        ("optim.lr=.nan", "lr"),
        ("optim.lr=.inf", "lr"),
        ("loss.crop_ce=-1", "crop_ce"),
        ("loss.avs_bce=.inf", "avs_bce"),
        ("eval_batch_size=0", "eval_batch_size"),
        ("seed=-1", "seed"),
        ("name=../../evil", "name"),
        ("data.image_size=8", "image_size"),
        ("data.num_workers=-1", "num_workers"),
        ("data.eval_limit=0", "eval_limit"),
        ("data.cache_dir=''", "cache_dir"),
    ],
)
def test_out_of_range_config_value_is_refused_naming_the_key(override, key):
    from avs_lib.configtools import ConfigError
    from avs_lib.datatools.profiles import build_config

    with pytest.raises(ConfigError, match=key):
        build_config("smoke", overrides=[override])


# --- resume -----------------------------------------------------------------------------------


def _resume_cfg(tmp_path, **extra):
    from avs_lib.datatools.profiles import build_config

    overrides = {"data": {"root": str(tmp_path / "no_data")}, "output_dir": str(tmp_path / "runs"),
                 "quiet": True, "device": "cpu", **extra}
    return build_config("smoke", "tpavi", overrides=overrides)


def _fake_run(cfg) -> str:
    """A run folder with a checkpoint of `cfg` and its config.yaml; returns the YAML text."""
    from avs_lib.config import save_config, to_dict
    from avs_lib.engine.checkpoint import atomic_torch_save

    cfg.run_dir.mkdir(parents=True)
    atomic_torch_save({"config": to_dict(cfg), "system": {}}, cfg.run_dir / "last.pt")
    save_config(cfg, cfg.run_dir / "config.yaml")
    return (cfg.run_dir / "config.yaml").read_text()


def test_resume_with_a_changed_config_is_refused_naming_the_keys(tmp_path):
    from avs_lib.configtools import ConfigError
    from avs_lib.engine.train import fit

    saved = _fake_run(_resume_cfg(tmp_path))
    changed = _resume_cfg(tmp_path, optim={"lr": 0.5}, model={"channel": 48})
    with pytest.raises(ConfigError, match=r"2 key\(s\): model.channel: 32 -> 48; optim.lr: 0.001 -> 0.5"):
        fit(changed, resume=True)
    assert (changed.run_dir / "config.yaml").read_text() == saved


def test_resume_allowed_to_change_config_keeps_config_yaml_when_the_checkpoint_does_not_load(
    base, tmp_path
):
    from avs_lib.engine.train import fit

    data = {"root": str(base), "cache_dir": str(tmp_path / "cache")}
    saved = _fake_run(_resume_cfg(tmp_path, data=data))
    wider = _resume_cfg(tmp_path, data=data, model={"channel": 48})
    with pytest.warns(UserWarning, match="config changed"), \
            pytest.raises(ValueError, match="does not fit the model this config builds"):
        fit(wider, resume=True, allow_config_change=True)
    assert (wider.run_dir / "config.yaml").read_text() == saved


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path):
    from avs_lib.engine.train import fit

    with pytest.warns(UserWarning, match="no checkpoint at .*last.pt; starting a fresh run"), \
            pytest.raises(FileNotFoundError):  # then stops on the absent data, as a fresh run would
        fit(_resume_cfg(tmp_path), resume=True)


def test_resume_free_keys_may_change(tmp_path):
    from avs_lib.config import to_dict
    from avs_lib.engine.train import config_changes

    cfg = _resume_cfg(tmp_path)
    other = _resume_cfg(tmp_path, device="cuda", quiet=False, data={"root": str(tmp_path / "no_data"),
                                                                       "num_workers": 4, "cache_dir": "c"})
    assert config_changes(to_dict(cfg), to_dict(other)) == {}


def test_truncated_step_log_is_an_error_naming_the_file_and_line(tmp_path):
    from avs_lib.engine.train import read_steps

    (tmp_path / "steps.jsonl").write_text('{"global_step": 1}\n{"global_st\n{"global_step": 3}\n')
    with pytest.raises(ValueError, match=r"steps.jsonl: line 2 is not a record"):
        read_steps(tmp_path)


def test_resume_drops_the_torn_last_line_a_killed_run_left(tmp_path):
    from avs_lib.engine.train import _truncate_steps_log

    (tmp_path / "steps.jsonl").write_text('{"global_step": 1}\n{"global_step": 2}\n{"global_st')
    _truncate_steps_log(tmp_path, global_step=1)
    assert (tmp_path / "steps.jsonl").read_text() == '{"global_step": 1}\n'


# --- the command line: one `error:` line naming the file, exit code 2 --------------------------


@pytest.fixture
def no_data_prep(tmp_path, monkeypatch):
    """`train` without generating or pretraining anything: these tests are about its errors."""
    from avs_lib.report import runs

    monkeypatch.setattr(runs, "prepare_data", lambda profile, root=None, progress=False, **kwargs: tmp_path / "data")
    monkeypatch.setattr(runs, "starting_weights", lambda *args, **kwargs: {})


def _cli_error(argv, capsys) -> str:
    from avs_lib.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_cli_malformed_config_yaml_names_the_file(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("optim:\n  lr: [1, 2\n")
    assert str(config) in _cli_error(["train", "--profile", "smoke", "--config", str(config)], capsys)


def test_cli_python_object_yaml_tag_is_refused_naming_the_file(tmp_path, capsys):
    config = tmp_path / "evil.yaml"
    config.write_text("optim: !!python/object/apply:os.system ['touch pwned']\n")
    err = _cli_error(["train", "--profile", "smoke", "--config", str(config)], capsys)
    assert str(config) in err and "python/object" in err
    assert not Path("pwned").exists()


def test_cli_set_value_that_does_not_parse_is_named(capsys):
    err = _cli_error(["train", "--profile", "smoke", "--set", "optim.lr=[1,"], capsys)
    assert "optim.lr=[1," in err and "not valid YAML" in err


def test_cli_runs_dir_that_is_a_file_is_named(tmp_path, capsys, no_data_prep):
    target = tmp_path / "a_file"
    target.write_text("")
    err = _cli_error(["train", "--profile", "smoke", "--runs-dir", str(target)], capsys)
    assert f"{target} is a file" in err


def test_cli_non_finite_loss_is_one_line_naming_the_run(tmp_path, capsys, monkeypatch, no_data_prep):
    from avs_lib.engine import train

    def diverges(cfg, **kwargs):
        raise FloatingPointError("non-finite loss at epoch 0, step 1; the last checkpoint is intact")

    from avs_lib.cli import build_parser, train_config

    monkeypatch.setattr(train, "fit", diverges)
    argv = ["train", "--profile", "smoke", "--runs-dir", str(tmp_path)]
    err = _cli_error(argv, capsys)
    assert f"{train_config(build_parser().parse_args(argv)).run_dir}: non-finite loss" in err


def test_cli_full_disk_is_one_line_naming_the_checkpoint(tmp_path, capsys, monkeypatch, no_data_prep):
    from avs_lib.engine import checkpoint, train

    def enforce_fail(obj, file):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    def writes_a_checkpoint(cfg, **kwargs):
        checkpoint.atomic_torch_save({}, tmp_path / "last.pt")

    monkeypatch.setattr(checkpoint.torch, "save", enforce_fail)
    monkeypatch.setattr(train, "fit", writes_a_checkpoint)
    err = _cli_error(["train", "--profile", "smoke", "--runs-dir", str(tmp_path)], capsys)
    assert f"{tmp_path / 'last.pt'}: could not write the checkpoint" in err


def test_cli_damaged_step_log_names_the_file(tmp_path, capsys, monkeypatch, no_data_prep):
    from avs_lib.engine import train

    (tmp_path / "steps.jsonl").write_text('{"global_step": 1}\n{"glo\n{"global_step": 3}\n')
    monkeypatch.setattr(train, "fit", lambda cfg, **kwargs: train.read_steps(tmp_path))
    assert f"{tmp_path / 'steps.jsonl'}: line 2" in _cli_error(["train", "--profile", "smoke"], capsys)


def test_ms3_video_id_that_leaves_its_folder_is_refused_naming_the_row(tmp_path):
    from avs_lib.data.avsbench import MS3_LAYOUT
    from avs_lib.data.errors import DataFormatError

    (tmp_path / MS3_LAYOUT.csv_name).write_text("video_id,split\nok_clip,train\n..,train\n")
    with pytest.raises(DataFormatError, match=r"video_id '\.\.' on line 3 is not a single path component") as caught:
        read_metadata(tmp_path, MS3_LAYOUT)
    assert caught.value.path == tmp_path / MS3_LAYOUT.csv_name


# --- masks are read as they render -------------------------------------------------------------


def test_palette_mask_reads_by_its_colours_not_its_indices(base, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(base, root)
    clip, paths = _val_clip(root)
    dataset = AVSBenchS4(root, "val", image_size=SIZE, cache_dir=tmp_path / "cache")
    assert dataset.clips[0].name == clip.name
    before = dataset[0]["masks"]
    for path in paths.masks:
        grey = np.asarray(Image.open(path))  # 0 background, 255 object
        inverted = Image.fromarray((grey == 0).astype(np.uint8), mode="P")  # the object is index 0 ...
        inverted.putpalette([255, 255, 255, 0, 0, 0])  # ... which this palette draws white
        inverted.save(path)
    after = AVSBenchS4(root, "val", image_size=SIZE, cache_dir=tmp_path / "cache")[0]["masks"]
    assert before.sum() > 0 and torch.equal(after, before)


def test_synthetic_masks_are_greyscale_and_read_as_their_pixels(base, tmp_path):
    _, paths = _val_clip(base)
    masks = AVSBenchS4(base, "val", image_size=SIZE, cache_dir=tmp_path / "cache")[0]["masks"]  # [5,1,S,S]
    for path, mask in zip(paths.masks, masks, strict=True):
        with Image.open(path) as image:
            assert image.mode == "L"
            assert torch.equal(mask[0], torch.from_numpy(np.asarray(image) == 255).float())


# --- loading is bounded: a small file cannot ask for gigabytes ---------------------------------


class _StorageBytes:
    """Pickles as ``torch.storage._load_from_bytes(payload)``, the storage of a pickled tensor."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


def _torch_zip(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _with_deflated_zeros(payload: bytes, size: int) -> bytes:
    """The torch zip `payload` with its storage entry replaced by `size` zero bytes, deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            zeros = info.filename.endswith("/data/0")
            target.writestr(info.filename, bytes(size) if zeros else source.read(info))
    return out.getvalue()


def _with_storage_declaring(payload: bytes, size: int) -> bytes:
    """The torch zip `payload`, deflated, whose storage entry's directory record says it unpacks to
    `size` bytes (zip64 past 4 GiB): torch.load allocates that much before it inflates the entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        next(i for i in target.infolist() if i.filename.endswith("/data/0")).file_size = size
    return out.getvalue()


def _legacy_storage_declaring(elements: int) -> bytes:
    """A pickled tensor's own storage bytes (torch's legacy stream) declaring `elements` floats."""
    pickled = pickle.dumps(torch.zeros(1000))
    storage = next(arg for _, arg, _ in pickletools.genops(pickled) if isinstance(arg, bytes))
    return storage.replace(b"M\xe8\x03", b"J" + elements.to_bytes(4, "little"), 1)  # 1000 -> elements


def _zip_pkl(tmp_path):
    path = tmp_path / "zip.pkl"
    path.write_bytes(pickle.dumps(_StorageBytes(_with_storage_declaring(_torch_zip(torch.zeros(8)), 3 * 2**30))))
    return path


def _legacy_pkl(tmp_path):
    path = tmp_path / "legacy.pkl"
    path.write_bytes(pickle.dumps(_StorageBytes(_legacy_storage_declaring(2**29))))  # 2 GiB of floats
    return path


def _checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(_with_storage_declaring(_torch_zip({"system": {"w": torch.zeros(8)}}), 5 * 2**30))
    return path


_LOAD_UNDER_A_MEMORY_CAP = """
import resource, sys
from avs_lib.data import load_tensor_pickle
from avs_lib.engine.checkpoint import load_checkpoint
used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, used + 2**30))  # 1 GiB past what imports took
load = load_tensor_pickle if sys.argv[1].endswith(".pkl") else load_checkpoint
try:
    load(sys.argv[1])
except ValueError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_zip_pkl, "its storage asks for up to 3072.0 MiB, more than the 64 MiB bound for a log-mel"),
        (_legacy_pkl, "its storage asks for up to 8192.0 MiB, more than the 64 MiB bound for a log-mel"),
        (_checkpoint, "unpacks to 5.0 GiB, more than the 4 GiB any avs_lib checkpoint takes"),
    ],
    ids=["zip_pkl", "legacy_pkl", "checkpoint"],
)
def test_file_declaring_gigabytes_is_refused_before_anything_is_allocated(tmp_path, build, message):
    path = build(tmp_path)
    assert path.stat().st_size < 2**14
    done = subprocess.run([sys.executable, "-c", _LOAD_UNDER_A_MEMORY_CAP, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # a MemoryError would end it with a traceback
    assert done.stdout.count("\n") == 1 and done.stdout.startswith(f"{path}: {message}"), done.stdout


def test_log_mel_pickle_of_deflated_zeros_is_refused_naming_the_file(tmp_path):
    from avs_lib.data import load_tensor_pickle
    from avs_lib.data.errors import DataFormatError

    payload = _with_deflated_zeros(_torch_zip(torch.zeros(5, 1, 96, 64)), 128 * 2**20)
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps(_StorageBytes(payload)))
    assert path.stat().st_size < 2**20  # 128 MiB of zeros in under 1 MiB
    with pytest.raises(DataFormatError, match=r"asks for up to 128\.0 MiB, more than the 64 MiB bound") as caught:
        load_tensor_pickle(path)
    assert caught.value.path == path


def test_checkpoint_in_the_legacy_format_is_refused_naming_the_file(tmp_path):
    from avs_lib.engine.checkpoint import load_checkpoint

    path = tmp_path / "old.pt"
    torch.save({"system": {}}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=rf"{path}: not a readable avs_lib checkpoint \(expected the zip format"):
        load_checkpoint(path)


# --- YAML configs: no anchors, no duplicate keys ----------------------------------------------


def test_yaml_config_with_anchors_is_refused_naming_the_file_and_line(tmp_path):
    from avs_lib.configtools import ConfigError
    from avs_lib.datatools.profiles import build_config

    config = tmp_path / "laughs.yaml"  # "billion laughs": each line multiplies the one before
    config.write_text("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n")
    with pytest.raises(ConfigError, match=r"'&a' on line 1: anchors and aliases are not allowed") as caught:
        build_config("smoke", yaml_file=config)
    assert str(caught.value).startswith(f"{config}: ")


def test_yaml_config_with_a_duplicate_key_is_refused_naming_the_key_and_both_lines(tmp_path):
    from avs_lib.configtools import ConfigError
    from avs_lib.datatools.profiles import build_config

    config = tmp_path / "twice.yaml"
    config.write_text("optim:\n  lr: 0.1\n  batch_size: 2\n  lr: 0.5\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' on lines 2 and 4") as caught:
        build_config("smoke", yaml_file=config)
    assert str(caught.value).startswith(f"{config}: ")


# --- upper bounds on sizes, and short quotes of long values ------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.image_size=22400", "image_size must be at most 1024 (the official AVSBench recipe uses 224), got 22400"),
        ("data.crop_size=4096", "crop_size must be at most 1024 (the thesis resizes crops to 224), got 4096"),
        ("optim.batch_size=4000", "batch_size must be at most 256 (the official recipe uses 4 clips"),
        ("eval_batch_size=4000", "eval_batch_size must be at most 256 (the official recipe uses 4 clips"),
        ("model.channel=65536", "channel must be at most 1024 (the official decoder and TPAVI width is 256)"),
        ("model.frames=500", "frames must be at most 10 (an AVSBench clip has 5 frames (S4, MS3; AVSS: 10))"),
        ("optim={lr: 0.1, lr: 0.5}", "duplicate key 'lr'"),
        ("model.tpavi_stages=&s [0, 1]", "'&s' on line 1: anchors and aliases are not allowed"),
    ],
)
def test_oversized_or_unsafe_set_value_is_refused_saying_why(override, message):
    import re

    from avs_lib.configtools import ConfigError
    from avs_lib.datatools.profiles import build_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config("smoke", overrides=[override])


def test_oversized_pretraining_image_is_refused_saying_why():
    from avs_lib.datatools.profiles import PretrainConfig

    with pytest.raises(ValueError, match=r"image_size must be at most 1024 \(the official AVSBench recipe uses 224\)"):
        PretrainConfig(image_size=4096)


@pytest.mark.parametrize(
    ("override", "pasted"),
    [
        ("device=" + "x" * 5000, "x"),
        ("optim.lr=" + "y" * 5000, "y"),
        ("z" * 5000 + "=1", "z"),
        ("optim.batch_size=" + "9" * 4000, "9"),
    ],
    ids=["device", "lr", "key", "batch_size"],
)
def test_config_error_quotes_at_most_80_characters_of_a_value(override, pasted):
    from avs_lib.configtools import ConfigError
    from avs_lib.datatools.profiles import build_config

    with pytest.raises(ConfigError) as caught:
        build_config("smoke", overrides=[override])
    message = str(caught.value)
    assert "..." in message and pasted * 80 not in message, message[:200]


# --- the command line: `quiet` is a flag, not an override --------------------------------------


def test_cli_set_quiet_is_refused_pointing_to_the_flag(capsys):
    err = _cli_error(["train", "--profile", "smoke", "--set", "quiet=true"], capsys)
    assert "--set cannot change quiet (use --quiet)" in err


def test_cli_quiet_flag_reaches_the_run_config(no_data_prep):
    from avs_lib.cli import build_parser, train_config

    assert train_config(build_parser().parse_args(["train", "--profile", "smoke", "--quiet"])).quiet
    assert not train_config(build_parser().parse_args(["train", "--profile", "smoke"])).quiet


# --- nothing outside: no write leaves its folder, whatever a link or a checkpoint says ---------


def _outside_link(root: Path, inside: Path, outside: Path) -> None:
    """Move `inside` (a folder or file of the dataset) to `outside` and leave a symlink to it."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(inside, outside)
    inside.symlink_to(outside)


def test_crop_labels_refuse_to_write_through_a_symlinked_folder_leaving_the_root(base, tmp_path, capsys):
    root, outside = tmp_path / "data", tmp_path / "elsewhere" / "val"
    shutil.copytree(base, root)
    _outside_link(root, root / "s4_data" / "crop_labels" / "val", outside)
    before = _files(outside)
    err = _cli_error(["crop-labels", str(root), "--overwrite", "--quiet"], capsys)
    assert "outside the dataset root" in err and str(root / "s4_data" / "crop_labels" / "val") in err
    assert _files(outside) == before


def test_crop_labels_refuse_to_write_through_a_symlinked_file_leaving_the_root(base, tmp_path):
    from avs_lib.datatools.crop_labels import bootstrap_crop_labels

    root = tmp_path / "data"
    shutil.copytree(base, root)
    _, paths = _val_clip(root)
    _outside_link(root, paths.crop_labels[0], tmp_path / "elsewhere.xml")
    with pytest.raises(ValueError, match=rf"{paths.crop_labels[0]}: a symlink leads it to .*elsewhere.xml, outside"):
        bootstrap_crop_labels(root, splits=["val"], overwrite=True)


@pytest.fixture(scope="module")
def foreign_run(base, tmp_path_factory):
    """A run folder whose checkpoint's config names folders of someone else: cache and runs."""
    from avs_lib.config import to_dict
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.checkpoint import atomic_torch_save
    from avs_lib.engine.system import AVSSystem

    folder = tmp_path_factory.mktemp("foreign")
    cfg = build_config("smoke", "tpavi", overrides={
        "data": {"root": str(base), "cache_dir": str(folder / "their_cache")},
        "output_dir": str(folder / "their_runs"), "device": "cpu", "quiet": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = AVSSystem(cfg)
    (folder / "run").mkdir()
    atomic_torch_save({"config": to_dict(cfg), "system": system.state_dict()}, folder / "run" / "best.pt")
    return folder


def test_evaluate_writes_only_where_its_caller_says_not_where_the_checkpoint_says(foreign_run, tmp_path):
    from avs_lib.engine.evaluate import evaluate

    evaluate(foreign_run / "run", split="val", device="cpu", out_dir=tmp_path / "out", diagnostics=False,
             cache_dir=tmp_path / "cache")
    assert not (foreign_run / "their_cache").exists() and not (foreign_run / "their_runs").exists()
    assert list((tmp_path / "cache").glob("*.logmel.npy")) and (tmp_path / "out" / "metrics.json").is_file()


def test_without_home_the_log_mel_cache_is_the_run_folders_never_the_root(base, foreign_run, tmp_path,
                                                                           monkeypatch):
    from avs_lib.data.audio import cache_dir_or, load_log_mel_cached
    from avs_lib.engine.evaluate import evaluate

    run = tmp_path / "run"
    run.mkdir()
    os.link(foreign_run / "run" / "best.pt", run / "best.pt")
    monkeypatch.setenv("HOME", "")  # Path.home() would say "/"
    with pytest.warns(UserWarning, match=rf"HOME is unset or empty.*caching log-mels in {run / 'cache'}") as said:
        evaluate(run, split="val", device="cpu", out_dir=tmp_path / "out", diagnostics=False)
        assert cache_dir_or(None, run / "cache") == run / "cache"
    assert sum("HOME is unset" in str(w.message) for w in said) == 1  # said once
    assert list((run / "cache").glob("*.logmel.npy"))
    with pytest.raises(ValueError, match="HOME is unset or empty; give cache_dir"):
        load_log_mel_cached(_val_clip(base)[1].wav)  # the library alone: no cache at "/" either


def test_evaluate_out_inside_the_dataset_root_is_refused(base, foreign_run, tmp_path, capsys):
    out = base / "results"
    err = _cli_error(["evaluate", str(foreign_run / "run"), "--out", str(out), "--no-diagnostics"], capsys)
    assert f"evaluation folder {out} is inside the dataset root {base}" in err
    assert not out.exists()


def test_report_out_inside_the_dataset_root_is_refused(base, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(base, root)
    err = _cli_error(["report", "--profile", "smoke", "--data-root", str(root), "--out", str(root / "report")],
                     capsys)
    assert f"--out {root / 'report'} is inside the dataset root {root}" in err
    assert not (root / "report").exists()


def test_symlink_leaving_the_root_is_noted_once_by_the_reader_and_listed_by_check_data(base, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(base, root)
    _, paths = _val_clip(root)
    _outside_link(root, paths.frames[0], tmp_path / "elsewhere" / "frame.png")
    _outside_link(root, paths.wav, tmp_path / "elsewhere" / "clip.wav")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = AVSBenchS4(root, "val", image_size=SIZE, cache_dir=tmp_path / "cache")
        dataset[0], dataset[1]
        AVSBenchS4(root, "train", image_size=SIZE, cache_dir=tmp_path / "cache")
    notes = [str(w.message) for w in caught if "symlinks leading outside" in str(w.message)]
    assert len(notes) == 1 and "2 path(s) in the val split" in notes[0], notes
    report = check_dataset(root, progress=False)
    assert report.ok, report.summary()
    assert sorted((n.path, n.kind) for n in report.notes) == sorted(
        [(paths.frames[0], "symlink_outside"), (paths.wav, "symlink_outside")])
    assert "2 symlink(s) leading outside the dataset root" in report.summary()


# --- content, not metadata -------------------------------------------------------------------


def test_feature_cache_key_follows_content_not_size_and_mtime(base, tmp_path):
    from avs_lib.engine.features import data_fingerprint

    root = tmp_path / "data"
    shutil.copytree(base, root)
    dataset = AVSBenchS4(root, "val", image_size=SIZE, cache_dir=tmp_path / "cache")
    before = data_fingerprint(dataset)
    wav, other = dataset.paths(0).wav, dataset.paths(1).wav
    stat = wav.stat()
    assert other.stat().st_size == stat.st_size and other.read_bytes() != wav.read_bytes()
    shutil.copyfile(other, wav)  # another clip's track, same size ...
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... with the old time, as `cp -p` gives
    assert data_fingerprint(dataset) != before
    shutil.copyfile(base / wav.relative_to(root), wav)  # the clip's own track again: its old key
    assert data_fingerprint(dataset) == before


def test_feature_cache_folders_follow_the_umask(tmp_path):
    from avs_lib.engine.features import _write

    old = os.umask(0o022)
    try:
        _write(tmp_path / "features" / "val-abc", [np.zeros((1, 2), np.float32)], None, {"clips": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "features" / "val-abc").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "features" / "val-abc" / "stage0.npy").stat().st_mode & 0o777 == 0o644


# --- what the config says is what runs --------------------------------------------------------


def test_resume_with_a_changed_lr_trains_with_the_new_lr(tmp_path):
    from avs_lib.engine.checkpoint import rng_state
    from avs_lib.engine.train import DistInfo, _restore, build_optimizer, build_scheduler

    def optimiser(cfg, steps):
        layer = torch.nn.Linear(3, 1)
        optimizer = build_optimizer(cfg, layer.parameters())
        scheduler = build_scheduler(cfg, optimizer, total_steps=100)
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
        return layer, optimizer, scheduler

    saved = _resume_cfg(tmp_path, optim={"lr": 1e-3, "warmup_steps": 10})
    layer, optimizer, scheduler = optimiser(saved, 4)
    ckpt = {"system": layer.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(), "epoch": 0, "global_step": 4, "best": {"epoch": 0, "val_miou": 0.0}}
    changed = _resume_cfg(tmp_path, optim={"lr": 0.5, "warmup_steps": 10})
    changed.run_dir.mkdir(parents=True)
    layer, optimizer, scheduler = optimiser(changed, 0)
    _restore(ckpt, changed, layer, optimizer, scheduler, DistInfo())
    expected = optimiser(changed, 4)[2].get_last_lr()  # a run that had the new lr from the start
    assert [group["lr"] for group in optimizer.param_groups] == expected == scheduler.get_last_lr()
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == optimiser(changed, 5)[2].get_last_lr()
    assert "lr: 0.5" in (changed.run_dir / "config.yaml").read_text()


def test_dry_run_writes_nothing(tmp_path, monkeypatch, capsys):
    from avs_lib.cli import main

    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", "--profile", "smoke", "--dry-run", "--data-root", str(tmp_path / "data"),
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    assert sorted(tmp_path.rglob("*")) == before
    assert "nothing written" in capsys.readouterr().out


# --- one writer per run folder ------------------------------------------------------------------


def test_second_train_on_a_busy_run_folder_names_the_holder_and_exits_2(tmp_path, capsys, no_data_prep):
    from avs_lib.cli import build_parser, train_config

    argv = ["train", "--profile", "smoke", "--runs-dir", str(tmp_path)]
    run_dir = train_config(build_parser().parse_args(argv)).run_dir
    run_dir.mkdir(parents=True)
    holder = os.getppid()  # a live process that is not this one
    (run_dir / "train.lock").write_text(f"{holder}\n")
    err = _cli_error(argv, capsys)
    assert f"{run_dir / 'train.lock'}: the run folder is in use by process {holder}" in err
    assert (run_dir / "train.lock").read_text() == f"{holder}\n" and sorted(run_dir.iterdir()) == [run_dir / "train.lock"]


def test_a_dead_processs_lock_is_taken_over_with_a_note(tmp_path):
    from avs_lib.engine.train import _release_lock, _take_lock

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "train.lock").write_text(f"{gone}\n")
    with pytest.warns(UserWarning, match=rf"taking over the lock of process {gone}, which is no longer running"):
        _take_lock(tmp_path)
    assert (tmp_path / "train.lock").read_text() == f"{os.getpid()}\n"
    _release_lock(tmp_path)
    assert not (tmp_path / "train.lock").exists()


def test_the_lock_is_held_while_training_and_released_on_an_error(tmp_path, monkeypatch):
    from avs_lib.configtools import ConfigError
    from avs_lib.engine import train

    cfg = _resume_cfg(tmp_path)
    _fake_run(cfg)
    held = []

    def refuses(path, cfg, allow):
        held.append((cfg.run_dir / "train.lock").read_text())
        raise ConfigError("refused")

    monkeypatch.setattr(train, "_load_for_resume", refuses)
    with pytest.raises(ConfigError):
        train.fit(cfg, resume=True)
    assert held == [f"{os.getpid()}\n"] and not (cfg.run_dir / "train.lock").exists()


# --- every command checks its input first, and says it in one line -----------------------------


def test_report_with_an_unknown_key_fails_at_once_as_train_does(capsys, monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    train_err = _cli_error(["train", "--profile", "smoke", "--set", "optim.lrate=1"], capsys)
    report_err = _cli_error(["report", "--profile", "smoke", "--out", "/nonexistent/r", "--set", "optim.lrate=1"],
                            capsys)
    assert report_err == train_err and "unknown config key 'optim.lrate'" in report_err


def _foreign_checkpoint(kind: str, path: Path) -> str:
    """Write a checkpoint `evaluate` cannot use; return what its error must say."""
    from avs_lib.config import to_dict
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.checkpoint import atomic_torch_save
    from avs_lib.engine.system import AVSSystem

    if kind == "torchvision_state_dict":
        atomic_torch_save({"conv1.weight": torch.zeros(2, 3, 1, 1), "fc.bias": torch.zeros(2)}, path)
        return "found a state_dict of 2 tensors (keys 'conv1.weight', 'fc.bias')"
    if kind == "bare_tensor":
        atomic_torch_save(torch.zeros(3, 4), path)
        return "found a bare tensor of shape [3, 4]"
    cfg = to_dict(build_config("smoke", "tpavi"))
    if kind == "unknown_config_key":
        cfg["optim"]["lrate"] = 1
        atomic_torch_save({"config": cfg, "system": {}}, path)
        return "the checkpoint's config does not fit this version of avs_lib (unknown config key 'optim.lrate'"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = AVSSystem(build_config("smoke", "tpavi", overrides=["model.channel=16"]))
    atomic_torch_save({"config": cfg, "system": other.state_dict()}, path)
    return "its weights do not fit the model its config builds (Error(s) in loading state_dict for AVSSystem"


@pytest.mark.parametrize("kind", ["torchvision_state_dict", "bare_tensor", "unknown_config_key", "another_width"])
def test_evaluate_names_the_checkpoint_and_what_it_found(kind, tmp_path, capsys):
    path = tmp_path / "model.pt"
    expected = _foreign_checkpoint(kind, path)
    err = _cli_error(["evaluate", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert err.startswith(f"error: {path}: ") and expected in err, err


def test_torchs_advice_to_load_with_weights_only_false_is_never_passed_on(tmp_path):
    from avs_lib.engine.checkpoint import load_checkpoint

    path = tmp_path / "pickled.pt"
    torch.save({"config": np.zeros(3), "system": {}}, path)  # an ndarray: a pickled Python object
    with pytest.raises(ValueError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a readable avs_lib checkpoint (it holds the Python object numpy")
    assert "weights_only" not in message and "would run code from the file; refused" in message


# --- check-data reads what training reads ---------------------------------------------------------


def test_check_data_reports_a_broken_test_frame_before_training(base, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(base, root)
    clip = next(c for c in read_metadata(root, S4_LAYOUT) if c.split == "test")
    frame = clip_paths(S4_LAYOUT, root, clip).frames[2]
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size * 2 // 3])  # cut mid-image
    report = check_dataset(root, progress=False)
    assert [(p.path, p.kind) for p in report.problems] == [(frame, "unreadable")], report.summary()


def test_check_data_flags_a_deleted_sidecar_of_a_synthetic_tree(base, tmp_path):
    from avs_lib.data.sidecar import INFO_FILE, SIDECAR_DIR

    root = tmp_path / "data"
    shutil.copytree(base, root)
    clip, _ = _val_clip(root)
    sidecar = root / SIDECAR_DIR / "val" / f"{clip.name}.npz"
    sidecar.unlink()
    (root / SIDECAR_DIR / INFO_FILE).unlink()
    report = check_dataset(root, progress=False)
    assert sorted((p.path, p.kind) for p in report.problems) == sorted(
        [(sidecar, "sidecar"), (root / SIDECAR_DIR / INFO_FILE, "sidecar")]), report.summary()


def test_non_finite_loss_says_the_checkpoint_is_intact_only_when_there_is_one(tmp_path):
    from avs_lib.engine.train import build_optimizer, build_scheduler, train_one_epoch

    cfg = _resume_cfg(tmp_path)
    layer = torch.nn.Linear(1, 1)
    optimizer = build_optimizer(cfg, layer.parameters())
    scheduler = build_scheduler(cfg, optimizer, total_steps=1)

    class Diverged(torch.nn.Module):
        def forward(self, batch, cf_audio=None):
            return {}

    def diverged(outputs, batch):
        return torch.tensor(float("nan")), {"total": float("nan")}

    def one_step():
        with pytest.raises(FloatingPointError) as caught:
            train_one_epoch(Diverged(), diverged, optimizer, scheduler, [{}],
                            torch.device("cpu"), 0, cfg)
        return str(caught.value)

    assert one_step().endswith("stopped before the update, no checkpoint was written yet")
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "last.pt").write_bytes(b"")
    assert one_step().endswith(f"stopped before the update, the last checkpoint {cfg.run_dir / 'last.pt'} is intact")
