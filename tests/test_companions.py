"""The cpu report's companion benchmarks (report/companions.py): where their data goes, how their
runs become results.csv rows, and the noise sentence that follows its numbers."""

from pathlib import Path

import pandas as pd
import pytest

from avs_lib.report import companions


def test_a_companion_root_sits_beside_the_main_profiles_root():
    assert companions.companion_root("cpu_multilook", "../data/synth") == Path("../data/synth_multilook")
    assert companions.companion_root("cpu_noisy", "/x/y/synth") == Path("/x/y/synth_noisy")


def _scores(listening_at_10db: float) -> pd.DataFrame:
    rows = []
    for trained_on, listen in (("clean sound", 0.2), ("0-20 dB mix", listening_at_10db)):
        for split, factor in (("clean", 1.0), ("shifted_snr10db", 1.0), ("shifted_snr0db", 0.5)):
            for seed in range(3):
                rows.append({"trained_on": trained_on, "method": "tpavi", "seed": seed, "split": split,
                             "miou": 0.5 - 0.01 * (trained_on != "clean sound"), "miou_onscreen": 0.5,
                             "listening_rate": (0.9 if split == "clean" else listen * factor),
                             "following_rate": (0.7 if split == "clean" else listen * factor * 0.8)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("listening", "verdict"), [(0.9, "is met"), (0.6, "is not met")])
def test_the_noise_sentence_judges_the_mixed_snr_runs_against_the_aim(listening, verdict):
    table = companions.noise_table(_scores(listening))
    text = companions.noise_text(table)
    assert verdict in text and f"{listening:.1%}" in text and "20.0%" in text  # the clean-trained run beside it
    assert "-0.010" in text  # what the mix costs on clean clips


def test_companion_rows_name_their_dataset_and_keep_only_the_runs_trained_on_it():
    looks = pd.DataFrame({"method": ["tpavi", "thesis"], "seed": [0, 0], "test_miou": [0.4, 0.41], "val_miou": [0.5, 0.5]})
    rows = companions.companion_rows(looks, _scores(0.8))
    assert set(rows["split"]) == {"cpu_multilook_test", "cpu_multilook_val", "cpu_noisy_clean",
                                  "cpu_noisy_shifted_snr10db", "cpu_noisy_shifted_snr0db"}
    noisy = rows[rows["split"].str.startswith("cpu_noisy")]
    assert len(noisy) == 3 * 3 * 4  # 3 splits x 3 seeds x 4 metrics, the clean-trained runs left out
    assert companions.companion_rows(None, None) is None


@pytest.mark.parametrize(("following", "said"), [(0.01, "segment without the sound"), (0.6, "they listen here too")])
def test_the_multilook_sentence_says_whether_the_models_listen_there(following, said):
    looks = pd.DataFrame({"method": ["tpavi", "thesis", "visual_only"], "seed": [0, 0, 0], "test_miou": [0.2, 0.2, 0.1],
                          "test_listening_rate": [0.55, 0.6, 0.5], "test_following_rate": [following, following, 0.0]})
    text = companions.multilook_text(looks)
    assert said in text and f"{following:.1%}" in text and "50.0%" in text
