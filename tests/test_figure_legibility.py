"""Figures a committee can read: size, legends off the data, masks visible on any object, and the
rules that choose what a figure (and the sentence beside it) shows."""

import os
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from avs_lib.datatools.synth import CLASS_LOOKS
from avs_lib.report import experiments, inspection, notebooks, viz

REPO = Path(__file__).resolve().parents[1]
MAX_WIDTH_PX = 2400
COMMITTED = sorted((REPO / "figures").glob("*.png")) + sorted((REPO / "figures" / "slides").glob("*.png"))
METHODS = ("visual_only", "tpavi", "thesis", "counterfactual", "thesis_minus_crop_ce", "thesis_minus_pairwise",
           "thesis_minus_cosine", "tpavi_trained", "thesis_trained")


# ---------------------------------------------------------------- every committed figure


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_no_committed_figure_is_wider_than_2400_pixels(path):
    width, _ = Image.open(path).size
    assert width <= MAX_WIDTH_PX, f"{path.name} is {width} px wide; split it into pages or a facet grid"


# ---------------------------------------------------------------- legends never over data


def _per_seed(rng) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "seed": s, "miou": rng.uniform(0.1, 0.6), "listening_rate": rng.uniform(0.4, 0.9)}
                         for m in METHODS for s in range(3)])


def _legend_figures():
    rng = np.random.default_rng(0)
    per_seed = _per_seed(rng)
    steps = pd.DataFrame([{"method": m, "seed": s, "global_step": g, "term": t, "value": rng.uniform()}
                          for m in METHODS[:4] for s in range(2) for g in range(20) for t in ("avs_bce", "total")])
    history = pd.DataFrame([{"method": m, "seed": s, "epoch": e, "metric": k, "value": rng.uniform()}
                            for m in METHODS[:4] for s in range(2) for e in range(4) for k in viz.VALIDATION_METRICS])
    categories = pd.DataFrame([{"method": m, "seed": s, "category": c, "iou": rng.uniform(), "n_clips": 7}
                               for m in METHODS[:3] for s in range(3) for c in ("dog_barking", "baby_laughter")])
    areas = pd.DataFrame([{"method": m, "seed": s, "name": f"c{i}", "frame": 0, "area": i / 100, "iou": rng.uniform()}
                          for m in METHODS[:3] for s in range(2) for i in range(1, 9)])
    parts = list(viz.DESTINATION_COLORS)
    destinations = pd.DataFrame([{"method": m, "run": f"{m}_seed0", "condition": c, "frame": f,
                                  **dict(zip(parts, rng.dirichlet(np.ones(4)), strict=True))}
                                 for m in METHODS for c in ("true", "swapped", "silent") for f in range(3)])
    return {
        "loss_curves": viz.plot_loss_curves(steps),
        "validation_curves": viz.plot_validation_curves(history)[0],
        "listening_vs_miou": viz.plot_listening_vs_miou(per_seed),
        "results_bars": viz.plot_results_bars(per_seed, "miou", references={"deaf ceiling": 0.4}),
        "per_category": viz.plot_per_category(categories)[0],
        "iou_vs_area": viz.plot_iou_vs_area(areas, bins=2)[0],
        "mask_destinations": viz.plot_mask_destinations(destinations)[0],
        "mask_area": viz.plot_mask_area_hist(pd.DataFrame({"split": ["train", "test"] * 5,
                                                            "area_fraction": rng.uniform(0, 0.2, 10)})),
    }


@pytest.mark.parametrize("name", list(_legend_figures()))
def test_every_legend_lies_outside_every_axis(name):
    fig = _legend_figures()[name]
    canvas = FigureCanvasAgg(fig)  # the report's figures have no canvas of pyplot's
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, f"{name}: no legend drawn"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: a legend covers the axis {ax.get_title()!r}"


def test_wide_result_figures_stay_within_2400_pixels_at_the_saved_dpi(tmp_path):
    for name, fig in _legend_figures().items():
        width, _ = Image.open(viz.save_figure(fig, name, tmp_path)).size
        assert width <= MAX_WIDTH_PX, f"{name}: {width} px"


def test_mask_area_axis_ends_at_the_largest_mask_not_at_one():
    fig = viz.plot_mask_area_hist(pd.DataFrame({"split": "train", "area_fraction": [0.02, 0.1, 0.18]}))
    assert fig.axes[0].get_xlim()[1] < 0.2


def test_per_category_on_one_category_labels_its_clips_and_methods():
    one = pd.DataFrame({"method": ["tpavi"] * 3, "seed": [0, 1, 2], "category": "ms3", "iou": [0.4, 0.5, 0.6],
                        "n_clips": 60})
    fig, numbers = viz.plot_per_category(one)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["ms3 (60 clips)"]
    assert numbers["std"].iloc[0] == pytest.approx(0.1) and fig.legends


# ---------------------------------------------------------------- masks visible on any object


def _object_colours() -> list[tuple[int, int, int]]:
    return sorted({tuple(int(round(255 * c)) for c in colour) for look in CLASS_LOOKS
                   for colour in (look.colour, look.pattern_colour)})


@pytest.mark.parametrize("colour", _object_colours())
def test_mask_edges_differ_from_every_object_colour(colour):
    frame = np.broadcast_to(np.array(colour, np.uint8), (12, 12, 3)).copy()
    gt, pred = np.zeros((12, 12), bool), np.zeros((12, 12), bool)
    gt[3:8, 3:8], pred[4:10, 4:10] = True, True
    image = viz.mark_masks(frame, pred, gt).astype(int)
    for edge in (viz.mask_outline(pred), viz.mask_ring(gt)):
        contrast = np.abs(image[edge] - np.array(colour)).max(axis=1)
        assert (contrast >= 60).mean() >= 0.5, f"the edge vanishes on object colour {colour}"


def test_the_browser_draws_masks_as_the_figures_do():
    frame = np.random.default_rng(1).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    pred, gt = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    pred[2:6, 2:6], gt[3:8, 3:8] = True, True
    np.testing.assert_array_equal(viz.compose_view(frame, pred, gt, True, True, False), viz.mark_masks(frame, pred, gt))
    np.testing.assert_array_equal(viz.compose_view(frame, pred, gt, True, True, True),
                                  viz.mark_masks(frame, pred, gt, errors=gt))


# ---------------------------------------------------------------- rules that choose what is shown


def test_the_method_that_follows_most_is_the_highest_mean_following_rate_without_the_deaf_model():
    results = pd.DataFrame({"method": ["visual_only", "tpavi", "tpavi", "counterfactual", "counterfactual"],
                            "seed": [0, 0, 1, 0, 1], "test_following_rate": [0.9, 0.7, 0.8, 0.9, 0.5]})
    assert viz.top_follower(results) == "tpavi"  # mean 0.75 against 0.70; visual_only never counts
    assert viz.top_follower(results, methods=["visual_only", "counterfactual"]) == "counterfactual"
    assert viz.top_follower(results.assign(test_following_rate=np.nan)) is None


def test_notebooks_04_and_05_name_the_listener_by_the_same_rule():
    sources = {n: "\n".join(c.source for c in nbformat.read(REPO / "notebooks" / f"{n}.ipynb", 4).cells
                            if c.cell_type == "code") for n in ("04_evaluation", "05_failure_cases")}
    assert "viz.top_follower(main)" in sources["04_evaluation"]
    assert "viz.top_follower(results, grid.compared)" in sources["05_failure_cases"]


def test_a_miss_needs_the_swapped_in_object_in_view():
    outcomes = pd.DataFrame({"name": ["a", "b", "c"], "follows": [1.0, 0.0, 0.2], "visible": [1.0, 0.2, 0.8]})
    picked, rule = inspection.pick_swap_examples(outcomes)
    assert (picked["hit"]["name"], picked["miss"]["name"]) == ("a", "c")  # b's object is mostly off-frame
    assert "2 of 3 clips" in rule


def test_swap_figure_names_its_method_and_says_where_each_mask_lies():
    frame = np.zeros((8, 8, 3), np.uint8)
    own, other, empty = np.zeros((8, 8), bool), np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    own[:3, :3], other[5:, 5:] = True, True
    rows = [{"outcome": "hit", "title": "clip x", "frame": frame, "sounding": own, "swapped_in": other, "follows": 1.0,
             "panels": [("true audio", own), ("swapped audio", other), ("silent audio", other)]},
            {"outcome": "miss", "title": "clip y", "frame": frame, "sounding": own, "swapped_in": other, "follows": 0.0,
             "panels": [("true audio", own), ("swapped audio", own), ("silent audio", empty)]}]
    fig, numbers = viz.plot_swap_examples(rows, method="tpavi")
    assert fig.get_suptitle() == "Swapped audio: tpavi"
    assert [sub.get_suptitle().split(":")[0] for sub in fig.subfigs] == ["HIT (follows on 100% of frames)",
                                                                         "MISS (follows on 0% of frames)"]
    assert numbers["silent audio: on swapped-in object"].tolist() == [9, 0]
    assert numbers["silent audio: pixels"].tolist() == [9, 0]


def _readme() -> str:
    return (REPO / "README.md").read_text()


def test_readme_names_the_methods_of_the_qualitative_grid_by_notebook_05s_rule():
    results = pd.read_csv(REPO / "figures" / "results.csv")
    trained = results[results["split"] == "test"] if "split" in results.columns else results
    baseline, proposed = experiments.failure_pair(trained[["method"]].drop_duplicates())
    shown = [m for m in dict.fromkeys(("visual_only", baseline, proposed, "counterfactual")) if m in set(trained["method"])]
    alt = re.search(r"!\[([^\]]*)\]\(figures/failures_qualitative_grid\.png\)", _readme()).group(1)
    named = re.search(r"block per clip: (.+) \(median seeds\)", alt).group(1)
    assert re.split(r", | and ", named) == shown


def test_readme_says_the_browser_screenshots_show_the_first_run_the_tool_offers():
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    from browser_screenshots import SHOWN_METHODS

    paragraph = _readme().split("make browser-screenshots RUNS_DIR")[1].split("\n\n")[0]
    assert " and ".join(f"`{m}`" for m in SHOWN_METHODS) in paragraph.replace("\n", " ")
    assert f"all four show the first of them, the median-seed `{SHOWN_METHODS[0]}` run" in paragraph.replace("\n", " ")


# ---------------------------------------------------------------- stale figures


def _fake_papermill(monkeypatch):
    import papermill

    def execute(source, out, parameters, cwd, **kwargs):
        Path(out).write_text(Path(source).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(notebooks, "export_html", lambda *a, **k: None)


def _old_figures(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = [folder / n for n in ("results_test_miou.png", "failures_audio_swap_old.png", "mask_browser_initial.png",
                                  "results.csv")]
    for path in paths:
        path.write_bytes(b"old")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    return paths


def test_a_whole_report_run_deletes_the_figures_no_notebook_drew(tmp_path, monkeypatch):
    _fake_papermill(monkeypatch)  # draws nothing: every figure a notebook names is stale
    drawn, swap, screenshot, table = _old_figures(tmp_path / "figures")
    notebooks.run_notebooks(profile="paper", output_dir=tmp_path, figures_dir=tmp_path / "figures")
    assert not drawn.exists() and not swap.exists()
    assert screenshot.exists() and table.exists()  # no notebook saves these: kept


def test_a_report_run_with_only_some_notebooks_deletes_nothing(tmp_path, monkeypatch):
    _fake_papermill(monkeypatch)
    paths = _old_figures(tmp_path / "figures")
    notebooks.run_notebooks(profile="paper", notebooks=["04_evaluation"], output_dir=tmp_path,
                            figures_dir=tmp_path / "figures")
    assert all(p.exists() for p in paths)


def test_a_figure_written_during_the_run_is_kept(tmp_path):
    (tmp_path / "figures").mkdir()
    fresh = tmp_path / "figures" / "results_test_miou.png"
    started = time.time() - 2
    fresh.write_bytes(b"new")
    assert notebooks.remove_stale_figures(tmp_path / "figures", notebooks.notebook_paths(), started) == []
    assert fresh.exists()


def test_the_ground_truth_ring_hugs_the_mask_not_the_frame():
    gt = np.zeros((6, 6), bool)
    gt[2:4, 2:4] = True
    ring = viz.mask_ring(gt)
    assert ring.sum() == 8 and not ring[0].any() and not ring[:, 0].any() and not (ring & gt).any()
