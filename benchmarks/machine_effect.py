"""How far do the report's numbers move with the CPU, next to how far they move with the seed?

Reads a `tools/verify_report.py` comparison made under another kernel setting (e.g.
ATEN_CPU_CAPABILITY=default, which rounds float32 sums the way another CPU does) and the committed
`figures/results.csv`, and prints per method and metric:
- the machine shift: the mean and the largest |difference| of the same seed's run on the two settings;
- the seed spread: the standard deviation over the committed seeds;
- the paired seed verdicts of the headline comparisons (method - tpavi) on both settings.

    ATEN_CPU_CAPABILITY=default python tools/verify_report.py --work reports/machine_effect \\
        --methods tpavi thesis counterfactual --seeds 0 1 2 3 4 --jobs 2
    python benchmarks/machine_effect.py reports/machine_effect/comparison.csv \\
        --out benchmarks/results/machine_effect.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from avs_lib.report.experiments import BASELINE
from avs_lib.report.stats import paired_seed_difference, verdict


def shift_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per (method, metric): the machine shift (mean, largest |.|) and the committed seed spread."""
    rows = []
    for (method, metric), group in comparison.groupby(["method", "metric"], sort=False):
        rows.append({"method": method, "metric": metric, "seeds": len(group),
                     "mean_shift": group["difference"].mean(), "max_abs_shift": group["difference"].abs().max(),
                     "seed_std": group["committed"].std(ddof=1)})
    return pd.DataFrame(rows)


def verdict_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Each method against tpavi, paired over seeds, on the committed and on the rerun numbers."""
    rows = []
    for metric, frame in comparison.groupby("metric", sort=False):
        for method in frame["method"].unique():
            if method == BASELINE:
                continue
            row = {"comparison": f"{method} - {BASELINE}", "metric": metric}
            for column in ("committed", "now"):
                a = frame[frame["method"] == method].set_index("seed")[column]
                b = frame[frame["method"] == BASELINE].set_index("seed")[column]
                diff = paired_seed_difference(a, b)
                row[f"{column}_mean"], row[f"{column}_low"], row[f"{column}_high"] = diff.mean, diff.low, diff.high
                row[f"{column}_verdict"] = verdict(diff.low, diff.high)
            row["same_verdict"] = row["committed_verdict"] == row["now_verdict"]
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comparison", type=Path, help="comparison.csv written by tools/verify_report.py")
    parser.add_argument("--out", type=Path, help="write the shift table here (and the verdicts beside it)")
    args = parser.parse_args()
    comparison = pd.read_csv(args.comparison)
    shifts, verdicts = shift_table(comparison), verdict_table(comparison)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.4f}".format):
        print(shifts.to_string(index=False))
        print()
        print(verdicts.to_string(index=False))
    if args.out is not None:
        shifts.to_csv(args.out, index=False)
        verdicts.to_csv(args.out.with_name(args.out.stem + "_verdicts.csv"), index=False)


if __name__ == "__main__":
    main()
