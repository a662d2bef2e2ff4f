"""The `paper` report as its users run it, unmocked: `python -m avs_lib report --profile paper ...`
on a tiny AVSBench tree in the official layout (frames, masks, pickled log-mels read through the
safe unpickler, WAVs, labelImg crop labels), with weight files in the official key layouts
(a torchvision ResNet state_dict, a VGGish state_dict), through all six notebooks.

The only test-only part is the size: `--set` overrides shrink the images, the backbone and the
budget. `make report PROFILE=paper DATA_ROOT=... METHODS=... SEEDS=0 OUT=... SET=...` runs this
same command line.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision
from official_layout import write_ms3, write_s4

from avs_lib.models.vggish import VGGish
from avs_lib.report.notebooks import FIGURES_DIR, NOTEBOOK_DIR, REPO_DIR, notebook_paths

# 4 train / 2 val / 2 test clips over two classes: every test clip has a swap partner of the other class.
S4_TREE = tuple((f"clip{n}_{category[:3]}", category, split) for n, (category, split) in enumerate(
    [("helicopter", "train"), ("dog_barking", "train"), ("helicopter", "train"), ("dog_barking", "train"),
     ("helicopter", "val"), ("dog_barking", "val"), ("helicopter", "test"), ("dog_barking", "test")]))
MS3_TREE = tuple((f"ms3clip{n}", split) for n, split in enumerate(
    ["train", "train", "train", "train", "val", "val", "test", "test"]))
# What shrinks the paper recipe to seconds (and reads the crop labels the tree carries).
SMALL = ["data.image_size=64", "data.crop_size=32", "data.crop_labels=true", "data.num_workers=0",
         "model.backbone=resnet18", "model.channel=16", "optim.batch_size=2", "optim.epochs=1",
         "optim.steps_per_epoch=1", "eval_batch_size=2"]


def _tree_hash(*folders: Path) -> dict[str, str]:
    return {str(p.relative_to(REPO_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A torchvision ResNet-18 state_dict and a VGGish state_dict (vggish-10086976.pth's keys)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), folder / "resnet18.pth")
    torch.save(VGGish(freeze=True).state_dict(), folder / "vggish.pth")
    return folder / "resnet18.pth", folder / "vggish.pth"


def run_report(tmp_path: Path, data_root: Path, methods: list[str], weights, sets: list[str]) -> Path:
    """`python -m avs_lib report --profile paper ...` from the repository root; returns --out."""
    out = tmp_path / "report"
    resnet, vggish = weights
    command = [sys.executable, "-m", "avs_lib", "report", "--profile", "paper", "--data-root", str(data_root),
               "--runs-dir", str(tmp_path / "runs"), "--device", "cpu", "--resnet-weights", str(resnet),
               "--vggish-weights", str(vggish), "--methods", *methods, "--seeds", "0", "--out", str(out)]
    for assignment in sets:
        command += ["--set", assignment]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_DIR)}
    done = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (tmp_path / "report.log").write_text(done.stdout + done.stderr)
    return out


def assert_complete_report(out: Path) -> None:
    names = [p.stem for p in notebook_paths()]
    assert sorted(p.stem for p in out.glob("*.ipynb")) == names
    assert sorted(p.stem for p in out.glob("*.html")) == names
    for path in out.glob("*.ipynb"):
        errors = [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert list((out / "figures").glob("*.png")), "no figures saved"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_paper_report_on_an_official_s4_tree_runs_every_notebook_out_of_place(tmp_path, weights):
    data = tmp_path / "AVSBench" / "Single-source"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    committed = _tree_hash(NOTEBOOK_DIR, FIGURES_DIR)
    out = run_report(tmp_path, data, ["tpavi", "thesis", "counterfactual"], weights, SMALL)
    assert_complete_report(out)
    runs = sorted((tmp_path / "runs" / "paper").glob("*/*_seed0"))
    assert [r.name for r in runs] == ["counterfactual_seed0", "thesis_seed0", "tpavi_seed0"]
    assert all((r / "provenance.json").is_file() and (r / "summary.json").is_file() for r in runs)
    assert _tree_hash(NOTEBOOK_DIR, FIGURES_DIR) == committed
    # Each warning once per report (#29 item 8): the grid's runs, warm-up and notebooks repeat none.
    log = (tmp_path / "report.log").read_text()
    warned = [line for line in log.splitlines() if "Warning: " in line]
    assert len(warned) == len(set(warned)), "\n".join(warned)
    assert "KeyboardInterrupt" not in log and "without encryption" not in log


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_paper_report_on_an_official_ms3_tree_runs_every_notebook_out_of_place(tmp_path, weights):
    data = tmp_path / "AVSBench" / "Multi-sources"
    write_ms3(data, clips=MS3_TREE)
    committed = _tree_hash(NOTEBOOK_DIR, FIGURES_DIR)
    sets = [s for s in SMALL if s != "data.crop_labels=true"] + ["data.dataset=ms3"]
    out = run_report(tmp_path, data, ["tpavi"], weights, sets)
    assert_complete_report(out)
    assert _tree_hash(NOTEBOOK_DIR, FIGURES_DIR) == committed


# ---------------------------------------------------------------- runs keyed by their data (#29)


# The paper recipe's own crop-label reading: only the runs with crop losses read them.
SMALL_OWN_LABELS = [s for s in SMALL if s != "data.crop_labels=true"]


@pytest.fixture
def fixed_code_version(monkeypatch):
    """One code version for the whole test: the sources may be edited while it runs."""
    from avs_lib.engine import provenance

    monkeypatch.setattr(provenance, "code_version", lambda: "this code")  # the report reads it from there


def _grid(method: str = "tpavi"):
    from avs_lib.report.grids import Grid

    return Grid((method,), (0,))


def _weights(weights) -> dict:
    from avs_lib.report.runs import weight_overrides

    return weight_overrides(*map(str, weights))


@pytest.mark.timeout(600)
def test_an_s4_then_an_ms3_grid_into_the_same_runs_dir_keep_both_and_s4_is_reused(tmp_path, weights, capsys,
                                                                                   fixed_code_version):
    from avs_lib.report import experiments
    s4, ms3 = tmp_path / "Single-source", tmp_path / "Multi-sources"
    write_s4(s4, crop_labels=True, clips=S4_TREE)
    write_ms3(ms3, clips=MS3_TREE)
    runs_dir, small = tmp_path / "runs", SMALL_OWN_LABELS
    train = dict(device="cpu", weights=_weights(weights))
    first = experiments.train_grid("paper", _grid(), s4, runs_dir, overrides=small, **train)
    experiments.train_grid("paper", _grid(), ms3, runs_dir, overrides=[*small, "data.dataset=ms3"], **train)
    capsys.readouterr()
    again = experiments.train_grid("paper", _grid(), s4, runs_dir, overrides=small, **train)
    assert "reused tpavi_seed0: same config and data" in capsys.readouterr().out
    folders = sorted(p.parent.parent.name for p in runs_dir.glob("paper/*/tpavi_seed0/summary.json"))
    assert [f.split("-")[0] for f in folders] == ["ms3", "s4"]
    assert again["test_miou"].tolist() == first["test_miou"].tolist()


def _finished(run_cfg) -> None:
    """A run as `train.fit` leaves it, without training: config, provenance with data, summary."""
    import json

    from avs_lib.config import save_config
    from avs_lib.engine.provenance import write_provenance

    run_cfg.run_dir.mkdir(parents=True)
    save_config(run_cfg, run_cfg.run_dir / "config.yaml")
    write_provenance(run_cfg.run_dir, "cpu", run_cfg)
    (run_cfg.run_dir / "summary.json").write_text(json.dumps({"name": run_cfg.name, "seed": 0}))


def test_an_edited_crop_label_retrains_the_runs_that_read_labels_and_names_the_file(tmp_path, monkeypatch,
                                                                                    fixed_code_version):
    from avs_lib.report import experiments
    from avs_lib.report.grids import Grid
    from avs_lib.report.runs import run_config

    data, runs_dir = tmp_path / "Single-source", tmp_path / "runs"
    specs = write_s4(data, crop_labels=True, clips=S4_TREE)
    for method in ("tpavi", "thesis"):
        _finished(run_config("paper", method, 0, data, runs_dir, overrides=SMALL_OWN_LABELS))
    label = specs[0].files["xml1"]
    label.write_text(label.read_text().replace("<xmin>", "<xmin>1"))  # a box corrected in labelImg
    trained = []

    def fake_fit(cfg, resume=False):
        trained.append(cfg.name)
        (cfg.run_dir / "summary.json").write_text(f'{{"name": "{cfg.name}", "seed": 0}}')

    monkeypatch.setattr("avs_lib.engine.train.fit", fake_fit)
    with pytest.warns(UserWarning, match=r"retraining thesis_seed0: crop labels changed \(train/helicopter/"
                                         r"clip0_hel/clip0_hel_1\.xml\)"):
        experiments.train_grid("paper", Grid(("tpavi", "thesis"), (0,)), data, runs_dir, overrides=SMALL_OWN_LABELS)
    assert trained == ["thesis"]  # tpavi reads no labels: reused


def test_a_log_mel_only_tree_passes_the_checks_of_a_profile_that_reads_log_mels(tmp_path):
    import shutil

    from avs_lib.cli import main
    from avs_lib.datatools.check import check_dataset
    from avs_lib.report.runs import prepare_data

    data = tmp_path / "Single-source"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    shutil.rmtree(data / "s4_data" / "audio_wav")
    assert prepare_data("paper", data, overrides=[]) == data.resolve()  # paper reads .pkl log-mels
    assert check_dataset(data, audio="pkl", progress=False).ok
    assert main(["check-data", str(data), "--profile", "paper", "--quiet"]) == 0
    with pytest.raises(FileNotFoundError, match=r"audio_wav not found: the runs read data.audio=wav; this "
                                                r"tree has audio_log_mel/: pass --set data.audio=pkl"):
        prepare_data("paper", data, overrides=["data.audio=wav"])


def test_an_ms3_root_read_as_s4_names_the_flag_that_reads_it(tmp_path):
    from avs_lib.report.runs import prepare_data

    data = tmp_path / "Multi-sources"
    write_ms3(data, clips=MS3_TREE)
    with pytest.raises(FileNotFoundError, match=r"holds ms3_meta_data.csv \(MS3; check-data detects it\); "
                                                r"pass --set data.dataset=ms3"):
        prepare_data("paper", data, overrides=[])


# ---------------------------------------------------------------- checkpoints without frozen copies (#29)


def _trained_system(data: Path, runs_dir: Path, weights, sets: list[str]):
    """A paper-profile system as `train.fit` builds it (seeded), its weights changed as by training."""
    from avs_lib.engine.system import AVSSystem
    from avs_lib.engine.train import seed_everything
    from avs_lib.report.runs import run_config

    cfg = run_config("paper", "thesis", 0, data, runs_dir, weights=weights, overrides=sets)
    seed_everything(cfg.seed)
    system = AVSSystem(cfg)
    with torch.no_grad():
        for p in system.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    return cfg, system.eval()


def _predict(system, data: Path, cfg) -> torch.Tensor:
    from avs_lib.data import collate_clips
    from avs_lib.engine.datasets import build_dataset

    batch = collate_clips([build_dataset(cfg, "test")[i] for i in range(2)])
    with torch.no_grad():
        return system(batch)["logits"]


@pytest.mark.parametrize("start", ["weight files", "random VGGish"])
def test_a_loaded_run_predicts_bit_identically_without_storing_its_frozen_encoders(tmp_path, weights, start):
    from avs_lib.config import to_dict
    from avs_lib.engine.checkpoint import atomic_torch_save, weight_entries
    from avs_lib.engine.system import load_system

    data = tmp_path / "Single-source"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    files = _weights(weights) if start == "weight files" else {}
    sets = [*SMALL, "model.freeze_backbone=true"] if files else SMALL
    cfg, system = _trained_system(data, tmp_path / "runs", files, sets)
    ckpt = {"config": to_dict(cfg), **weight_entries(system, cfg)}
    atomic_torch_save(ckpt, tmp_path / "best.pt")
    atomic_torch_save({**ckpt, "system": system.state_dict(), "frozen": {}}, tmp_path / "full.pt")
    frozen = ("audio_encoder.", "model.resnet.") if files else ("audio_encoder.",)
    assert not [k for k in ckpt["system"] if k.startswith(frozen)]
    vggish_bytes = sum(t.numel() * 4 for t in system.audio_encoder.state_dict().values())
    assert (tmp_path / "full.pt").stat().st_size - (tmp_path / "best.pt").stat().st_size >= vggish_bytes
    loaded, _ = load_system(tmp_path / "best.pt")
    assert torch.equal(_predict(loaded, data, cfg), _predict(system, data, cfg))


def test_a_checkpoint_refuses_a_changed_or_missing_frozen_weight_file(tmp_path, weights):
    import shutil

    from avs_lib.config import to_dict
    from avs_lib.engine.checkpoint import atomic_torch_save, weight_entries
    from avs_lib.engine.system import load_system

    data, vggish = tmp_path / "Single-source", tmp_path / "vggish.pth"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    shutil.copy(weights[1], vggish)
    cfg, system = _trained_system(data, tmp_path / "runs", _weights((weights[0], vggish)), SMALL)
    atomic_torch_save({"config": to_dict(cfg), **weight_entries(system, cfg)}, tmp_path / "best.pt")
    torch.save({k: v + 1 for k, v in torch.load(vggish, weights_only=True).items()}, vggish)
    with pytest.raises(ValueError, match=rf"frozen audio_encoder was trained from {vggish} .*put the original"):
        load_system(tmp_path / "best.pt")
    vggish.unlink()
    with pytest.raises(FileNotFoundError, match=rf"read from {vggish}, which is missing; put that file back"):
        load_system(tmp_path / "best.pt")


# ---------------------------------------------------------------- notebook 01 on real trees (#29)

# Put into a copy of notebook 01 after its imports: every figure the notebook saves is recorded
# with its axes that hold no data (an empty plot, whatever its legend or title says).
RECORD_FIGURES = """import matplotlib.figure
saved_figures, _save_figure = {}, viz.save_figure

def _recording_save(fig, name, *args, **kwargs):
    saved_figures[name] = [ax.get_title() or ax.get_label() or "untitled" for ax in fig.axes if not ax.has_data()]
    return _save_figure(fig, name, *args, **kwargs)

viz.save_figure = _recording_save"""
REPORT_FIGURES = "print('figures:', {name: empty for name, empty in sorted(saved_figures.items())})"


def run_recorded_notebook(tmp_path: Path, name: str, parameters: dict) -> tuple[str, dict[str, list]]:
    """Notebook `name` under papermill with the paper profile, its runs and figures in `tmp_path`;
    returns the text of its outputs (warnings included) and the saved figures with their empty axes."""
    import ast

    import papermill

    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    imports = next(i for i, c in enumerate(notebook.cells) if "from avs_lib.report import" in c.source)
    notebook.cells.insert(imports + 1, nbformat.v4.new_code_cell(RECORD_FIGURES))
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT_FIGURES))
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    out = tmp_path / f"{name}_executed.ipynb"
    papermill.execute_notebook(str(tmp_path / f"{name}.ipynb"), str(out), cwd=str(tmp_path), kernel_name="python3",
                               parameters={"PROFILE": "paper", "RUNS_DIR": str(tmp_path / "runs"),
                                           "FIGURES_DIR": str(tmp_path / "figures"), **parameters},
                               progress_bar=False)
    outputs = [o for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    figures = ast.literal_eval(text.split("figures: ")[-1].strip().splitlines()[0])
    return text, figures


def run_data_notebook(tmp_path: Path, data_root: Path, overrides: list[str]) -> tuple[str, dict[str, list]]:
    return run_recorded_notebook(tmp_path, "01_data_inspection", {"DATA_ROOT": str(data_root), "OVERRIDES": overrides})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_01_on_a_log_mel_only_tree_shows_the_log_mels_and_says_there_are_no_wavs(tmp_path):
    import shutil

    data = tmp_path / "Single-source"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    shutil.rmtree(data / "s4_data" / "audio_wav")
    text, figures = run_data_notebook(tmp_path, data, ["data.image_size=64"])
    assert "no WAV files" in text and "real AVSBench S4" in text
    assert "synthetic" not in text.replace("synthetic_objects", "")
    assert {"data_sound_helicopter", "data_sound_dog_barking"} <= set(figures)
    assert {name: empty for name, empty in figures.items() if empty} == {}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_01_on_ms3_names_clips_without_an_empty_category_and_draws_no_empty_figure(tmp_path):
    data = tmp_path / "Multi-sources"
    write_ms3(data, clips=MS3_TREE)
    text, figures = run_data_notebook(tmp_path, data, ["data.dataset=ms3", "data.image_size=64"])
    assert "****" not in text and "()" not in text
    assert "real AVSBench MS3" in text and "By default the report runs on a **synthetic**" not in text
    assert {"data_class_counts", "data_mask_area", "data_sound_ms3clip0", "data_sound_ms3clip1",
            "data_clip_ground_truth"} <= set(figures)
    assert {name: empty for name, empty in figures.items() if empty} == {}


# ---------------------------------------------------------------- notebooks 03-05 on a real tree (#29)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebooks_03_to_05_on_a_real_s4_tree_draw_the_audio_change_diagnostics_and_no_empty_figure(tmp_path,
                                                                                                     weights):
    data = tmp_path / "Single-source"
    write_s4(data, crop_labels=True, clips=S4_TREE)
    grid = {"DATA_ROOT": str(data), "DEVICE": "cpu", "METHODS": ["tpavi", "thesis"], "SEEDS": [0],
            "RESNET_WEIGHTS": str(weights[0]), "VGGISH_WEIGHTS": str(weights[1])}
    texts, figures = {}, {}
    for name, extra in (("03_training", {"OVERRIDES": SMALL}), ("04_evaluation", {}), ("05_failure_cases", {})):
        texts[name], saved = run_recorded_notebook(tmp_path, name, {**grid, **extra})
        figures |= saved
    assert {name: empty for name, empty in figures.items() if empty} == {}
    assert {"training_validation_curves", "results_audio_change", "failures_audio_swap_tpavi",
            "failures_audio_swap_thesis"} <= set(figures) and "results_listening_vs_miou" not in figures
    assert "No artists with labels found" not in texts["03_training"]
    assert "swapped or silent audio moves a method's val mIoU by at most" in texts["03_training"]
    assert "With swapped audio" in texts["04_evaluation"] and "to the own-audio mask" in texts["04_evaluation"]
    assert "most changed: the test clip whose mask with swapped audio has the lowest IoU" in texts["05_failure_cases"]
    assert "`thesis`, swapped audio: most changed, clip" in texts["05_failure_cases"]
    assert "No swapped-audio examples" not in texts["05_failure_cases"]
