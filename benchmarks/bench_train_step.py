"""Time and memory of one full training step of the official-size model, variant by variant.

A step is what `avs_lib.train.train_one_epoch` does per batch: AVSSystem forward (frames through
ResNet-50, the four heads, TPAVI at stages 1-4 and the decoder; log-mel through the audio
encoder), first-frame BCE (TotalLoss), backward and an Adam step. The model is
`build_config("paper")` at 224 px with model.audio_encoder="small": the trainable LogMelCNN
instead of VGGish, whose pretrained weights are not available here (as in the `gpu` profile; the
audio encoder is ~0.1% of the step). Inputs are random tensors of the shapes the data reader
gives (frames [B, 5, 3, S, S], log-mel [B, 5, 1, 96, 64], one mask per clip).

Variants:

    naive                 TPAVI forming the T*H*W x T*H*W matrix, as the official code
    fast                  TPAVI reassociated (never forms that matrix); the default
    no_tpavi              fusion="none": the visual-only model, the floor TPAVI adds to
    fast_cl               fast, model in channels_last memory format (as train.py on CUDA)
    fast_cl_ckpt          + activation checkpointing (below), still fp32: the same numbers
    fast_recompute        fast + model.recompute_stages=(0, 1, 2): the ResNet's stem and layer1 to
                          layer3, where its activations are largest, recomputed in the backward
                          (BatchNorm-safe: the same numbers, less memory, one more forward)
    fast_cl_recompute     + channels_last
    fast_cl_recompute01   channels_last, only the stem and layer1 recomputed (the largest activations
                          at the least recompute cost)
    fast_cl_compile       fast_cl + torch.compile of the system, still fp32 (other rounding: fused kernels)
    fast_bf16             fast + bf16 autocast (CUDA; on the CPU where it has bf16 units, e.g. AMX)
    fast_bf16_cl          + channels_last
    fast_bf16_cl_ckpt     + activation checkpointing of the heads, fusion-free decoder and output
                          head (they hold no BatchNorm, so the recomputed forward is the same)
    fast_bf16_cl_compile  + torch.compile of the system (long to compile on a small CPU)

"naive" is the official code's computation (its literal TPAVI, same layers otherwise), so the
ratios over naive are the ratios over the official step. Every variant trains the whole model
(backbone fine-tuned, BatchNorm in training mode), as the official recipe does: a frozen-backbone
or BatchNorm-folded step would be cheaper but is another recipe, so it is not compared here.
bf16 autocast changes the rounding of the numbers (a recipe choice like the GPU's AMP), the
other options do not.

Each (variant, batch) runs in its own subprocess, `--rounds` times, the variants interleaved
round by round (naive, fast, ..., naive, fast, ...) so that a change in the machine's load hits
them alike. Time: the median of all timed steps, after `--warmup` steps per subprocess.

Memory. CPU: the peak resident size (VmHWM) during the warm-up and timed steps minus the
resident size once the model, optimiser and inputs are built ("step MiB": activations,
gradients and Adam's moments; the weights not counted). CUDA: max_memory_allocated minus
memory_allocated at that point. "activation_mb" is the step memory less Adam's moments and one
set of gradients, which every variant needs alike (gradients are dropped before each forward, as
in training, so they live only through the backward and the update). The whole-process peak RSS is reported too.

FLOPs (on CUDA, or with --flops): one forward + backward counted with
torch.utils.flop_counter.FlopCounterMode; MFU is those FLOPs per median step time over the
card's dense bf16 peak (`_common.PEAK_BF16_FLOPS`; for fp32 variants a bf16 yardstick).

    python benchmarks/bench_train_step.py --batch 1 4 --out benchmarks/results/train_step_cpu.json
    python benchmarks/bench_train_step.py --device cuda --batch 4 --variants naive fast fast_bf16_cl
    python benchmarks/bench_train_step.py --quick   # tiny model, 1 step: checks that it runs

A variant whose memory would not fit (estimated before it starts) is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import PeakRSS, mem_available_bytes, peak_bf16_flops, run_child, write_json

FRAMES = 5


@dataclass(frozen=True)
class Variant:
    tpavi_impl: str = "fast"
    fusion: str = "tpavi"
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    checkpoint: bool = False
    recompute_stages: tuple[int, ...] = ()  # model.recompute_stages: the ResNet's checkpointing


VARIANTS: dict[str, Variant] = {
    "naive": Variant(tpavi_impl="naive"),
    "fast": Variant(),
    "no_tpavi": Variant(fusion="none"),
    "fast_cl": Variant(channels_last=True),
    "fast_cl_ckpt": Variant(channels_last=True, checkpoint=True),
    "fast_recompute": Variant(recompute_stages=(0, 1, 2)),
    "fast_cl_recompute": Variant(channels_last=True, recompute_stages=(0, 1, 2)),
    "fast_cl_recompute01": Variant(channels_last=True, recompute_stages=(0, 1)),
    "fast_cl_compile": Variant(channels_last=True, compile=True),
    "fast_bf16": Variant(bf16=True),
    "fast_bf16_cl": Variant(channels_last=True, bf16=True),
    "fast_bf16_cl_ckpt": Variant(channels_last=True, bf16=True, checkpoint=True),
    "fast_bf16_cl_compile": Variant(channels_last=True, bf16=True, compile=True),
}
# Run when no --variants are given (compiling ResNet-50 forward + backward on a 2-core CPU takes
# minutes; ask for fast_bf16_cl_compile by name).
DEFAULT_CPU = ("naive", "fast", "no_tpavi", "fast_cl", "fast_cl_ckpt", "fast_recompute", "fast_cl_recompute",
               "fast_bf16", "fast_bf16_cl", "fast_bf16_cl_ckpt")
# The variants whose speed and memory are given as ratios over naive (and over fast).
COMPARED = ("fast_cl", "fast_cl_ckpt", "fast_recompute", "fast_cl_recompute", "fast_cl_recompute01", "fast_cl_compile",
            "fast_bf16", "fast_bf16_cl",
            "fast_bf16_cl_ckpt", "fast_bf16_cl_compile")


class Checkpointed:
    """Wrap a module so its forward keeps no activations: they are recomputed in the backward.

    For modules without BatchNorm or randomness only (the recomputation must give the same values).
    """

    def __new__(cls, inner: Any):
        from torch import nn
        from torch.utils.checkpoint import checkpoint

        class _Checkpointed(nn.Module):
            def __init__(self, module: nn.Module):
                super().__init__()
                self.inner = module

            def forward(self, *args):
                return checkpoint(self.inner, *args, use_reentrant=False)

        return _Checkpointed(inner)


def checkpoint_heads_and_decoder(model: Any) -> None:
    """Activation checkpointing of the AVS model's BatchNorm-free parts: the four dilated-conv
    heads, the four decoder paths and the output head (the ResNet and TPAVI hold BatchNorm)."""
    for name in ("conv1", "conv2", "conv3", "conv4", "path1", "path2", "path3", "path4", "output_conv"):
        setattr(model, name, Checkpointed(getattr(model, name)))


def naive_matrix_bytes(batch: int, image_size: int) -> int:
    """Two float32 N x N matrices per clip (N = 5 * (S/4)^2, TPAVI at stage 1) live at once."""
    n = FRAMES * (image_size // 4) ** 2
    return 2 * batch * n * n * 4


def estimate_step_bytes(variant: str, batch: int, image_size: int) -> int:
    """A rough upper bound of a step's memory on the CPU, to skip what cannot fit.

    Measured here at 224 px, batch 1 (ResNet-50): 1.7 GiB for the fast step, 0.8 of it Adam
    state and gradients; naive needed 1.5 GiB more (2 N x N matrices are 1.8 GiB).
    """
    per_clip = 1.6 * 2**30 * (image_size / 224) ** 2
    total = 2**30 + batch * per_clip
    if VARIANTS[variant].tpavi_impl == "naive" and VARIANTS[variant].fusion == "tpavi":
        total += naive_matrix_bytes(batch, image_size)
    return int(total)


# ---------------------------------------------------------------- one variant, in a child


def random_batch(batch: int, image_size: int, device: Any) -> dict:
    """Tensors shaped as `collate_clips` gives them for S4 training clips (one mask per clip)."""
    import torch

    g = torch.Generator().manual_seed(0)
    S = image_size
    out = {
        "frames": torch.randn(batch, FRAMES, 3, S, S, generator=g),
        "audio": torch.randn(batch, FRAMES, 1, 96, 64, generator=g),
        "masks": (torch.rand(batch, 1, 1, S, S, generator=g) > 0.7).float(),
        "mask_frames": torch.zeros(batch, 1, dtype=torch.int64),
    }
    return {k: v.to(device) for k, v in out.items()}


def to_channels_last(module: Any) -> None:
    """Put every Conv2d weight in channels_last, in place.

    `module.to(memory_format=torch.channels_last)` raises on the 5-D Conv3d weights of TPAVI
    ("required rank 4 tensor to use channels_last format"), so only the 2-D convs are converted;
    their outputs then propagate the format through the ResNet, heads and decoder.
    """
    import torch
    from torch import nn

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)


def variant_config(variant: Variant, image_size: int, backbone: str = "resnet50",
                   channel: int = 256):
    """The `paper` profile with the small audio encoder and this variant's fusion."""
    from avs_lib.datatools.profiles import build_config

    return build_config(
        "paper",
        overrides={
            "data": {"image_size": image_size},
            "model": {
                "backbone": backbone,
                "channel": channel,
                "audio_encoder": "small",
                "tpavi_impl": variant.tpavi_impl,
                "fusion": variant.fusion,
                "recompute_stages": variant.recompute_stages,
            },
        },
    )


class TrainStep:
    """One training step as train_one_epoch runs it, on fixed random inputs; call it to step."""

    def __init__(self, cfg: Any, batch: int, device: Any, *, channels_last: bool = False,
                 bf16: bool = False, compile: bool = False, checkpoint: bool = False):
        import torch

        from avs_lib.engine.system import AVSSystem
        from avs_lib.engine.train import build_optimizer
        from avs_lib.losses import TotalLoss

        with warnings.catch_warnings():  # no ImageNet weights here: random init is what we time
            warnings.filterwarnings("ignore", message="no pretrained weights given")
            self.system = AVSSystem(cfg).to(device)
        if channels_last:
            to_channels_last(self.system)
        if checkpoint:
            checkpoint_heads_and_decoder(self.system.model)
        self.system.train()
        self.loss_fn = TotalLoss(cfg.loss)
        self.optimizer = build_optimizer(cfg, self.system.parameters())
        self.model = torch.compile(self.system) if compile else self.system
        self.inputs = random_batch(batch, cfg.data.image_size, device)
        self.device, self.bf16 = torch.device(device), bf16

    def _loss(self, model: Any):
        import torch

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            total, _ = self.loss_fn(model(self.inputs), self.inputs)
        return total

    def __call__(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)  # as train_one_epoch: before the forward
        total = self._loss(self.model)
        total.backward()
        self.optimizer.step()
        return float(total.detach())

    def count_flops(self) -> int:
        """FLOPs of one forward + backward (convolutions and matrix products), uncompiled."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self._loss(self.system).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()

    @property
    def optimizer_state_bytes(self) -> int:
        import torch

        return sum(t.numel() * t.element_size() for state in self.optimizer.state.values()
                   for t in state.values() if torch.is_tensor(t) and t.dim() > 0)

    @property
    def grad_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.system.parameters()
                   if p.requires_grad)

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.system.parameters() if p.requires_grad)


def child(name: str, batch: int, args: argparse.Namespace) -> dict:
    """Build variant `name`, run warm-up and timed steps; times and memory as a dict."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    variant = VARIANTS[name]
    cfg = variant_config(variant, args.image_size, args.backbone, args.channel)
    step = TrainStep(cfg, batch, device, channels_last=variant.channels_last, bf16=variant.bf16,
                     compile=variant.compile, checkpoint=variant.checkpoint)
    peak = PeakRSS()
    if cuda:
        torch.cuda.synchronize()
        cuda_base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    peak.start()
    warmup = args.warmup + (1 if variant.compile else 0)  # the first backward compiles too
    losses = [step() for _ in range(warmup)]
    times, cpu_times = [], []
    for _ in range(args.steps):
        if cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        losses.append(step())
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        # CPU seconds of all this process's threads: on a machine shared with other work the wall
        # time also counts the waits for a core, this does not (ratios of it are steadier).
        cpu_times.append(time.process_time() - cpu_start)
    row = {
        "variant": name,
        **asdict(variant),
        "batch": batch,
        "image_size": args.image_size,
        "backbone": args.backbone,
        "channel": args.channel,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "warmup_steps": warmup,
        "times_s": times,
        "median_s": statistics.median(times),
        "cpu_times_s": cpu_times,
        "median_cpu_s": statistics.median(cpu_times),
        "losses": losses,
        "trainable_params": step.trainable_params,
        "step_mb": peak.peak_mb - peak.base_mb,
        # Of step_mb, what every variant needs alike: Adam's moments, and gradients (at most).
        "adam_state_mb": step.optimizer_state_bytes / 2**20,
        "grads_mb": step.grad_bytes / 2**20,
        "activation_mb": (peak.peak_mb - peak.base_mb - step.optimizer_state_bytes / 2**20
                          - step.grad_bytes / 2**20),
        "peak_rss_mb": peak.peak_mb,
        "rss_measure": peak.measure,
    }
    if cuda:
        row["cuda_step_mb"] = (torch.cuda.max_memory_allocated() - cuda_base) / 2**20
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["cuda_activation_mb"] = row["cuda_step_mb"] - row["adam_state_mb"] - row["grads_mb"]
    if cuda or args.flops:
        # After the memory reading: counting runs one more forward + backward, uncompiled.
        row["flops_per_step"] = step.count_flops()
        peak_flops = peak_bf16_flops(row["device"]) if cuda else None
        row["mfu_of_bf16_peak"] = (
            row["flops_per_step"] / row["median_s"] / peak_flops if peak_flops else None
        )
    return row


# ---------------------------------------------------------------- the parent: rounds, table, ratios


def run_variant(name: str, batch: int, args: argparse.Namespace, cuda: bool) -> dict:
    if not cuda:
        available = mem_available_bytes()
        need = estimate_step_bytes(name, batch, args.image_size)
        if available is not None and need > 0.8 * available:
            return {
                "variant": name,
                "batch": batch,
                "skipped": f"needs about {need / 2**30:.1f} GiB, "
                f"{available / 2**30:.1f} GiB available",
            }
    child_args = ["--child", name, "--batch", str(batch), "--image-size", str(args.image_size),
                  "--steps", str(args.steps), "--warmup", str(args.warmup),
                  "--device", args.device, "--threads", str(args.threads),
                  "--backbone", args.backbone, "--channel", str(args.channel)]
    if args.flops:
        child_args.append("--flops")
    row = run_child(__file__, child_args, timeout_s=args.child_timeout)
    return {"variant": name, "batch": batch, **row} if "skipped" in row else row


def merge_rounds(rows: list[dict]) -> dict:
    """One row per (variant, batch): all timed steps pooled; memory: the largest of the rounds."""
    done = [r for r in rows if "skipped" not in r]
    if not done:
        return rows[0]
    merged = dict(done[0])
    merged["times_s"] = [t for r in done for t in r["times_s"]]
    merged["median_s"] = statistics.median(merged["times_s"])
    if all("cpu_times_s" in r for r in done):
        merged["cpu_times_s"] = [t for r in done for t in r["cpu_times_s"]]
        merged["median_cpu_s"] = statistics.median(merged["cpu_times_s"])
    merged["rounds"] = len(done)
    for key in ("step_mb", "peak_rss_mb", "activation_mb", "cuda_step_mb", "cuda_peak_mb",
                "cuda_activation_mb"):
        if key in merged:
            merged[key] = max(r[key] for r in done)
    return merged


def compute_ratios(rows: list[dict], batch: int, cuda: bool) -> dict:
    """The numbers the issue asks for, at one batch size (None where a variant is missing)."""
    by = {r["variant"]: r for r in rows if r["batch"] == batch and "skipped" not in r}
    mem_key = "cuda_step_mb" if cuda else "step_mb"
    act_key = "cuda_activation_mb" if cuda else "activation_mb"

    def ratio(a: str, b: str, key: str) -> float | None:
        if a in by and b in by and key in by[a] and by[b].get(key, 0) > 0:
            return by[a][key] / by[b][key]
        return None

    overhead = ratio("fast", "no_tpavi", "median_s")
    out = {
        "batch": batch,
        "memory_key": mem_key,
        "speedup_fast_over_naive": ratio("naive", "fast", "median_s"),
        "tpavi_overhead_fast_over_no_tpavi": None if overhead is None else overhead - 1.0,
        "memory_fast_over_naive": ratio("fast", "naive", mem_key),
        "activation_memory_fast_over_naive": ratio("fast", "naive", act_key),
        "speedup_channels_last": ratio("fast", "fast_cl", "median_s"),
    }
    for name in COMPARED:
        out[f"speedup_{name}_over_fast"] = ratio("fast", name, "median_s")
        out[f"speedup_{name}_over_naive"] = ratio("naive", name, "median_s")
        out[f"memory_{name}_over_naive"] = ratio(name, "naive", mem_key)
        out[f"cpu_time_speedup_{name}_over_naive"] = ratio("naive", name, "median_cpu_s")
    return out


def print_table(rows: list[dict], ratios: list[dict], cuda: bool) -> None:
    mem = "CUDA step MiB" if cuda else "step MiB"
    print(f"{'variant':<22} {'B':>2} {'median s':>9} {'CPU s':>8} {'steps':>5} {mem:>13} {'peak RSS MiB':>13} "
          f"{'GFLOP/step':>10} {'MFU':>6}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['variant']:<22} {r['batch']:>2}  skipped: {r['skipped']}")
            continue
        step_mb = r["cuda_step_mb"] if cuda else r["step_mb"]
        gflop = f"{r['flops_per_step'] / 1e9:10.0f}" if "flops_per_step" in r else f"{'-':>10}"
        mfu = r.get("mfu_of_bf16_peak")
        mfu_text = f"{100 * mfu:5.1f}%" if mfu is not None else f"{'-':>6}"
        print(f"{r['variant']:<22} {r['batch']:>2} {r['median_s']:>9.3f} {r.get('median_cpu_s', float('nan')):>8.2f} "
              f"{len(r['times_s']):>5} "
              f"{step_mb:>13.0f} {r['peak_rss_mb']:>13.0f} {gflop} {mfu_text}")
    for q in ratios:
        parts = [f"B={q['batch']}:"]
        if q["speedup_fast_over_naive"] is not None:
            parts.append(f"fast is {q['speedup_fast_over_naive']:.2f}x faster than naive;")
        if q["tpavi_overhead_fast_over_no_tpavi"] is not None:
            parts.append(f"TPAVI adds {100 * q['tpavi_overhead_fast_over_no_tpavi']:+.1f}% over no_tpavi;")
        if q["memory_fast_over_naive"] is not None:
            parts.append(f"fast uses {q['memory_fast_over_naive']:.2f} of naive's step memory "
                         f"({q['activation_memory_fast_over_naive']:.2f} of its activations);")
        if q["speedup_channels_last"] is not None:
            parts.append(f"channels_last {q['speedup_channels_last']:.2f}x;")
        for name in COMPARED:
            if q[f"speedup_{name}_over_naive"] is not None:
                parts.append(f"{name}: {q[f'speedup_{name}_over_naive']:.2f}x the official (naive) speed, "
                             f"{q[f'memory_{name}_over_naive']:.2f} of its step memory;")
        print(" ".join(parts))


def plot_train_step(rows: list[dict], memory_key: str):
    """Bars of step time and step memory per variant, one group per batch size."""
    import numpy as np
    from matplotlib.figure import Figure

    from avs_lib.report import viz

    viz.set_style()
    done = [r for r in rows if "skipped" not in r]
    names = list(dict.fromkeys(r["variant"] for r in done))
    batches = sorted({r["batch"] for r in done})
    fig = Figure(figsize=(4 + 1.2 * len(names), 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    width = 0.8 / max(1, len(batches))
    panels = (("median_s", "step time (s)"), (memory_key, "step memory (MiB)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for j, b in enumerate(batches):
            values = [next((r[key] for r in done if r["variant"] == n and r["batch"] == b), np.nan)
                      for n in names]
            ax.bar(np.arange(len(names)) + j * width, values, width, label=f"batch {b}")
        ax.set_xticks(np.arange(len(names)) + width * (len(batches) - 1) / 2)
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel(label)
    axes[0].legend()
    device = done[0]["device"] if done else ""
    size = done[0]["image_size"] if done else ""
    backbone = done[0]["backbone"] if done else ""
    fig.suptitle(f"Training step (fwd+bwd+Adam), {backbone}, {size} px, {device}")
    return fig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--figures-dir", type=Path, default=Path("figures"),
                        help="where perf_train_step.png goes")
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--batch", type=int, nargs="+", default=None,
                        help="clips per step (default 1 4; 1 with --quick)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="default: all that run on the device")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per subprocess")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per subprocess")
    parser.add_argument("--rounds", type=int, default=2, help="subprocesses per variant, interleaved")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", default="resnet50", help="resnet18 | resnet34 | resnet50")
    parser.add_argument("--channel", type=int, default=256, help="decoder width")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--flops", action="store_true",
                        help="count FLOPs per step on the CPU too (one more step); always on CUDA")
    parser.add_argument("--child-timeout", type=float, default=None, help="seconds per subprocess")
    parser.add_argument("--quick", action="store_true",
                        help="resnet18, channel 32, 32 px, 1 step, no warm-up, 1 round, 1 thread, batch 1 unless "
                        "given: checks that it runs, measures nothing of interest")
    parser.add_argument("--child", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:  # the plumbing only: a small model, so that a test runs it in seconds
        args.image_size, args.steps, args.warmup, args.rounds = 32, 1, 0, 1
        # One thread: on a busy machine two OpenMP threads waiting on each other made it 10x slower.
        args.threads = args.threads or 1
        args.backbone, args.channel = "resnet18", 32
    if args.batch is None:
        args.batch = [1] if args.quick else [1, 4]
    if args.image_size % 32:
        raise ValueError(f"--image-size must be a multiple of 32, got {args.image_size}")
    if min(args.batch) < 1 or args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        raise ValueError("--batch, --steps and --rounds must be >= 1, --warmup >= 0")

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device} asked for, but CUDA is not available here")
    if args.child:
        print(json.dumps(child(args.child, args.batch[0], args)))
        return {}

    names = args.variants or (list(VARIANTS) if cuda else list(DEFAULT_CPU))
    rows = []
    for b in args.batch:
        per_round = [[run_variant(n, b, args, cuda) for n in names] for _ in range(args.rounds)]
        rows += [merge_rounds([per_round[k][i] for k in range(args.rounds)])
                 for i in range(len(names))]
    ratios = [compute_ratios(rows, b, cuda) for b in args.batch]
    print(f"Training step at {args.image_size} px, {FRAMES} frames per clip, on {args.device} "
          f"({args.rounds} round(s) x {args.steps} timed step(s) after {args.warmup} warm-up)")
    print_table(rows, ratios, cuda)
    result = {
        "image_size": args.image_size,
        "device": args.device,
        "rounds": args.rounds,
        "steps": args.steps,
        "warmup": args.warmup,
        "model": f"build_config('paper') + model.audio_encoder='small', backbone={args.backbone}, "
        f"channel={args.channel}, random inputs",
        "rows": rows,
        "ratios": ratios,
    }
    if not args.no_figure and any("skipped" not in r for r in rows):
        fig = plot_train_step(rows, "cuda_step_mb" if cuda else "step_mb")
        from avs_lib.report import viz

        result["figure"] = str(viz.save_figure(fig, "perf_train_step", args.figures_dir))
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
