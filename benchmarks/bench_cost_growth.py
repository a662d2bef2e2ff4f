"""How a training step's cost grows with batch size, image size and frames per clip: literal vs fast TPAVI.

One full training step (forward, loss, backward, Adam; `bench_train_step.TrainStep`) of a small
model (ResNet-18, decoder width 32, TPAVI at all four stages, the small audio encoder) on random
inputs. From a base point (batch 2, 64 px, 5 frames) one quantity varies at a time. Each point
runs in its own subprocess, so its peak memory is its own ("step MiB": the peak resident size
during the steps minus the resident size once model and inputs are built; see `_common.PeakRSS`).

The literal TPAVI forms a (T*h*w) x (T*h*w) matrix per clip at each stage, so its memory grows with
the square of frames x pixels (the fourth power of the image side); the fast one never forms it.
Use the table to predict a run before starting it: step time x steps.

    OMP_NUM_THREADS=1 python benchmarks/bench_cost_growth.py --out benchmarks/results/cost_growth_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

from _common import PeakRSS, run_child, write_json

BASE = {"batch": 2, "image_size": 64, "frames": 5}
AXES = {"batch": (1, 2, 4, 8), "image_size": (32, 64, 96, 128), "frames": (1, 3, 5, 8)}
IMPLS = ("naive", "fast")


def points() -> list[dict]:
    """The base point and every one-at-a-time change of it, each once."""
    seen, out = set(), []
    for axis, values in AXES.items():
        for value in values:
            point = {**BASE, axis: value}
            key = tuple(point.values())
            if key not in seen:
                seen.add(key)
                out.append(point)
    return out


def child(impl: str, batch: int, image_size: int, frames: int, steps: int, warmup: int) -> dict:
    import torch
    from bench_train_step import TrainStep

    from avs_lib.datatools.profiles import build_config

    torch.manual_seed(0)
    cfg = build_config("paper", overrides={
        "data": {"image_size": image_size},
        "model": {"backbone": "resnet18", "channel": 32, "audio_encoder": "small", "tpavi_impl": impl,
                  "frames": frames},
        "loss": {"frames": frames},
    })
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no pretrained weights given")
        step = TrainStep(cfg, batch, "cpu")
    g = torch.Generator().manual_seed(0)
    S = image_size
    step.inputs = {  # as collate_clips gives S4 training clips: one mask per clip
        "frames": torch.randn(batch, frames, 3, S, S, generator=g),
        "audio": torch.randn(batch, frames, 1, 96, 64, generator=g),
        "masks": (torch.rand(batch, 1, 1, S, S, generator=g) > 0.7).float(),
        "mask_frames": torch.zeros(batch, 1, dtype=torch.int64),
    }
    peak = PeakRSS()
    peak.start()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"impl": impl, "batch": batch, "image_size": image_size, "frames": frames,
            "median_s": statistics.median(times), "times_s": times,
            "step_mb": peak.peak_mb - peak.base_mb, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figure", type=Path, help="also save the report's cost-growth figure here (PNG)")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="draw --figure from a results file this script wrote, measuring nothing")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "BATCH", "SIZE", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.replot is not None:
        if args.figure is None:
            parser.error("--replot needs --figure")
        result = json.loads(args.replot.read_text())
        _save_figure(result, args.figure)
        return result
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        impl, batch, size, frames = args.child[0], *map(int, args.child[1:])
        print(json.dumps(child(impl, batch, size, frames, args.steps, args.warmup)))
        return {}
    rows = []
    for point in points():
        for impl in IMPLS:  # interleaved, so a change in the machine's load hits both alike
            row = run_child(__file__, ["--child", impl, str(point["batch"]), str(point["image_size"]),
                                       str(point["frames"]), "--steps", str(args.steps),
                                       "--warmup", str(args.warmup), "--threads", str(args.threads)])
            rows.append({"impl": impl, **point, **row})
    print(f"{'impl':<6} {'batch':>5} {'px':>4} {'T':>2} {'step s':>8} {'step MiB':>9}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['impl']:<6} {r['batch']:>5} {r['image_size']:>4} {r['frames']:>2}  skipped: {r['skipped'][:80]}")
        else:
            print(f"{r['impl']:<6} {r['batch']:>5} {r['image_size']:>4} {r['frames']:>2} {r['median_s']:>8.3f} "
                  f"{r['step_mb']:>9.0f}")
    result = {"model": "resnet18, channel 32, TPAVI at stages 0-3, small audio encoder, random inputs",
              "base": BASE, "axes": {k: list(v) for k, v in AXES.items()}, "steps": args.steps,
              "warmup": args.warmup, "threads": args.threads, "rows": rows}
    write_json(args.out, result)
    if args.figure is not None:
        _save_figure(result, args.figure)
    return result


COST_AXES = (("batch", "clips per step"), ("image_size", "image side (px)"), ("frames", "frames per clip"))


def plot_cost_growth(rows: list[dict], base: dict[str, int]):
    """Step time and memory against batch, image size and frames, literal vs fast TPAVI, from this
    benchmark's "rows" and "base" (skipped points left out)."""
    import pandas as pd
    from matplotlib.figure import Figure

    from avs_lib.report.viz import legend_outside, set_style

    set_style()
    done = pd.DataFrame([dict(r) for r in rows if "skipped" not in r])
    fig = Figure(figsize=(11, 5.6), layout="constrained")
    axes = fig.subplots(2, len(COST_AXES), squeeze=False)
    for col, (axis, label) in enumerate(COST_AXES):
        held = [k for k, _ in COST_AXES if k != axis]
        for impl, style in (("naive", "o--"), ("fast", "s-")):
            sel = done[done["impl"] == impl]
            for k in held:
                sel = sel[sel[k] == base[k]]
            sel = sel.sort_values(axis)
            text = "literal TPAVI (official)" if impl == "naive" else "fast TPAVI"
            axes[0, col].plot(sel[axis], sel["median_s"], style, label=text)
            axes[1, col].plot(sel[axis], sel["step_mb"], style, label=text)
        axes[1, col].set_xlabel(label)
        axes[0, col].set_title(", ".join(f"{k.replace('image_size', 'px')}={base[k]}" for k in held), fontsize=9)
    axes[0, 0].set_ylabel("step time (s)")
    axes[1, 0].set_ylabel("step memory (MiB)")
    legend_outside(fig, axes[0, 0])
    fig.suptitle("Training step cost as the inputs grow (ResNet-18, width 32, TPAVI at 4 stages, CPU)")
    return fig


def _save_figure(result: dict, path: Path) -> None:
    from avs_lib.report.viz import save_figure

    save_figure(plot_cost_growth(result["rows"], result["base"]), path.stem, path.parent)


if __name__ == "__main__":
    main()
