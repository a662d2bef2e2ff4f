"""results.csv / results.json: written from the runs' table and read back; the README's table
rendered from them (tests/test_readme_results.py compares it with the README)."""

import json

import numpy as np
import pandas as pd

from avs_lib.report import results as rf


def _runs() -> pd.DataFrame:
    """Two methods, the second with one seed; a missing listening rate on one run."""
    return pd.DataFrame({
        "method": ["tpavi", "tpavi", "thesis"],
        "seed": [0, 1, 0],
        "best_epoch": [3, 4, 5],
        "best_val_miou": [0.5, 0.52, 0.49],
        "test_miou": [0.4, 0.5, 0.45],
        "test_f_score_official": [0.6, 0.62, 0.61],
        "test_f_score_batch_size": [4, 4, 4],
        "test_f_score_split": [0.58, 0.6, 0.59],
        "test_listening_rate": [0.7, 0.8, float("nan")],
        "test_following_rate": [0.5, 0.6, 0.55],
        "test_miou_swapped": [0.1, 0.1, 0.2],
        "test_miou_silent": [0.05, 0.07, 0.1],
        "seconds": [10.0, 11.0, 12.0],
        "run_dir": ["runs/tpavi_seed0", "runs/tpavi_seed1", "runs/thesis_seed0"],
    })


def test_results_csv_has_one_row_per_run_and_metric(tmp_path):
    csv_path, _ = rf.write_results(_runs(), tmp_path, profile="cpu")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["method", "seed", "split", "metric", "value"]
    assert len(table) == 3 * 11  # 3 runs x 11 numeric columns (run_dir is not a metric)
    row = table[(table["method"] == "tpavi") & (table["seed"] == 1) & (table["metric"] == "miou")
                & (table["split"] == "test")]
    assert row["value"].tolist() == [0.5]
    assert table[(table["metric"] == "best_miou")]["split"].unique().tolist() == ["val"]


def test_results_csv_keeps_a_missing_value_instead_of_dropping_it(tmp_path):
    csv_path, _ = rf.write_results(_runs(), tmp_path, profile="cpu")
    table = pd.read_csv(csv_path)
    row = table[(table["method"] == "thesis") & (table["metric"] == "listening_rate")]
    assert len(row) == 1 and np.isnan(row["value"].iloc[0])


def test_results_json_holds_the_rows_and_their_provenance(tmp_path):
    _, json_path = rf.write_results(_runs(), tmp_path, profile="cpu", repo=tmp_path)
    document = json.loads(json_path.read_text())
    assert document["profile"] == "cpu"
    assert document["git_commit"] is None  # tmp_path is no git repository
    assert document["packages"]["torch"] and document["packages"]["python"]
    assert len(document["rows"]) == 33
    assert [r["value"] for r in document["rows"] if r["method"] == "thesis" and r["metric"] == "listening_rate"] == [None]


def test_wide_table_comes_back_from_the_long_one():
    wide = rf.results_wide(rf.results_long(_runs()))
    expected = _runs().drop(columns="run_dir")
    assert wide["method"].tolist() == expected["method"].tolist()
    numeric = [c for c in expected.columns if c != "method"]
    np.testing.assert_allclose(wide[numeric].to_numpy(float), expected[numeric].to_numpy(float))


def test_markdown_table_is_mean_and_std_over_seeds():
    text = rf.results_markdown(rf.results_long(_runs()))
    lines = text.splitlines()
    assert lines[0].startswith("| method | seeds | mIoU | F (official, batch 4) |")
    assert lines[2].startswith("| tpavi | 2 | 0.450 ± 0.071 |")
    assert lines[3].startswith("| thesis | 1 | 0.450 |")


def test_results_json_records_the_data_root_dataset_fingerprint_and_overrides(tmp_path):
    from avs_lib.config import save_config
    from avs_lib.engine.provenance import write_provenance
    from avs_lib.report.runs import run_config

    runs = _runs()
    for i, (method, seed) in enumerate(zip(runs["method"], runs["seed"], strict=True)):
        cfg = run_config("smoke", method, int(seed), tmp_path / "data", tmp_path / "runs")
        cfg.run_dir.mkdir(parents=True)
        save_config(cfg, cfg.run_dir / "config.yaml")
        write_provenance(cfg.run_dir, "cpu", cfg)
        runs.loc[i, "run_dir"] = str(cfg.run_dir)
    _, json_path = rf.write_results(runs, tmp_path, profile="smoke", overrides=["optim.epochs=1"])
    data = json.loads(json_path.read_text())["data"]
    assert data["root"] == str((tmp_path / "data").resolve()) and data["dataset"] == "s4"
    assert data["overrides"] == ["optim.epochs=1"]
    assert set(data["fingerprint"]) == {"metadata", "frames", "masks", "audio", "crop_labels"}  # one, shared
