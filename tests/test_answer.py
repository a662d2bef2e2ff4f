"""The report's sentences follow its numbers (report/answer.py): a changed table changes the text."""

import numpy as np
import pandas as pd

from avs_lib.report import answer, stats
from avs_lib.report.experiments import THESIS_CLAIMED_GAIN

SEEDS = [0.01, -0.01, 0.02, 0.0, 0.005]


def _results(thesis_gain: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, offset in [("visual_only", -0.3), ("tpavi", 0.0), ("thesis", thesis_gain), ("tpavi_trained", -0.2),
                           ("thesis_trained", -0.21), ("thesis_minus_cosine", 0.0), ("thesis_literal_c", 0.0)]:
        for seed in range(3 if method in ("thesis_minus_cosine", "thesis_literal_c") else 5):
            same = method in ("tpavi", "thesis_minus_cosine", "thesis_literal_c")
            rows.append({"method": method, "seed": seed,
                         "test_miou": 0.5 + offset + (SEEDS[seed] if same else rng.normal(0, 0.004)),
                         "test_listening_rate": 0.45 if method == "visual_only" else 0.8,
                         "test_following_rate": 0.0 if method == "visual_only" else 0.6})
    return pd.DataFrame(rows)


def _answer(thesis_gain: float):
    results = _results(thesis_gain)
    by_miou = stats.compare_to_baseline(results, None, metric="miou", claimed_gain=THESIS_CLAIMED_GAIN)
    means = results.groupby("method")[["test_miou", "test_listening_rate", "test_following_rate"]].mean()
    return answer.answer(by_miou, means, None, trained=True), by_miou


def test_the_answer_says_what_the_verdicts_say_in_both_languages():
    (english, korean), by_miou = _answer(thesis_gain=-0.05)
    assert len(english) == len(korean) <= 8
    thesis = by_miou.set_index("method").loc["thesis"]
    assert thesis["verdict"] == "lower" and "**lower**" in english[0] and "더 낮음" in korean[0]
    assert f"{thesis['seed_diff']:+.3f}" in english[0] and "is excluded" in english[0]
    assert "`thesis_literal_c` trains exactly `tpavi`'s runs" in english[2]  # identical runs, said as a finding
    assert "costs `tpavi_trained`" in english[1]  # the trained encoder's own loss is said beside its verdict


def test_a_gain_the_size_of_the_claim_is_not_called_excluded():
    (english, _), by_miou = _answer(thesis_gain=0.04)
    assert by_miou.set_index("method").loc["thesis", "verdict"] == "higher"
    assert "**higher**" in english[0] and "is not excluded" in english[0]


def test_a_verdict_sentence_names_holm_the_mde_and_the_edge():
    _, by_miou = _answer(thesis_gain=-0.05)
    row = stats.compare_to_baseline(_results(-0.05), None, metric="miou", machine_margin=1.0).iloc[1]
    text = answer.verdict_sentence(row, "test mIoU", 1.0)
    assert "Holm-adjusted p" in text and "80 % power" in text and "**on the edge**" in text
    same = by_miou.set_index("method").loc["thesis_minus_cosine"]
    assert "counted there, once" in answer.verdict_sentence(same.rename(None).to_frame().T.assign(
        method="thesis_minus_cosine").iloc[0], "test mIoU", 0.0)


def test_the_multilook_verdict_joins_the_answer_within_eight_sentences_and_drops_the_untested_caveat():
    (plain, _), by_miou = _answer(thesis_gain=-0.05)
    looks = stats.compare_to_baseline(_results(0.04)[lambda f: f["method"].isin(["tpavi", "thesis"])], None,
                                      metric="miou", claimed_gain=THESIS_CLAIMED_GAIN)
    means = _results(-0.05).groupby("method")[["test_miou", "test_listening_rate", "test_following_rate"]].mean()
    english, korean = answer.answer(by_miou, means, None, trained=True, multilook=looks)
    assert len(english) == len(korean) == len(plain) + 1 <= 8
    said = next(s for s in english if "three looks per class" in s)
    assert "**higher**" in said and f"{looks.set_index('method').loc['thesis', 'seed_diff']:+.3f}" in said
    assert "several looks per class" in plain[-1] and "several looks per class" not in english[-1]


def _longer(gain_2x: float) -> pd.DataFrame:
    rows = [{"method": m, "seed": s, "test_miou": 0.5 + off + 0.01 * s}
            for m, off in (("tpavi", 0.0), ("thesis", -0.02), ("tpavi_2x", 0.03), ("thesis_2x", 0.03 + gain_2x))
            for s in range(3)]
    return pd.DataFrame(rows)


def test_the_longer_budget_sentence_says_whether_the_ranking_changes():
    for gain_2x, said in ((-0.01, "does not change"), (0.02, "reverses")):
        results = _longer(gain_2x)
        pairs = [("tpavi_2x", "tpavi"), ("thesis_2x", "thesis")]
        by_longer = stats.compare_to_baseline(results, None, metric="miou", pairs=pairs)
        text = answer.longer_text(results, by_longer, ["tpavi_2x", "thesis_2x"])
        assert said in text and f"{gain_2x:+.3f}" in text and "(3 seeds)" in text


def test_the_multilook_sentence_says_how_often_the_models_follow_there():
    (_, _), by_miou = _answer(thesis_gain=-0.05)
    looks = stats.compare_to_baseline(_results(0.0)[lambda f: f["method"].isin(["tpavi", "thesis"])], None,
                                      metric="miou", claimed_gain=THESIS_CLAIMED_GAIN)
    means = _results(-0.05).groupby("method")[["test_miou", "test_listening_rate", "test_following_rate"]].mean()
    english, korean = answer.answer(by_miou, means, None, trained=True, multilook=looks,
                                    multilook_following=pd.Series({"tpavi": 0.013, "thesis": 0.004}))
    said = next(s for s in english if "three looks per class" in s)
    assert "`tpavi` follows the audio on 1% of the frames and `thesis` on 0%" in said
    assert any("1%" in s and "이 벤치마크에서" in s for s in korean)
