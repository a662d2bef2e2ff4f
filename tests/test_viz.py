"""Figures and the mask browser: right pixels, right panels, a PNG on disk, live widgets."""

import io
import os
import wave

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from avs_lib.report import viz

S, T = 8, 3


def _frames(t: int = T, s: int = S, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, s, s, 3), dtype=np.uint8)


def _square(s: int = S, top: int = 2, left: int = 2, size: int = 3) -> np.ndarray:
    mask = np.zeros((s, s), dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def _saves_png(fig: Figure, name: str, tmp_path) -> None:
    path = viz.save_figure(fig, name, figures_dir=tmp_path / "figures")
    assert path == tmp_path / "figures" / f"{name}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- pixels


def test_denormalize_inverts_imagenet_normalisation():
    pixels = _frames()  # [T, S, S, 3]
    mean, std = np.array(viz.IMAGENET_MEAN), np.array(viz.IMAGENET_STD)
    normalised = ((pixels / 255.0 - mean) / std).transpose(0, 3, 1, 2)  # -> [T, 3, S, S]
    out = viz.denormalize(torch.from_numpy(normalised).float())
    assert out.dtype == np.uint8 and out.shape == (T, S, S, 3)
    np.testing.assert_array_equal(out, pixels)


def test_denormalize_rejects_channels_last_input():
    with pytest.raises(ValueError, match=r"\[T, 3, S, S\]"):
        viz.denormalize(np.zeros((T, S, S, 3)))


def test_overlay_blends_only_the_masked_pixels():
    frame = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = viz.overlay(frame, mask, color=(200, 0, 51), alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [150, 50, 76])  # round(75.5) = 76 (half to even)
    np.testing.assert_array_equal(out[[0, 1, 1], [1, 0, 1]], np.full((3, 3), 100))
    assert frame[0, 0, 0] == 100  # the input is not modified


def test_overlay_rejects_a_mask_that_is_not_binary():
    with pytest.raises(ValueError, match="binary"):
        viz.overlay(np.zeros((2, 2, 3), np.uint8), np.array([[0.0, 0.7], [1.0, 0.0]]))


def test_mark_masks_colours_true_positives_false_positives_and_false_negatives():
    pred, gt = _square(top=1, left=1, size=4), _square(top=1, left=3, size=4)
    out = viz.mark_masks(np.zeros((S, S, 3), dtype=np.uint8), pred, errors=gt)
    for pixel, color in (((2, 3), viz.TP_COLOR), ((2, 2), viz.FP_COLOR), ((2, 5), viz.FN_COLOR)):
        np.testing.assert_array_equal(out[pixel], np.rint(viz.FILL_ALPHA * np.array(color)))
    np.testing.assert_array_equal(out[1, 1], viz.PRED_EDGE)  # the prediction's black edge
    np.testing.assert_array_equal(out[6, 0], [0, 0, 0])


def test_mask_outline_keeps_the_border_and_drops_the_inside():
    outline = viz.mask_outline(_square(s=5, top=1, left=1, size=3))
    expected = _square(s=5, top=1, left=1, size=3)
    expected[2, 2] = False
    np.testing.assert_array_equal(outline, expected)


def test_wav_bytes_is_a_16_bit_mono_wav_at_the_given_rate():
    data = viz.wav_bytes(np.array([0.0, 1.0, -1.0, 2.0]), 8000)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        samples = np.frombuffer(w.readframes(4), dtype="<i2")
    np.testing.assert_array_equal(samples, [0, 32767, -32767, 32767])


# ---------------------------------------------------------------- saving


def test_save_figure_writes_a_named_png_and_leaves_no_temporary_file(tmp_path):
    fig = Figure()
    fig.subplots().plot([0, 1])
    path = viz.save_figure(fig, "curve.png", figures_dir=tmp_path)
    assert path == tmp_path / "curve.png"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_figures_show_themselves_as_png_without_pyplot():
    fig = viz.plot_mask_area_hist(pd.DataFrame({"split": ["train"], "area_fraction": [0.2]}))
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_figure_refuses_a_name_with_a_folder(tmp_path):
    with pytest.raises(ValueError, match="file stem"):
        viz.save_figure(Figure(), "../escape", figures_dir=tmp_path)


# ---------------------------------------------------------------- data figures


def test_plot_clip_has_a_row_per_mask_and_accepts_missing_frame_masks(tmp_path):
    masks = {
        "ground truth": [_square(), None, None],
        "prediction": np.stack([_square()] * T),
        "none": None,
    }
    fig = viz.plot_clip(_frames(), masks, title="clip")
    assert isinstance(fig, Figure) and len(fig.axes) == (1 + 3) * T
    _saves_png(fig, "clip", tmp_path)


def test_plot_class_counts_is_one_panel(tmp_path):
    df = pd.DataFrame(
        {
            "split": ["train", "train", "val", "test"],
            "category": ["helicopter", "baby_laughter", "helicopter", "race_car"],
        }
    )
    fig = viz.plot_class_counts(df)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "baby_laughter",
        "helicopter",
        "race_car",
    ]
    _saves_png(fig, "class_counts", tmp_path)


def test_plot_class_counts_names_the_missing_column():
    with pytest.raises(ValueError, match="category"):
        viz.plot_class_counts(pd.DataFrame({"split": ["train"]}))


def test_plot_mask_area_hist_is_one_panel(tmp_path):
    areas = pd.DataFrame({"split": ["train", "val", "val"], "area_fraction": [0.1, 0.2, 0.5]})
    fig = viz.plot_mask_area_hist(areas)
    assert len(fig.axes) == 1
    _saves_png(fig, "mask_area", tmp_path)


@pytest.mark.parametrize("shape", [(2, 1, 96, 64), (2, 96, 64)])
def test_plot_waveform_and_logmel_has_waveform_logmel_and_colourbar(tmp_path, shape):
    fig = viz.plot_waveform_and_logmel(
        np.sin(np.arange(1600) / 5.0), 800, torch.zeros(shape), "audio"
    )
    assert len(fig.axes) == 3
    _saves_png(fig, "audio", tmp_path)


def test_a_tree_of_log_mels_only_draws_the_log_mels_alone():
    fig = viz.plot_waveform_and_logmel(None, 0, torch.zeros(5, 1, 96, 64))
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim() == pytest.approx((0.0, 5 * 0.96))


def test_plot_boxes_on_frames_draws_each_box_on_its_pixels(tmp_path):
    boxes = np.array([[1, 2, 4, 6]] * T)
    fig = viz.plot_boxes_on_frames(_frames(), boxes, masks=[_square(), None, _square()])
    assert len(fig.axes) == T
    rect = fig.axes[0].patches[0]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (0.5, 1.5, 3, 4)
    _saves_png(fig, "boxes", tmp_path)


def test_plot_crop_grid_has_one_panel_per_crop(tmp_path):
    fig = viz.plot_crop_grid(_frames(t=7, s=4), [f"crop {i}" for i in range(7)], ncols=3)
    assert len(fig.axes) == 7
    _saves_png(fig, "crops", tmp_path)


def test_plot_box_mask_iou_hist_is_one_panel(tmp_path):
    df = pd.DataFrame({"iou": [0.9, 0.8, 0.2], "flagged": [False, False, True]})
    fig = viz.plot_box_mask_iou_hist(df, threshold=0.5)
    assert len(fig.axes) == 1
    _saves_png(fig, "box_iou", tmp_path)


# ---------------------------------------------------------------- training and results


def test_plot_loss_curves_has_one_panel_per_term(tmp_path):
    rows = [
        {"method": m, "seed": s, "global_step": g, "term": term, "value": 1.0 / g + s}
        for m in ("baseline", "crop_losses")
        for s in (0, 1)
        for g in (1, 2, 3)
        for term in ("total", "first_frame_bce", "audio_crop_cosine", "crop_ce")
    ]
    fig = viz.plot_loss_curves(pd.DataFrame(rows), smooth=2)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == [
        "total",
        "first_frame_bce",
        "audio_crop_cosine",
        "crop_ce",
    ]
    _saves_png(fig, "loss", tmp_path)


def _results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["baseline"] * 3 + ["crop_losses"] * 2,
            "seed": [0, 1, 2, 0, 1],
            "miou": [0.5, 0.6, 0.7, 0.8, 0.8],
            "listening_rate": [0.1, 0.2, 0.3, 0.6, 0.7],
        }
    )


def test_plot_results_bars_bars_are_seed_means(tmp_path):
    fig = viz.plot_results_bars(_results(), "miou", references={"paper baseline": 0.679})
    assert len(fig.axes) == 1
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.6, 0.8])
    _saves_png(fig, "results", tmp_path)


def test_plot_results_bars_leaves_room_for_the_papers_references_beside_one_method(tmp_path):
    """One method (an MS3 or paper run) beside the paper's long reference labels: constrained_layout
    used to collapse the axes to nothing and warn."""
    import warnings

    from avs_lib.report.experiments import reference_lines

    one = _results()[lambda df: df["method"] == "baseline"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = viz.plot_results_bars(one, "miou", references=reference_lines("paper"))
        _saves_png(fig, "results_one", tmp_path)
    box = fig.axes[0].get_position()
    assert box.width > 0.1 and box.height > 0.1


def test_plot_listening_vs_miou_is_one_panel(tmp_path):
    fig = viz.plot_listening_vs_miou(_results())
    assert len(fig.axes) == 1
    _saves_png(fig, "listening", tmp_path)


def _audio_changes(thesis_iou: float = 0.6) -> pd.DataFrame:
    """Two seeds of tpavi (deaf to a swap) and thesis, with every audio-change column."""
    df = pd.DataFrame({"method": ["tpavi", "tpavi", "thesis", "thesis"], "seed": [0, 1, 0, 1]})
    for audio in ("swapped", "silent"):
        df[f"test_{audio}_iou_to_true"] = [1.0, 1.0, thesis_iou - 0.1, thesis_iou + 0.1]
        df[f"test_{audio}_moved_share"] = [0.0, 0.0, 0.5, 0.5]
        df[f"test_{audio}_miou_change"] = [0.0, 0.0, -0.1, -0.1]
        df[f"test_{audio}_abs_area_change"] = [0.0, 0.0, 0.2, 0.2]
    return df


def test_audio_change_draws_a_panel_per_diagnostic_with_the_seed_means_of_each_audio(tmp_path):
    fig, table = viz.plot_audio_change(_audio_changes(), order=["tpavi", "thesis"])
    assert [ax.get_title() for ax in fig.axes] == list(viz.AUDIO_CHANGES.values()) and all(a.has_data() for a in fig.axes)
    iou = table[table["diagnostic"] == "iou_to_true"].set_index(["method", "audio"])["mean"]
    assert iou.to_dict() == pytest.approx({("tpavi", "swapped"): 1.0, ("thesis", "swapped"): 0.6,
                                          ("tpavi", "silent"): 1.0, ("thesis", "silent"): 0.6})
    _saves_png(fig, "audio_change", tmp_path)


def test_audio_change_dots_are_the_same_on_every_draw_and_leave_numpys_stream_alone():
    """seaborn jitters the seed dots with numpy's global generator: the committed figure changed on every run."""
    def dots() -> list:
        fig, _ = viz.plot_audio_change(_audio_changes(), order=["tpavi", "thesis"])
        return [c.get_offsets().tolist() for ax in fig.axes for c in ax.collections]

    np.random.seed(123)
    first, after = dots(), np.random.random()
    np.random.seed(99)
    assert dots() == first and len(first) > 0
    np.random.seed(123)
    assert np.random.random() == after  # the caller's random stream is untouched by the figure


def test_audio_change_sentence_names_the_method_whose_mask_changes_most_or_says_they_change_alike():
    from avs_lib.report.answer import audio_change_text

    text = audio_change_text(viz.plot_audio_change(_audio_changes())[1])
    assert text.startswith("With swapped audio the mask of `thesis` changes most: IoU 0.600 to the own-audio mask, "
                           "50% of clips moved (IoU < 0.5), mIoU -0.100, |area change| 20.0% of the frame; "
                           "`tpavi` least (IoU 1.000).")
    alike = audio_change_text(viz.plot_audio_change(_audio_changes(thesis_iou=1.0))[1])
    assert "With silent audio every method's mask changes alike: IoU 1.000" in alike


def test_plot_per_category_has_a_point_per_method_and_category_with_the_seed_spread(tmp_path):
    df = pd.DataFrame(
        {
            "method": ["a", "a", "b", "b", "a", "a"],
            "seed": [0, 0, 0, 0, 1, 1],
            "category": ["helicopter", "race_car"] * 3,
            "iou": [0.1, 0.2, 0.3, 0.4, 0.3, 0.4],
        }
    )
    fig, numbers = viz.plot_per_category(df)
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o" and len(line.get_xdata())]
    assert len(fig.axes) == 1 and len(points) == 2  # a line of points per method, at its seed means
    np.testing.assert_allclose(points[0].get_xdata(), [0.2, 0.3])
    assert matplotlib.colors.to_hex(points[0].get_color()) == viz.method_color("a")
    a = numbers[(numbers["method"] == "a") & (numbers["category"] == "helicopter")].iloc[0]
    assert a["mean"] == pytest.approx(0.2) and a["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    _saves_png(fig, "per_category", tmp_path)


# ---------------------------------------------------------------- qualitative figures


def test_plot_failure_cases_has_four_panels_per_case(tmp_path):
    case = {
        "frame": _frames()[0],
        "gt": _square(),
        "pred": _square(top=3),
        "title": "towel, not baby",
    }
    fig = viz.plot_failure_cases([case, case])
    assert len(fig.axes) == 8
    _saves_png(fig, "failures", tmp_path)


# ---------------------------------------------------------------- mask browser

RUNS = ["baseline", "crop_losses", "broken"]


class FakeModel:
    """Probabilities whose foreground square moves with the run, clip, frame and audio."""

    def __init__(self):
        self.calls = []

    def __call__(self, run: str, index: int, swapped: bool) -> np.ndarray:
        self.calls.append((run, index, swapped))
        if run == "broken":
            raise RuntimeError("checkpoint for run 'broken' is unreadable")
        probs = np.full((T, S, S), 0.1)
        for t in range(T):
            top, left = RUNS.index(run) + 3 * int(swapped), index + t
            probs[t, top : top + 3, left : left + 3] = 0.9
        return probs


def _audio(index: int, swapped: bool) -> tuple[np.ndarray, int]:
    return np.sin(np.arange(400) * (index + 1 + 5 * swapped) / 10.0), 8000


def _clips() -> list[dict]:
    return [
        {
            "name": "clip_a",
            "category": "helicopter",
            "frames": _frames(seed=1),
            "gt": np.stack([_square(top=1, left=1)] * T),
            "swap_partner": "clip_b",
        },
        {
            "name": "clip_b",
            "category": "race_car",
            "frames": _frames(seed=2),
            "gt": [_square(top=4, left=4), None, None],
            "swap_partner": "clip_a",
        },
    ]


@pytest.fixture
def model():
    return FakeModel()


@pytest.fixture
def browser(model):
    return viz.MaskBrowser(_clips(), model, RUNS, audio=_audio)


def _changes_view(browser, set_value) -> None:
    before_image, before_status = bytes(browser.image.value), browser.status.value
    set_value()
    assert bytes(browser.image.value) != before_image
    assert browser.status.value != before_status
    assert browser.last_error is None


def test_browser_starts_on_the_first_clip_frame_and_run(browser):
    assert bytes(browser.image.value)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "clip_a" in browser.status.value and "frame 1/3" in browser.status.value
    assert "IoU" in browser.status.value and browser.last_error is None


def test_browser_enlarges_small_frames_to_at_least_256_pixels(browser):
    from PIL import Image

    assert Image.open(io.BytesIO(bytes(browser.image.value))).size == (256, 256)


def test_browser_frame_slider_changes_view(browser):
    _changes_view(browser, lambda: setattr(browser.frame_slider, "value", 2))
    assert "frame 2/3" in browser.status.value


def test_browser_clip_dropdown_changes_view(browser):
    _changes_view(browser, lambda: setattr(browser.clip_dropdown, "value", 1))
    assert "clip_b" in browser.status.value


def test_browser_run_dropdown_changes_view(browser):
    _changes_view(browser, lambda: setattr(browser.run_dropdown, "value", "crop_losses"))
    assert "crop_losses" in browser.status.value


@pytest.mark.parametrize("toggle", ["show_gt", "show_prediction", "show_errors"])
def test_browser_overlay_toggles_change_view(browser, toggle):
    box = getattr(browser, toggle)
    _changes_view(browser, lambda: setattr(box, "value", not box.value))


def test_browser_swapped_audio_changes_view_and_names_the_partner(browser):
    _changes_view(browser, lambda: setattr(browser.swapped_toggle, "value", True))
    assert "swapped audio from clip_b" in browser.status.value


def test_browser_reports_a_frame_without_ground_truth(browser):
    browser.clip_dropdown.value = 1
    browser.frame_slider.value = 2
    assert "no GT for this frame" in browser.status.value


def test_browser_audio_player_follows_clip_and_swap(browser):
    first = browser.audio_player.value
    browser.clip_dropdown.value = 1
    second = browser.audio_player.value
    browser.swapped_toggle.value = True
    assert len({bytes(first), bytes(second), bytes(browser.audio_player.value)}) == 3


def test_browser_caches_predictions_per_run_clip_and_audio(browser, model):
    for frame in (2, 3, 1):
        browser.frame_slider.value = frame
    browser.show_errors.value = True
    assert model.calls == [("baseline", 0, False)]
    browser.run_dropdown.value = "crop_losses"
    browser.run_dropdown.value = "baseline"
    assert model.calls == [("baseline", 0, False), ("crop_losses", 0, False)]


def test_browser_shows_a_failing_predict_in_red_and_keeps_it(browser):
    browser.run_dropdown.value = "broken"  # must not raise
    assert isinstance(browser.last_error, RuntimeError)
    assert "#c00" in browser.status.value and "unreadable" in browser.status.value
    browser.run_dropdown.value = "baseline"
    assert "#c00" not in browser.status.value and isinstance(browser.last_error, RuntimeError)


def test_browser_reports_predictions_of_the_wrong_shape():
    browser = viz.MaskBrowser(_clips(), lambda run, i, swapped: np.zeros((T, 4, 4)), ["r"])
    assert isinstance(browser.last_error, ValueError)
    assert "expected probabilities (3, 8, 8)" in browser.status.value


def test_browser_disables_swap_for_a_clip_without_partner(model):
    clips = _clips()
    clips[1]["swap_partner"] = ""
    browser = viz.MaskBrowser(clips, model, RUNS)
    browser.swapped_toggle.value = True
    browser.clip_dropdown.value = 1
    assert browser.swapped_toggle.disabled and browser.swapped_toggle.value is False
    assert browser.audio_player is None


def test_browser_displays_as_a_widget(browser):
    bundle = browser._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == browser.widget.model_id


# ---------------------------------------------------------------- one colour per method, one style


def test_every_configured_method_has_a_colour_of_its_own():
    from avs_lib.datatools.profiles import METHODS

    assert set(METHODS) <= set(viz.METHOD_COLORS)
    colours = [c.lower() for c in viz.METHOD_COLORS.values()]
    assert len(set(colours)) == len(colours)


def test_an_unknown_method_gets_a_fixed_fallback_colour_outside_the_mapping():
    colour = viz.method_color("a_method_added_later")
    assert colour == viz.method_color("a_method_added_later")
    assert colour in viz.FALLBACK_COLORS
    assert colour.lower() not in {c.lower() for c in viz.METHOD_COLORS.values()}


def _bar_colours(fig) -> list[str]:
    from matplotlib.colors import to_hex

    return [to_hex(p.get_facecolor(), keep_alpha=False) for p in fig.axes[0].patches]


def test_a_method_keeps_its_colour_whatever_the_other_methods_in_the_figure():
    both = pd.DataFrame({"method": ["tpavi", "thesis"], "seed": [0, 0], "miou": [0.5, 0.6]})
    alone = both[both["method"] == "thesis"]
    assert _bar_colours(viz.plot_results_bars(both, "miou"))[1] == viz.METHOD_COLORS["thesis"]
    assert _bar_colours(viz.plot_results_bars(alone, "miou")) == [viz.METHOD_COLORS["thesis"]]


def test_loss_curves_colour_a_method_as_the_result_bars_do():
    from matplotlib.colors import to_hex

    steps = pd.DataFrame({"method": ["counterfactual"] * 2, "seed": [0, 0], "global_step": [1, 2],
                          "term": ["total"] * 2, "value": [1.0, 0.5]})
    fig = viz.plot_loss_curves(steps)
    assert {to_hex(line.get_color()) for line in fig.axes[0].lines} == {viz.METHOD_COLORS["counterfactual"]}


def test_set_style_applies_the_report_style_sheet():
    import matplotlib as mpl

    with mpl.rc_context():
        mpl.rcParams["axes.spines.top"] = True
        viz.set_style()
        assert mpl.rcParams["axes.spines.top"] is False
        assert mpl.rcParams["axes.prop_cycle"].by_key()["color"][0].lower() == "#0072b2"


def test_the_style_sheet_ships_as_package_data():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["avs_lib.report"]
    assert viz.STYLE_SHEET.is_file() and any(viz.STYLE_SHEET.match(p) for p in patterns)


def test_listening_plot_draws_the_chance_line_at_the_visual_only_mean():
    df = pd.DataFrame({"method": ["visual_only", "visual_only", "tpavi"], "seed": [0, 1, 0],
                       "miou": [0.1, 0.2, 0.5], "listening_rate": [0.4, 0.5, 0.8]})
    ax = viz.plot_listening_vs_miou(df).axes[0]
    vertical = [line for line in ax.lines if line.get_xdata()[0] == line.get_xdata()[1]]
    assert len(vertical) == 1 and vertical[0].get_xdata()[0] == pytest.approx(0.45)
    assert "chance" in vertical[0].get_label()


def test_listening_plot_title_names_the_listening_rate_not_following():
    ax = viz.plot_listening_vs_miou(_results()).axes[0]
    assert "follow" not in ax.get_title().lower() and "listening" in ax.get_title().lower()


# ---------------------------------------------------------------- the figures that answer the question

from avs_lib.report import inspection  # noqa: E402


def _has_gid(fig, gid: str) -> int:
    return sum(1 for artist in fig.findobj() if artist.get_gid() == gid)


def _gids(fig, prefix: str) -> set[str]:
    return {a.get_gid() for a in fig.findobj() if (a.get_gid() or "").startswith(prefix)}


def _qualitative_rows(methods=("tpavi", "thesis")):
    frame, gt, empty = _frames(1)[0], _square(), np.zeros((S, S), bool)
    masks = {(m, c): (gt if c == "true" else empty) for m in methods for c in ("true", "swapped", "silent")}
    masks[("thesis", "swapped")] = None  # e.g. no swap partner
    return [{"name": f"clip{i}", "frame": frame, "gt": gt, "masks": dict(masks)} for i in range(2)]


def test_qualitative_grid_has_a_panel_per_clip_method_and_condition():
    fig, numbers = viz.plot_qualitative_grid(_qualitative_rows(), ["tpavi", "thesis"], rule="chosen by a rule")
    assert len(fig.axes) == 2 * (1 + 2 * 3)
    assert len(numbers) == 2 * 2 * 3
    assert numbers.loc[numbers["condition"] == "true", "iou"].tolist() == pytest.approx([1.0] * 4)
    assert fig._suptitle.get_text() == "chosen by a rule"


def test_qualitative_grid_marks_every_empty_prediction_and_no_other():
    fig, numbers = viz.plot_qualitative_grid(_qualitative_rows(), ["tpavi", "thesis"])
    empties = int((numbers["empty"] == True).sum())  # noqa: E712 - None where no mask exists
    assert empties == 2 * 3  # tpavi swapped + silent, thesis silent, in each of 2 clips
    assert _has_gid(fig, "empty-marker") == empties


def test_failure_cases_mark_an_empty_prediction():
    case = {"frame": _frames(1)[0], "gt": _square(), "pred": np.zeros((S, S), bool), "title": "empty"}
    assert _has_gid(viz.plot_failure_cases([case]), "empty-marker") == 1
    assert _has_gid(viz.plot_failure_cases([{**case, "pred": _square()}]), "empty-marker") == 0


def test_frame_destination_splits_the_mask_between_object_distractor_and_background():
    sounding, distractor = _square(top=0, left=0, size=2), _square(top=4, left=4, size=2)
    pred = sounding | distractor
    pred[7, 7] = pred[7, 6] = True  # 4 + 4 + 2 background pixels
    shares = inspection.frame_destination(pred, sounding, distractor[None])
    assert shares == pytest.approx({"sounding object": 0.4, "distractor": 0.4, "background": 0.2, "empty": 0.0})
    assert inspection.frame_destination(np.zeros((S, S), bool), sounding, distractor[None])["empty"] == 1.0


def test_mask_destination_bars_stack_to_one_for_each_method_and_condition():
    rows = []
    for method in ("visual_only", "tpavi"):
        for seed in (0, 1):
            for condition in ("true", "swapped", "silent"):
                shares = {"sounding object": 0.5, "distractor": 0.2, "background": 0.1, "empty": 0.2}
                rows.append({"method": method, "run": f"{method}_seed{seed}", "condition": condition, **shares})
    fig, numbers = viz.plot_mask_destinations(pd.DataFrame(rows))
    assert len(fig.axes) == 2  # a facet per method
    bars = [b for ax in fig.axes for b in ax.patches]
    assert len(bars) == 2 * 3 * 4
    for i in range(0, len(bars), 4):
        assert sum(b.get_height() for b in bars[i:i + 4]) == pytest.approx(1.0)
    assert [matplotlib.colors.to_hex(b.get_facecolor(), keep_alpha=False) for b in bars[:4]] == list(viz.DESTINATION_COLORS.values())
    assert numbers[["method", "condition", "runs"]].values.tolist()[0] == ["visual_only", "true", 2]


def test_classify_failure_names_each_kind_by_where_the_mask_lies():
    gt, distractor = _square(top=0, left=0, size=4), _square(top=5, left=5, size=3)
    distractors = distractor[None]
    background = np.zeros((S, S), bool)
    background[5:8, 0:3] = True
    assert inspection.classify_failure(np.zeros((S, S), bool), gt, distractors) == "empty"
    assert inspection.classify_failure(gt, gt, distractors) == "ok"
    assert inspection.classify_failure(distractor, gt, distractors) == "on distractor"
    assert inspection.classify_failure(background, gt, distractors) == "background spill"
    assert inspection.classify_failure(_square(top=0, left=0, size=1), gt, distractors) == "partial"


def test_pick_failures_takes_the_worst_frame_of_each_kind_from_different_clips():
    table = pd.DataFrame({"name": ["a", "a", "b", "c", "d"], "frame": [0, 1, 0, 0, 0],
                          "iou": [0.0, 0.1, 0.0, 0.2, 0.3],
                          "kind": ["empty", "on distractor", "empty", "on distractor", "ok"]})
    picked, rule = inspection.pick_failures(table)
    assert picked[["kind", "name"]].values.tolist() == [["empty", "a"], ["on distractor", "c"]]
    assert "lowest IoU" in rule and "'background spill'" in rule and "'partial'" in rule


def test_iou_vs_area_draws_one_line_per_method_at_the_seed_means():
    df = pd.DataFrame({"method": ["tpavi"] * 4 + ["thesis"] * 4, "seed": [0, 0, 1, 1] * 2,
                       "name": ["small", "large"] * 4, "frame": 0, "area": [0.01, 0.3] * 4,
                       "iou": [0.2, 0.8, 0.4, 0.6, 0.1, 0.9, 0.1, 0.9]})
    fig, numbers = viz.plot_iou_vs_area(df, bins=2)
    assert [line.get_label() for line in fig.axes[0].lines] == ["tpavi", "thesis"]
    tpavi = numbers[numbers["method"] == "tpavi"]
    assert tpavi["mean"].tolist() == pytest.approx([0.3, 0.7])
    assert tpavi["std"].tolist() == pytest.approx([np.std([0.2, 0.4], ddof=1)] * 2)
    assert [c.lower() for c in (fig.axes[0].lines[0].get_color(),)] == [viz.METHOD_COLORS["tpavi"]]


def test_iou_with_area_refuses_a_frame_whose_area_is_unknown():
    per_frame = pd.DataFrame({"method": ["tpavi"], "seed": [0], "name": ["x"], "frame": [0], "iou": [0.5],
                              "has_gt": [True]})
    areas = pd.DataFrame({"name": ["y"], "frame": [1], "area_fraction": [0.1]})
    with pytest.raises(ValueError, match="no mask area"):
        inspection.iou_with_area(per_frame, areas)


def test_validation_curves_band_over_seeds_and_say_what_was_not_logged():
    history = pd.DataFrame([{"method": m, "seed": s, "epoch": e, "metric": "val_miou", "value": 0.1 * e + 0.1 * s}
                            for m in ("tpavi", "thesis") for s in (0, 1) for e in range(3)])
    fig, numbers = viz.plot_validation_curves(history)
    assert len(fig.axes) == 3  # mIoU, listening and following rate
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].collections) == 2  # a mean and a band per method
    assert numbers.attrs["not_logged"] == ["val_listening_rate", "val_following_rate"]
    assert _has_gid(fig, "not-logged") == 2
    first = numbers[(numbers["method"] == "tpavi") & (numbers["epoch"] == 0)].iloc[0]
    assert first["mean"] == pytest.approx(0.05) and first["seeds"] == 2


def test_architecture_is_drawn_from_the_configured_fusion_stages_and_losses():
    from avs_lib.datatools.profiles import build_config

    cfg = build_config("smoke", "tpavi_avm", overrides={"model": {"tpavi_stages": [1, 3]}})
    spec = inspection.architecture_spec(cfg)
    fig, components = viz.plot_architecture(spec)
    assert _gids(fig, "fusion:") == {"fusion:1", "fusion:3"}
    assert _gids(fig, "stage:") == {f"stage:{i}" for i in range(4)}
    assert _gids(fig, "loss:") == {"loss:avs_bce", "loss:avm"}
    assert not _gids(fig, "crop")
    assert "encoder stage 4" in set(components["component"])


def test_architecture_shows_the_thesis_crop_network_separate_or_shared():
    from avs_lib.datatools.profiles import build_config

    for method, shared in (("thesis", False), ("thesis_shared", True)):
        spec = inspection.architecture_spec(build_config("smoke", method))
        assert spec["crop"]["shared"] is shared
        fig, _ = viz.plot_architecture(spec)
        assert _gids(fig, "loss:") == {"loss:avs_bce", "loss:crop_ce", "loss:crop_pairwise", "loss:audio_crop_cosine"}
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert ("shared weights" in texts) is shared and ("(separate)" in texts) is not shared


def test_visual_only_architecture_has_no_fusion_and_no_audio_encoder():
    from avs_lib.datatools.profiles import build_config

    spec = inspection.architecture_spec(build_config("smoke", "visual_only"))
    fig, _ = viz.plot_architecture(spec)
    assert spec["audio_encoder"] is None and not _gids(fig, "fusion:") and not _gids(fig, "audio")


def test_swap_examples_label_the_hit_and_the_miss():
    frame, own, other = _frames(1)[0], _square(top=0, left=0), _square(top=4, left=4)
    empty = np.zeros((S, S), bool)
    rows = [{"outcome": outcome, "title": outcome, "frame": frame, "sounding": own, "swapped_in": other,
             "follows": f, "panels": [("true audio", own), ("swapped audio", swapped), ("silent audio", empty)]}
            for outcome, swapped, f in (("hit", other, 1.0), ("miss", own, 0.0))]
    fig, numbers = viz.plot_swap_examples(rows)
    assert len(fig.axes) == 2 * 4
    assert [sub.get_suptitle().split(":")[0] for sub in fig.subfigs] == ["HIT (follows on 100% of frames)",
                                                                         "MISS (follows on 0% of frames)"]
    assert numbers["swapped audio: on swapped-in object"].tolist() == [9, 0]
    assert _has_gid(fig, "empty-marker") == 2


def test_real_swap_examples_ring_the_ground_truth_alone_and_count_its_pixels():
    frame, gt, moved = _frames(1)[0], _square(top=0, left=0), _square(top=4, left=4)
    rows = [{"outcome": "most changed", "title": "clip", "frame": frame, "sounding": gt, "swapped_in": None,
             "follows": None, "panels": [("true audio", gt), ("swapped audio", moved), ("silent audio", gt)]}]
    fig, numbers = viz.plot_swap_examples(rows)
    assert fig.axes[0].get_title() == "ground truth: dashed ring"
    assert fig.subfigs[0].get_suptitle() == "MOST CHANGED: clip"
    assert numbers[["true audio: on sounding object", "swapped audio: on sounding object"]].values.tolist() == [[9, 0]]
    assert not any("swapped-in" in column for column in numbers.columns)


def test_pick_clips_by_quantiles_states_its_rule():
    clips = pd.DataFrame({"method": "tpavi", "seed": [0, 1] * 5, "name": np.repeat(list("abcde"), 2),
                          "iou": np.repeat([0.5, 0.1, 0.9, 0.3, 0.7], 2)})
    names, rule = inspection.pick_clips_by_quantiles(clips, "tpavi", (0.0, 0.5, 1.0))
    assert names == ["b", "a", "c"]
    assert rule.startswith("test clips at the 0, 50, 100 percentiles of tpavi's per-clip IoU") and "2 seed(s)" in rule


def test_pick_swap_examples_takes_the_clips_that_follow_most_and_least():
    outcomes = pd.DataFrame({"name": ["a", "b", "c"], "follows": [0.4, 1.0, 0.0]})
    picked, rule = inspection.pick_swap_examples(outcomes)
    assert (picked["hit"]["name"], picked["miss"]["name"]) == ("b", "c")
    assert "most frames" in rule and "fewest" in rule


class _ListeningPredictor:
    """Predicts the object whose sound it hears, nothing under silence: a perfect listener."""

    def __init__(self, dataset):
        from avs_lib.engine.evaluate import swap_partners

        self.dataset, self.partners = dataset, swap_partners(dataset)

    def probabilities(self, run, index, audio):
        sounding, distractors = inspection.sidecar_objects(self.dataset, index)
        if audio == "true":
            return sounding.astype(float)
        if audio == "silent":
            return np.zeros(sounding.shape)
        partner_class = self.dataset.clips[self.partners[index]].category_index
        classes = self.dataset.sidecar(self.dataset.clips[index].name).classes
        hits = np.flatnonzero(classes == partner_class)
        return distractors[hits[0] - 1].astype(float) if len(hits) and hits[0] > 0 else np.zeros(sounding.shape)


def test_a_perfect_listener_masks_the_sounding_object_the_swapped_in_one_and_nothing(tiny_synth):
    from avs_lib.data import AVSBenchS4

    predictor = _ListeningPredictor(AVSBenchS4(tiny_synth, "test", image_size=64, crop_labels=False))
    where = inspection.mask_destinations(predictor, {"listener": ["listener_seed0"]})
    means = where.groupby("condition")[list(inspection.DESTINATIONS)].mean()
    assert means.loc["true", "sounding object"] == pytest.approx(1.0, abs=0.02)
    assert means.loc["silent", "empty"] == 1.0
    outcomes = inspection.swap_outcomes(predictor, "listener_seed0")
    assert not outcomes.empty and (outcomes["follows"] == 1.0).all()
    swapped_in_clips = set(outcomes["name"])
    swapped = where[(where["condition"] == "swapped") & where["name"].isin(swapped_in_clips)]
    assert swapped["distractor"].mean() == pytest.approx(1.0, abs=0.02)


def _write_run_masks(run_dir, dataset, masks_of) -> None:
    """A run's test/pred_masks as `evaluate` writes them, from masks_of(index) -> bool [T, S, S]."""
    from PIL import Image

    for index, clip in enumerate(dataset.clips):
        folder = run_dir / "test" / "pred_masks" / clip.category / clip.name
        folder.mkdir(parents=True, exist_ok=True)
        for t, mask in enumerate(masks_of(index)):
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{clip.name}_{t + 1}.png")


def test_failure_table_classifies_each_frame_a_run_predicted(tiny_synth, tmp_path):
    from avs_lib.data import AVSBenchS4

    dataset = AVSBenchS4(tiny_synth, "test", image_size=64, crop_labels=False)
    # Clip 0 predicts nothing, every other clip predicts its sounding object exactly.
    _write_run_masks(tmp_path, dataset, lambda i: inspection.sidecar_objects(dataset, i)[0] & (i != 0))
    table = inspection.failure_table(tmp_path, dataset)
    first = dataset.clips[0].name
    assert set(table.loc[table["name"] == first, "kind"]) == {"empty"}
    assert set(table.loc[table["name"] != first, "kind"]) == {"ok"}
    picked, _ = inspection.pick_failures(table)
    rows = inspection.failure_rows(tmp_path, dataset, picked)
    assert len(rows) == 1 and rows[0]["title"].startswith("empty") and not rows[0]["pred"].any()


def test_no_clip_is_called_a_hit_when_no_mask_follows_the_audio():
    outcomes = pd.DataFrame({"name": ["a", "b"], "follows": [0.0, 0.0]})
    picked, rule = inspection.pick_swap_examples(outcomes)
    assert list(picked) == ["miss"] and "no hit to show" in rule


def test_a_single_seed_has_an_unknown_spread_not_a_zero_one():
    df = pd.DataFrame({"method": ["tpavi"] * 2, "seed": [0, 0], "name": ["a", "b"], "frame": 0,
                       "area": [0.01, 0.3], "iou": [0.2, 0.8]})
    _, numbers = viz.plot_iou_vs_area(df, bins=2)
    assert numbers["std"].isna().all()


def test_paired_differences_draw_one_row_per_comparison_coloured_only_when_decided():
    table = pd.DataFrame([
        {"method": "counterfactual", "reference": "tpavi", "seed_diff": 0.02, "seed_low": 0.01, "seed_high": 0.03,
         "clip_low": 0.005, "clip_high": 0.035, "verdict": "higher"},
        {"method": "thesis", "reference": "tpavi", "seed_diff": -0.01, "seed_low": -0.04, "seed_high": 0.02,
         "clip_low": float("nan"), "clip_high": float("nan"), "verdict": "no detectable difference at this budget"},
    ])
    fig = viz.plot_paired_differences(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["counterfactual − tpavi", "thesis − tpavi"]
    thick = [line for line in ax.get_lines() if line.get_linewidth() == 4]
    assert matplotlib.colors.to_hex(thick[0].get_color()) == matplotlib.colors.to_hex(viz.method_color("counterfactual"))
    assert matplotlib.colors.to_hex(thick[1].get_color()) == matplotlib.colors.to_hex("0.55")
    with pytest.raises(ValueError, match="empty"):
        viz.plot_paired_differences(table.iloc[:0])


def test_saved_figures_get_the_umasks_mode_like_every_other_output(tmp_path):
    old = os.umask(0o022)
    try:
        path = viz.save_figure(viz.plot_class_counts(pd.DataFrame({"category": ["a"], "split": ["train"]})),
                               "x", tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
