"""Does the committed report reproduce here? Retrain runs of the `cpu` grid from scratch and compare.

Fresh synthetic data and fresh encoder pretraining go into `--work` (never `data/`, `runs/` or
`figures/`), the runs train exactly as the report's grid trains them (`train_grid`), and each run's
numbers are compared with its rows in `figures/results.csv`. On the machine type that made the
report (same CPU capability, same library versions: `requirements.lock`) they agree bit for bit; on
another CPU float32 rounding differs and training carries it into the numbers, so they agree within
TOLERANCE (README, "Reproducibility"). Exit status 1 when a number is outside its tolerance.

    make verify-report                                      # tpavi and thesis, seed 0
    python tools/verify_report.py --work reports/verify --methods tpavi thesis --seeds 0
    ATEN_CPU_CAPABILITY=default python tools/verify_report.py --work reports/machine_effect \\
        --methods visual_only tpavi thesis counterfactual --seeds 0 1 2 3 4 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from avs_lib.engine.provenance import machine_record
from avs_lib.report import runs
from avs_lib.report.experiments import train_grid
from avs_lib.report.grids import Grid
from avs_lib.report.results import read_results, split_and_metric

ROOT = Path(__file__).resolve().parents[1]

# How far one run's number may move on another CPU (absolute): twice the largest shift of one run
# measured when the cpu grid's tpavi, thesis and counterfactual runs (5 seeds) were retrained under
# ATEN_CPU_CAPABILITY=default (benchmarks/results/machine_effect.csv, README "Reproducibility").
# One run on another CPU moves about as much as a change of seed; the per-method means move less.
TOLERANCE = {
    "best_val_miou": 0.15,
    "test_miou": 0.16,
    "test_f_score_split": 0.12,
    "test_listening_rate": 0.14,
    "test_following_rate": 0.26,
    "test_miou_swapped": 0.08,
    "test_miou_silent": 0.18,
}
# (split, metric) of results.csv -> the run's summary key, by results.csv's own naming rule.
COMPARED = {split_and_metric(key): key for key in TOLERANCE}


def compare(fresh: pd.DataFrame, committed: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, seed, metric): committed, now, difference, tolerance, within."""
    rows = []
    for run in fresh.itertuples(index=False):
        mine = committed[(committed["method"] == run.method) & (committed["seed"] == run.seed)]
        if mine.empty:
            raise KeyError(f"{run.method} seed {run.seed} is not in the committed results.csv")
        for (split, metric), key in COMPARED.items():
            match = mine[(mine["split"] == split) & (mine["metric"] == metric)]["value"]
            if match.empty:
                raise KeyError(f"results.csv has no {split} {metric} for {run.method} seed {run.seed}")
            was, now = float(match.iloc[0]), float(getattr(run, key))
            rows.append({"method": run.method, "seed": run.seed, "metric": key, "committed": was, "now": now,
                         "difference": now - was, "tolerance": TOLERANCE[key],
                         "within": abs(now - was) <= TOLERANCE[key], "identical": now == was})
    return pd.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "reports" / "verify",
                        help="folder for the fresh data, pretraining and runs (default reports/verify)")
    parser.add_argument("--methods", nargs="+", default=["tpavi", "thesis"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (each on one thread)")
    parser.add_argument("--results", type=Path, default=ROOT / "figures" / "results.csv")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    committed = read_results(args.results)
    root = runs.prepare_data("cpu", args.work / "synth", progress=True)
    weights = runs.starting_weights("cpu", root)
    fresh = train_grid("cpu", Grid(tuple(args.methods), tuple(args.seeds)), root, args.work / "runs",
                       device="cpu", weights=weights, jobs=args.jobs)
    table = compare(fresh, committed)
    table.to_csv(args.work / "comparison.csv", index=False)
    machine = machine_record()
    (args.work / "machine.json").write_text(json.dumps(machine, indent=2) + "\n")

    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.4f}".format):
        print(table.drop(columns="identical").to_string(index=False))
    identical, outside = int(table["identical"].sum()), table[~table["within"]]
    print(f"\n{len(table)} numbers compared with {args.results}: {identical} identical to the bit, "
          f"{len(table) - identical - len(outside)} different within tolerance, {len(outside)} outside it "
          f"(machine: {machine['cpu_model']}, {machine['cpu_capability']})")
    return 1 if len(outside) else 0


if __name__ == "__main__":
    sys.exit(main())
