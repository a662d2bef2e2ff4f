"""A short real training run with the measurements the GPU check reports.

Runs exactly what `python -m avs_lib train --profile P --method M --set ...` runs
(`build_config` then `avs_lib.train.fit`), and around it measures:

- the loss falling: the per-step total loss from the run's steps.jsonl, first vs last epoch mean;
- clips/s of each training epoch (data loading included: the time `train_one_epoch` takes);
- the peak GPU memory of the run (torch.cuda.max_memory_allocated; on the CPU, the peak RSS);
- MFU: FLOPs of one training step (forward + backward, counted with
  torch.utils.flop_counter.FlopCounterMode on random inputs of the run's shapes) times steps/s
  of the last epoch, over the card's dense bf16 peak (`_common.PEAK_BF16_FLOPS`).

    python benchmarks/train_check.py --root /tmp/gsynth --profile gpu --method tpavi \\
        --set optim.epochs=2 --out train_check.json
    python benchmarks/train_check.py --device cpu --quick   # a tiny synthetic set in a temp dir

If `system.to(memory_format=torch.channels_last)` fails for this model (it raises on the 5-D
Conv3d weights of TPAVI), the run is made with channels_last=false and says so.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _common import PeakRSS, peak_bf16_flops, write_json
from bench_train_step import TrainStep

QUICK_SETS = [
    "data.image_size=64", "data.crop_size=64", "data.num_workers=0", "data.eval_limit=4",
    "model.backbone=resnet18", "model.channel=32", "optim.batch_size=2", "optim.epochs=2",
    "optim.steps_per_epoch=3", "optim.warmup_steps=0",
]


def channels_last_works(cfg: Any) -> bool:
    """Whether train.py's `system.to(memory_format=torch.channels_last)` runs for this model."""
    import torch

    from avs_lib.engine.system import AVSSystem

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no pretrained weights given")
        system = AVSSystem(cfg)
    try:
        system.to(memory_format=torch.channels_last)
    except RuntimeError as error:
        print(f"note: channels_last disabled for this run: {error}")
        return False
    return True


def count_step_flops(cfg: Any, device: Any) -> int:
    """FLOPs of one training step of this config (global batch, one process), on random inputs."""
    import torch

    use_amp = cfg.amp and device.type == "cuda"
    step = TrainStep(cfg, cfg.optim.batch_size, device, channels_last=False, bf16=use_amp)
    flops = step.count_flops()
    del step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return flops


def timed_epochs(train_module: Any, device: Any, records: list[dict]) -> Any:
    """Wrap train_one_epoch so each call records (seconds, steps); returns the original."""
    import torch

    original = train_module.train_one_epoch

    def wrapper(*args, **kwargs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        parts, global_step = original(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        steps = global_step - kwargs.get("global_step", 0)
        records.append({"seconds": time.perf_counter() - start, "steps": steps})
        return parts, global_step

    train_module.train_one_epoch = wrapper
    return original


def make_quick_dataset(folder: Path) -> Path:
    from avs_lib.datatools.synth import make_dataset

    root = folder / "synth"
    make_dataset(root, videos_per_split=(6, 4, 4), image_size=64, seed=0, progress=False,
                 workers=1)
    return root


def run(args: argparse.Namespace, scratch: Path) -> dict:
    import torch

    import avs_lib.engine.train as train_module
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.system import select_device
    from avs_lib.engine.train import fit, read_steps

    root = args.root if args.root is not None else make_quick_dataset(scratch)
    sets = (QUICK_SETS if args.quick else []) + list(args.set)
    sets += [f"data.root={root}", f"device={args.device}", "quiet=true",
             f"output_dir={args.output_dir or scratch / 'runs'}"]
    cfg = build_config(args.profile, args.method, overrides=sets)
    device = select_device(cfg.device)
    if device.type == "cuda" and cfg.channels_last and not channels_last_works(cfg):
        cfg.channels_last = False
    flops = count_step_flops(cfg, device)

    epochs: list[dict] = []
    original = timed_epochs(train_module, device, epochs)
    peak = PeakRSS()
    peak.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        started = time.perf_counter()
        result = fit(cfg)
        seconds = time.perf_counter() - started
    finally:
        train_module.train_one_epoch = original

    batch = cfg.optim.batch_size
    for e in epochs:
        e["clips_per_s"] = e["steps"] * batch / e["seconds"]
    last = epochs[-1]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak_flops = peak_bf16_flops(device_name) if device.type == "cuda" else None
    achieved = flops * last["steps"] / last["seconds"]
    losses = [s["total"] for s in read_steps(result.run_dir)]
    first_mean = statistics.mean(h["train_total"] for h in result.history[:1])
    last_mean = statistics.mean(h["train_total"] for h in result.history[-1:])
    out = {
        "command": f"python -m avs_lib train --profile {args.profile} --method {args.method} "
        + " ".join(f"--set {s}" for s in sets),
        "device": device_name,
        "amp_bf16": cfg.amp and device.type == "cuda",
        "channels_last": cfg.channels_last and device.type == "cuda",
        "batch_size": batch,
        "image_size": cfg.data.image_size,
        "backbone": cfg.model.backbone,
        "run_dir": str(result.run_dir),
        "seconds_total": seconds,
        "epochs": epochs,
        "step_losses": losses,
        "first_epoch_loss": first_mean,
        "last_epoch_loss": last_mean,
        "loss_fell": last_mean < first_mean,
        "best_val_miou": result.best_val_miou,
        "test_miou": result.test_metrics.get("miou"),
        "flops_per_step": flops,
        "achieved_flops_per_s": achieved,
        "peak_bf16_flops": peak_flops,
        "mfu": achieved / peak_flops if peak_flops else None,
        "peak_rss_mb": peak.peak_mb,
    }
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def report(r: dict) -> None:
    print(f"training check on {r['device']}: {r['backbone']}, {r['image_size']} px, batch "
          f"{r['batch_size']}, bf16 autocast {r['amp_bf16']}, channels_last {r['channels_last']}")
    print(f"  as: {r['command']}")
    losses = r["step_losses"]
    every = max(1, len(losses) // 16)
    print("  loss by step: " + " ".join(f"{x:.3f}" for x in losses[::every]))
    print(f"  epoch mean loss {r['first_epoch_loss']:.4f} -> {r['last_epoch_loss']:.4f} "
          f"({'falling' if r['loss_fell'] else 'NOT falling'})")
    for i, e in enumerate(r["epochs"]):
        print(f"  epoch {i}: {e['steps']} steps in {e['seconds']:.1f} s = {e['clips_per_s']:.1f} clips/s")
    memory = (f"{r['cuda_peak_mb']:.0f} MiB GPU (max_memory_allocated)" if "cuda_peak_mb" in r
              else f"{r['peak_rss_mb']:.0f} MiB RSS")
    print(f"  peak memory {memory}; val mIoU {r['best_val_miou']:.3f}")
    mfu = f"{100 * r['mfu']:.1f}% of {r['peak_bf16_flops'] / 1e12:.0f} TFLOP/s bf16" if r["mfu"] else "n/a"
    print(f"  {r['flops_per_step'] / 1e9:.0f} GFLOP per step, {r['achieved_flops_per_s'] / 1e12:.2f} "
          f"TFLOP/s in the last epoch, MFU {mfu}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help="synthetic dataset (with --quick: made in a temp dir if not given)")
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--method", default="tpavi")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output-dir", type=Path, default=None, help="runs go here (default: temp)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true",
                        help="resnet18, 64 px, 2 epochs of 3 steps: checks that it runs")
    args = parser.parse_args(argv)
    if args.root is None and not args.quick:
        raise ValueError("--root is required without --quick")
    if args.root is not None and not args.root.is_dir():
        raise FileNotFoundError(f"dataset not found: {args.root}")
    with tempfile.TemporaryDirectory(prefix="train_check_") as tmp:
        result = run(args, Path(tmp))
    report(result)
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
