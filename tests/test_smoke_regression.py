"""The smoke profile's numbers, regression-checked on any x86 CPU: a change of training or evaluation
behaviour fails here with the old and the new numbers. The recorded numbers, and the machine that
recorded them, live in tests/fixtures/smoke_expected.json; after a change that is meant to move
them, rerun with AVS_UPDATE_SMOKE_EXPECTED=1 and commit the file with the change.

Two checks, because float32 training does not give the same numbers on every CPU. Another CPU
(another SIMD width, another MKL or oneDNN kernel) rounds sums differently in the last bits: the
encoders' pretraining is where the runs first differ (the data, the log-mels and torch's uniform
init are the same bytes everywhere), and training amplifies it.
`benchmarks/cross_cpu_drift.py` measures that drift under other kernel settings of one CPU, which
perturb rounding the way another CPU does (benchmarks/results/cross_cpu_drift.json).

- The float64 replay (`smoke_replay`): the first steps of tpavi and thesis from a CPU-independent
  start, in float64. Its numbers agree to ~1e-14 between AVX2 and AVX-512 kernels, MKL_CBWR and a
  oneDNN ISA cap; with no SIMD at all (ATEN_CPU_CAPABILITY=default) the frames are resized by other
  float32 kernels and the thesis loss moves by ~1e-3 at step 4. The tolerances below lie ~10x
  above the largest drift measured at each step, and far below what a behaviour change moves
  (`test_an_injected_change_is_caught`).
- The float32 smoke runs as the report trains them (tpavi, thesis, counterfactual: pretraining,
  training, evaluation), within tolerances about twice the largest drift measured across kernel
  settings and on an AMD EPYC (AVX-512) machine: they catch a broken evaluation or a run that no
  longer trains, not a change in the fourth digit.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from smoke_replay import replay

from avs_lib.engine.provenance import machine_record
from avs_lib.engine.train import fit, read_steps
from avs_lib.report import runs

EXPECTED = Path(__file__).parent / "fixtures" / "smoke_expected.json"
METHODS = ("tpavi", "thesis", "counterfactual")
REPLAY_METHODS = ("tpavi", "thesis")
# Relative tolerance of the float64 replay's loss at each step, and of its trained parameters' L1.
REPLAY_LOSS_RTOL = (1e-6, 1e-5, 1e-3, 1e-2)
REPLAY_PARAM_RTOL = 1e-5
# The float32 runs: relative for the step losses, absolute for the metrics in [0, 1].
LOSS_RTOL = 0.15
METRIC_ATOL = 0.01
METRICS = ("best_val_miou", "val_f_score_split", "test_miou", "test_f_score_split", "test_f_score_official",
           "test_miou_swapped", "test_miou_silent", "test_listening_rate", "test_following_rate")


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return runs.prepare_data("smoke", tmp_path_factory.mktemp("smoke") / "synth")


@pytest.fixture(scope="module")
def replayed(smoke_root) -> dict:
    return {method: replay(smoke_root, method) for method in REPLAY_METHODS}


@pytest.fixture(scope="module")
def smoke_numbers(smoke_root, tmp_path_factory) -> dict:
    weights = runs.starting_weights("smoke", smoke_root, quiet=True)
    numbers = {}
    for method in METHODS:
        cfg = runs.run_config("smoke", method, 0, smoke_root, tmp_path_factory.mktemp("runs"), device="cpu",
                              weights=weights, quiet=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(cfg)  # one thread (the profile's `threads`), as the report's runs
        summary = json.loads((cfg.run_dir / "summary.json").read_text())
        numbers[method] = {"losses": [step["total"] for step in read_steps(cfg.run_dir)],
                           **{key: summary[key] for key in METRICS}}
    return numbers


def replay_changes(expected: dict, got: dict) -> list[str]:
    """What differs between two float64 replays beyond the tolerances, one line per number."""
    changed = []
    for method, values in expected.items():
        for step, (was, now, rtol) in enumerate(zip(values["losses"], got[method]["losses"], REPLAY_LOSS_RTOL,
                                                    strict=True)):
            if now != pytest.approx(was, rel=rtol):
                changed.append(f"{method} float64 loss at step {step + 1}: recorded {was!r}, now {now!r}")
        if got[method]["param_l1"] != pytest.approx(values["param_l1"], rel=REPLAY_PARAM_RTOL):
            changed.append(f"{method} float64 parameters' L1: recorded {values['param_l1']!r}, "
                           f"now {got[method]['param_l1']!r}")
    return changed


def smoke_changes(expected: dict, got: dict) -> list[str]:
    """What differs between two sets of float32 smoke numbers beyond the tolerances."""
    changed = []
    for method, values in expected.items():
        if got[method]["losses"] != pytest.approx(values["losses"], rel=LOSS_RTOL):
            changed.append(f"{method} step losses: recorded {values['losses']}, now {got[method]['losses']}")
        for key in METRICS:
            if got[method][key] != pytest.approx(values[key], abs=METRIC_ATOL, nan_ok=True):
                changed.append(f"{method} {key}: recorded {values[key]}, now {got[method][key]}")
    return changed


def _expected(replayed: dict | None = None, smoke: dict | None = None) -> dict:
    """The recorded numbers; with AVS_UPDATE_SMOKE_EXPECTED=1, this machine's, recorded first."""
    if os.environ.get("AVS_UPDATE_SMOKE_EXPECTED"):
        record = json.loads(EXPECTED.read_text()) if EXPECTED.is_file() else {}
        record["machine"] = machine_record()
        if replayed is not None:
            record["float64_replay"] = replayed
        if smoke is not None:
            record["float32"] = smoke
        EXPECTED.write_text(json.dumps(record, indent=2) + "\n")
    return json.loads(EXPECTED.read_text())


def _where(expected: dict) -> str:
    machine = expected["machine"]
    return (f"recorded on {machine['cpu_model']} ({machine['cpu_capability']}, torch "
            f"{machine['versions']['torch']}); here {machine_record()['cpu_model']} "
            f"({torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__})")


def test_the_float64_replay_matches_the_recorded_numbers(replayed):
    expected = _expected(replayed=replayed)
    changed = replay_changes(expected["float64_replay"], replayed)
    assert not changed, (f"the smoke replay's float64 numbers changed ({_where(expected)}; rerun with "
                         "AVS_UPDATE_SMOKE_EXPECTED=1 if that is intended):\n" + "\n".join(changed))


def test_smoke_numbers_match_the_recorded_ones(smoke_numbers):
    expected = _expected(smoke=smoke_numbers)
    changed = smoke_changes(expected["float32"], smoke_numbers)
    assert not changed, (f"the smoke profile's trained numbers changed ({_where(expected)}; rerun with "
                         "AVS_UPDATE_SMOKE_EXPECTED=1 if that is intended):\n" + "\n".join(changed))


def _shift_masks_one_pixel(batch: dict) -> dict:
    return {**batch, "masks": torch.roll(batch["masks"], shifts=1, dims=-1)}


@pytest.mark.parametrize("method, overrides, transform", [
    ("thesis", ["loss.crop_ce=1.1"], None),  # a loss weight 1.0 -> 1.1
    ("tpavi", ["loss.avs_bce=1.1"], None),
    ("tpavi", ["optim.lr=0.0011"], None),  # the smoke profile's 1e-3, 10 % higher
    ("tpavi", [], _shift_masks_one_pixel),  # every mask one pixel to the right
], ids=["crop_ce_weight", "bce_weight", "learning_rate", "mask_shift"])
def test_an_injected_change_is_caught(smoke_root, replayed, method, overrides, transform):
    # The tolerances that let another CPU pass must not let a change of behaviour through.
    assert not replay_changes({method: replayed[method]}, {method: replayed[method]})
    changed = replay(smoke_root, method, overrides=overrides, batch_transform=transform)
    assert replay_changes({method: replayed[method]}, {method: changed})


def test_the_smoke_tolerances_fail_a_run_that_stops_training(smoke_numbers):
    broken = {method: {**values, "losses": [values["losses"][0]] * len(values["losses"])}
              for method, values in smoke_numbers.items()}
    assert smoke_changes(smoke_numbers, broken)


def test_the_recorded_numbers_cover_every_checked_method_and_metric_and_the_machine():
    expected = json.loads(EXPECTED.read_text())
    assert set(expected["float32"]) == set(METHODS) and set(expected["float64_replay"]) == set(REPLAY_METHODS)
    for values in expected["float32"].values():
        assert len(values["losses"]) > 1 and set(METRICS) <= set(values)
    for values in expected["float64_replay"].values():
        assert len(values["losses"]) == len(REPLAY_LOSS_RTOL)
    assert {"cpu_model", "cpu_capability", "versions"} <= set(expected["machine"])
