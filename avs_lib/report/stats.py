"""Paired comparisons of methods that share seeds and test clips.

Every method of a grid is trained with the same seeds and tested on the same clips, so the
question "does method A beat method B?" is about the *paired* differences: seed by seed (how
much of the difference survives training randomness) and clip by clip (how much survives the
choice of test clips). Two intervals answer it:

- `paired_seed_difference`: the mean per-seed difference with a Student t-interval on n - 1
  degrees of freedom (the paired t-test; `scipy.stats.ttest_rel` gives the same t and p).
- `paired_clip_bootstrap`: a paired bootstrap over test clips. Each clip's score is first
  averaged over the seeds of each method; the clips are then resampled with replacement, the
  same clip indices for both methods, and the percentile interval of the resampled mean
  difference is reported. Averaging over seeds first keeps the clip the unit that is resampled
  (the seeds are not independent draws of a clip), which is the standard paired design.

`compare_to_baseline` puts both intervals side by side for every method against the baseline
and every leave-one-out ablation against its full method, with a short verdict that follows
the intervals and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from avs_lib.config import ABLATIONS
from avs_lib.report.experiments import BASELINE, PROPOSED

CONFIDENCE = 0.95
NO_DIFFERENCE = "no detectable difference at this budget"
HIGHER, LOWER = "higher", "lower"
ONE_SEED = "one seed"

# The per-run summary column of a metric, and the per-clip column it is the mean of.
CLIP_COLUMNS = {"miou": "iou"}


# ---------------------------------------------------------------- per-seed differences


@dataclass(frozen=True)
class SeedDifference:
    """Mean paired difference a - b over seeds, its 95 % t-interval, and the paired t-test.

    With one seed the interval, t and p are NaN: one pair says nothing about the seed spread.
    """

    mean: float
    low: float
    high: float
    n: int
    per_seed: dict[int, float] = field(repr=False)
    t: float
    p: float

    @property
    def note(self) -> str:
        return ONE_SEED if self.n < 2 else ""


def _seed_series(values, what: str) -> pd.Series:
    """Per-seed values as a float Series indexed by seed (a Series, a mapping, or a sequence
    whose positions are the seeds)."""
    if isinstance(values, pd.Series):
        series = values.astype(float)
    elif isinstance(values, Mapping):
        series = pd.Series({int(k): float(v) for k, v in values.items()}, dtype=float)
    else:
        series = pd.Series(np.asarray(values, dtype=float).reshape(-1))
    if series.index.has_duplicates:
        raise ValueError(f"{what}: seed(s) {sorted(set(series.index[series.index.duplicated()]))} appear twice")
    if series.isna().any():
        raise ValueError(f"{what}: no value for seed(s) {list(series.index[series.isna()])}")
    if series.empty:
        raise ValueError(f"{what}: no per-seed values")
    return series


def _check_same_seeds(a: pd.Series, b: pd.Series) -> None:
    only_a, only_b = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
    if only_a or only_b:
        raise ValueError(
            "paired comparison needs the same seeds on both sides: "
            + "; ".join(part for part in (
                f"seed(s) {only_b} missing from a" if only_b else "",
                f"seed(s) {only_a} missing from b" if only_a else "") if part)
        )


def paired_seed_difference(a, b, confidence: float = CONFIDENCE) -> SeedDifference:
    """Mean of (a - b) over the seeds both share, with a Student t-interval (n - 1 dof).

    Args:
        a, b: per-seed values of the two methods: a Series or mapping seed -> value, or two
            sequences in the same seed order. The seeds must match exactly.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    a, b = _seed_series(a, "a"), _seed_series(b, "b")
    _check_same_seeds(a, b)
    seeds = sorted(a.index)
    diff = (a.reindex(seeds) - b.reindex(seeds)).to_numpy()  # [n]
    n, mean = len(diff), float(diff.mean())
    per_seed = {int(s) if isinstance(s, int | np.integer) else s: float(d) for s, d in zip(seeds, diff, strict=True)}
    if n < 2:
        return SeedDifference(mean, math.nan, math.nan, n, per_seed, math.nan, math.nan)
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    if se == 0.0:  # identical differences: no spread; t is infinite unless the mean is 0
        t = math.nan if mean == 0 else math.copysign(math.inf, mean)
        p = math.nan if mean == 0 else 0.0
    else:
        t = mean / se
        p = float(2 * scipy_stats.t.sf(abs(t), n - 1))
    return SeedDifference(mean, mean - half, mean + half, n, per_seed, t, p)


# ---------------------------------------------------------------- per-clip bootstrap


@dataclass(frozen=True)
class ClipBootstrap:
    """Mean paired per-clip difference a - b (seeds pooled) and its bootstrap percentile interval."""

    mean: float
    low: float
    high: float
    n_clips: int
    n_resamples: int


def _clip_matrix(values, what: str, column: str) -> tuple[np.ndarray, list, list, np.ndarray | None]:
    """Scores as [seeds, clips], with the seed and clip labels and per-clip frame counts.

    A DataFrame needs columns seed, name and `column` (as `experiments.per_clip` gives them; an
    `n_frames` column, when present, weights the clips like the frame-level mIoU does). An array
    is [clips] (one seed) or [seeds, clips].
    """
    if isinstance(values, pd.DataFrame):
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
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix[None]
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"{what}: expected per-clip scores [clips] or [seeds, clips], got shape {matrix.shape}")
    return matrix, list(range(matrix.shape[0])), list(range(matrix.shape[1])), None


def paired_clip_bootstrap(
    per_clip_a,
    per_clip_b,
    n_resamples: int = 2000,
    seed: int = 0,
    column: str = "iou",
    confidence: float = CONFIDENCE,
) -> ClipBootstrap:
    """Paired bootstrap over test clips of the mean difference a - b.

    Per clip, each method's score is averaged over its seeds; clips are resampled with
    replacement (`numpy.random.default_rng(seed)`, the same indices for both methods) and the
    interval is the 2.5 and 97.5 percentiles of the resampled mean differences. Clips are
    weighted by their frame count when the tables have one (so the mean is the mIoU difference).

    Args:
        per_clip_a, per_clip_b: one method's rows of `experiments.per_clip` (seed, name, iou,
            n_frames), or arrays [clips] / [seeds, clips] in the same clip order.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    a, seeds_a, clips_a, frames = _clip_matrix(per_clip_a, "per_clip_a", column)
    b, seeds_b, clips_b, _ = _clip_matrix(per_clip_b, "per_clip_b", column)
    _check_same_seeds(pd.Series(0, index=seeds_a), pd.Series(0, index=seeds_b))
    if clips_a != clips_b:
        only_a, only_b = sorted(set(clips_a) - set(clips_b)), sorted(set(clips_b) - set(clips_a))
        if only_a or only_b:
            raise ValueError(f"paired bootstrap needs the same test clips: only in a {only_a}, only in b {only_b}")
        b = pd.DataFrame(b, columns=clips_b)[clips_a].to_numpy()  # same clips, another order
    diff = a.mean(0) - b.mean(0)  # [clips]: seeds pooled per method first
    weights = np.ones_like(diff) if frames is None else frames
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(n_resamples, len(diff)))  # [R, clips]
    resampled = (diff[picks] * weights[picks]).sum(1) / weights[picks].sum(1)  # [R]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    mean = float((diff * weights).sum() / weights.sum())
    return ClipBootstrap(mean, float(low), float(high), len(diff), n_resamples)


# ---------------------------------------------------------------- the comparison table


def verdict(low: float, high: float) -> str:
    """The short label an interval supports: higher / lower when it excludes 0, else no claim."""
    if math.isnan(low) or math.isnan(high):
        return ONE_SEED
    if low > 0:
        return HIGHER
    if high < 0:
        return LOWER
    return NO_DIFFERENCE


def _combined_verdict(seed_verdict: str, clip_verdict: str | None) -> str:
    """Higher / lower only when every interval there is agrees; one seed stays "one seed"."""
    if seed_verdict == ONE_SEED:
        return ONE_SEED
    if clip_verdict is None or clip_verdict == seed_verdict:
        return seed_verdict
    return NO_DIFFERENCE


def default_pairs(methods: Sequence[str], baseline: str = BASELINE) -> list[tuple[str, str]]:
    """Every method against the baseline, and each leave-one-out ablation against the full thesis
    model (removing a loss is judged against the model that has it, at the same seeds)."""
    pairs = []
    for method in methods:
        if method in ABLATIONS:
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


def compare_to_baseline(
    per_seed_df: pd.DataFrame,
    per_clip_df: pd.DataFrame | None = None,
    baseline: str = BASELINE,
    metric: str = "miou",
    pairs: Sequence[tuple[str, str]] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (method, reference) pair: the paired per-seed t-interval, the paired clip
    bootstrap interval (for metrics with a per-clip column: mIoU), and the verdict.

    Only the seeds both methods ran are paired; they are listed in `seeds`, and the seeds one
    side ran alone in `unpaired_seeds` (never used, never hidden). `verdict` is "higher" or
    "lower" only when both intervals exclude 0 on that side, "one seed" when a t-interval
    cannot be formed, and "no detectable difference at this budget" otherwise.

    Args:
        per_seed_df: `experiments.collect_results` (method, seed, test_{metric}, ...).
        per_clip_df: `experiments.per_clip` (method, seed, name, iou, n_frames), or None.
        pairs: (method, reference) pairs; default `default_pairs` of the methods present.
    """
    column = f"test_{metric}"
    if column not in per_seed_df.columns:
        raise ValueError(f"the results table has no {column!r} column; has {list(per_seed_df.columns)}")
    methods = list(dict.fromkeys(per_seed_df["method"]))
    if pairs is None:
        if baseline not in methods:
            raise ValueError(f"no runs of the baseline {baseline!r}; have {methods}")
        pairs = default_pairs(methods, baseline)
    clip_column = CLIP_COLUMNS.get(metric)
    rows = []
    for method, reference in pairs:
        a, b = _per_seed(per_seed_df, method, column), _per_seed(per_seed_df, reference, column)
        shared = sorted(set(a.index) & set(b.index))
        if not shared:
            raise ValueError(f"{method} (seeds {sorted(a.index)}) and {reference} (seeds {sorted(b.index)}) "
                             "share no seed: nothing to pair")
        unpaired = sorted(set(a.index) ^ set(b.index))
        by_seed = paired_seed_difference(a.reindex(shared), b.reindex(shared))
        row = {"method": method, "reference": reference, "metric": metric, "n_seeds": by_seed.n,
               "seeds": shared, "unpaired_seeds": unpaired,
               "mean": float(a.reindex(shared).mean()), "reference_mean": float(b.reindex(shared).mean()),
               "seed_diff": by_seed.mean, "seed_low": by_seed.low, "seed_high": by_seed.high,
               "t": by_seed.t, "p": by_seed.p,
               "clip_diff": math.nan, "clip_low": math.nan, "clip_high": math.nan, "n_clips": 0,
               "n_resamples": 0}
        clip_verdict = None
        if per_clip_df is not None and clip_column is not None:
            rows_a = per_clip_df[(per_clip_df["method"] == method) & per_clip_df["seed"].isin(shared)]
            rows_b = per_clip_df[(per_clip_df["method"] == reference) & per_clip_df["seed"].isin(shared)]
            for name, part in ((method, rows_a), (reference, rows_b)):
                lacking = sorted(set(shared) - set(part["seed"]))
                if lacking:
                    raise ValueError(f"per-clip results of {name} lack seed(s) {lacking} (test/per_clip.csv)")
            boot = paired_clip_bootstrap(rows_a, rows_b, n_resamples=n_resamples, seed=seed, column=clip_column)
            row.update({"clip_diff": boot.mean, "clip_low": boot.low, "clip_high": boot.high,
                        "n_clips": boot.n_clips, "n_resamples": boot.n_resamples})
            clip_verdict = verdict(boot.low, boot.high)
        row["verdict_seed"] = verdict(by_seed.low, by_seed.high)
        row["verdict_clip"] = clip_verdict if clip_verdict is not None else ""
        row["verdict"] = _combined_verdict(row["verdict_seed"], clip_verdict)
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "NO_DIFFERENCE",
    "ClipBootstrap",
    "SeedDifference",
    "compare_to_baseline",
    "default_pairs",
    "paired_clip_bootstrap",
    "paired_seed_difference",
    "verdict",
]
