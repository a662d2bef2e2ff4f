"""provenance.json: what made a run, and when a finished run may be reused."""

import json
import sys
import warnings

import numpy
import pytest
import torch
import torchvision

from avs_lib.config import save_config, to_dict
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.provenance import (
    PROVENANCE_FILE,
    code_version,
    git_state,
    write_provenance,
)
from avs_lib.report.experiments import _run_status
from avs_lib.report.runs import data_change, read_provenance


def test_provenance_records_code_git_versions_device_and_command(tmp_path):
    write_provenance(tmp_path, torch.device("cpu"))
    record = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert record["code_version"] == code_version()
    assert set(record["git"]) == {"commit", "dirty"}
    assert record["versions"] == {"python": sys.version.split()[0], "torch": torch.__version__,
                                  "torchvision": torchvision.__version__, "numpy": numpy.__version__}
    assert record["device"] == "cpu" and record["command"] == sys.argv
    # a run trained in a notebook's worker has a kernel's argv: the report command is a parent's
    if sys.platform.startswith("linux"):
        assert record["parent_commands"] and all(isinstance(c, str) for c in record["parent_commands"])


def test_provenance_records_the_cpu_and_the_kernel_settings(tmp_path, monkeypatch):
    # The trained float32 numbers depend on the CPU's kernels (README, "Reproducibility"): the
    # record says which SIMD level and which kernel-choosing variables made them.
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    write_provenance(tmp_path, torch.device("cpu"))
    machine = json.loads((tmp_path / PROVENANCE_FILE).read_text())["machine"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["kernel_settings"]["MKL_CBWR"] == "COMPATIBLE"
    assert "ATEN_CPU_CAPABILITY" not in machine["kernel_settings"]
    assert machine["cpu_model"]


def test_git_state_is_unknown_outside_a_git_checkout(tmp_path):
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown"}


def _package(root):
    (root / "engine").mkdir(parents=True)
    (root / "report").mkdir()
    (root / "engine" / "train.py").write_text("STEPS = 1\n")
    (root / "report" / "viz.py").write_text("COLOUR = 'red'\n")
    (root / "cli.py").write_text("")
    (root / "README.md").write_text("docs\n")
    return code_version(root)


def test_code_version_ignores_docs_and_the_report_layer(tmp_path):
    before = _package(tmp_path)
    (tmp_path / "README.md").write_text("better docs\n")
    (tmp_path / "report" / "viz.py").write_text("COLOUR = 'blue'\n")
    (tmp_path / "cli.py").write_text("# a new command\n")
    assert code_version(tmp_path) == before


def test_code_version_changes_with_the_training_code(tmp_path):
    before = _package(tmp_path)
    (tmp_path / "engine" / "train.py").write_text("STEPS = 2\n")
    assert code_version(tmp_path) != before


def test_unreadable_provenance_counts_as_none(tmp_path):
    (tmp_path / PROVENANCE_FILE).write_text("{not json")
    assert read_provenance(tmp_path) is None


def _finished_run(tmp_path, code="this"):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tmp_path)}, "output_dir": str(tmp_path)})
    cfg.run_dir.mkdir(parents=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    (cfg.run_dir / "summary.json").write_text("{}")
    if code is not None:
        (cfg.run_dir / PROVENANCE_FILE).write_text(json.dumps({"code_version": code, "data": _data(cfg)}))
    return cfg


def _data(cfg):
    from avs_lib.engine.provenance import data_fingerprint, data_read_by

    return data_fingerprint(*data_read_by(cfg))


def test_a_finished_run_of_the_same_code_and_config_is_reused(tmp_path):
    cfg = _finished_run(tmp_path, code="this")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _run_status(cfg.run_dir, to_dict(cfg), "this", _data(cfg))[0] == "done"


def test_a_finished_run_of_other_code_is_trained_again_and_the_user_told(tmp_path):
    cfg = _finished_run(tmp_path, code="older")
    with pytest.warns(UserWarning, match="retraining tpavi_seed0: made by other code .*older"):
        assert _run_status(cfg.run_dir, to_dict(cfg), "this", _data(cfg))[0] == "stale"


def test_a_run_without_provenance_is_trained_again(tmp_path):
    cfg = _finished_run(tmp_path, code=None)
    with pytest.warns(UserWarning, match="no provenance.json"):
        assert _run_status(cfg.run_dir, to_dict(cfg), "this", _data(cfg))[0] == "stale"


def test_reuse_stale_keeps_a_run_of_other_code_and_says_so_in_its_one_line(tmp_path):
    import warnings

    cfg = _finished_run(tmp_path, code="older")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is the run's one "reused" line, not a warning as well
        status, note = _run_status(cfg.run_dir, to_dict(cfg), "this", _data(cfg), reuse_stale=True)
    assert status == "done" and "older" in note and "kept as asked" in note


def test_reuse_stale_does_not_keep_a_run_of_another_config(tmp_path):
    cfg = _finished_run(tmp_path, code="this")
    wanted = to_dict(build_config("smoke", "tpavi", overrides={"data": {"root": str(tmp_path)},
                                                               "output_dir": str(tmp_path), "optim": {"lr": 0.5}}))
    with pytest.warns(UserWarning, match="optim.lr"):
        assert _run_status(cfg.run_dir, wanted, "this", _data(cfg), reuse_stale=True)[0] == "stale"


def test_the_data_fingerprint_names_what_changed(tmp_path):
    import os

    from avs_lib.engine.provenance import data_fingerprint

    audio = tmp_path / "s4_data" / "audio_log_mel" / "train" / "dog_barking"
    audio.mkdir(parents=True)
    (audio / "a.pkl").write_bytes(b"x")
    (tmp_path / "s4_meta_data.csv").write_text("name,start,category,split\n")
    before = data_fingerprint(tmp_path, "s4", "pkl", crop_labels=False)
    assert data_change(before, data_fingerprint(tmp_path, "s4", "pkl", crop_labels=False)) is None
    os.utime(audio / "a.pkl", ns=(1, 1))
    assert data_change(before, data_fingerprint(tmp_path, "s4", "pkl", False)) == (
        "audio files changed (sizes or modification times)")
    (tmp_path / "s4_meta_data.csv").write_text("name,start,category,split\nx,0,dog_barking,train\n")
    assert data_change(before, data_fingerprint(tmp_path, "s4", "pkl", False)) == "metadata CSV changed"
