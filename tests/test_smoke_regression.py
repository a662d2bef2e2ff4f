"""The trained numbers of the smoke profile, regression-checked: a change in training or evaluation
behaviour fails here with the old and the new numbers, instead of waiting for someone to reread a
table. The expected numbers live in tests/fixtures/smoke_expected.json; after a change that is
meant to move them, rerun with AVS_UPDATE_SMOKE_EXPECTED=1 and commit the file with the change.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from avs_lib.engine import runs
from avs_lib.engine.train import fit, read_steps

EXPECTED = Path(__file__).parent / "fixtures" / "smoke_expected.json"
METHODS = ("tpavi", "thesis", "counterfactual")
# With one thread the CPU runs are deterministic; the tolerances absorb library-version rounding,
# a behaviour change moves these numbers by far more.
LOSS_RTOL = 1e-3
METRIC_ATOL = 2e-3
METRICS = ("best_val_miou", "val_f_score_split", "test_miou", "test_f_score_split", "test_f_score_official",
           "test_miou_swapped", "test_miou_silent", "test_listening_rate", "test_following_rate")


@pytest.fixture(scope="module")
def smoke_numbers(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same float sums on every machine
    try:
        yield _train_smoke(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _train_smoke(tmp_path_factory) -> dict:
    root = runs.prepare_data("smoke", tmp_path_factory.mktemp("smoke") / "synth")
    weights = runs.starting_weights("smoke", root, quiet=True)
    numbers = {}
    for method in METHODS:
        cfg = runs.run_config("smoke", method, 0, root, tmp_path_factory.mktemp("runs"), device="cpu",
                              weights=weights, quiet=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(cfg)
        summary = json.loads((cfg.run_dir / "summary.json").read_text())
        numbers[method] = {"losses": [step["total"] for step in read_steps(cfg.run_dir)],
                           **{key: summary[key] for key in METRICS}}
    return numbers


def test_smoke_numbers_match_the_recorded_ones(smoke_numbers):
    if os.environ.get("AVS_UPDATE_SMOKE_EXPECTED"):
        EXPECTED.write_text(json.dumps(smoke_numbers, indent=2) + "\n")
    expected = json.loads(EXPECTED.read_text())
    changed = []
    for method, values in expected.items():
        got = smoke_numbers[method]
        if got["losses"] != pytest.approx(values["losses"], rel=LOSS_RTOL):
            changed.append(f"{method} step losses: recorded {values['losses']}, now {got['losses']}")
        for key in METRICS:
            if got[key] != pytest.approx(values[key], abs=METRIC_ATOL, nan_ok=True):
                changed.append(f"{method} {key}: recorded {values[key]}, now {got[key]}")
    assert not changed, ("the smoke profile's trained numbers changed (rerun with AVS_UPDATE_SMOKE_EXPECTED=1 "
                         "if that is intended):\n" + "\n".join(changed))


def test_the_recorded_numbers_cover_every_checked_method_and_metric():
    expected = json.loads(EXPECTED.read_text())
    assert set(expected) == set(METHODS)
    for values in expected.values():
        assert len(values["losses"]) > 1 and set(METRICS) <= set(values)
