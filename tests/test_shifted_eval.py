"""Scoring trained runs on the shifted test splits: paired with the clean split, off-screen clips apart."""

from __future__ import annotations

import warnings

import pytest
import torch

from avs_lib.config import to_dict
from avs_lib.data.sidecar import sounding_on_screen
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.checkpoint import atomic_torch_save
from avs_lib.engine.system import AVSSystem
from avs_lib.report import shifted
from avs_lib.report.runs import prepare_data


def _saved_run(root, runs_dir):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(root)}, "quiet": True,
                                                    "output_dir": str(runs_dir)})
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        system = AVSSystem(cfg)
    atomic_torch_save({"config": to_dict(cfg), "system": system.state_dict()}, cfg.run_dir / "best.pt")
    return cfg.run_dir


def test_every_run_is_scored_on_every_shifted_root_and_reused_after(tmp_path):
    root = prepare_data("smoke", tmp_path / "synth")
    roots = shifted.shifted_roots("smoke", root)
    from avs_lib.datatools.synth import shifted_test_name
    assert list(roots) == [shifted_test_name(s) for s in shifted.SHIFTS]  # one factor each, then all four
    assert {"shifted_looks3", "shifted_colours", "shifted_snr10db", "shifted_snr0db", "shifted_offscreen0.2",
            "shifted_looks3_colours_offscreen0.2_snr0db", "shifted_looks3_colours_offscreen0.2_snr10db"} == set(roots)
    clean_names = set(sounding_on_screen(root, "test"))
    for path in roots.values():  # the same test clips as the clean split, so scores pair by clip
        assert set(sounding_on_screen(path, "test")) == clean_names
    run_dir = _saved_run(root, tmp_path / "runs")
    table = shifted.evaluate_on_shifted(tmp_path / "runs", [("tpavi", 0)], roots, device="cpu")
    assert table[["method", "seed"]].drop_duplicates().values.tolist() == [["tpavi", 0]]
    assert sorted(table["split"]) == sorted(roots)
    assert table["miou"].between(0, 1).all() and table["miou_onscreen"].notna().all()
    written = {name: (run_dir / name / "metrics.json").stat().st_mtime_ns for name in roots}
    again = shifted.evaluate_on_shifted(tmp_path / "runs", [("tpavi", 0)], roots, device="cpu")
    assert {name: (run_dir / name / "metrics.json").stat().st_mtime_ns for name in roots} == written
    assert again["miou"].tolist() == table["miou"].tolist()


def test_a_profile_on_real_data_has_no_shifted_split(tmp_path):
    assert shifted.shifted_roots("paper", tmp_path) == {}


def test_two_workers_give_the_same_scores_as_one(tmp_path):
    root = prepare_data("smoke", tmp_path / "synth")
    roots = shifted.shifted_roots("smoke", root)
    _saved_run(root, tmp_path / "runs")
    one = shifted.evaluate_on_shifted(tmp_path / "runs", [("tpavi", 0)], roots, device="cpu")
    for name in roots:  # force a fresh evaluation
        (tmp_path / "runs" / "tpavi_seed0" / name / "metrics.json").unlink()
    two = shifted.evaluate_on_shifted(tmp_path / "runs", [("tpavi", 0)], roots, device="cpu", jobs=2)
    assert two["miou"].tolist() == pytest.approx(one["miou"].tolist(), abs=1e-6)
