"""One run, one way: `python -m avs_lib train` resolves exactly the run the report's grid trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avs_lib import cli
from avs_lib.config import to_dict
from avs_lib.configtools import ConfigError
from avs_lib.datatools.profiles import PROFILES, build_config, get_profile
from avs_lib.datatools.synth import make_dataset
from avs_lib.report import experiments, runs
from avs_lib.report.grids import GRIDS, Grid


@pytest.fixture
def cpu_start(tmp_path, monkeypatch):
    """A cpu-profile data root whose generation and pretraining are stood in for: the test is
    about how the run's config is resolved, not about making 240 clips and pretraining on them."""
    root = tmp_path / "synth"
    (root / "synth_sidecar").mkdir(parents=True)
    (root / "s4_meta_data.csv").write_text("name,start,category,split\n")
    (root / "s4_data" / "audio_wav").mkdir(parents=True)  # what the cpu profile reads (runs.check_reads)

    class Made:
        seconds = 0.0

    made = []
    monkeypatch.setattr(runs, "make_profile_dataset", lambda path, *a, **k: made.append(Path(path)) or Made())
    monkeypatch.setattr(runs, "same_synthetic", lambda *a: True)
    report = {"visual_weights": str(root / "pretrained/resnet_synth.pth"),
              "audio_weights": str(root / "pretrained/logmel_cnn_synth.pth"),
              "config": {"backbone": "resnet18"}}
    monkeypatch.setattr(runs, "ensure_pretrained", lambda *a, **k: report)
    return root, made


def _cli_config(*argv: str):
    args = cli.build_parser().parse_args(["train", *argv])
    return cli.train_config(args)


def _grid_configs(profile, grid, root, runs_dir, monkeypatch, **options):
    trained = []

    def record(cfg, resume=False):
        trained.append(cfg)
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed}))

    monkeypatch.setattr("avs_lib.engine.train.fit", record)
    weights = runs.starting_weights(profile, root)
    experiments.train_grid(profile, grid, root, runs_dir, weights=weights, **options)
    return trained


def test_cli_train_resolves_every_run_of_the_cpu_grid_as_the_report_does(cpu_start, tmp_path, monkeypatch):
    root, _ = cpu_start
    runs_dir = tmp_path / "runs"
    grid = GRIDS["cpu"]
    from_grid = _grid_configs("cpu", grid, root, runs_dir, monkeypatch)
    assert [(c.name, c.seed) for c in from_grid] == grid.pairs
    for cfg in from_grid:
        from_cli = _cli_config("--profile", "cpu", "--method", cfg.name, "--seed", str(cfg.seed),
                               "--data-root", str(root), "--runs-dir", str(runs_dir))
        a, b = to_dict(from_cli), to_dict(cfg)
        a.pop("quiet"), b.pop("quiet")  # progress bars only: the grid hides each run's own
        assert a == b, f"{cfg.name} seed {cfg.seed}"
        folder = runs.run_folder("cpu", root, runs_dir)  # runs/cpu/s4-<digest of the data root>
        assert from_cli.run_dir == cfg.run_dir == folder / f"{cfg.name}_seed{cfg.seed}"


def test_cli_train_of_the_cpu_profile_starts_from_the_frozen_pretrained_encoders(cpu_start):
    root, _ = cpu_start
    cfg = _cli_config("--profile", "cpu", "--method", "tpavi", "--data-root", str(root))
    assert cfg.model.freeze_backbone and cfg.model.freeze_audio
    assert cfg.model.resnet_weights.endswith("resnet_synth.pth")
    assert cfg.model.audio_weights.endswith("logmel_cnn_synth.pth")


def test_a_method_applies_after_the_starting_weights(cpu_start):
    root, _ = cpu_start
    cfg = _cli_config("--profile", "cpu", "--method", "thesis_shared_trainable", "--data-root", str(root))
    assert cfg.model.crop_trunk == "shared"
    assert not cfg.model.freeze_backbone  # the method unfreezes what the weights froze
    assert cfg.model.resnet_weights is not None


def test_the_data_root_given_is_the_one_used(cpu_start):
    root, made = cpu_start
    cfg = _cli_config("--profile", "cpu", "--data-root", str(root))
    assert Path(cfg.data.root) == root.resolve()
    assert made == []  # the data there is used, not regenerated, and no other folder is made


def test_set_takes_several_assignments_after_one_flag(cpu_start):
    root, _ = cpu_start
    cfg = _cli_config("--profile", "cpu", "--data-root", str(root), "--set", "optim.lr=3e-3", "optim.epochs=2")
    assert cfg.optim.lr == 3e-3 and cfg.optim.epochs == 2


def test_a_real_data_profile_without_data_names_the_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        runs.prepare_data("paper", tmp_path / "nowhere")


def test_a_synthetic_profile_generates_its_data_where_asked_when_missing(tmp_path, capsys):
    root = runs.prepare_data("smoke", tmp_path / "fresh")
    assert root == tmp_path / "fresh"
    assert (root / "s4_meta_data.csv").is_file()
    assert "generated the smoke profile's synthetic dataset at" in capsys.readouterr().out
    again = runs.prepare_data("smoke", tmp_path / "fresh")
    assert again == root and "generated" not in capsys.readouterr().out


def test_a_user_dataset_is_not_replaced_by_synthetic_data(tmp_path):
    root = tmp_path / "mine"
    make_dataset(root, videos_per_split=(2, 1, 1), image_size=32, progress=False)
    (root / "synth_sidecar").rename(root / "not_a_sidecar")  # now it looks like the user's own data
    before = (root / "s4_meta_data.csv").read_text()
    assert runs.prepare_data("cpu", root) == root
    assert (root / "s4_meta_data.csv").read_text() == before


def test_every_profile_resolves_to_a_valid_config():
    for name in PROFILES:
        cfg = build_config(name, "tpavi")
        assert cfg.data.root == get_profile(name).data_root


def test_an_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid profiles: smoke, cpu, cpu_multilook, cpu_noisy, gpu, paper"):
        build_config("laptop")


def test_grid_without_a_default_needs_methods_and_seeds():
    with pytest.raises(ValueError, match="METHODS and SEEDS"):
        experiments.grid_for("paper")
    assert experiments.grid_for("paper", ["tpavi"], [0]) == Grid(("tpavi",), (0,))


def test_the_runs_place_is_set_by_flags_not_by_overrides(cpu_start):
    root, _ = cpu_start
    with pytest.raises(ValueError, match=r"data.root \(use --data-root\)"):
        _cli_config("--profile", "cpu", "--data-root", str(root), "--set", "data.root=/elsewhere")


def test_a_synthetic_dataset_made_otherwise_is_used_as_it_is_with_a_warning(tmp_path):
    root = tmp_path / "mine"
    make_dataset(root, videos_per_split=(2, 1, 1), image_size=32, progress=False)
    before = (root / "s4_meta_data.csv").read_text()
    with pytest.warns(UserWarning, match="made with other parameters"):
        assert runs.prepare_data("smoke", root) == root
    assert (root / "s4_meta_data.csv").read_text() == before  # never replaced


def test_runs_of_another_dataset_or_data_root_go_to_another_folder(tmp_path):
    s4 = runs.run_config("paper", "tpavi", 0, tmp_path / "Single-source", tmp_path / "runs")
    ms3 = runs.run_config("paper", "tpavi", 0, tmp_path / "Single-source", tmp_path / "runs",
                          overrides=["data.dataset=ms3"])
    other = runs.run_config("paper", "tpavi", 0, tmp_path / "Other", tmp_path / "runs")
    assert s4.run_dir.parent.name.startswith("s4-") and ms3.run_dir.parent.name.startswith("ms3-")
    assert len({s4.run_dir, ms3.run_dir, other.run_dir}) == 3
    assert s4.run_dir.parent == runs.run_folder("paper", tmp_path / "Single-source", tmp_path / "runs")


def test_a_config_message_names_the_data_root_given_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=rf"crop-labels {tmp_path / 'mine'}`"):
        runs.run_config("paper", "thesis", 0, "mine", "runs", overrides=["data.crop_labels=false"])


def test_the_run_folder_of_an_ms3_root_is_found_without_the_overrides(tmp_path):
    (tmp_path / "ms3_meta_data.csv").write_text("video_id,split\n")
    with_flag = runs.run_folder("paper", tmp_path, "runs", ["data.dataset=ms3"])
    assert runs.run_folder("paper", tmp_path, "runs") == with_flag and with_flag.name.startswith("ms3-")


def test_grid_description_counts_every_run_it_trains():
    """The line notebook 03 prints names each group and adds up to the runs the grid trains."""
    grid = Grid(("a", "b"), (0, 1, 2), ("c",), ablation_seeds=(0,), extras=("d",), probes=("e", "f"),
                headline=("a",), headline_seeds=(3, 4), longer=("g",))
    assert grid.describe() == ("13 runs: 2 methods x 3 seeds, 1 headline methods (further seeds) x 2 seeds, "
                               "1 extra methods x 1 seed, 1 ablations x 1 seed, 1 methods at twice the budget "
                               "x 1 seed, 2 val-only probes x 1 seed")
    assert len(grid.pairs) == 13 == len(set(grid.pairs))
    assert len(GRIDS["cpu"].pairs) == int(GRIDS["cpu"].describe().split()[0])
