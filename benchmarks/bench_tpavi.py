"""Memory and time of one TPAVI forward+backward at stage 0 of a 224-px clip: fast vs naive.

x is [B, 256, 5, 56, 56] (N = 5*56*56 = 15680 positions), audio [B, 5, 128], as TPAVI sees them
at stage 0 of the official model. Each (impl, B) runs in its own subprocess so that its peak
resident memory is its own; we reset the peak (VmHWM, Linux) just before the timed passes and
report the peak minus the resident size at that point (inputs and weights already allocated),
i.e. what the passes themselves need. Without /proc the lifetime ru_maxrss is used instead.
Children run with MALLOC_MMAP_THRESHOLD_=1048576 so that freed tensors leave the resident set
(otherwise glibc keeps freed blocks and later passes look bigger than they are); this costs both
implementations some page faults, so times are a little higher than with the default allocator.

    python benchmarks/bench_tpavi.py --out results/bench_tpavi.json [--batches 1 4] [--threads 1]

A configuration whose naive N x N matrices would not fit in the memory available is skipped and
reported as such, rather than letting the machine swap or the process be killed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import PeakRSS, mem_available_bytes, run_child, write_json

FRAMES, SIDE, CHANNELS = 5, 56, 256


def _naive_estimate_bytes(batch: int) -> int:
    """About four float32 N x N matrices per clip live at once (f, f/N, and their gradients)."""
    n = FRAMES * SIDE * SIDE
    return 4 * batch * n * n * 4


def child(impl: str, batch: int, repeats: int, threads: int) -> dict:
    """One configuration, in this process: returns times and memory as a dict."""
    import torch

    from avs_lib.models.tpavi import TPAVI

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = TPAVI(CHANNELS, impl=impl)
    torch.nn.init.normal_(block.W_z[1].weight)
    x = torch.randn(batch, CHANNELS, FRAMES, SIDE, SIDE, requires_grad=True)
    audio = torch.randn(batch, FRAMES, 128)
    weights = torch.randn(batch, CHANNELS, FRAMES, SIDE, SIDE)
    # Warm up at a small size (first-call overheads) without raising the memory peak.
    small = torch.randn(1, CHANNELS, FRAMES, 8, 8, requires_grad=True)
    block(small, audio[:1])[0].sum().backward()
    block.zero_grad(set_to_none=True)
    peak = PeakRSS()
    peak.start()  # peak measured from the current RSS: inputs and weights already allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        z, _ = block(x, audio)
        (z * weights).sum().backward()
        times.append(time.perf_counter() - start)
        x.grad = None
        block.zero_grad(set_to_none=True)
        del z
    peak_mb = peak.peak_mb
    return {
        "impl": impl,
        "batch": batch,
        "threads": threads,
        "times_s": times,
        "median_s": statistics.median(times),
        "peak_rss_mb": peak_mb,
        "pass_mb": peak_mb - peak.base_mb,
        "peak_measure": peak.measure,
    }


def run_one(impl: str, batch: int, repeats: int, threads: int) -> dict:
    available = mem_available_bytes()
    if impl == "naive" and available is not None and _naive_estimate_bytes(batch) > 0.8 * available:
        return {
            "impl": impl,
            "batch": batch,
            "skipped": f"needs about {_naive_estimate_bytes(batch) / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available",
        }
    args = ["--child", impl, str(batch), "--repeats", str(repeats), "--threads", str(threads)]
    row = run_child(__file__, args)
    return {"impl": impl, "batch": batch, **row} if "skipped" in row else row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per configuration")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.repeats, args.threads)))
        return {}

    rows = [
        run_one(impl, b, args.repeats, args.threads)
        for b in args.batches
        for impl in ("fast", "naive")
    ]
    print(
        f"TPAVI stage 0 at 224 px: x [B, {CHANNELS}, {FRAMES}, {SIDE}, {SIDE}], forward+backward, "
        f"{args.threads} thread(s), CPU"
    )
    print(f"{'impl':<6} {'B':>2} {'median s':>9} {'pass MiB':>9} {'peak RSS MiB':>13}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['impl']:<6} {r['batch']:>2}  skipped: {r['skipped']}")
        else:
            print(
                f"{r['impl']:<6} {r['batch']:>2} {r['median_s']:>9.3f} {r['pass_mb']:>9.0f} {r['peak_rss_mb']:>13.0f}"
            )
    ratios = []
    for b in args.batches:
        fast, naive = (
            next(r for r in rows if r["impl"] == i and r["batch"] == b) for i in ("fast", "naive")
        )
        if "skipped" in fast or "skipped" in naive:
            continue
        ratio = {
            "batch": b,
            "time_naive_over_fast": naive["median_s"] / fast["median_s"],
            "memory_fast_over_naive": fast["pass_mb"] / naive["pass_mb"],
        }
        ratios.append(ratio)
        print(
            f"B={b}: naive/fast time {ratio['time_naive_over_fast']:.1f}x; "
            f"fast uses {ratio['memory_fast_over_naive']:.4f} of naive's memory "
            f"({1 / ratio['memory_fast_over_naive']:.0f}x less)"
        )
    n = FRAMES * SIDE * SIDE
    result = {
        "shape": ["B", CHANNELS, FRAMES, SIDE, SIDE],
        "one_nxn_float32_matrix_mib_per_clip": n * n * 4 / 2**20,
        "rows": rows,
        "ratios": ratios,
    }
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
