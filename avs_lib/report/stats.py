"""Paired comparisons of methods that share seeds and test clips, on scipy.stats.

The verdict is the paired seed t-test (`scipy.stats.ttest_rel`) after Holm's correction across
the family, confirmed by a paired percentile bootstrap over test clips (`scipy.stats.bootstrap`).
Beside it: the minimum detectable effect at 80 % power, the one-sided 95 % upper bound (is a
claimed gain excluded?), and whether a machine's margin could flip it. Methods whose runs are
identical count once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as scipy_stats

from avs_lib.report.grids import ABLATIONS, BASELINE, CONTROLS, PROPOSED

CONFIDENCE, ALPHA, POWER = 0.95, 0.05, 0.8
NO_DIFFERENCE = "no detectable difference at this budget"
HIGHER, LOWER = "higher", "lower"
ONE_SEED = "one seed"
IDENTICAL = "identical runs"

# The per-run summary column of a metric, and the per-clip column it is the mean of.
CLIP_COLUMNS = {"miou": "iou"}


@dataclass(frozen=True)
class SeedDifference:
    """Mean paired difference a - b over seeds with its t-interval and test (NaN with one seed)."""

    mean: float
    low: float
    high: float
    n: int
    t: float
    p: float
    upper: float = math.nan
    mde: float = math.nan


def _seed_series(values, what: str) -> pd.Series:
    """Per-seed values (a Series, a mapping, or a sequence indexed by position) as a float Series."""
    series = pd.Series(values, dtype=float)
    if series.empty:
        raise ValueError(f"{what}: no per-seed values")
    if series.index.has_duplicates:
        raise ValueError(f"{what}: seed(s) {sorted(set(series.index[series.index.duplicated()]))} appear twice")
    if series.isna().any():
        raise ValueError(f"{what}: no value for seed(s) {list(series.index[series.isna()])}")
    return series


def _check_same(a: Sequence, b: Sequence, what: str) -> None:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise ValueError(f"paired comparison needs the same {what} on both sides: "
                         f"only in a {only_a}, only in b {only_b}")


def minimum_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean difference the two-sided paired t-test finds with probability `power`
    for n pairs spreading with `sd` (exact, by the noncentral t distribution)."""
    if n < 2 or not sd > 0:
        return math.nan if n < 2 else 0.0
    df, crit = n - 1, scipy_stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        lower_tail = np.nan_to_num(scipy_stats.nct.cdf(-crit, df, nc))  # scipy gives NaN where it is ~0
        return scipy_stats.nct.sf(crit, df, nc) + lower_tail - power

    high = (crit + 1) * sd / math.sqrt(n)
    while shortfall(high) < 0:  # widen until the power is reached (few steps: power grows with delta)
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high))


def paired_seed_difference(a, b) -> SeedDifference:
    """Mean of a - b over the same seeds (Series, mappings seed -> value, or sequences), with
    `scipy.stats.ttest_rel`."""
    a, b = _seed_series(a, "a"), _seed_series(b, "b")
    _check_same(a.index, b.index, "seeds")
    seeds = sorted(a.index)
    a, b = a.reindex(seeds).to_numpy(), b.reindex(seeds).to_numpy()
    diff = a - b  # [n]
    n, mean = len(diff), float(diff.mean())
    if n < 2:
        return SeedDifference(mean, math.nan, math.nan, n, math.nan, math.nan)
    sd = float(diff.std(ddof=1))
    if sd == 0.0:  # the same difference at every seed: no spread, so the interval is a point
        t, p = (math.nan, math.nan) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
        return SeedDifference(mean, mean, mean, n, t, p, mean, 0.0)
    test = scipy_stats.ttest_rel(a, b)
    interval = test.confidence_interval(CONFIDENCE)
    upper = scipy_stats.ttest_rel(a, b, alternative="less").confidence_interval(CONFIDENCE).high
    return SeedDifference(mean, float(interval.low), float(interval.high), n, float(test.statistic),
                          float(test.pvalue), float(upper), minimum_detectable_effect(sd, n, 1 - CONFIDENCE))


@dataclass(frozen=True)
class ClipBootstrap:
    """Mean paired per-clip difference a - b (seeds pooled) and its bootstrap percentile interval."""

    mean: float
    low: float
    high: float
    n_clips: int
    n_resamples: int


def _clip_matrix(values: pd.DataFrame, what: str, column: str) -> tuple[np.ndarray, list, list, np.ndarray | None]:
    """Scores [seeds, clips] with seed and clip labels and frame counts (the weights that make the
    mean the frame-level mIoU), from one method's rows of an `experiments.per_clip` table."""
    missing = [c for c in ("seed", "name", column) if c not in values.columns]
    if missing:
        raise ValueError(f"{what}: per-clip table lacks column(s) {missing}; has {list(values.columns)}")
    twice = values.duplicated(["seed", "name"])
    if twice.any():
        first = values[twice].iloc[0]
        raise ValueError(f"{what}: clip {first['name']!r} appears twice for seed {first['seed']} "
                         "(pass one method's rows only)")
    table = values.pivot(index="seed", columns="name", values=column)
    if table.isna().any().any():
        holes = table.isna().stack()
        seed, name = holes[holes].index[0]
        raise ValueError(f"{what}: seed {seed} has no score for clip {name!r}; every seed must test every clip")
    frames = None
    if "n_frames" in values.columns:
        frames = values.groupby("name")["n_frames"].first().reindex(table.columns).to_numpy(dtype=float)
    return table.to_numpy(dtype=float), list(table.index), list(table.columns), frames


def _weighted_mean(diff: np.ndarray, weights: np.ndarray, axis: int = -1) -> np.ndarray:
    return (diff * weights).sum(axis) / weights.sum(axis)


def paired_clip_bootstrap(per_clip_a: pd.DataFrame, per_clip_b: pd.DataFrame, n_resamples: int = 2000, seed: int = 0,
                          column: str = "iou") -> ClipBootstrap:
    """Paired percentile bootstrap over test clips (each averaged over seeds first) of the
    frame-weighted mean difference a - b."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    a, seeds_a, clips_a, frames = _clip_matrix(per_clip_a, "per_clip_a", column)
    b, seeds_b, clips_b, _ = _clip_matrix(per_clip_b, "per_clip_b", column)
    _check_same(seeds_a, seeds_b, "seeds")
    _check_same(clips_a, clips_b, "test clips")
    b = pd.DataFrame(b, columns=clips_b)[clips_a].to_numpy()  # the same clips, maybe in another order
    diff = a.mean(0) - b.mean(0)  # [clips]: seeds pooled per method first
    weights = np.ones_like(diff) if frames is None else frames
    mean = float(_weighted_mean(diff, weights))
    if len(diff) < 2 or np.ptp(diff) == 0:  # nothing to resample: the interval is the point
        return ClipBootstrap(mean, mean, mean, len(diff), n_resamples)
    boot = scipy_stats.bootstrap((diff, weights), _weighted_mean, paired=True, vectorized=True,
                                 n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
                                 random_state=np.random.default_rng(seed))
    return ClipBootstrap(mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high),
                         len(diff), n_resamples)


def verdict(low: float, high: float) -> str:
    """higher / lower when the interval excludes 0, else no claim."""
    if math.isnan(low) or math.isnan(high):
        return ONE_SEED
    return HIGHER if low > 0 else LOWER if high < 0 else NO_DIFFERENCE


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN, outside the family)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, (len(order) - np.arange(len(order))) * p[order]))
    return adjusted


def identical_groups(per_seed_df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """method -> the first method whose runs give exactly the same values at every shared seed:
    they train the same model, so they are one method."""
    def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
        shared = a.index.intersection(b.index)
        return len(shared) > 0 and a.loc[shared].equals(b.loc[shared])

    tables = {m: rows.set_index("seed")[list(columns)] for m, rows in per_seed_df.groupby("method", sort=False)}
    first_of: dict[str, str] = {}
    for method, table in tables.items():
        first_of[method] = next((e for e in dict.fromkeys(first_of.values()) if same(table, tables[e])), method)
    return first_of


def default_pairs(methods: Sequence[str], baseline: str = BASELINE) -> list[tuple[str, str]]:
    """Each method against its own control (`grids.CONTROLS`) when it ran, an ablation against
    the full thesis model, any other against the baseline."""
    pairs = []
    for method in methods:
        if CONTROLS.get(method) in methods:
            pairs.append((method, CONTROLS[method]))
        elif method in ABLATIONS:
            if PROPOSED in methods:
                pairs.append((method, PROPOSED))
        elif method != baseline:
            pairs.append((method, baseline))
    return pairs


def _per_seed(results: pd.DataFrame, method: str, column: str) -> pd.Series:
    rows = results[results["method"] == method]
    if rows.empty:
        raise ValueError(f"no runs of method {method!r}; have {sorted(set(results['method']))}")
    return rows.set_index("seed")[column]


def _clip_interval(per_clip_df: pd.DataFrame, method: str, reference: str, seeds: list, column: str) -> ClipBootstrap:
    parts = {}
    for name in (method, reference):
        part = per_clip_df[(per_clip_df["method"] == name) & per_clip_df["seed"].isin(seeds)]
        lacking = sorted(set(seeds) - set(part["seed"]))
        if lacking:
            raise ValueError(f"per-clip results of {name} lack seed(s) {lacking} (test/per_clip.csv)")
        parts[name] = part
    return paired_clip_bootstrap(parts[method], parts[reference], column=column)


def _comparison_row(per_seed_df: pd.DataFrame, per_clip_df: pd.DataFrame | None, method: str, reference: str,
                    metric: str) -> dict:
    column = f"test_{metric}"
    a, b = _per_seed(per_seed_df, method, column), _per_seed(per_seed_df, reference, column)
    shared = sorted(set(a.index) & set(b.index))
    if not shared:
        raise ValueError(f"{method} (seeds {sorted(a.index)}) and {reference} (seeds {sorted(b.index)}) "
                         "share no seed: nothing to pair")
    diff = paired_seed_difference(a.reindex(shared), b.reindex(shared))
    row = {"method": method, "reference": reference, "metric": metric, "n_seeds": diff.n, "seeds": shared,
           "unpaired_seeds": sorted(set(a.index) ^ set(b.index)),
           "mean": float(a.reindex(shared).mean()), "reference_mean": float(b.reindex(shared).mean()),
           "seed_diff": diff.mean, "seed_low": diff.low, "seed_high": diff.high, "t": diff.t, "p": diff.p,
           "upper_bound": diff.upper, "mde": diff.mde,
           "clip_diff": math.nan, "clip_low": math.nan, "clip_high": math.nan, "n_clips": 0, "n_resamples": 0}
    clip_column = CLIP_COLUMNS.get(metric)
    if per_clip_df is not None and clip_column is not None:
        boot = _clip_interval(per_clip_df, method, reference, shared, clip_column)
        row.update({"clip_diff": boot.mean, "clip_low": boot.low, "clip_high": boot.high,
                    "n_clips": boot.n_clips, "n_resamples": boot.n_resamples})
    return row


def _decide(row: pd.Series, margin: float) -> tuple[str, str, bool]:
    """(verdict, the interval that decided it, on the edge?) of one counted comparison."""
    if row["n_seeds"] < 2:
        return ONE_SEED, "", False
    seed_side = verdict(row["seed_low"], row["seed_high"]) if row["p_holm"] < ALPHA else NO_DIFFERENCE
    clip_side = verdict(row["clip_low"], row["clip_high"]) if row["n_clips"] else None
    nearest = min(abs(row["seed_low"]), abs(row["seed_high"]))
    edge = bool(margin > 0 and nearest < margin)
    if seed_side == NO_DIFFERENCE:
        return NO_DIFFERENCE, "seed t-test (Holm)", edge
    if clip_side not in (None, seed_side):
        return NO_DIFFERENCE, "clip bootstrap", edge
    return seed_side, "seed t-test (Holm)" + (" and clip bootstrap" if clip_side else ""), edge


COMPARISON_COLUMNS = ["method", "reference", "metric", "n_seeds", "seeds", "unpaired_seeds", "mean", "reference_mean",
                      "seed_diff", "seed_low", "seed_high", "t", "p", "upper_bound", "mde", "clip_diff", "clip_low",
                      "clip_high", "n_clips", "n_resamples", "same_as", "identical", "p_holm", "claimed_gain",
                      "claim_excluded", "verdict", "decided_by", "edge"]


def compare_to_baseline(per_seed_df: pd.DataFrame, per_clip_df: pd.DataFrame | None = None,
                        baseline: str = BASELINE, metric: str = "miou", pairs: Sequence[tuple[str, str]] | None = None,
                        claimed_gain: float = math.nan, machine_margin: float = 0.0) -> pd.DataFrame:
    """One row per (method, reference) pair, one Holm family: seed t-interval, clip bootstrap
    (mIoU), MDE, upper bound, Holm p and verdict. A pair repeating another through identical runs
    is marked in `same_as` and left out; `claimed_gain` is relative (0.069 for +6.9 %);
    `machine_margin` marks a verdict whose nearer bound lies within it of 0 as `edge`."""
    column = f"test_{metric}"
    if column not in per_seed_df.columns:
        raise ValueError(f"the results table has no {column!r} column; has {list(per_seed_df.columns)}")
    methods = list(dict.fromkeys(per_seed_df["method"]))
    if pairs is None:
        if baseline not in methods:
            raise ValueError(f"no runs of the baseline {baseline!r}; have {methods}")
        pairs = default_pairs(methods, baseline)
    tests = [c for c in per_seed_df.columns if c.startswith("test_")]
    same = identical_groups(per_seed_df, tests)
    rows, counted = [], {}
    for method, reference in pairs:
        row = _comparison_row(per_seed_df, per_clip_df, method, reference, metric)
        key = frozenset((same.get(method, method), same.get(reference, reference)))
        row["same_as"] = counted.get(key, "")
        if len(key) > 1 and not row["same_as"]:
            counted[key] = f"{method} − {reference}"
        row["identical"] = len(key) == 1
        rows.append(row)
    if not rows:  # one method alone (e.g. MS3 with tpavi only): nothing to compare
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    table = pd.DataFrame(rows)
    family = (table["same_as"] == "") & ~table["identical"]
    table["p_holm"] = holm(table["p"].where(family))
    table["claimed_gain"] = claimed_gain * table["reference_mean"]
    table["claim_excluded"] = table["upper_bound"] < table["claimed_gain"]
    decided = [_decide(r, machine_margin) for _, r in table.iterrows()]
    table["verdict"], table["decided_by"], table["edge"] = zip(*decided, strict=True)
    table.loc[table["identical"], ["verdict", "decided_by"]] = (IDENTICAL, "")
    repeated = table["same_as"] != ""
    table.loc[repeated, "verdict"] = "counted as " + table.loc[repeated, "same_as"]
    table.loc[repeated, ["decided_by", "edge"]] = ("", False)
    return table
