"""Paired statistics: t-intervals over seeds, the clip bootstrap, and the comparison table."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from avs_lib.report.stats import (
    IDENTICAL,
    NO_DIFFERENCE,
    compare_to_baseline,
    default_pairs,
    holm,
    identical_groups,
    minimum_detectable_effect,
    paired_clip_bootstrap,
    paired_seed_difference,
    verdict,
)


def test_seed_difference_matches_a_hand_computed_t_interval():
    # differences 0.025, 0.017, 0.021: mean 0.021, sd 0.004, se 0.004 / sqrt(3)
    a = {0: 0.625, 1: 0.617, 2: 0.621}
    b = {0: 0.600, 1: 0.600, 2: 0.600}
    result = paired_seed_difference(a, b)
    half = 4.302652729911275 * 0.004 / math.sqrt(3)  # t_{0.975, 2}
    assert result.n == 3
    assert result.mean == pytest.approx(0.021)
    assert result.low == pytest.approx(0.021 - half)
    assert result.high == pytest.approx(0.021 + half)
    assert result.t == pytest.approx(0.021 / (0.004 / math.sqrt(3)))


def test_seed_difference_t_and_p_equal_scipy_ttest_rel():
    a = np.array([0.51, 0.48, 0.55, 0.50, 0.47])
    b = np.array([0.50, 0.49, 0.50, 0.46, 0.48])
    result = paired_seed_difference(list(a), list(b))
    reference = stats.ttest_rel(a, b)
    assert result.t == pytest.approx(reference.statistic)
    assert result.p == pytest.approx(reference.pvalue)
    half = stats.t.ppf(0.975, 4) * (a - b).std(ddof=1) / math.sqrt(5)
    assert (result.low, result.high) == pytest.approx(((a - b).mean() - half, (a - b).mean() + half))


def test_one_seed_gives_nan_interval_and_says_one_seed():
    result = paired_seed_difference({0: 0.7}, {0: 0.6})
    assert result.mean == pytest.approx(0.1)
    assert math.isnan(result.low) and math.isnan(result.high) and math.isnan(result.p)
    assert verdict(result.low, result.high) == "one seed"


def test_mismatched_seeds_are_an_error_naming_them():
    with pytest.raises(ValueError, match=r"seeds on both sides: only in a \[2\]"):
        paired_seed_difference({0: 1.0, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.0})
    with pytest.raises(ValueError, match=r"only in b \[5\]"):
        paired_seed_difference({0: 1.0}, {0: 1.0, 5: 1.0})


def test_seed_pairs_are_matched_by_seed_not_by_order():
    forward = paired_seed_difference({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.0, 1: 1.0, 2: 1.0})
    shuffled = paired_seed_difference({2: 4.0, 0: 1.0, 1: 2.0}, {1: 1.0, 0: 0.0, 2: 1.0})
    assert (shuffled.mean, shuffled.low, shuffled.high) == pytest.approx((forward.mean, forward.low, forward.high))


def test_a_clear_seed_difference_excludes_zero_and_noise_contains_it():
    clear = paired_seed_difference([0.70, 0.71, 0.69, 0.72, 0.70], [0.60, 0.60, 0.61, 0.60, 0.59])
    assert clear.low > 0 and verdict(clear.low, clear.high) == "higher"
    noise = paired_seed_difference([0.60, 0.62, 0.58, 0.61, 0.59], [0.61, 0.59, 0.60, 0.60, 0.60])
    assert noise.low < 0 < noise.high and verdict(noise.low, noise.high) == NO_DIFFERENCE


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=8))
def test_swapping_the_methods_negates_the_seed_interval(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ab, ba = paired_seed_difference(a, b), paired_seed_difference(b, a)
    assert ba.mean == pytest.approx(-ab.mean, abs=1e-12)
    if not math.isnan(ab.low):
        assert ba.low == pytest.approx(-ab.high, abs=1e-12)
        assert ba.high == pytest.approx(-ab.low, abs=1e-12)


def _clip_rows(method, seeds, scores, n_frames=5):
    return pd.DataFrame([{"method": method, "seed": s, "name": f"clip{c}", "category": "dog_barking",
                          "iou": scores[i][c], "n_frames": n_frames}
                         for i, s in enumerate(seeds) for c in range(len(scores[i]))])


def _table(scores):
    """Per-clip rows of scores [seeds, clips], clip names in the column order."""
    return pd.DataFrame([{"seed": s, "name": f"clip{c:03d}", "iou": v} for s, row in enumerate(scores)
                         for c, v in enumerate(row)])


def test_clip_bootstrap_equals_a_hand_loop_with_the_same_rng():
    a = np.array([[0.9, 0.5, 0.7, 0.2, 0.8], [0.8, 0.6, 0.6, 0.3, 0.9]])  # [seeds, clips]
    b = np.array([[0.7, 0.5, 0.6, 0.4, 0.6], [0.6, 0.4, 0.7, 0.2, 0.7]])
    result = paired_clip_bootstrap(_table(a), _table(b), n_resamples=500, seed=3)
    per_clip = a.mean(0) - b.mean(0)
    rng = np.random.default_rng(3)
    means = []
    for _ in range(500):
        picked = rng.integers(0, 5, size=5)
        means.append(per_clip[picked].mean())
    assert result.mean == pytest.approx(per_clip.mean())
    assert (result.low, result.high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert (result.n_clips, result.n_resamples) == (5, 500)


def test_clip_bootstrap_is_fixed_by_its_seed():
    rng = np.random.default_rng(0)
    a, b = _table(rng.uniform(size=(3, 20))), _table(rng.uniform(size=(3, 20)))
    assert paired_clip_bootstrap(a, b, seed=1) == paired_clip_bootstrap(a, b, seed=1)
    assert paired_clip_bootstrap(a, b, seed=1) != paired_clip_bootstrap(a, b, seed=2)


def test_clip_bootstrap_interval_excludes_zero_for_a_clear_gain_only():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, size=(3, 40))
    gain = paired_clip_bootstrap(_table(base + 0.05 + rng.normal(0, 0.02, base.shape)), _table(base))
    assert gain.low > 0
    same = paired_clip_bootstrap(_table(base + rng.normal(0, 0.05, base.shape)),
                                 _table(base + rng.normal(0, 0.05, base.shape)))
    assert same.low < 0 < same.high


def test_swapping_the_methods_negates_the_bootstrap_interval():
    rng = np.random.default_rng(4)
    a, b = _table(rng.uniform(size=(2, 15))), _table(rng.uniform(size=(2, 15)))
    ab, ba = paired_clip_bootstrap(a, b), paired_clip_bootstrap(b, a)
    assert (ba.mean, ba.low, ba.high) == pytest.approx((-ab.mean, -ab.high, -ab.low))


def test_clip_bootstrap_reads_per_clip_tables_in_any_row_order():
    a = _clip_rows("a", [0, 1], [[0.9, 0.5, 0.7], [0.8, 0.6, 0.6]])
    b = _clip_rows("b", [0, 1], [[0.7, 0.5, 0.6], [0.6, 0.4, 0.7]])
    assert paired_clip_bootstrap(a, b.iloc[::-1], n_resamples=200) == paired_clip_bootstrap(a, b, n_resamples=200)


def test_clip_bootstrap_needs_the_same_clips_on_both_sides():
    a = _clip_rows("a", [0], [[0.9, 0.5, 0.7]])
    b = _clip_rows("b", [0], [[0.7, 0.5]])
    with pytest.raises(ValueError, match="clip2"):
        paired_clip_bootstrap(a, b)


def _grid():
    """Per-seed and per-clip tables of a small grid; thesis_minus_crop_ce ran seed 0 only."""
    rng = np.random.default_rng(0)
    offsets = {"tpavi": 0.0, "counterfactual": 0.05, "thesis": -0.001, "thesis_minus_crop_ce": 0.0}
    base = rng.uniform(0.3, 0.7, size=(3, 30))
    clips, seeds = [], []
    for method, offset in offsets.items():
        ran = [0] if method == "thesis_minus_crop_ce" else [0, 1, 2]
        scores = base[ran] + offset + rng.normal(0, 0.01, (len(ran), 30))
        clips.append(_clip_rows(method, ran, scores.tolist()))
        seeds += [{"method": method, "seed": s, "test_miou": float(scores[i].mean())} for i, s in enumerate(ran)]
    return pd.DataFrame(seeds), pd.concat(clips, ignore_index=True)


def test_default_pairs_compare_methods_with_the_baseline_and_ablations_with_thesis():
    pairs = default_pairs(["visual_only", "tpavi", "thesis", "thesis_minus_crop_ce"])
    assert pairs == [("visual_only", "tpavi"), ("thesis", "tpavi"), ("thesis_minus_crop_ce", "thesis")]


def test_comparison_table_has_both_intervals_and_a_verdict_that_follows_them():
    per_seed, per_clip = _grid()
    table = compare_to_baseline(per_seed, per_clip).set_index("method")
    assert list(table.index) == ["counterfactual", "thesis", "thesis_minus_crop_ce"]
    cf = table.loc["counterfactual"]
    assert cf["seed_low"] > 0 and cf["clip_low"] > 0 and cf["verdict"] == "higher"
    assert cf["n_resamples"] == 2000 and cf["n_clips"] == 30
    for _, row in table.iterrows():
        if row["verdict"] == NO_DIFFERENCE:
            assert row["seed_low"] <= 0 <= row["seed_high"] or row["clip_low"] <= 0 <= row["clip_high"]
    expected = paired_seed_difference(per_seed[per_seed.method == "counterfactual"].set_index("seed")["test_miou"],
                                      per_seed[per_seed.method == "tpavi"].set_index("seed")["test_miou"])
    assert (cf["seed_diff"], cf["seed_low"], cf["seed_high"]) == pytest.approx(
        (expected.mean, expected.low, expected.high))


def test_an_ablation_is_paired_with_its_full_method_at_its_own_seeds():
    per_seed, per_clip = _grid()
    row = compare_to_baseline(per_seed, per_clip).set_index("method").loc["thesis_minus_crop_ce"]
    assert row["reference"] == "thesis" and row["seeds"] == [0] and row["unpaired_seeds"] == [1, 2]
    thesis_seed0 = per_seed[(per_seed.method == "thesis") & (per_seed.seed == 0)]["test_miou"].item()
    assert row["reference_mean"] == pytest.approx(thesis_seed0)  # seed 0, not the 3-seed mean
    assert row["verdict"] == "one seed"


def test_clip_mean_difference_is_the_miou_difference_when_clips_have_equal_frames():
    per_seed, per_clip = _grid()
    row = compare_to_baseline(per_seed, per_clip).set_index("method").loc["thesis"]
    assert row["clip_diff"] == pytest.approx(row["seed_diff"])


def test_a_metric_without_per_clip_scores_gets_only_the_seed_interval():
    per_seed, per_clip = _grid()
    per_seed["test_listening_rate"] = per_seed["test_miou"]
    row = compare_to_baseline(per_seed, per_clip, metric="listening_rate").iloc[0]
    assert math.isnan(row["clip_low"]) and row["n_clips"] == 0
    assert row["decided_by"] == "seed t-test (Holm)" and "bootstrap" not in row["decided_by"]


def test_missing_baseline_or_metric_is_an_error():
    per_seed, per_clip = _grid()
    with pytest.raises(ValueError, match="baseline 'visual_only'"):
        compare_to_baseline(per_seed, per_clip, baseline="visual_only")
    with pytest.raises(ValueError, match="test_f_score"):
        compare_to_baseline(per_seed, per_clip, metric="f_score")


def test_minimum_detectable_effect_has_the_power_it_claims():
    # simulate the paired t-test at the MDE: it must reject about 80 % of the time
    sd, n = 0.02, 5
    mde = minimum_detectable_effect(sd, n)
    assert mde == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * sd / math.sqrt(n), rel=0.05)
    rng = np.random.default_rng(0)
    diffs = rng.normal(mde, sd, size=(20000, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert (p < 0.05).mean() == pytest.approx(0.8, abs=0.015)
    assert minimum_detectable_effect(sd, 10) < mde < minimum_detectable_effect(sd, 3)
    assert math.isnan(minimum_detectable_effect(sd, 1)) and minimum_detectable_effect(0.0, 5) == 0.0


def test_one_sided_upper_bound_lies_inside_the_two_sided_interval():
    a, b = [0.51, 0.48, 0.55, 0.50, 0.47], [0.50, 0.49, 0.50, 0.46, 0.48]
    d = paired_seed_difference(a, b)
    assert d.mean < d.upper < d.high
    diff = np.subtract(a, b)
    assert d.upper == pytest.approx(diff.mean() + stats.t.ppf(0.95, 4) * diff.std(ddof=1) / math.sqrt(5))


def test_holm_matches_a_hand_computation_and_leaves_nan_out_of_the_family():
    adjusted = holm([0.01, 0.04, math.nan, 0.03])
    assert adjusted[[0, 1, 3]] == pytest.approx([0.03, 0.06, 0.06])  # 3 x 0.01, max(2 x 0.03, .), 1 x 0.04 -> 0.06
    assert math.isnan(adjusted[2])
    assert list(holm([0.5, 0.9])) == [1.0, 1.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=12))
def test_holm_never_lowers_a_p_value_and_keeps_their_order(p):
    adjusted = holm(p)
    assert (adjusted >= np.asarray(p) - 1e-15).all() and (adjusted <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-15).all()


def test_holm_turns_a_lone_significant_result_into_no_verdict_in_a_large_family():
    per_seed, per_clip = _grid()
    lone = compare_to_baseline(per_seed, per_clip, pairs=[("thesis", "tpavi")])
    assert lone["p_holm"].item() == pytest.approx(lone["p"].item())
    both = compare_to_baseline(per_seed, per_clip, pairs=[("thesis", "tpavi"), ("counterfactual", "tpavi")])
    assert both["p_holm"].min() == pytest.approx(2 * both["p"].min())
    assert (both["p_holm"] >= both["p"]).all()
    # a p-value between alpha / 2 and alpha: significant alone, not in a family of two
    p = np.array([0.04, 0.001])
    assert holm(p)[0] < 0.05 and holm(np.array([0.04, 0.03]))[0] >= 0.05


def test_identical_methods_count_once_and_the_repeat_says_which_comparison_it_is():
    per_seed, per_clip = _grid()
    # an ablation whose runs are the baseline's, bit for bit (as thesis_minus_cosine is tpavi's)
    copy_seed = per_seed[per_seed.method == "tpavi"].assign(method="thesis_minus_cosine")
    copy_clip = per_clip[per_clip.method == "tpavi"].assign(method="thesis_minus_cosine")
    per_seed = pd.concat([per_seed, copy_seed], ignore_index=True)
    per_clip = pd.concat([per_clip, copy_clip], ignore_index=True)
    pairs = [("thesis", "tpavi"), ("thesis_minus_cosine", "thesis"), ("thesis_minus_cosine", "tpavi")]
    table = compare_to_baseline(per_seed, per_clip, pairs=pairs)
    assert list(table["same_as"]) == ["", "thesis − tpavi", ""]
    assert table.loc[1, "verdict"] == "counted as thesis − tpavi" and math.isnan(table.loc[1, "p_holm"])
    assert table.loc[2, "verdict"] == IDENTICAL and table.loc[2, "seed_diff"] == 0
    assert table.loc[0, "p_holm"] == pytest.approx(table.loc[0, "p"])  # a family of one: no inflation


def test_claimed_gain_is_excluded_only_when_the_upper_bound_lies_below_it():
    per_seed, per_clip = _grid()
    table = compare_to_baseline(per_seed, per_clip, claimed_gain=0.069).set_index("method")
    thesis, cf = table.loc["thesis"], table.loc["counterfactual"]
    assert thesis["claimed_gain"] == pytest.approx(0.069 * thesis["reference_mean"])
    assert thesis["claim_excluded"] == (thesis["upper_bound"] < thesis["claimed_gain"]) and thesis["claim_excluded"]
    assert not cf["claim_excluded"] or cf["upper_bound"] < cf["claimed_gain"]
    assert not compare_to_baseline(per_seed, per_clip)["claim_excluded"].any()  # no claim given: nothing excluded


def test_a_verdict_within_the_machine_margin_of_flipping_is_marked_on_the_edge():
    per_seed, per_clip = _grid()
    plain = compare_to_baseline(per_seed, per_clip).set_index("method")
    nearest = min(abs(plain.loc["counterfactual", "seed_low"]), abs(plain.loc["counterfactual", "seed_high"]))
    assert not plain["edge"].any()
    near = compare_to_baseline(per_seed, per_clip, machine_margin=nearest * 1.01).set_index("method")
    far = compare_to_baseline(per_seed, per_clip, machine_margin=nearest * 0.99).set_index("method")
    assert near.loc["counterfactual", "edge"] and not far.loc["counterfactual", "edge"]
    assert near.loc["counterfactual", "verdict"] == "higher"  # the edge is said, the verdict stays


def test_a_method_run_at_fewer_seeds_is_identical_on_the_seeds_it_shares():
    table = pd.DataFrame({"method": ["tpavi"] * 5 + ["thesis_literal_c"] * 3 + ["thesis"] * 3,
                          "seed": [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2],
                          "test_miou": [0.5, 0.6, 0.55, 0.52, 0.58, 0.5, 0.6, 0.55, 0.5, 0.61, 0.55]})
    same = identical_groups(table, ["test_miou"])
    assert same == {"tpavi": "tpavi", "thesis_literal_c": "tpavi", "thesis": "thesis"}
    row = compare_to_baseline(table, pairs=[("thesis_literal_c", "tpavi")]).iloc[0]
    assert row["verdict"] == IDENTICAL and row["seeds"] == [0, 1, 2]


def test_a_grid_of_the_baseline_alone_gives_an_empty_table_with_every_column():
    table = pd.DataFrame({"method": ["tpavi"] * 2, "seed": [0, 1], "test_miou": [0.5, 0.6]})
    empty = compare_to_baseline(table)
    assert empty.empty and {"verdict", "same_as", "identical", "mde", "p_holm"} <= set(empty.columns)
