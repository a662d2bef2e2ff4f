"""Can the data loader feed the `cpu` profile's training step? Loader clips/s vs step clips/s.

The loader is the training one (`build_dataset(cfg, "train")`, DataLoader with `collate_clips`,
batch 4) on the synthetic data, in the `cpu` profile (64 px frames, WAV audio, crop boxes), in
two audio modes:

    cached     log-mels read from the .npy cache (`load_log_mel_cached`), as from epoch 2 on
    recompute  log-mels computed from the WAV on every read: each pass gets a fresh, empty
               cache_dir, so every clip pays the first epoch's cost (compute, then write the .npy)

each with num_workers 0 and 2. The consumer is the cpu profile's training step (AVSSystem of
`build_config("cpu", "tpavi")`, forward, TotalLoss, backward, Adam) on batches of 4 real clips,
measured in the same run, interleaved with the loader passes round by round. The ratio
loader/consumer says how much faster the loader delivers clips than the step eats them (target
>= 3). The cache used by `cached` lives in a temporary folder: the dataset is never written to.

Loader clips/s count the whole pass, worker start-up included (an epoch pays it once). With
num_workers=0 the loading and the step take turns, so an epoch runs at 1 / (1/loader + 1/step)
clips/s; with workers, the workers share the CPU cores with the step.

    python benchmarks/bench_data.py --root data/synth --out results/bench_data.json
    python benchmarks/bench_data.py --quick --root /tmp/tiny_synth   # checks that it runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from _common import write_json

MODES = ("cached", "recompute")


def loader_pass(root: Path, mode: str, workers: int, clips: int, cache_dir: Path,
                batch_size: int) -> dict:
    """One pass over the first `clips` training clips; clips/s including worker start-up.

    `cached` reads the log-mels kept in `cache_dir`; `recompute` uses a new empty folder in it.
    """
    from torch.utils.data import DataLoader

    from avs_lib.data import collate_clips
    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.datasets import build_dataset

    if mode == "recompute":  # a fresh folder under cache_dir: every read misses
        cache_dir = Path(tempfile.mkdtemp(prefix="fresh_", dir=cache_dir))
    cfg = build_config("cpu", "tpavi", overrides={
        "data": {"root": str(root), "cache_dir": str(cache_dir), "train_limit": clips}})
    dataset = build_dataset(cfg, "train")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=True,
                        num_workers=workers, collate_fn=collate_clips)
    start = time.perf_counter()
    n = sum(batch["frames"].shape[0] for batch in loader)
    seconds = time.perf_counter() - start
    return {"mode": mode, "num_workers": workers, "clips": n, "seconds": seconds,
            "clips_per_s": n / seconds}


class Consumer:
    """The cpu profile's training step on real batches; `time_steps` returns seconds per step."""

    def __init__(self, root: Path, cache_dir: Path, batch_size: int, n_batches: int):
        import torch
        from torch.utils.data import DataLoader

        from avs_lib.data import collate_clips
        from avs_lib.datatools.profiles import build_config
        from avs_lib.engine.datasets import build_dataset
        from avs_lib.engine.system import AVSSystem
        from avs_lib.engine.train import build_optimizer
        from avs_lib.losses import TotalLoss

        torch.manual_seed(0)
        cfg = build_config("cpu", "tpavi", overrides={
            "data": {"root": str(root), "cache_dir": str(cache_dir)}})
        self.batch_size = cfg.optim.batch_size if batch_size <= 0 else batch_size
        dataset = build_dataset(cfg, "train")
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, drop_last=True,
                            collate_fn=collate_clips)
        self.batches = [b for _, b in zip(range(n_batches), loader, strict=False)]
        if not self.batches:
            raise ValueError(f"{root}: fewer training clips than one batch of {self.batch_size}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no pretrained weights given")
            self.system = AVSSystem(cfg).train()
        self.loss_fn = TotalLoss(cfg.loss)
        self.optimizer = build_optimizer(cfg, self.system.parameters())
        self.calls = 0

    def step(self) -> None:
        batch = self.batches[self.calls % len(self.batches)]
        self.calls += 1
        total, _ = self.loss_fn(self.system(batch), batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()

    def time_steps(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - start)
        return times


def summarise(passes: list[dict], step_times: list[float], batch_size: int) -> dict:
    consumer = batch_size / statistics.median(step_times)
    rows = []
    for mode in MODES:
        for workers in sorted({p["num_workers"] for p in passes}):
            mine = [p["clips_per_s"] for p in passes
                    if p["mode"] == mode and p["num_workers"] == workers]
            if not mine:
                continue
            rate = statistics.median(mine)
            rows.append({"mode": mode, "num_workers": workers, "clips_per_s": rate,
                         "passes": len(mine), "loader_over_consumer": rate / consumer,
                         "epoch_clips_per_s_if_serial": 1 / (1 / rate + 1 / consumer)})
    return {"consumer_clips_per_s": consumer, "consumer_step_s": statistics.median(step_times),
            "loader": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/synth"), help="synthetic dataset")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--clips", type=int, default=48, help="clips per loader pass")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=2, help="loader passes per setting, interleaved")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the cpu profile's (4)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the training step (0: torch's default)")
    parser.add_argument("--quick", action="store_true",
                        help="8 clips, 1 round, 1 step, 1 thread: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.rounds, args.steps, args.warmup = 8, 1, 1, 1
        args.threads = args.threads or 1  # two threads on a busy machine can be 10x slower
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if not args.root.is_dir():
        raise FileNotFoundError(
            f"synthetic dataset not found: {args.root} (make one with `python -m avs_lib synth`)")
    if args.clips < 1 or args.rounds < 1 or args.steps < 1 or args.warmup < 0:
        raise ValueError("--clips, --rounds and --steps must be >= 1, --warmup >= 0")

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        cache_dir = Path(tmp) / "cache"  # filled once, read by every `cached` pass
        consumer = Consumer(args.root, cache_dir, args.batch_size, n_batches=4)
        batch_size = consumer.batch_size
        # Fill the cache for the `cached` passes (and warm the file system) before timing.
        loader_pass(args.root, "cached", 0, args.clips, cache_dir, batch_size)
        consumer.time_steps(args.warmup)
        passes, step_times = [], []
        for _ in range(args.rounds):
            step_times += consumer.time_steps(args.steps)
            for mode in MODES:
                for workers in args.workers:
                    passes.append(loader_pass(args.root, mode, workers, args.clips,
                                              cache_dir, batch_size))
    summary = summarise(passes, step_times, batch_size)
    print(f"cpu profile, {args.root}: loader passes of {args.clips} clips, batch {batch_size}, "
          f"{args.rounds} round(s)")
    print(f"consumer (training step): {summary['consumer_step_s']:.3f} s per step = "
          f"{summary['consumer_clips_per_s']:.1f} clips/s")
    print(f"{'audio':<10} {'workers':>7} {'clips/s':>8} {'loader/step':>12} {'serial epoch clips/s':>21}")
    for r in summary["loader"]:
        print(f"{r['mode']:<10} {r['num_workers']:>7} {r['clips_per_s']:>8.1f} "
              f"{r['loader_over_consumer']:>11.1f}x {r['epoch_clips_per_s_if_serial']:>21.1f}")
    import torch

    result = {"root": str(args.root), "clips_per_pass": args.clips, "batch_size": batch_size,
              "threads": torch.get_num_threads(),
              "rounds": args.rounds, "steps_per_round": args.steps, "passes": passes,
              "step_times_s": step_times, **summary}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
