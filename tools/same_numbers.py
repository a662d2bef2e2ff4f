"""Are a rerun report's numbers the committed ones, value for value?

Compares two results files (`results.json` or `results.csv` written by notebook 04) row by row:
every (method, seed, split, metric) of the old file that the new one also has must hold exactly
the same value (NaN equals NaN). `--split OLD=NEW` reads an old split under another name in the
new file, e.g. `test=devtest` after the test split was replaced by a fresh one and the old one kept
as the development test split. Wall times (`seconds`) are not numbers of the method and are skipped.

    python tools/same_numbers.py <(git show HEAD~1:figures/results.json) figures/results.json --split test=devtest

Exit status 0 when every shared value is identical, 1 otherwise (the differences are listed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

SKIPPED_METRICS = ("seconds",)


def read_rows(path: str | Path) -> pd.DataFrame:
    """The long results rows (method, seed, split, metric, value) of a results.json or results.csv."""
    text = Path(path).read_text()
    if text.lstrip().startswith("{"):
        document = json.loads(text)
        return pd.DataFrame(document["rows"], columns=document["columns"])
    return pd.read_csv(path)


def compare(old: pd.DataFrame, new: pd.DataFrame, renamed: dict[str, str]) -> tuple[int, list[str], int]:
    """(identical values, one line per differing value, old values the new file does not have)."""
    old = old[~old["metric"].isin(SKIPPED_METRICS)].assign(split=lambda t: t["split"].replace(renamed))
    key = ["method", "seed", "split", "metric"]
    joined = old.merge(new, on=key, how="left", suffixes=("_old", "_new"), indicator=True)
    missing = int((joined["_merge"] == "left_only").sum())
    same, differ = 0, []
    for row in joined[joined["_merge"] == "both"].itertuples(index=False):
        a, b = row.value_old, row.value_new
        if (a is None or (isinstance(a, float) and math.isnan(a))) and (b is None or (isinstance(b, float) and math.isnan(b))):
            same += 1
        elif a == b:
            same += 1
        else:
            differ.append(f"{row.method} seed {row.seed} {row.split} {row.metric}: {a!r} -> {b!r}")
    return same, differ, missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the committed results.json / results.csv")
    parser.add_argument("new", help="the rerun's results.json / results.csv")
    parser.add_argument("--split", action="append", default=[], metavar="OLD=NEW",
                        help="read the old file's split OLD as the new file's split NEW")
    args = parser.parse_args()
    renamed = dict(item.split("=", 1) for item in args.split)
    same, differ, missing = compare(read_rows(args.old), read_rows(args.new), renamed)
    print(f"{same} identical, {len(differ)} different, {missing} of the old values not in the new file")
    for line in differ[:50]:
        print("  " + line)
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
