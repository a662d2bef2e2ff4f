"""What the `cpu` report's runs cost, with and without the frozen-encoder feature cache.

For each method, in one process: the training step as `train_one_epoch` runs it on the real
training split, in three variants built from the same initial weights and fed the same batches,
timed in interleaved rounds so that a change in the machine's load hits them alike:

    before        encoders run every step, Adam's loop implementation (the code before the cache)
    cache         the frozen encoders' outputs read from the feature cache
    cache_fused   + Adam's fused kernel (what `fit` runs now)

Also timed once: building the cache of the training split, and, before and after (cached val
features, visual maps kept across the diagnostics' audio tracks), one validation pass and the
test pass with its diagnostics, so a whole run can be predicted:
``epochs * steps_per_epoch * step + epochs * val + test (+ the cache, once per grid)``.

Needs a synthetic dataset and its pretrained encoders (the report's own start):

    python -m avs_lib synth /tmp/h2data --videos 240,60,60 --image-size 96 --classes 8
    python -m avs_lib pretrain /tmp/h2data
    OMP_NUM_THREADS=1 python benchmarks/bench_report_step.py --root /tmp/h2data \\
        --out benchmarks/results/report_step_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import write_json

METHODS = ("tpavi", "thesis", "counterfactual")
VARIANTS = ("before", "cache", "cache_fused")


def method_config(method: str, root: Path, out: Path):
    from avs_lib.configtools import deep_merge
    from avs_lib.datatools.pretrain import weight_overrides_from
    from avs_lib.datatools.profiles import build_config

    report = json.loads((root / "pretrained" / "pretrain.json").read_text())
    overrides = deep_merge(weight_overrides_from(report), {"data": {"root": str(root)}, "device": "cpu",
                                                           "quiet": True, "output_dir": str(out)})
    return build_config("cpu", method, overrides=overrides)


def time_steps(state: dict, batches: list[dict], cfg, loss_fn, device) -> list[float]:
    """Seconds per step of `state`'s system and optimiser over `batches` (train_one_epoch's body)."""
    system, optimizer = state["system"], state["optimizer"]
    system.train()
    times = []
    for batch in batches:
        start = time.perf_counter()
        outputs = system(batch, cf_audio=batch.get("cf_audio"))
        total, _ = loss_fn(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        state["losses"].append(float(total.detach()))
    return times


def bench_method(method: str, args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from avs_lib.data import collate_clips
    from avs_lib.engine.evaluate import evaluate_system
    from avs_lib.engine.system import AVSSystem
    from avs_lib.engine.train import (
        _split_with_features,
        _training_set,
        build_optimizer,
        seed_everything,
    )
    from avs_lib.losses import TotalLoss

    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as out:
        cfg = method_config(method, Path(args.root), Path(out))
        seed_everything(0)
        system = AVSSystem(cfg)
        plain_cfg = copy.deepcopy(cfg)
        plain_cfg.feature_cache = False
        plain_set, _ = _training_set(plain_cfg, system, device)
        start = time.perf_counter()
        cached_set, _ = _training_set(cfg, system, device)
        cache_s = time.perf_counter() - start
        loss_fn = TotalLoss(cfg.loss)
        n = args.steps * args.rounds
        loaders = {"plain": DataLoader(plain_set, batch_size=cfg.optim.batch_size, collate_fn=collate_clips),
                   "cached": DataLoader(cached_set, batch_size=cfg.optim.batch_size, collate_fn=collate_clips)}
        data_s = {}
        batches = {}
        for name, loader in loaders.items():
            start = time.perf_counter()
            batches[name] = [b for _, b in zip(range(n), loader, strict=False)]
            data_s[name] = (time.perf_counter() - start) / n
        states = {}
        for variant in VARIANTS:
            copy_ = copy.deepcopy(system)
            params = [p for p in copy_.parameters() if p.requires_grad]
            optimizer = (torch.optim.Adam(params, lr=cfg.optim.lr, fused=False) if variant != "cache_fused"
                         else build_optimizer(cfg, copy_.parameters()))
            states[variant] = {"system": copy_, "optimizer": optimizer, "losses": [], "times": []}
        for r in range(args.rounds):
            for variant in VARIANTS:
                feed = batches["plain" if variant == "before" else "cached"][r * args.steps:(r + 1) * args.steps]
                times = time_steps(states[variant], feed, cfg, loss_fn, device)
                states[variant]["times"] += times[1:] if r == 0 else times  # first step: warm-up
        evaluated = states["cache_fused"]["system"]
        val_cached = _split_with_features(cfg, evaluated, "val", device)
        val_s, test_s = {}, {}
        for variant in ("before", "after"):
            if variant == "before":  # no kept visual maps: every audio track recomputes them
                evaluated.visual_maps = lambda batch, s=evaluated: s.model.project(s.encoder_stages(batch))
            else:
                del evaluated.visual_maps
            start = time.perf_counter()
            evaluate_system(evaluated, cfg, "val", device, diagnostics=False,
                            dataset=None if variant == "before" else val_cached)
            val_s[variant] = time.perf_counter() - start
            start = time.perf_counter()
            evaluate_system(evaluated, cfg, "test", device, diagnostics=True)
            test_s[variant] = time.perf_counter() - start
    row = {"method": method, "cache_build_s": cache_s, "val_s": val_s, "test_s": test_s,
           "data_s_per_batch": data_s, "threads": torch.get_num_threads()}
    steps_per_run = cfg.optim.epochs * len(plain_set) // cfg.optim.batch_size
    for variant in VARIANTS:
        step = statistics.median(states[variant]["times"])
        row[variant] = {"median_step_s": step, "steps_timed": len(states[variant]["times"]),
                        "losses": states[variant]["losses"],
                        "data_s": data_s["plain" if variant == "before" else "cached"]}
        # A whole run: steps (with loading) + a validation per epoch + the test with diagnostics.
        per_step = step + row[variant]["data_s"]
        phase = "before" if variant == "before" else "after"
        row[variant]["predicted_run_s"] = (steps_per_run * per_step + cfg.optim.epochs * val_s[phase]
                                           + test_s[phase])
    row["step_speedup"] = row["before"]["median_step_s"] / row["cache_fused"]["median_step_s"]
    row["run_speedup"] = row["before"]["predicted_run_s"] / row["cache_fused"]["predicted_run_s"]
    row["steps_per_run"] = steps_per_run
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="synthetic dataset with pretrained/pretrain.json")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--steps", type=int, default=6, help="steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = [bench_method(m, args) for m in args.methods]
    print(f"cpu profile, {args.threads} thread(s); median step s (data loading apart); predicted run s")
    print(f"{'method':<16}" + "".join(f"{v:>14}" for v in VARIANTS) + f"{'step x':>8}{'run x':>8}"
          f"{'cache s':>9}{'val s before/after':>20}{'test s before/after':>20}")
    for r in rows:
        print(f"{r['method']:<16}" + "".join(f"{r[v]['median_step_s']:>14.3f}" for v in VARIANTS)
              + f"{r['step_speedup']:>8.2f}{r['run_speedup']:>8.2f}{r['cache_build_s']:>9.1f}"
              f"{r['val_s']['before']:>6.1f}/{r['val_s']['after']:<4.1f}"
              f"{r['test_s']['before']:>6.1f}/{r['test_s']['after']:<4.1f}")
        print(f"{'  run s':<16}" + "".join(f"{r[v]['predicted_run_s']:>14.0f}" for v in VARIANTS))
    result = {"profile": "cpu", "root": args.root, "steps": args.steps, "rounds": args.rounds,
              "threads": args.threads, "rows": rows}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
