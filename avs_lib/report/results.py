"""Results as data: the runs' numbers written once, long (one row per run and metric), as
results.csv and results.json (with provenance), and the README's table rendered from them."""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from avs_lib.atomic import write_text_atomically
from avs_lib.engine.provenance import PACKAGE_DIR, UNKNOWN, git_state
from avs_lib.report.experiments import RESULT_HEADERS, results_table
from avs_lib.report.runs import read_provenance

LONG_COLUMNS = ["method", "seed", "split", "metric", "value"]
# Columns of `experiments.collect_results` that name a run or a file, not a measurement.
NOT_METRICS = ("method", "seed", "run_dir")
# Columns whose split is not in their name: column -> (split, metric).
SPECIAL_COLUMNS = {
    "best_val_miou": ("val", "best_miou"),
    "best_epoch": ("val", "best_epoch"),
    "seconds": ("train", "seconds"),
}
PACKAGES = ("avs_lib", "torch", "torchvision", "numpy", "pandas", "matplotlib", "nbconvert")


def split_and_metric(column: str) -> tuple[str, str]:
    """"test_miou" -> ("test", "miou")."""
    if column in SPECIAL_COLUMNS:
        return SPECIAL_COLUMNS[column]
    for split in ("devtest", "test", "val", "train"):  # devtest: the development test split
        if column.startswith(f"{split}_"):
            return split, column[len(split) + 1:]
    return "run", column


def results_long(results: pd.DataFrame) -> pd.DataFrame:
    """`experiments.collect_results`' frame as one row per run and numeric column (NaN kept)."""
    missing = [c for c in ("method", "seed") if c not in results.columns]
    if missing:
        raise ValueError(f"results_long: the results lack column(s) {missing}; have {list(results.columns)}")
    if results.empty:
        raise ValueError("results_long: no runs in the results; nothing to write")
    metrics = [c for c in results.columns if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(results[c])]
    values = results.astype({"method": str, "seed": int}).set_index(["method", "seed"])[metrics].astype(float)
    long = values.rename_axis(columns="column").stack(future_stack=True).rename("value").reset_index()
    split, metric = zip(*map(split_and_metric, long.pop("column")), strict=True)
    return long.assign(split=split, metric=metric)[LONG_COLUMNS]


def results_wide(long: pd.DataFrame) -> pd.DataFrame:
    """One row per run again, in the file's order."""
    missing = [c for c in LONG_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"results_wide: the table lacks column(s) {missing}; have {list(long.columns)}")
    special = {key: column for column, key in SPECIAL_COLUMNS.items()}  # the inverse of `split_and_metric`
    long = long.assign(column=[special.get((s, m), m if s == "run" else f"{s}_{m}")
                               for s, m in zip(long["split"], long["metric"], strict=True)])
    duplicated = long.duplicated(["method", "seed", "column"])
    if duplicated.any():
        first = long[duplicated].iloc[0]
        raise ValueError(f"results_wide: run {first['method']} seed {first['seed']} has metric "
                         f"{first['column']!r} more than once")
    runs = list(dict.fromkeys(zip(long["method"], long["seed"], strict=True)))
    wide = long.pivot(index=["method", "seed"], columns="column", values="value")
    wide = wide.reindex(pd.MultiIndex.from_tuples(runs, names=["method", "seed"])).reset_index()
    wide.columns.name = None
    return wide


def git_commit(repo: str | Path | None = None) -> str | None:
    """The commit of the repository holding `repo` (default: this package), or None."""
    commit = git_state(Path(repo) if repo is not None else PACKAGE_DIR)["commit"]
    return None if commit == UNKNOWN else commit


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the numbers (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _data_record(results: pd.DataFrame, overrides: list[str] | None) -> dict[str, Any]:
    """Data root, dataset and fingerprint the runs read (a list where they differ), and the overrides."""
    seen: dict[str, list[Any]] = {"root": [], "dataset": [], "fingerprint": []}
    for run_dir in results.get("run_dir", pd.Series(dtype=str)).dropna():
        config_path = Path(run_dir) / "config.yaml"
        data = (yaml.safe_load(config_path.read_text()) or {}).get("data", {}) if config_path.is_file() else {}
        fingerprint = (read_provenance(run_dir) or {}).get("data")
        for key, value in (("root", data.get("root")), ("dataset", data.get("dataset")), ("fingerprint", fingerprint)):
            if value not in seen[key]:
                seen[key].append(value)
    record: dict[str, Any] = {key: values[0] if len(values) == 1 else values for key, values in seen.items()}
    return {**record, "overrides": list(overrides or [])}


def write_results(results: pd.DataFrame, out_dir: str | Path, profile: str,
                  repo: str | Path | None = None, overrides: list[str] | None = None,
                  extra: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write results.csv and results.json (with the profile, data, git commit and package versions)
    from `experiments.collect_results` plus the long rows of `extra`; returns their paths."""
    long = results_long(results)
    if extra is not None:
        long = pd.concat([long, extra.reindex(columns=LONG_COLUMNS)], ignore_index=True)
    csv_path, json_path = Path(out_dir) / "results.csv", Path(out_dir) / "results.json"
    write_text_atomically(csv_path, long.to_csv(index=False))
    rows = [{**row, "value": None if math.isnan(row["value"]) else row["value"]}  # JSON has no NaN
            for row in long.to_dict(orient="records")]
    document = {"profile": profile, "data": _data_record(results, overrides), "git_commit": git_commit(repo),
                "packages": package_versions(), "columns": LONG_COLUMNS, "rows": rows}
    write_text_atomically(json_path, json.dumps(document, indent=2) + "\n")
    return csv_path, json_path


def read_results(path: str | Path) -> pd.DataFrame:
    """A results.csv written by `write_results`, checked for its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    table = pd.read_csv(path)
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: expected columns {LONG_COLUMNS}, missing {missing}")
    return table


def results_markdown(long: pd.DataFrame, methods: list[str] | None = None) -> str:
    """The README's results table (markdown) from results.csv's rows: notebook 04's `results_table`."""
    wide = results_wide(long)
    if methods is not None:
        unknown = [m for m in methods if m not in set(wide["method"])]
        if unknown:
            raise ValueError(f"results_markdown: no runs of method(s) {unknown} in the results; "
                             f"have {sorted(set(wide['method']))}")
        wide = pd.concat([wide[wide["method"] == m] for m in methods], ignore_index=True)
    absent = [m for m in [*RESULT_HEADERS, "test_f_score_batch_size"] if m not in wide.columns]
    if absent:
        raise ValueError(f"results_markdown: the results have no {absent}")
    table = results_table(wide)
    rows = [["method", *map(str, table.columns)], *([str(m), *map(str, row)] for m, row in table.iterrows())]
    lines = ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])


# How far the CPU moves a method's seed mean: `benchmarks/machine_effect.py` (the committed cpu
# runs retrained under another kernel setting). Absent in an installed copy without benchmarks/.
MACHINE_EFFECT_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "machine_effect.csv"


def machine_margins(path: str | Path = MACHINE_EFFECT_FILE) -> dict[str, float]:
    """Result column -> the largest |mean shift| between two CPUs' kernels ({} if unmeasured)."""
    path = Path(path)
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    return table.assign(shift=table["mean_shift"].abs()).groupby("metric")["shift"].max().to_dict()
