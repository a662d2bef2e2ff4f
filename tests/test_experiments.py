"""experiments: grids, reuse of finished runs, result tables and the recipe ladder.

Run directories are written by hand (summary.json, config.yaml, steps.jsonl, test/*.csv), so
nothing here trains a model.
"""

import json
import math
import os
import warnings

import pandas as pd
import pytest
import torch
import yaml

from avs_lib.config import save_config, to_dict
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.provenance import write_provenance
from avs_lib.report import experiments, runs
from avs_lib.report.grids import Grid


def fake_run(runs_dir, method, seed, miou=0.5, listening=0.2, steps=3, clips=None, config=None):
    """A finished run as fit() leaves it, with the given test numbers."""
    run = runs_dir / f"{method}_seed{seed}"
    (run / "test").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config or {"name": method, "seed": seed}))
    summary = {"name": method, "seed": seed, "best_epoch": 1, "best_val_miou": miou, "seconds": 2.0,
               "test_miou": miou, "test_f_score_official": 0.7, "test_f_score_batch_size": 4,
               "test_f_score_split": 0.71, "test_miou_silent": 0.1, "test_miou_swapped": 0.3,
               "test_listening_rate": listening, "test_frames": 10}
    (run / "summary.json").write_text(json.dumps(summary))
    lines = [{"epoch": 0, "step": i, "global_step": i + 1, "lr": 1e-3, "avs_bce": 1.0 / (i + 1),
              "total": 2.0 / (i + 1)} for i in range(steps)]
    (run / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "test" / "per_category.csv").write_text(f"category,n_clips,n_frames,miou,f_score\nhelicopter,1,5,{miou},0.7\n")
    clips = clips or {"clipA": miou, "clipB": miou + 0.1}
    body = "".join(f"{name},helicopter,{iou},5\n" for name, iou in clips.items())
    (run / "test" / "per_clip.csv").write_text("name,category,iou,n_frames\n" + body)
    return run


# ---------------------------------------------------------------- grids and data


def test_default_smoke_grid_is_four_methods_one_seed():
    grid = experiments.grid_for("smoke")
    assert grid.all_methods == ["visual_only", "tpavi", "thesis", "counterfactual"]
    assert grid.seeds == (0,)


def test_cpu_grid_has_five_seeds_the_leave_one_out_ablations_and_the_ladder_probes():
    grid = experiments.grid_for("cpu")
    assert grid.seeds == (0, 1, 2, 3, 4)  # the evidence needs at least 5 paired seeds
    assert set(grid.headline) <= set(grid.methods) and len(grid.seeds) + len(grid.headline_seeds) >= 10
    assert list(grid.ablations) == ["thesis_minus_crop_ce", "thesis_minus_pairwise", "thesis_minus_cosine",
                                    "thesis_literal_c"]
    assert set(grid.probes) | set(grid.compared) >= set(experiments.LADDER)  # every rung is trained


def test_cpu_grid_compares_extra_methods_with_one_seed_and_trains_each_run_once():
    grid = experiments.grid_for("cpu")
    assert grid.compared == [*grid.methods, *grid.extras] and grid.extras
    pairs = grid.pairs
    assert len(pairs) == len(set(pairs))
    seeds = len(grid.seeds)
    assert len(pairs) == (len(grid.methods) * seeds + len(grid.headline) * len(grid.headline_seeds)
                          + (len(grid.ablations) + len(grid.longer)) * len(grid.ablation_seeds) + len(grid.extras)
                          + len(grid.probes))
    assert all(seed == 0 for method, seed in pairs if method in grid.extras + grid.probes)
    assert {s for m, s in pairs if m in grid.ablations} == set(grid.ablation_seeds)  # a subset of the main seeds
    assert set(grid.ablation_seeds) <= set(grid.seeds)
    assert {s for m, s in pairs if m == "tpavi"} == set(grid.seeds) | set(grid.headline_seeds)
    assert [m for m, _ in pairs][:seeds] == [grid.methods[0]] * seeds  # main methods first, all seeds
    assert not set(grid.probes) & set(grid.compared)  # the val-only probes are never compared
    # An explicit method list replaces the default, extras included.
    assert experiments.grid_for("cpu", methods=["tpavi"], seeds=[0, 1]).pairs == [("tpavi", 0), ("tpavi", 1)]


def test_grid_for_given_methods_replace_the_default_and_drop_ablations():
    grid = experiments.grid_for("cpu", methods=["tpavi"], seeds=[4])
    assert grid.all_methods == ["tpavi"] and grid.seeds == (4,)


def test_grid_for_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid methods: visual_only"):
        experiments.grid_for("smoke", methods=["tpavi", "nope"])


def test_paper_profile_needs_explicit_methods_and_seeds():
    with pytest.raises(ValueError, match="pass METHODS and SEEDS"):
        experiments.grid_for("paper")


def test_weight_overrides_load_the_resnet_file_into_the_crop_trunk_too():
    assert runs.weight_overrides("r.pth", None) == {"model": {"resnet_weights": "r.pth", "crop_weights": "r.pth"}}
    assert runs.weight_overrides(None, None) == {}


# ---------------------------------------------------------------- train_grid


def _saved_config(runs_dir, data_root, method="tpavi", seed=0, **changes):
    cfg = runs.run_config("smoke", method, seed, data_root, runs_dir, overrides=changes)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    write_provenance(cfg.run_dir, "cpu", cfg)  # made by this code on this data, as `train.fit` records it
    return cfg


def test_train_grid_reuses_a_finished_run_without_training(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    cfg = _saved_config(runs, tmp_path / "data")
    fake_run_summary = {"name": "tpavi", "seed": 0, "test_miou": 0.42, "seconds": 1.0}
    (cfg.run_dir / "summary.json").write_text(json.dumps(fake_run_summary))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr("avs_lib.engine.train.fit", no_training)
    table = experiments.train_grid("smoke", Grid(("tpavi",), (0,)), tmp_path / "data", runs)
    assert table[["method", "seed", "test_miou"]].to_dict("records") == [{"method": "tpavi", "seed": 0, "test_miou": 0.42}]


def test_train_grid_trains_again_a_run_made_with_another_config(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    cfg = _saved_config(runs, tmp_path / "data", optim={"lr": 0.5})
    (cfg.run_dir / "summary.json").write_text(json.dumps({"name": "tpavi", "seed": 0, "test_miou": 0.1}))
    calls = []

    def fake_fit(cfg, resume=False):
        calls.append((cfg.optim.lr, resume, (cfg.run_dir / "summary.json").exists()))
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed, "test_miou": 0.9}))

    monkeypatch.setattr("avs_lib.engine.train.fit", fake_fit)
    with pytest.warns(UserWarning, match="optim.lr"):
        table = experiments.train_grid("smoke", Grid(("tpavi",), (0,)), tmp_path / "data", runs)
    assert calls == [(1e-3, False, False)]  # fresh start, stale summary removed first
    assert table["test_miou"].tolist() == [0.9]


def test_train_grid_resumes_an_interrupted_run(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    _saved_config(runs, tmp_path / "data")
    resumed = []

    def fake_fit(cfg, resume=False):
        resumed.append(resume)
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed}))

    monkeypatch.setattr("avs_lib.engine.train.fit", fake_fit)
    experiments.train_grid("smoke", Grid(("tpavi",), (0,)), tmp_path / "data", runs)
    assert resumed == [True]


def test_train_grid_repeats_no_warning_of_an_earlier_run(tmp_path, monkeypatch):
    import warnings

    def warning_fit(cfg, resume=False):
        warnings.warn("no pretrained weights given; using random initialisation", UserWarning, stacklevel=2)
        cfg.run_dir.mkdir(parents=True)
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed}))

    monkeypatch.setattr("avs_lib.engine.train.fit", warning_fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        experiments.train_grid("smoke", Grid(("tpavi", "thesis"), (0, 1)), tmp_path / "data", tmp_path / "runs")
    assert [str(w.message) for w in caught] == ["no pretrained weights given; using random initialisation"]


def test_train_grid_reuses_runs_when_rerun_from_another_folder(tmp_path, monkeypatch):
    """`make` trains from the repository root with data/synth; the notebook reruns the grid from
    notebooks/ with ../data/synth: the same folder, so nothing may be trained again."""
    (tmp_path / "notebooks").mkdir()

    def fake_fit(cfg, resume=False):
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, cfg.run_dir / "config.yaml")
        write_provenance(cfg.run_dir, "cpu", cfg)
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed}))

    monkeypatch.setattr("avs_lib.engine.train.fit", fake_fit)
    monkeypatch.chdir(tmp_path)
    experiments.train_grid("smoke", Grid(("tpavi",), (0, 1)), "data/synth", "runs")

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr("avs_lib.engine.train.fit", no_training)
    monkeypatch.chdir(tmp_path / "notebooks")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a "trained with another config" warning
        table = experiments.train_grid("smoke", Grid(("tpavi",), (0, 1)), "../data/synth", "../runs")
    assert table["seed"].tolist() == [0, 1]


def test_train_grid_trains_every_pair_of_the_grid_once(tmp_path, monkeypatch):
    trained = []

    def fake_fit(cfg, resume=False):
        trained.append((cfg.name, cfg.seed))
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": cfg.name, "seed": cfg.seed}))

    monkeypatch.setattr("avs_lib.engine.train.fit", fake_fit)
    grid = Grid(("tpavi",), (0, 1), ("thesis_minus_cosine",), (1,), extras=("visual_only",))
    table = experiments.train_grid("smoke", grid, tmp_path / "data", tmp_path / "runs")
    expected = [("tpavi", 0), ("tpavi", 1), ("visual_only", 0), ("thesis_minus_cosine", 1)]
    assert trained == expected == grid.pairs
    assert list(zip(table["method"], table["seed"], strict=True)) == expected


def test_an_interrupted_grid_keeps_the_summaries_of_runs_it_did_not_reach(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        cfg = _saved_config(runs, tmp_path / "data", seed=seed, optim={"lr": 0.5})  # stale: retrained
        (cfg.run_dir / "summary.json").write_text(json.dumps({"name": "tpavi", "seed": seed}))

    def interrupted(cfg, resume=False):
        raise KeyboardInterrupt

    monkeypatch.setattr("avs_lib.engine.train.fit", interrupted)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="optim.lr"):
        experiments.train_grid("smoke", Grid(("tpavi",), (0, 1)), tmp_path / "data", runs)
    folder = cfg.run_dir.parent  # runs/smoke/s4-<digest of the data root>
    assert not (folder / "tpavi_seed0" / "summary.json").exists()  # the run that started
    assert (folder / "tpavi_seed1" / "summary.json").exists()  # the run never reached


def test_config_differences_ignore_device_but_not_the_learning_rate(tmp_path):
    a = to_dict(build_config("smoke", "tpavi", device="cpu"))
    b = to_dict(build_config("smoke", "tpavi", device="auto"))
    assert experiments.config_differences(a, b) == []
    c = to_dict(build_config("smoke", "tpavi", overrides=["optim.lr=0.5"]))
    assert experiments.config_differences(a, c) == ["optim.lr"]


def test_reuse_ignores_exactly_the_settings_a_resume_may_change():
    # One list: a grid once retrained every run after a change of data.memory_cache_mb, a
    # setting that a resume already accepted as not changing results.
    from avs_lib.config import RESUME_FREE_KEYS
    a = to_dict(build_config("smoke", "tpavi", device="cpu"))
    for key in RESUME_FREE_KEYS:
        section, _, name = key.rpartition(".")
        b = to_dict(build_config("smoke", "tpavi", device="cpu"))
        holder = b[section] if section else b
        holder[name] = "changed"
        assert experiments.config_differences(a, b) == [], key


# ---------------------------------------------------------------- tables


def test_collect_results_one_row_per_finished_run_in_method_order(tmp_path):
    fake_run(tmp_path, "thesis", 0)
    fake_run(tmp_path, "tpavi", 1)
    fake_run(tmp_path, "tpavi", 0)
    (tmp_path / "cross_attention_seed0").mkdir()  # unfinished: no summary.json
    table = experiments.collect_results(tmp_path)
    assert list(zip(table["method"], table["seed"], strict=True)) == [("tpavi", 0), ("tpavi", 1), ("thesis", 0)]
    assert table.columns[:6].tolist() == ["method", "seed", "best_epoch", "best_val_miou", "test_miou",
                                          "test_f_score_official"]


def test_collect_results_without_a_runs_folder_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        experiments.collect_results(tmp_path / "nowhere")


def test_summarise_gives_mean_sample_std_and_text():
    df = pd.DataFrame({"method": ["tpavi", "tpavi", "thesis"], "seed": [0, 1, 0], "m": [0.5, 0.7, 0.7]})
    table = experiments.summarise(df, ["m"])
    assert table.loc["tpavi", "m_mean"] == pytest.approx(0.6)
    assert table.loc["tpavi", "m_std"] == pytest.approx(math.sqrt(0.02))
    assert table.loc["tpavi", "m"] == "0.600 ± 0.141"
    assert table.loc["thesis", "m"] == "0.700"  # one seed: no spread to show
    assert table["n_seeds"].tolist() == [2, 1]


def test_summarise_missing_metric_names_the_column():
    with pytest.raises(ValueError, match="test_miou"):
        experiments.summarise(pd.DataFrame({"method": ["a"], "seed": [0]}), ["test_miou"])


def test_loss_curves_are_long_with_one_row_per_step_and_term(tmp_path):
    fake_run(tmp_path, "tpavi", 0, steps=3)
    long = experiments.loss_curves(tmp_path)
    assert long.columns.tolist() == ["method", "seed", "global_step", "term", "value"]
    assert len(long) == 6 and set(long["term"]) == {"avs_bce", "total"}
    assert long.loc[(long["term"] == "total") & (long["global_step"] == 2), "value"].item() == 1.0


def test_per_category_carries_method_seed_and_iou(tmp_path):
    fake_run(tmp_path, "tpavi", 0, miou=0.25)
    table = experiments.per_category(tmp_path)
    assert table[["method", "seed", "category", "iou"]].to_dict("records") == [
        {"method": "tpavi", "seed": 0, "category": "helicopter", "iou": 0.25}]


def test_per_clip_carries_method_seed_and_each_clips_iou(tmp_path):
    fake_run(tmp_path, "tpavi", 1, clips={"a": 0.2, "b": 0.9})
    table = experiments.per_clip(tmp_path)
    assert table[["method", "seed", "name", "iou"]].to_dict("records") == [
        {"method": "tpavi", "seed": 1, "name": "a", "iou": 0.2}, {"method": "tpavi", "seed": 1, "name": "b", "iou": 0.9}]


def test_reported_figures_are_labelled_as_not_measured_here():
    table = experiments.reported_table()
    assert set(table["status"]) == {"reported, not measured here"}
    assert table.loc["thesis: + crop losses", "miou"] == 0.726


def test_reference_lines_only_on_the_real_data():
    assert experiments.reference_lines("cpu") == {}
    assert experiments.reference_lines("paper")["thesis: baseline (reported)"] == 0.679


def _ladder_run(runs_dir, rung, gate, weights, frozen, following):
    run_dir = runs_dir / f"{rung}_seed0"
    run_dir.mkdir(parents=True)
    model = {"fusion_gate_init": gate, "resnet_weights": weights, "freeze_backbone": frozen}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": rung, "seed": 0, "model": model}))
    (run_dir / "summary.json").write_text(json.dumps({"name": rung, "seed": 0, "best_epoch": 3, "best_val_miou": 0.5,
                                                      "val_following_rate": following}))


def test_recipe_ladder_reads_each_rungs_start_from_its_own_config_and_its_val_numbers(tmp_path):
    _ladder_run(tmp_path, "tpavi_random_closed", 0.0, None, False, 0.01)
    _ladder_run(tmp_path, "tpavi", 1.0, "/w/r.pth", True, 0.6)
    ladder = experiments.recipe_ladder(tmp_path)
    assert list(ladder.index) == ["tpavi_random_closed", "tpavi"]  # rungs not trained are left out
    assert ladder.loc["tpavi_random_closed", ["start", "gate", "backbone"]].tolist() == ["random", 0.0, "trained"]
    assert ladder.loc["tpavi", ["start", "backbone", "chosen"]].tolist() == ["pretrained", "frozen", True]
    assert ladder["val_following_rate"].tolist() == [0.01, 0.6]
    assert ladder["val_listening_rate"].isna().all()  # not logged by these runs: NaN, not zero


def test_recipe_ladder_without_runs_is_empty(tmp_path):
    assert experiments.recipe_ladder(tmp_path).empty


@pytest.mark.slow
def test_train_grid_in_two_worker_processes_trains_every_run_once(tiny_synth, tmp_path, monkeypatch):
    runs, grid = tmp_path / "runs", Grid(("tpavi", "visual_only"), (0,))
    table = experiments.train_grid("smoke", grid, tiny_synth, runs, device="cpu", jobs=2)
    assert table[["method", "seed"]].to_dict("records") == [
        {"method": "tpavi", "seed": 0}, {"method": "visual_only", "seed": 0}]
    assert table["test_miou"].notna().all()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr("avs_lib.engine.train.fit", no_training)
    again = experiments.train_grid("smoke", grid, tiny_synth, runs, device="cpu", jobs=2)
    assert again["test_miou"].tolist() == table["test_miou"].tolist()


def test_train_grid_names_the_run_that_failed_in_a_worker(tmp_path):
    with pytest.raises(RuntimeError, match=r"run (tpavi|thesis) seed 0 failed in a worker"):
        experiments.train_grid("smoke", Grid(("tpavi", "thesis"), (0,)), tmp_path / "no_data",
                               tmp_path / "runs", device="cpu", jobs=2)


def test_default_jobs_is_one_run_per_core_as_memory_allows(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 24 * 2**30 // 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert experiments.default_jobs("cpu") == min(16, 24 * 2**30 // experiments.RUN_MEMORY_BYTES)
    pages["SC_PHYS_PAGES"] = 64 * 2**30 // 4096
    assert experiments.default_jobs("cpu") == 16
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert experiments.default_jobs("cpu") == 2
    pages["SC_PHYS_PAGES"] = 2**30 // 4096  # less than one run's memory: still one run
    assert experiments.default_jobs("cpu") == 1


def test_the_laptop_profiles_fix_one_thread_per_run_and_fit_gives_the_callers_count_back(
        tiny_synth, tmp_path, monkeypatch):
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.train import fit

    for profile in ("smoke", "cpu"):
        assert build_config(profile, "tpavi").threads == 1
    cfg = build_config("smoke", "visual_only", overrides={
        "data": {"root": str(tiny_synth)}, "optim": {"epochs": 1, "steps_per_epoch": 1},
        "output_dir": str(tmp_path), "device": "cpu", "quiet": True, "evaluate_test": False})
    import avs_lib.engine.train as train_module

    seen = []
    original = train_module.train_one_epoch
    monkeypatch.setattr(train_module, "train_one_epoch",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or original(*a, **k))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fit(cfg)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
