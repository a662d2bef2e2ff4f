"""The `paper` report as its users run it, unmocked: `python -m avs_lib report --profile paper ...`
on a tiny AVSBench tree in the official layout (frames, masks, pickled log-mels read through the
safe unpickler, WAVs, labelImg crop labels), with weight files in the official key layouts
(a torchvision ResNet state_dict, a VGGish state_dict), through all five notebooks.

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
    runs = sorted((tmp_path / "runs" / "paper").glob("*_seed0"))
    assert [r.name for r in runs] == ["counterfactual_seed0", "thesis_seed0", "tpavi_seed0"]
    assert all((r / "provenance.json").is_file() and (r / "summary.json").is_file() for r in runs)
    assert _tree_hash(NOTEBOOK_DIR, FIGURES_DIR) == committed


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
