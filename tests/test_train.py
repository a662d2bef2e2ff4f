"""The training engine: it learns, it resumes exactly, it stops on NaN, it writes its run directory."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avs_lib.datatools.profiles import build_config
from avs_lib.engine.checkpoint import load_checkpoint
from avs_lib.engine.train import fit, read_steps

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _cfg(data_root, out, method="tpavi", **extra):
    overrides = {"data": {"root": str(data_root)}, "output_dir": str(out), "quiet": True, **extra}
    return build_config("smoke", method, overrides=overrides)


def _weights(path):
    return load_checkpoint(path)["system"]


def test_smoke_run_lowers_the_training_loss(tiny_synth, tmp_path):
    cfg = _cfg(tiny_synth, tmp_path, optim={"epochs": 4, "steps_per_epoch": 4, "lr": 2e-3},
               data={"root": str(tiny_synth), "train_limit": 4})
    fit(cfg)
    losses = [s["avs_bce"] for s in read_steps(cfg.run_dir)]
    assert len(losses) == 4 * 2  # 4 clips in batches of 2: two steps per epoch
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2


def test_run_directory_has_config_logs_checkpoints_and_test_outputs(tiny_synth, tmp_path):
    cfg = _cfg(tiny_synth, tmp_path, method="thesis_counterfactual")
    result = fit(cfg)
    run = cfg.run_dir
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "steps.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (run / name).is_file(), name
    assert len(result.history) == cfg.optim.epochs
    assert {"miou", "f_score_official", "f_score_split", "miou_silent", "miou_swapped"} <= set(result.test_metrics)
    assert result.test_metrics["f_score_batch_size"] == cfg.eval_batch_size
    step = read_steps(run)[0]
    assert {"crop_ce", "crop_pairwise", "audio_crop_cosine", "counterfactual", "avs_bce"} <= set(step)


def test_evaluation_writes_masks_in_the_official_layout(tiny_synth, tmp_path):
    from avs_lib.data import AVSBenchS4

    cfg = _cfg(tiny_synth, tmp_path)
    fit(cfg)
    test = AVSBenchS4(tiny_synth, "test", image_size=64)
    pred_dir = cfg.run_dir / "test" / "pred_masks"
    for clip in test.clips[: cfg.data.eval_limit]:
        for i in range(1, 6):
            assert (pred_dir / clip.category / clip.name / f"{clip.name}_{i}.png").is_file()
    per_clip = (cfg.run_dir / "test" / "per_clip.csv").read_text().splitlines()
    assert len(per_clip) == 1 + min(len(test), cfg.data.eval_limit)


def test_checkpoint_rebuilds_the_run_from_its_file_alone(tiny_synth, tmp_path):
    from avs_lib.engine.system import load_system

    cfg = _cfg(tiny_synth, tmp_path)
    fit(cfg)
    system, saved_cfg = load_system(cfg.run_dir / "best.pt")
    assert saved_cfg == cfg
    official = load_checkpoint(cfg.run_dir / "best.pt")["model"]
    system.model.load_state_dict(official, strict=True)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tiny_synth, tmp_path, monkeypatch):
    import avs_lib.engine.train as train

    cfg = _cfg(tiny_synth, tmp_path, optim={"epochs": 2, "steps_per_epoch": 2})
    original = train.TotalLoss.forward
    calls = {"n": 0}

    def poisoned(self, outputs, batch):
        total, parts = original(self, outputs, batch)
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 1, step 1
            return total * float("nan"), {**parts, "avs_bce": float("nan")}
        return total, parts

    monkeypatch.setattr(train.TotalLoss, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 1.*avs_bce=nan"):
        fit(cfg)
    ckpt = load_checkpoint(cfg.run_dir / "last.pt")
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["system"].values() if v.is_floating_point())


def _train_cmd(data_root, out, extra=()):
    return [sys.executable, "-m", "avs_lib", "train", "--profile", "smoke", "--method", "counterfactual",
            "--data-root", str(data_root), "--quiet", "--runs-dir", str(out),
            "--set", "optim.epochs=3", "--set", "optim.steps_per_epoch=4", *extra]


def _run_dir(data_root, out) -> Path:
    """Where `_train_cmd(data_root, out)` trains (runs are filed by the data they read)."""
    from avs_lib.report.runs import run_folder

    return run_folder("smoke", data_root, out) / "counterfactual_seed0"


def test_resume_after_sigkill_mid_epoch_gives_bitwise_identical_weights(tiny_synth, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(_train_cmd(tiny_synth, tmp_path / "full"), env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]

    run_dir = _run_dir(tiny_synth, tmp_path / "killed")
    proc = subprocess.Popen(_train_cmd(tiny_synth, tmp_path / "killed"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    steps = run_dir / "steps.jsonl"
    while time.time() < deadline:  # wait until epoch 1 has begun: mid-epoch, one checkpoint on disk
        if steps.exists() and any(json.loads(x)["epoch"] == 1 for x in steps.read_text().splitlines() if x):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 0, "the kill did not land in epoch 1"

    resumed = subprocess.run(_train_cmd(tiny_synth, tmp_path / "killed", ["--resume"]), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = _weights(_run_dir(tiny_synth, tmp_path / "full") / "last.pt")
    b = _weights(run_dir / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(x)["global_step"] for x in steps.read_text().splitlines()] == list(range(1, 13))


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_two_processes_match_one_process_with_the_same_global_batch(tiny_synth, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # SGD, not Adam: Adam divides by sqrt(v), which turns float-rounding differences of
    # near-zero gradients (summed in another order across processes) into full-size steps.
    common = ["--set", "optim.optimizer=sgd", "--set", "optim.lr=0.01", "--set", "freeze_bn=true", "--set", "optim.batch_size=4", "--set", "optim.epochs=1",
              "--set", "optim.steps_per_epoch=2", "--set", "data.eval_limit=1", "--set", "eval_batch_size=1"]
    one = subprocess.run([*_train_cmd(tiny_synth, tmp_path / "one"), *common], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                "-m", "avs_lib"]
    two_cmd = torchrun + _train_cmd(tiny_synth, tmp_path / "two")[3:] + common
    two = subprocess.run(two_cmd, env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    a = _weights(_run_dir(tiny_synth, tmp_path / "one") / "last.pt")
    b = _weights(_run_dir(tiny_synth, tmp_path / "two") / "last.pt")
    changed = 0
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
            changed += 1
    assert changed > 0


def test_channels_last_conversion_leaves_tpavi_conv3d_alone_and_keeps_outputs():
    from avs_lib.engine.system import AVSSystem
    from avs_lib.engine.train import to_channels_last

    cfg = build_config("smoke", "tpavi")
    torch.manual_seed(0)
    system = AVSSystem(cfg).eval()
    with pytest.raises(RuntimeError):  # the naive conversion is what crashed on CUDA
        AVSSystem(cfg).to(memory_format=torch.channels_last)
    batch = {"frames": torch.randn(1, 5, 3, 64, 64), "audio": torch.randn(1, 5, 1, 96, 64)}
    with torch.no_grad():
        before = system(batch)["logits"]
        to_channels_last(system)
        after = system(batch)["logits"]
    assert any(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in system.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)
