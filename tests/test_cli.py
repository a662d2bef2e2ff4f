"""The command line: every subcommand has help, bad input exits non-zero with a message."""

import subprocess
import sys

import pytest

from avs_lib.cli import main


@pytest.mark.parametrize("command", ["synth", "check-data", "crop-labels", "pretrain", "prepare", "train", "evaluate",
                                     "report"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_unknown_config_key_exits_2_naming_it(capsys):
    assert main(["train", "--profile", "smoke", "--set", "loss.crop_cee=1"]) == 2
    assert "loss.crop_cee" in capsys.readouterr().err


def test_synth_then_check_data_reports_no_problems(tmp_path):
    root = tmp_path / "s"
    run = [sys.executable, "-m", "avs_lib"]
    made = subprocess.run([*run, "synth", str(root), "--videos", "3,2,2", "--image-size", "64", "--quiet"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "train 3, val 2, test 2" in made.stdout
    checked = subprocess.run([*run, "check-data", str(root), "--quiet"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No problems found" in checked.stdout


def test_check_data_exits_1_and_names_the_file_of_a_problem(tmp_path):
    root = tmp_path / "s"
    subprocess.run([sys.executable, "-m", "avs_lib", "synth", str(root), "--videos", "2,1,1", "--image-size", "64",
                    "--quiet"], check=True, capture_output=True)
    victim = next((root / "s4_data" / "visual_frames" / "val").rglob("*_3.png"))
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated PNG
    checked = subprocess.run([sys.executable, "-m", "avs_lib", "check-data", str(root), "--quiet"],
                             capture_output=True, text=True)
    assert checked.returncode == 1
    assert victim.name in checked.stdout


def test_pretrain_defaults_are_the_library_defaults():
    from dataclasses import fields

    from avs_lib.cli import build_parser
    from avs_lib.datatools.pretrain import PretrainConfig

    args = build_parser().parse_args(["pretrain", "root"])
    for field in fields(PretrainConfig):
        if field.name not in ("batch_size", "lr"):
            assert getattr(args, field.name) == field.default, field.name


def test_synth_defaults_write_the_cpu_profiles_dataset():
    from avs_lib.cli import build_parser
    from avs_lib.datatools.profiles import get_profile

    args = build_parser().parse_args(["synth", "root"])
    data = get_profile("cpu").synthetic
    assert (args.videos, args.image_size, args.classes) == (data.videos_per_split, data.image_size, data.num_classes)


def test_pretrain_prints_the_overrides_that_train_from_its_files(tiny_synth, tmp_path, capsys):
    out = tmp_path / "enc"
    assert main(["pretrain", str(tiny_synth), "--out", str(out), "--visual-epochs", "1", "--audio-epochs", "1",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"--set model.resnet_weights={(out / 'resnet_synth.pth').resolve()}" in printed
    assert "--set model.audio_weights=" in printed and "--set model.freeze_audio=True" in printed


def test_report_passes_local_weight_files_to_the_notebooks_as_absolute_paths(tmp_path, monkeypatch, capsys):
    import avs_lib.report.notebooks

    seen = {}
    monkeypatch.setattr(avs_lib.report.notebooks, "run_notebooks", lambda **kwargs: seen.update(kwargs))
    weights = tmp_path / "resnet50.pth"
    weights.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--profile", "paper", "--resnet-weights", "resnet50.pth", "--methods", "tpavi",
                 "--seeds", "0"]) == 0
    assert seen["extra_parameters"] == {"RESNET_WEIGHTS": str(weights.resolve()), "METHODS": ["tpavi"], "SEEDS": [0]}
    assert main(["report", "--profile", "paper", "--methods", "tpavi", "thesis", "--seeds", "0", "2"]) == 0
    assert seen["extra_parameters"] == {"METHODS": ["tpavi", "thesis"], "SEEDS": [0, 2]}
    assert main(["report", "--vggish-weights", "missing.pth"]) == 2
    assert "missing.pth" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    for command in ("synth", "check-data", "crop-labels", "pretrain", "prepare", "train", "evaluate", "report"):
        assert command in listed


def test_a_paper_report_without_methods_stops_before_any_notebook_in_one_line(monkeypatch, capsys):
    import avs_lib.report.notebooks

    monkeypatch.setattr(avs_lib.report.notebooks, "run_notebooks", lambda **kwargs: pytest.fail("a notebook ran"))
    assert main(["report", "--profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no default grid" in err and "--methods" in err


def test_a_report_on_an_ms3_root_without_the_ms3_flag_stops_before_any_notebook(tmp_path, monkeypatch, capsys):
    import avs_lib.report.notebooks

    monkeypatch.setattr(avs_lib.report.notebooks, "run_notebooks", lambda **kwargs: pytest.fail("a notebook ran"))
    (tmp_path / "ms3_meta_data.csv").write_text("video_id,split\n")
    assert main(["report", "--profile", "paper", "--data-root", str(tmp_path), "--methods", "tpavi", "--seeds", "0"]) == 2
    assert "pass --set data.dataset=ms3" in capsys.readouterr().err
