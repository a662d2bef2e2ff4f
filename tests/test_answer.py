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
