"""tools/same_numbers.py: a rerun's numbers against the committed ones, value for value."""

import importlib.util
import math
from pathlib import Path

import pandas as pd

SPEC = importlib.util.spec_from_file_location("same_numbers", Path(__file__).resolve().parents[1] / "tools" / "same_numbers.py")
same_numbers = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(same_numbers)


def _rows(values):
    return pd.DataFrame([{"method": m, "seed": s, "split": sp, "metric": k, "value": v} for m, s, sp, k, v in values])


def test_identical_values_nan_included_and_a_renamed_split_are_the_same():
    old = _rows([("tpavi", 0, "test", "miou", 0.5), ("tpavi", 0, "val", "best_miou", math.nan),
                 ("tpavi", 0, "train", "seconds", 40.0)])
    new = _rows([("tpavi", 0, "devtest", "miou", 0.5), ("tpavi", 0, "val", "best_miou", math.nan),
                 ("tpavi", 0, "train", "seconds", 41.0), ("tpavi", 0, "test", "miou", 0.6)])
    assert same_numbers.compare(old, new, {"test": "devtest"}) == (2, [], 0)


def test_a_changed_value_is_named_and_a_run_not_rerun_is_counted_apart():
    old = _rows([("tpavi", 0, "test", "miou", 0.5), ("thesis_no_relu", 0, "test", "miou", 0.4)])
    new = _rows([("tpavi", 0, "test", "miou", 0.5000001)])
    same, differ, missing = same_numbers.compare(old, new, {})
    assert same == 0 and missing == 1 and differ == ["tpavi seed 0 test miou: 0.5 -> 0.5000001"]
