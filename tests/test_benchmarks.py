"""The benchmark scripts run end to end (--quick) and write the numbers the performance issue asks for.

They run as subprocesses, as a person runs them; the measurements themselves are not checked
(the tiny quick settings measure nothing of interest), only that every reported key is there.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def bench_module():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_train_step

        yield bench_train_step
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_train_step_quick_reports_times_memory_and_ratios(tmp_path):
    out = tmp_path / "train_step.json"
    run_script("bench_train_step.py", "--quick", "--variants", "naive", "fast", "no_tpavi",
               "--out", str(out), "--figures-dir", str(tmp_path))
    result = json.loads(out.read_text())
    assert [r["variant"] for r in result["rows"]] == ["naive", "fast", "no_tpavi"]
    for row in result["rows"]:
        assert {"median_s", "times_s", "step_mb", "peak_rss_mb", "batch"} <= row.keys(), row
        assert row["median_s"] > 0
    (ratios,) = result["ratios"]
    for key in ("speedup_fast_over_naive", "tpavi_overhead_fast_over_no_tpavi",
                "memory_fast_over_naive"):
        assert isinstance(ratios[key], float), key
    assert (tmp_path / "perf_train_step.png").stat().st_size > 0


def test_data_quick_reports_loader_rates_against_the_training_step(tmp_path, tiny_synth):
    out = tmp_path / "data.json"
    run_script("bench_data.py", "--quick", "--root", str(tiny_synth), "--workers", "0",
               "--out", str(out))
    result = json.loads(out.read_text())
    assert result["consumer_clips_per_s"] > 0
    rows = {(r["mode"], r["num_workers"]): r for r in result["loader"]}
    assert set(rows) == {("cached", 0), ("recompute", 0)}
    for row in rows.values():
        assert row["clips_per_s"] > 0
        assert row["loader_over_consumer"] == pytest.approx(
            row["clips_per_s"] / result["consumer_clips_per_s"])


def test_ratios_compare_the_right_variants(bench_module):
    rows = [
        {"variant": "naive", "batch": 1, "median_s": 3.0, "step_mb": 900.0, "activation_mb": 600.0},
        {"variant": "fast", "batch": 1, "median_s": 1.5, "step_mb": 300.0, "activation_mb": 150.0},
        {"variant": "no_tpavi", "batch": 1, "median_s": 1.2, "step_mb": 280.0},
    ]
    ratios = bench_module.compute_ratios(rows, batch=1, cuda=False)
    assert ratios["speedup_fast_over_naive"] == pytest.approx(2.0)
    assert ratios["tpavi_overhead_fast_over_no_tpavi"] == pytest.approx(0.25)
    assert ratios["memory_fast_over_naive"] == pytest.approx(1 / 3)
    assert ratios["activation_memory_fast_over_naive"] == pytest.approx(0.25)
    assert ratios["speedup_channels_last"] is None  # fast_cl was not run


def test_bf16_and_checkpointed_variants_run_on_the_cpu_with_the_same_loss(tmp_path):
    out = tmp_path / "train_step.json"
    run_script("bench_train_step.py", "--quick", "--variants", "fast_bf16_cl", "fast_bf16_cl_ckpt",
               "--out", str(out), "--no-figure")
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"fast_bf16_cl", "fast_bf16_cl_ckpt"}
    # Checkpointing recomputes the same forward: the loss does not change.
    assert rows["fast_bf16_cl_ckpt"]["losses"] == pytest.approx(rows["fast_bf16_cl"]["losses"], rel=1e-6)
