"""Notebook 01's sentences come from the data: the synthetic story only on synthetic data, and
real S4, real MS3 and a tree of log-mels only each described as what they are."""

import pandas as pd

from avs_lib.report import data_story


def _clips(categories: dict[str, int], split: str = "train") -> pd.DataFrame:
    rows = [(f"{c}{k}", c, split) for c, n in categories.items() for k in range(n)]
    return pd.DataFrame(rows, columns=["name", "category", "split"])


def test_real_s4_is_described_from_its_metadata_without_the_synthetic_story(tmp_path):
    text = data_story.what_the_data_is(tmp_path, "s4", _clips({"helicopter": 2, "dog_barking": 1}), info=None)
    assert "real AVSBench S4" in text and "3 clips (3 train, 0 val, 0 test), over 2 classes" in text
    assert "synthetic" not in text


def test_synthetic_data_tells_the_generator_rules_from_its_info():
    info = {"parameters": {"max_distractors": 2, "num_classes": 8}}
    text = data_story.what_the_data_is("root", "s4", _clips({"dog_barking": 1}), info)
    assert "**synthetic**" in text and "up to 2 silent objects" in text and "(8 classes)" in text


def test_ms3_is_described_as_having_no_classes():
    clips = _clips({"": 2}).assign(category="(MS3: no classes)")
    assert "real AVSBench MS3" in data_story.what_the_data_is("root", "ms3", clips, None)
    assert data_story.class_balance(clips, "ms3").startswith("MS3 has no classes")


def test_class_balance_names_the_extremes_of_an_unbalanced_split():
    text = data_story.class_balance(_clips({"helicopter": 3, "dog_barking": 1}), "s4")
    assert "Not balanced" in text and "from 1 (`dog_barking`) to 3 (`helicopter`)" in text
    assert "each of the 2 classes has 1 training clip," in data_story.class_balance(_clips({"a": 1, "b": 1}), "s4")


def test_object_sizes_count_the_small_masks():
    areas = pd.DataFrame({"area_fraction": [0.01, 0.02, 0.2, 0.3]})
    assert data_story.object_sizes(areas).startswith("50% of the 4 ground-truth masks cover less than 5%")


def test_a_tree_without_wavs_says_it_shows_log_mels_alone():
    assert "no WAV files" in data_story.sound_source("pkl") and "player" in data_story.sound_source("wav")
