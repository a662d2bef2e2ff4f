"""tools/browser_screenshots.py picks the report's runs and refuses to run without them.

The browser part is covered by test_browser.py (same harness); these tests need no browser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
try:
    import browser_screenshots
finally:
    sys.path.remove(str(TOOLS))


def _finished_run(runs_dir: Path, method: str, seed: int, test_miou: float, checkpoint: bool = True) -> None:
    run = runs_dir / f"{method}_seed{seed}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"name": method, "seed": seed, "test_miou": test_miou}))
    if checkpoint:
        (run / "best.pt").write_bytes(b"")


def test_screenshots_show_the_median_seeds_of_tpavi_and_counterfactual(tmp_path):
    for seed, miou in enumerate((0.3, 0.1, 0.2)):
        _finished_run(tmp_path, "tpavi", seed, miou)
    _finished_run(tmp_path, "counterfactual", 4, 0.5)
    _finished_run(tmp_path, "thesis", 0, 0.4)
    assert browser_screenshots.shown_runs(tmp_path) == ["tpavi_seed2", "counterfactual_seed4"]


def test_screenshots_show_every_method_when_neither_tpavi_nor_counterfactual_was_trained(tmp_path):
    _finished_run(tmp_path, "thesis", 0, 0.4)
    _finished_run(tmp_path, "visual_only", 1, 0.2)
    assert browser_screenshots.shown_runs(tmp_path) == ["visual_only_seed1", "thesis_seed0"]


def test_screenshots_refuse_a_median_run_without_checkpoint(tmp_path):
    _finished_run(tmp_path, "tpavi", 0, 0.3, checkpoint=False)
    with pytest.raises(FileNotFoundError, match="tpavi_seed0"):
        browser_screenshots.shown_runs(tmp_path)


def test_screenshots_refuse_a_missing_profile_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "figures"
    code = browser_screenshots.main(["--runs-dir", str(tmp_path), "--profile", "cpu", "--out", str(out)])
    assert code == 2
    assert str(tmp_path / "cpu") in capsys.readouterr().err
    assert not out.exists()
