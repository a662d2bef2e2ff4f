"""Every figure of the report and the mask browser: plain data in, a pyplot-free Figure out.

The look is decided once (avs.mplstyle); a method has one colour in every figure; colours are
Okabe-Ito (readable with colour-blindness). The synthetic objects wear every hue, so a mask is a
fill *and* a black-and-white edge (`mark_masks`). Figures that answer the question also return their numbers.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle
from scipy import ndimage
from scipy.io import wavfile

from avs_lib.atomic import write_atomically
from avs_lib.data.avsbench import IMAGENET_MEAN, IMAGENET_STD
from avs_lib.data.categories import S4_CATEGORIES, SPLITS
from avs_lib.metrics import MOVED_BELOW_IOU, frame_iou
from avs_lib.report.grids import CHANCE_METHOD

RGB = tuple[int, int, int]

OKABE_ITO: tuple[RGB, ...] = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233),
                              (213, 94, 0), (240, 228, 66), (0, 0, 0))
PRED_COLOR: RGB = (0, 114, 178)  # blue
GT_COLOR: RGB = (240, 228, 66)  # yellow
TP_COLOR: RGB = (0, 158, 115)  # bluish green
FP_COLOR: RGB = (213, 94, 0)  # vermillion
FN_COLOR: RGB = (204, 121, 167)  # reddish purple
PRED_EDGE: RGB = (0, 0, 0)
ERROR_PARTS = ((TP_COLOR, "true positive"), (FP_COLOR, "false positive"), (FN_COLOR, "false negative"))
FILL_ALPHA = 0.55

STYLE_SHEET = Path(__file__).with_name("avs.mplstyle")

# The main comparison takes the Okabe-Ito colours (the floor grey, the baseline blue, the thesis
# vermillion); variants and ablations distinct darker or lighter shades.
METHOD_COLORS: dict[str, str] = {
    "visual_only": "#999999", "tpavi": "#0072b2", "tpavi_avm": "#56b4e9", "thesis": "#d55e00",
    "thesis_shared": "#e69f00", "thesis_no_relu": "#8c564b", "cross_attention": "#cc79a7",
    "counterfactual": "#009e73", "thesis_counterfactual": "#000000", "thesis_minus_crop_ce": "#f4a582",
    "thesis_minus_pairwise": "#b2182b", "thesis_minus_cosine": "#762a83", "thesis_shared_trainable": "#6a3d9a",
    "tpavi_random_closed": "#a6cee3", "tpavi_random_open": "#b2df8a", "tpavi_pretrained_closed": "#fb9a99",
    "tpavi_pretrained_trained": "#cab2d6", "counterfactual_random_closed": "#33a02c",
    "tpavi_trained": "#003f6b", "thesis_trained": "#8a3b00", "thesis_literal_c": "#ff7f0e",
    "thesis_trained_literal_c": "#5c2700", "thesis_trained_lambda0.1": "#c26a2e",
    "thesis_trained_lambda0.01": "#e0a47a", "tpavi_2x": "#2b6f9e", "thesis_2x": "#b04a10",
}
# For names outside METHOD_COLORS: none of these is in METHOD_COLORS.
FALLBACK_COLORS: tuple[str, ...] = ("#1b9e77", "#7570b3", "#66a61e", "#a6761d", "#e7298a",
                                    "#17becf", "#bcbd22", "#525252", "#9e9ac8", "#fdae6b")

_style_applied = False


# ---------------------------------------------------------------- style and saving


def set_style() -> None:
    """Apply avs.mplstyle, the one place the look of every figure is decided."""
    import matplotlib.style

    global _style_applied
    matplotlib.style.use(STYLE_SHEET)
    _style_applied = True


def method_color(method: str) -> str:
    """METHOD_COLORS, else a fallback chosen by a checksum of the name: the same in every figure."""
    return METHOD_COLORS.get(method, FALLBACK_COLORS[zlib.crc32(method.encode()) % len(FALLBACK_COLORS)])


class ReportFigure(Figure):
    """A Figure that shows itself as PNG as a cell's last expression, without pyplot (never twice)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi, bbox_inches="tight")
        return buffer.getvalue()


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    if not _style_applied:
        set_style()
    return ReportFigure(figsize=(width, height), layout=layout)


def _one_panel(width: float, height: float) -> tuple[Figure, Axes]:
    fig = _new_figure(width, height)
    return fig, fig.subplots()


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def save_figure(fig: Figure, name: str, figures_dir: str | Path = "figures", dpi: int = 150) -> Path:
    """Write `fig` to `figures_dir/name.png` atomically (notebooks cite figures by a stable stem)."""
    if not isinstance(fig, Figure):
        raise ValueError(f"save_figure: expected a matplotlib Figure, got {type(fig).__name__}")
    stem = name[:-4] if name.lower().endswith(".png") else name
    if not _NAME.match(stem):
        raise ValueError(f"save_figure: figure name {name!r} must be a plain file stem "
                         "(letters, digits, '_', '-', '.'; no folders)")
    path = Path(figures_dir) / f"{stem}.png"  # written with the umask's mode, like every other output
    write_atomically(path, lambda file: fig.savefig(file, format="png", dpi=dpi, bbox_inches="tight"))
    return path


def legend_outside(fig: Figure, ax: Axes, **kwargs: Any) -> None:
    """`ax`'s legend (seaborn's, or its labelled artists) right of every axis, so none covers data."""
    legend = ax.get_legend()
    if legend is not None:  # seaborn's: moved to the figure
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
    else:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", **kwargs)


# ---------------------------------------------------------------- input checks


def _numpy(x: Any) -> np.ndarray:
    """numpy view of an array or a (CPU or GPU) torch tensor."""
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def _rgb(x: Any, what: str, ndim: int = 3) -> np.ndarray:
    """uint8 pixels: one frame [H, W, 3] (ndim 3) or frames [T, H, W, 3] (ndim 4)."""
    x = _numpy(x)
    if x.dtype != np.uint8 or x.ndim != ndim or x.shape[-1] != 3:
        expected = "a uint8 frame [H, W, 3]" if ndim == 3 else "uint8 frames [T, H, W, 3]"
        raise ValueError(f"{what}: expected {expected}, got {x.dtype} {x.shape}")
    return x


def _mask(mask: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """bool [H, W] from a bool or 0/1 array; other values are an error, not a threshold."""
    mask = _numpy(mask)
    if mask.shape != shape:
        raise ValueError(f"{what}: expected a mask of shape {shape}, got {mask.shape}")
    if mask.dtype != np.bool_:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{what}: expected a binary mask (bool or 0/1), found other values")
        mask = mask != 0
    return mask


def _frame_masks(masks: Any, frames: np.ndarray, what: str) -> list[np.ndarray | None]:
    """Per-frame optional masks from None, a [T, H, W] array, or a length-T list with Nones."""
    t, h, w = frames.shape[:3]
    if masks is None:
        return [None] * t
    if len(masks) != t:  # each mask's shape is checked by _mask
        raise ValueError(f"{what}: expected {t} per-frame masks, got {len(masks)}")
    return [None if m is None else _mask(m, (h, w), f"{what}[{i}]") for i, m in enumerate(masks)]


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; the table has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: the table is empty; nothing to plot")


def _hex(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def _ordered(values: pd.Series, order: Sequence[str] | None) -> list:
    """`order` if given (checked), else order of first appearance."""
    present = list(dict.fromkeys(values))
    if order is None:
        return present
    unknown = [v for v in present if v not in order]
    if unknown:
        raise ValueError(f"values {unknown} are not in the given order {list(order)}")
    return [v for v in order if v in present]


def _category_order(categories: pd.Series) -> list[str]:
    """Official S4 order when every name is an S4 category, else sorted."""
    present = set(categories)
    return [c for c in S4_CATEGORIES if c in present] if present <= set(S4_CATEGORIES) else sorted(present)


def _titled(fig: Figure, title: str) -> Figure:
    if title:
        fig.suptitle(title)
    return fig


def _image_axis(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image)
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize="small")


# ---------------------------------------------------------------- pixels


def denormalize(frames: Any) -> np.ndarray:
    """The readers' ImageNet-normalised float [T, 3, S, S] (or [3, S, S]) back to uint8 [T, S, S, 3] pixels."""
    x = _numpy(frames).astype(np.float64)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"denormalize: expected frames [T, 3, S, S] or [3, S, S], got {x.shape}")
    x = (x * np.array(IMAGENET_STD).reshape(3, 1, 1) + np.array(IMAGENET_MEAN).reshape(3, 1, 1)) * 255.0
    x = np.moveaxis(x, -3, -1)  # [..., 3, S, S] -> [..., S, S, 3]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def overlay(frame: Any, mask: Any, color: RGB = PRED_COLOR, alpha: float = 0.5) -> np.ndarray:
    """A copy of uint8 [S, S, 3] `frame` with round((1 - alpha) * pixel + alpha * color) in the mask."""
    frame = _rgb(frame, "overlay frame")
    mask = _mask(mask, frame.shape[:2], "overlay mask")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    out = frame.copy()
    blended = (1.0 - alpha) * frame[mask].astype(np.float64) + alpha * np.asarray(color, dtype=np.float64)
    out[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def mask_outline(mask: Any) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it or off the image."""
    mask = _numpy(mask).astype(bool)
    return mask & ~ndimage.binary_erosion(mask)


def mask_ring(mask: Any) -> np.ndarray:
    """The pixels just outside the mask (a 4-neighbour inside it)."""
    mask = _numpy(mask).astype(bool)
    return ndimage.binary_dilation(mask) & ~mask


def mark_masks(frame: Any, pred: Any = None, gt: Any = None, errors: Any = None, ring: Any = None) -> np.ndarray:
    """The one way figures and browser draw masks (bool [S, S]) on a frame: `pred` filled (or TP/FP/FN
    against `errors`) in a black edge, `gt` a dashed black-and-white ring, `ring` (e.g. the swapped-in
    object) white inside black; black and white are in no object's palette, so edges show on any colour."""
    frame = _rgb(frame, "mark_masks frame")
    shape = frame.shape[:2]
    image = frame.copy()
    if pred is not None:
        pred = _mask(pred, shape, "mark_masks pred")
        truth = None if errors is None else _mask(errors, shape, "mark_masks errors")
        parts = [(pred, PRED_COLOR)] if truth is None else [(pred & truth, TP_COLOR), (pred & ~truth, FP_COLOR),
                                                             (~pred & truth, FN_COLOR)]
        for part, color in parts:
            image = overlay(image, part, color, FILL_ALPHA)
        image[mask_outline(pred)] = PRED_EDGE
    if gt is not None:
        edge = mask_ring(_mask(gt, shape, "mark_masks gt"))
        ys, xs = np.indices(shape)
        dashes = (xs + ys) // 2 % 2 == 0  # every other pair of diagonals
        image[edge] = np.where(dashes[edge][:, None], (255, 255, 255), (0, 0, 0))
    if ring is not None:
        ring = _mask(ring, shape, "mark_masks ring")
        inner = mask_ring(ring)
        image[inner] = (255, 255, 255)
        image[mask_ring(inner | ring) & ~ring] = (0, 0, 0)
    return image


# ---------------------------------------------------------------- data figures


def plot_clip(frames: Any, masks: Mapping[str, Any], title: str = "",
              colors: Mapping[str, RGB] | None = None) -> Figure:
    """Frames uint8 [T, S, S, 3] in a row, then one row per named mask ([T, S, S], a list with
    Nones, or None); rows not in `colors` take the Okabe-Ito colours in order."""
    frames = _rgb(frames, "plot_clip frames", ndim=4)
    rows = {label: _frame_masks(value, frames, f"plot_clip masks[{label!r}]") for label, value in masks.items()}
    fig = _new_figure(1.8 * len(frames), 1.8 * len(rows) + 2.2)
    axes = fig.subplots(1 + len(rows), len(frames), squeeze=False)
    for c, ax in enumerate(axes[0]):
        _image_axis(ax, frames[c], f"frame {c + 1}")
    axes[0, 0].set_ylabel("frame")
    for r, (label, row_masks) in enumerate(rows.items(), start=1):
        color = (colors or {}).get(label, OKABE_ITO[(r - 1) % len(OKABE_ITO)])
        for ax, frame, mask in zip(axes[r], frames, row_masks, strict=True):
            _image_axis(ax, frame if mask is None else overlay(frame, mask, color))
            if mask is None:
                ax.text(0.5, 0.5, "no mask", transform=ax.transAxes, ha="center", va="center", color="white",
                        fontsize="small")
        axes[r, 0].set_ylabel(label)
    return _titled(fig, title)


def plot_class_counts(df: pd.DataFrame, title: str = "Videos per category") -> Figure:
    """Videos per category and split, from one row per video (`split`, `category`)."""
    _require_columns(df, ["split", "category"], "plot_class_counts")
    categories = _category_order(df["category"])
    fig, ax = _one_panel(7, 0.3 * len(categories) + 1.2)
    sns.countplot(df, y="category", hue="split", order=categories, saturation=1, ax=ax,
                  hue_order=_ordered(df["split"], SPLITS if set(df["split"]) <= set(SPLITS) else None))
    ax.set(xlabel="videos", ylabel=None, title=title)
    legend_outside(fig, ax, title="split")
    return fig


def plot_mask_area_hist(areas: pd.DataFrame, bins: int = 40, title: str = "Ground-truth mask area") -> Figure:
    """Density of the masks' share of the frame (`area_fraction`) per `split`, over the data's range."""
    _require_columns(areas, ["split", "area_fraction"], "plot_mask_area_hist")
    top = float(areas["area_fraction"].max())
    counts = areas["split"].value_counts()
    fig, ax = _one_panel(6, 3.5)
    sns.histplot(areas.assign(split=[f"{s} (n={counts[s]})" for s in areas["split"]]), x="area_fraction",
                 hue="split", bins=np.linspace(0.0, top if top > 0 else 1.0, bins + 1), stat="density",
                 common_norm=False, element="step", fill=False, linewidth=1.8, ax=ax)
    ax.set(xlabel="mask area / frame area", ylabel="density", title=title)
    legend_outside(fig, ax, title="split")
    return fig


def plot_waveform_and_logmel(waveform: Any, sr: int, log_mel: Any, title: str = "") -> Figure:
    """A clip's sound: the mono waveform in [-1, 1] (None: none on disk) above its VGGish log-mel
    examples [n, 1, 96, 64] or [n, 96, 64] laid end to end."""
    mel = _numpy(log_mel).astype(np.float64)
    if mel.ndim == 4 and mel.shape[1] == 1:
        mel = mel[:, 0]  # [n, 1, 96, 64] -> [n, 96, 64]
    if mel.ndim != 3 or mel.shape[1:] != (96, 64):
        raise ValueError(f"plot_waveform_and_logmel: expected log-mel [n, 1, 96, 64] or [n, 96, 64], "
                         f"got {_numpy(log_mel).shape}")
    fig = _new_figure(8, 2.5 if waveform is None else 4.5)
    if waveform is None:
        ax_mel = fig.subplots()
    else:
        ax_wave, ax_mel = fig.subplots(2, 1, sharex=True)
        ax_wave.plot(np.arange(len(waveform)) / sr, _numpy(waveform), linewidth=0.5, color=_hex(OKABE_ITO[0]))
        ax_wave.set_ylabel("amplitude")
    n, example_s = mel.shape[0], 0.96  # a VGGish example: 96 frames 10 ms apart
    image = ax_mel.imshow(mel.reshape(n * 96, 64).T, origin="lower", aspect="auto", cmap="magma",
                          extent=(0.0, n * example_s, 0.0, 64.0))  # [n, 96, 64] -> [64 bands, n*96 frames]
    ax_mel.vlines(np.arange(1, n) * example_s, 0.0, 64.0, color="white", linewidth=0.8, linestyle="--")
    ax_mel.grid(False)
    ax_mel.set(xlabel="time (s)", ylabel="mel band")
    fig.colorbar(image, ax=ax_mel, label="log(mel + 0.01)")
    return _titled(fig, title)


def plot_boxes_on_frames(frames: Any, boxes: Any, masks: Any = None, title: str = "") -> Figure:
    """Crop labels [T, 4] (xmin, ymin, xmax, ymax; max exclusive) on their frames, over optional masks."""
    frames = _rgb(frames, "plot_boxes_on_frames frames", ndim=4)
    boxes = _numpy(boxes).astype(np.float64)
    if boxes.shape != (len(frames), 4):
        raise ValueError(f"plot_boxes_on_frames: expected boxes [{len(frames)}, 4], got {boxes.shape}")
    frame_masks = _frame_masks(masks, frames, "plot_boxes_on_frames masks")
    fig = _new_figure(2.2 * len(frames), 2.6)
    axes = fig.subplots(1, len(frames), squeeze=False)[0]
    for i, (ax, (xmin, ymin, xmax, ymax), mask) in enumerate(zip(axes, boxes, frame_masks, strict=True)):
        _image_axis(ax, frames[i] if mask is None else overlay(frames[i], mask, GT_COLOR), f"frame {i + 1}")
        # Pixel k spans [k - 0.5, k + 0.5] in imshow coordinates; the box covers pixels xmin..xmax-1.
        ax.add_patch(Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin, ymax - ymin,
                               fill=False, edgecolor=_hex(FP_COLOR), linewidth=2))
    return _titled(fig, title)


def plot_crop_grid(crops: Any, labels: Sequence[str], ncols: int = 5, title: str = "") -> Figure:
    """Crops uint8 [N, c, c, 3] of the sounding object with their labels, `ncols` to a row."""
    crops = _rgb(crops, "plot_crop_grid crops", ndim=4)
    if len(labels) != len(crops):
        raise ValueError(f"plot_crop_grid: {len(crops)} crops but {len(labels)} labels")
    if ncols < 1:
        raise ValueError(f"plot_crop_grid: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(crops))
    nrows = math.ceil(len(crops) / ncols)
    fig = _new_figure(2.0 * ncols, 2.2 * nrows + (0.3 if title else 0))
    for i, ax in enumerate(fig.subplots(nrows, ncols, squeeze=False).ravel()):
        if i < len(crops):
            _image_axis(ax, crops[i], labels[i])
        else:
            fig.delaxes(ax)
    return _titled(fig, title)


def plot_box_mask_iou_hist(df: pd.DataFrame, threshold: float | None = None, bins: int = 40,
                           title: str = "Crop box vs. box of the GT mask") -> Figure:
    """How well crop labels (`iou` with the mask's box) agree with the masks; `flagged` stacked apart."""
    _require_columns(df, ["iou", "flagged"], "plot_box_mask_iou_hist")
    flagged = df["flagged"].astype(bool).to_numpy()
    iou = df["iou"].to_numpy(dtype=float)
    fig, ax = _one_panel(6, 3.5)
    ax.hist([iou[~flagged], iou[flagged]], bins=np.linspace(0, 1, bins + 1), stacked=True,
            color=[_hex(OKABE_ITO[0]), _hex(FP_COLOR)],
            label=[f"ok ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"])
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="IoU(crop box, box of GT mask)", ylabel="frames", title=title)
    legend_outside(fig, ax)
    return fig


# ---------------------------------------------------------------- training and results


def _seed_band(ax: Axes, per_seed: pd.DataFrame, color: str, label: str, **line: Any) -> tuple[pd.Series, pd.Series]:
    """The mean over the seeds (columns) as a line in a ± std band; the std is NaN for one seed (unknown)."""
    mean = per_seed.mean(axis=1)
    std = per_seed.std(axis=1, ddof=1).fillna(0.0) if per_seed.shape[1] > 1 else mean * np.nan
    ax.plot(per_seed.index, mean.to_numpy(), color=color, label=label, **line)
    band = std.fillna(0.0)
    ax.fill_between(per_seed.index, (mean - band).to_numpy(), (mean + band).to_numpy(), color=color, alpha=0.2,
                    linewidth=0)
    return mean, std


def plot_loss_curves(df: pd.DataFrame, smooth: int = 1, order: Sequence[str] | None = None) -> Figure:
    """Training losses (`experiments.loss_curves`), a panel per term, three to a row: thin lines
    single seeds (rolling mean over `smooth` steps), thick the mean over seeds."""
    _require_columns(df, ["method", "seed", "global_step", "term", "value"], "plot_loss_curves")
    if smooth < 1:
        raise ValueError(f"plot_loss_curves: smooth must be >= 1, got {smooth}")
    terms, methods = list(dict.fromkeys(df["term"])), _ordered(df["method"], order)
    ncols = min(3, len(terms))
    fig = _new_figure(4.0 * ncols, 3.0 * math.ceil(len(terms) / ncols))
    axes = fig.subplots(math.ceil(len(terms) / ncols), ncols, squeeze=False).ravel()
    for ax, term in zip(axes, terms, strict=False):
        for method in methods:
            rows = df[(df["term"] == term) & (df["method"] == method)]
            if rows.empty:
                continue
            per_seed = (rows.pivot_table(index="global_step", columns="seed", values="value", aggfunc="mean")
                        .sort_index().rolling(smooth, min_periods=1).mean())  # [steps, seeds]
            ax.plot(per_seed.index, per_seed.to_numpy(), color=method_color(method), linewidth=0.6, alpha=0.35)
            ax.plot(per_seed.index, per_seed.mean(axis=1), color=method_color(method), linewidth=1.8, label=method)
        ax.set(title=term, xlabel="global step")
    for ax in axes[len(terms):]:
        fig.delaxes(ax)
    legend_outside(fig, axes[0], title="method")
    return fig


REFERENCE_GREYS = ("#000000", "#555555", "#888888")
REFERENCE_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))


def plot_results_bars(df: pd.DataFrame, metric: str, order: Sequence[str] | None = None,
                      references: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """`metric` per method from one row per (method, seed): bar = mean over seeds, error bar =
    sample std, dots = seeds; `references` (label -> value) as grey dashed lines."""
    _require_columns(df, ["method", "seed", metric], "plot_results_bars")
    methods = _ordered(df["method"], order)
    summary = df.groupby("method")[metric].agg(["mean", "std"]).reindex(methods).fillna({"std": 0.0})
    # Room for the bars and, beside them, the references' legend: with one method and the paper's
    # long reference labels a fixed width left the axes no room (constrained_layout gave up).
    legend = 0.075 * max(map(len, references)) + 0.6 if references else 0.0
    fig, ax = _one_panel(max(0.95 * len(methods) + 3.0, 0.95 * len(methods) + 1.5 + legend), 3.8)
    sns.barplot(df, x="method", y=metric, hue="method", order=methods, hue_order=methods, errorbar="sd",
                palette={m: method_color(m) for m in methods}, saturation=1, capsize=0.2, alpha=0.75, legend=False,
                ax=ax)
    sns.swarmplot(df, x="method", y=metric, order=methods, color="black", size=4, ax=ax)
    for i, (mean, std) in enumerate(summary.itertuples(index=False)):
        ax.annotate(f"{mean:.3f}", (i, mean + std), textcoords="offset points", xytext=(0, 4), ha="center",
                    fontsize="small")
    # References in shades of grey with their own dashes: no method colour means two things.
    for k, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=REFERENCE_GREYS[k % len(REFERENCE_GREYS)],
                   linestyle=REFERENCE_DASHES[k % len(REFERENCE_DASHES)], linewidth=1, label=label)
    legend_outside(fig, ax)
    for label in ax.get_xticklabels():  # long method names, right-aligned so that they do not overlap
        label.set(rotation=20, ha="right", rotation_mode="anchor")
    ax.set(xlabel=None, ylabel=metric, title=title if title is not None else f"{metric} (mean ± std over seeds)")
    return fig


def top_follower(df: pd.DataFrame, methods: Sequence[str] | None = None, column: str = "test_following_rate",
                 deaf: str = CHANCE_METHOD) -> str | None:
    """The one rule notebooks 04 and 05 name the listener by: the highest mean `column` among
    `methods` (all when None), the deaf model left out, ties by name; None without the rate."""
    rows = df[df["method"] != deaf] if methods is None else df[df["method"].isin(methods) & (df["method"] != deaf)]
    means = rows.groupby("method")[column].mean().dropna() if column in rows.columns else pd.Series(dtype=float)
    return None if means.empty else str(means.sort_index().idxmax())


def plot_listening_vs_miou(df: pd.DataFrame, order: Sequence[str] | None = None,
                           title: str = "Listening rate against mIoU") -> Figure:
    """Listening rate against mIoU: a dot per seed, a diamond per method mean, and the chance level
    (the mean of CHANCE_METHOD, a model that hears nothing) as a dashed line."""
    _require_columns(df, ["method", "seed", "miou", "listening_rate"], "plot_listening_vs_miou")
    fig, ax = _one_panel(8.0, 4.6)
    for method in _ordered(df["method"], order):
        rows = df[df["method"] == method]
        ax.scatter(rows["listening_rate"], rows["miou"], color=method_color(method), s=20, alpha=0.7)
        ax.scatter(rows["listening_rate"].mean(), rows["miou"].mean(), color=method_color(method), s=160,
                   marker="D", edgecolor="black", label=method, zorder=3)
    deaf = df.loc[df["method"] == CHANCE_METHOD, "listening_rate"].dropna()
    if not deaf.empty:
        ax.axvline(deaf.mean(), color="black", linestyle="--", linewidth=1, zorder=1,
                   label=f"chance ({CHANCE_METHOD}: {deaf.mean():.2f})")
    ax.set(xlim=(-0.02, 1.02), xlabel="listening rate (swapped audio moves the mask)", ylabel="mIoU", title=title)
    legend_outside(fig, ax, title="method (mean)")
    return fig


# The audio-change diagnostics (`metrics.audio_change_summary`), which need no per-object truth.
AUDIO_CHANGES = {"iou_to_true": "IoU to the own-audio mask", "moved_share": f"clips moved (IoU < {MOVED_BELOW_IOU:g})",
                 "miou_change": "mIoU change", "abs_area_change": "|area change| (share of the frame)"}


def plot_audio_change(df: pd.DataFrame, order: Sequence[str] | None = None) -> tuple[Figure, pd.DataFrame]:
    """A panel per diagnostic from a row per (method, seed) with `test_{audio}_{diagnostic}` columns: bar =
    mean over seeds, error bar = sample std, dots = seeds; and a (method, audio, diagnostic, mean, std) table."""
    columns = [f"test_{audio}_{key}" for key in AUDIO_CHANGES for audio in ("swapped", "silent")]
    _require_columns(df, ["method", "seed", *columns], "plot_audio_change")
    methods = _ordered(df["method"], order)
    long = df.melt(["method", "seed"], columns)  # [runs * columns] rows: method, seed, variable, value
    long[["audio", "diagnostic"]] = long["variable"].str.removeprefix("test_").str.split("_", n=1, expand=True)
    style = {"x": "audio", "y": "value", "hue": "method", "hue_order": methods}
    fig = _new_figure(3.0 * len(AUDIO_CHANGES) + 1.4, 3.6)
    for ax, (key, label) in zip(fig.subplots(1, len(AUDIO_CHANGES)), AUDIO_CHANGES.items(), strict=True):
        rows = long[long["diagnostic"] == key]
        sns.barplot(rows, **style, palette={m: method_color(m) for m in methods}, errorbar="sd", capsize=0.15,
                    saturation=1, alpha=0.75, legend=key == "iou_to_true", ax=ax)
        state = np.random.get_state()  # seaborn draws the strip's jitter from numpy's global generator:
        np.random.seed(0)  # a fixed seed draws the same figure on every run, and the caller's stream is restored
        sns.stripplot(rows, **style, palette={m: "black" for m in methods}, dodge=True, size=3, legend=False, ax=ax)
        np.random.set_state(state)
        ax.set(title=label, xlabel=None, ylabel=None)
    legend_outside(fig, fig.axes[0], title="method")
    table = long.groupby(["method", "audio", "diagnostic"], sort=False)["value"].agg(["mean", "std"]).reset_index()
    title = "How much the mask changes with swapped or silent audio (mean ± std over seeds; dots: single seeds)"
    return _titled(fig, title), table


def plot_per_category(df: pd.DataFrame, order: Sequence[str] | None = None,
                      title: str = "IoU per category") -> tuple[Figure, pd.DataFrame]:
    """Mean IoU ± std over seeds per category and method, from `experiments.per_category` (or a row per clip
    and run); and per (category, method) the mean and std (NaN for one seed) of the per-seed means."""
    _require_columns(df, ["method", "seed", "category", "iou"], "plot_per_category")
    methods, categories = _ordered(df["method"], order), _category_order(df["category"])
    per_seed = df.groupby(["category", "method", "seed"])["iou"].mean()
    table = per_seed.groupby(["category", "method"]).agg(mean="mean", std=lambda v: v.std(ddof=1), seeds="size")
    counted = df["n_clips"] if "n_clips" in df.columns else pd.Series(1, index=df.index)  # else a row per clip
    clips = counted.groupby([df["category"], df["method"], df["seed"]]).sum().groupby("category").max()
    table = table.join(clips.rename("clips"), on="category").reset_index()
    fig, ax = _one_panel(9.5, 0.5 * len(categories) + 1.6)
    sns.pointplot(per_seed.reset_index(), x="iou", y="category", hue="method", order=categories, hue_order=methods,
                  palette={m: method_color(m) for m in methods}, errorbar="sd", dodge=0.8 - 0.8 / len(methods),
                  linestyle="none", markersize=5, capsize=0.1, ax=ax)
    ax.set_yticks(range(len(categories)), [f"{c} ({int(clips.get(c, 0))} clips)" for c in categories])
    ax.set(xlim=(0, 1), xlabel="mean test IoU (bar: ± std over seeds)", ylabel=None, title=title)
    legend_outside(fig, ax, title="method")
    return fig, table


# ---------------------------------------------------------------- qualitative figures

EMPTY_COLOR = "#c00000"  # the marker of an empty prediction: a red frame and a red "empty" label
CONDITION_LABELS = {"true": "own audio", "swapped": "swapped audio", "silent": "silent"}
DESTINATION_COLORS = {"sounding object": _hex(TP_COLOR), "distractor": _hex(FP_COLOR),
                      "background": "#bbbbbb", "empty": "#ffffff"}
LOSS_LABELS = {"avs_bce": "segmentation BCE", "avm": "AVM", "crop_ce": "A: crop CE",
               "crop_pairwise": "B: pairwise", "audio_crop_cosine": "C: audio-crop cosine",
               "counterfactual": "counterfactual BCE"}
LOSS_COLOR = "#c00000"


def _prediction_panel(ax: Axes, frame: np.ndarray, pred: np.ndarray | None, title: str | None) -> None:
    """A prediction over its frame; a missing one (None) said, an empty one (which draws nothing at
    all) in a red frame with a red label."""
    _image_axis(ax, frame if pred is None else mark_masks(frame, pred), title)
    if pred is None:
        ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", va="center", color="white")
    elif not pred.any():
        for spine in ax.spines.values():
            spine.set(visible=True, edgecolor=EMPTY_COLOR, linewidth=3)
        ax.text(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center", color="white",
                fontsize="small", fontweight="bold", bbox={"facecolor": EMPTY_COLOR, "edgecolor": "none"},
                gid="empty-marker")


def plot_failure_cases(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """A row per case (`frame`, `gt`, `pred`, `title`): frame | ground truth | prediction | errors."""
    if not rows:
        raise ValueError("plot_failure_cases: expected at least one case")
    fig = _new_figure(9.0, 2.4 * len(rows) + 0.5)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for r, case in enumerate(rows):
        frame = _rgb(case["frame"], f"plot_failure_cases case {r} frame")
        gt = _mask(case["gt"], frame.shape[:2], f"plot_failure_cases case {r} gt")
        pred = _mask(case["pred"], frame.shape[:2], f"plot_failure_cases case {r} pred")
        _image_axis(axes[r, 0], frame, "frame" if r == 0 else None)
        _image_axis(axes[r, 1], mark_masks(frame, gt=gt), "ground truth" if r == 0 else None)
        _prediction_panel(axes[r, 2], frame, pred, f"prediction, IoU {frame_iou(pred, gt):.2f}")
        _image_axis(axes[r, 3], mark_masks(frame, pred, gt, errors=gt), "errors" if r == 0 else None)
        axes[r, 0].set_ylabel(case["title"], fontsize="small")
    handles = [Patch(facecolor="white", edgecolor="black", linestyle="--", label="ground truth (dashed ring)"),
               Patch(facecolor=_hex(PRED_COLOR), edgecolor=_hex(PRED_EDGE), label="prediction (black edge)")]
    handles += [Patch(color=_hex(c), label=n) for c, n in ERROR_PARTS]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small")
    return fig


def plot_qualitative_grid(rows: Sequence[Mapping[str, Any]], methods: Sequence[str],
                          rule: str = "") -> tuple[Figure, pd.DataFrame]:
    """A block per clip (`inspection.qualitative_rows`): methods down, the ground truth and the audio conditions
    across, `rule` as title; and per (name, method, condition) the IoU and whether the mask is empty."""
    if not rows or not methods:
        raise ValueError("plot_qualitative_grid: expected at least one clip and one method")
    ncols = 1 + len(CONDITION_LABELS)
    fig = _new_figure(1.8 * ncols + 1.0, (1.75 * len(methods) + 0.45) * len(rows) + 0.5)
    numbers = []
    for r, (sub, row) in enumerate(zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, strict=True)):
        frame = _rgb(row["frame"], f"plot_qualitative_grid row {r} frame")
        gt = _mask(row["gt"], frame.shape[:2], f"plot_qualitative_grid row {r} gt")
        sub.suptitle(f"clip {row['name']}", fontsize="small", fontweight="bold")
        axes = sub.subplots(len(methods), ncols, squeeze=False)
        _image_axis(axes[0, 0], mark_masks(frame, gt=gt), "ground truth")
        for ax in axes[1:, 0]:
            sub.delaxes(ax)
        for m, method in enumerate(methods):
            axes[m, 1].set_ylabel(method, color=method_color(method), fontweight="bold", fontsize="small")
            for c, (condition, label) in enumerate(CONDITION_LABELS.items()):
                value = row["masks"][method, condition]
                pred = None if value is None else _mask(value, frame.shape[:2], f"mask {(method, condition)} of {row['name']!r}")
                iou = float("nan") if pred is None else frame_iou(pred, gt)
                _prediction_panel(axes[m, 1 + c], frame, pred, label if m == 0 else None)
                if pred is not None:
                    axes[m, 1 + c].set_xlabel(f"IoU {iou:.2f}", fontsize="x-small")
                numbers.append({"name": row["name"], "method": method, "condition": condition, "iou": iou,
                                "empty": None if pred is None else not pred.any()})
    if rule:
        fig.suptitle(rule, fontsize="small")
    return fig, pd.DataFrame(numbers)


# ---------------------------------------------------------------- figures that answer the question


def plot_paired_differences(comparisons: pd.DataFrame, title: str = "Paired differences") -> Figure:
    """A row per comparison (`stats.compare_to_baseline`): the seed difference's 95 % t-interval (thick) and the
    clip-bootstrap interval (thin), in the method's colour only when the verdict is "higher" or "lower"."""
    _require_columns(comparisons, ["method", "reference", "seed_diff", "seed_low", "seed_high",
                                   "clip_low", "clip_high", "verdict"], "plot_paired_differences")
    fig, ax = _one_panel(7.0, 0.45 * len(comparisons) + 1.2)
    labels = []
    for y, row in enumerate(comparisons.itertuples(index=False)):
        color = method_color(row.method) if row.verdict in ("higher", "lower") else "0.55"
        ax.plot([row.seed_low, row.seed_high], [y, y], color=color, linewidth=4, solid_capstyle="butt")
        if not (math.isnan(row.clip_low) or math.isnan(row.clip_high)):
            ax.plot([row.clip_low, row.clip_high], [y + 0.22, y + 0.22], color=color, linewidth=1.2)
        ax.plot([row.seed_diff], [y], "o", color="black", markersize=4)
        same = "identical runs" if getattr(row, "identical", False) else (
            f"identical runs: repeats {row.same_as}" if getattr(row, "same_as", "") else "")
        labels.append(f"{row.method} − {row.reference}" + (f"\n({same})" if same else ""))
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel="difference (thick: 95 % t-interval over seeds; thin: clip bootstrap)", title=title)
    return fig


def plot_mask_destinations(df: pd.DataFrame, order: Sequence[str] | None = None) -> tuple[Figure, pd.DataFrame]:
    """Where the foreground lies (`inspection.mask_destinations`), a facet per method, a bar per audio
    condition: the mean over runs of their mean over frames, so the four parts sum to 1; and its numbers."""
    parts = list(DESTINATION_COLORS)
    _require_columns(df, ["method", "run", "condition", *parts], "plot_mask_destinations")
    methods = _ordered(df["method"], order)
    conditions = [c for c in CONDITION_LABELS if c in set(df["condition"])]
    per_run = df.groupby(["method", "condition", "run"])[parts].mean().groupby(["method", "condition"])
    mean = per_run.mean()
    keys = [(m, c) for m in methods for c in conditions if (m, c) in mean.index]
    table = pd.concat([per_run.size().rename("runs"), mean, per_run.std(ddof=1).add_suffix("_std")], axis=1)
    ncols = min(4, len(methods))  # wrapped facets: the figure stays narrow
    nrows = math.ceil(len(methods) / ncols)
    fig = _new_figure(2.2 * ncols + 1.8, 2.7 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax, method in zip(axes, methods, strict=False):
        for c, condition in enumerate(conditions):
            if (method, condition) not in mean.index:
                continue
            shares = mean.loc[(method, condition)]
            ax.bar(c, shares.to_numpy(), 0.8, bottom=np.r_[0.0, shares.cumsum().to_numpy()[:-1]], edgecolor="black",
                   color=list(DESTINATION_COLORS.values()), linewidth=0.5, hatch=["", "", "", "//"],
                   label=parts if (method, condition) == keys[0] else None)
        ax.set_xticks(range(len(conditions)), [{"true": "own"}.get(c, c) for c in conditions], fontsize="small")
        # a long name breaks at its middle underscore, so neighbouring facet titles never collide
        cut = method.find("_", len(method) // 2 - 2) if len(method) > 16 else -1
        ax.set_title(method if cut < 0 else f"{method[:cut + 1]}\n{method[cut + 1:]}", color=method_color(method),
                     fontweight="bold", fontsize="medium")
        ax.set_ylim(0, 1)
    for ax in axes[len(methods):]:
        fig.delaxes(ax)
    for ax in axes[::ncols]:
        ax.set_ylabel("share of frames ×\nshare of their mask")
    fig.supxlabel("audio: own / swapped in from another clip / silent", fontsize="small")
    legend_outside(fig, axes[0])
    fig.suptitle("Where the mask goes")
    return fig, table.loc[keys].reset_index()


def plot_iou_vs_area(df: pd.DataFrame, bins: int = 4, order: Sequence[str] | None = None,
                     title: str = "IoU against the sounding object's size") -> tuple[Figure, pd.DataFrame]:
    """Test IoU per quantile bin of the sounding object's share of the frame (`inspection.iou_with_area`), the
    mean over seeds of each seed's mean in a ± seed-std band; and its numbers per (method, bin)."""
    _require_columns(df, ["method", "seed", "iou", "area"], "plot_iou_vs_area")
    frames = df.drop_duplicates(["name", "frame"]) if {"name", "frame"} <= set(df.columns) else df
    values = frames["area"].to_numpy(dtype=float)
    # quantile edges, so each bin holds about as many frames; equal edges (many equal areas) merged
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([values[0], values[0] + 1e-9])
    x = np.arange(len(edges) - 1)
    df = df.assign(bin=np.clip(np.searchsorted(edges, df["area"].to_numpy(float), side="right") - 1, 0, len(x) - 1))
    fig, ax = _one_panel(9.0, 4.2)
    rows = []
    for method in _ordered(df["method"], order):
        own = df[df["method"] == method]
        per_seed = own.groupby(["bin", "seed"])["iou"].mean().unstack("seed").reindex(x)  # [bins, seeds]
        mean, std = _seed_band(ax, per_seed, method_color(method), method, marker="o")
        counts = own.groupby("bin").size().reindex(x, fill_value=0)
        rows += [{"method": method, "bin": b, "area_low": float(edges[b]), "area_high": float(edges[b + 1]),
                  "frames": int(counts.iloc[b]), "mean": float(mean.iloc[b]), "std": float(std.iloc[b]),
                  "seeds": int(per_seed.shape[1])} for b in x]
    ax.set_xticks(x, [f"{100 * lo:.1f}–{100 * hi:.1f} %" for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    ax.set(xlabel="sounding object's share of the frame (quantile bins)", ylabel="mean test IoU", ylim=(0, 1),
           title=title)
    legend_outside(fig, ax, title="method (band: ± seed std)")
    return fig, pd.DataFrame(rows)


VALIDATION_METRICS = ("val_miou", "val_listening_rate", "val_following_rate")


def plot_validation_curves(history: pd.DataFrame, metrics: Sequence[str] = VALIDATION_METRICS,
                           order: Sequence[str] | None = None) -> tuple[Figure, pd.DataFrame]:
    """Validation metrics per epoch (`inspection.validation_history`), the mean over seeds in a ± std band, and
    its numbers per (method, metric, epoch); a metric no run logged says so (and in `attrs["not_logged"]`)."""
    _require_columns(history, ["method", "seed", "epoch", "metric", "value"], "plot_validation_curves")
    fig = _new_figure(4.0 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    rows, not_logged = [], []
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set(title=metric, xlabel="epoch", ylim=(0, 1))
        values = history[history["metric"] == metric]
        if values.empty:
            not_logged.append(metric)
            ax.text(0.5, 0.5, f"{metric}\nnot logged per epoch", transform=ax.transAxes, ha="center",
                    va="center", color="0.4", gid="not-logged")
            continue
        for method in _ordered(history["method"], order):
            per_seed = values[values["method"] == method].pivot_table(index="epoch", columns="seed", values="value")
            if per_seed.empty:
                continue
            mean, std = _seed_band(ax, per_seed, method_color(method), method, marker="o", markersize=3)
            rows += [{"method": method, "metric": metric, "epoch": int(e), "mean": float(mean[e]),
                      "std": float(std[e]), "seeds": int(per_seed.loc[e].notna().sum())} for e in mean.index]
    legend_outside(fig, next((a for a in axes if a.lines), axes[0]), title="method (band: ± seed std)")
    table = pd.DataFrame(rows, columns=["method", "metric", "epoch", "mean", "std", "seeds"])
    table.attrs["not_logged"] = not_logged
    return fig, table


# The architecture figure's columns: x and box width in axes units.
_COLUMNS = {"input": (0.01, 0.11), "stage": (0.17, 0.16), "fusion": (0.40, 0.13), "decoder": (0.60, 0.13),
            "output": (0.80, 0.12)}
_TOP, _STEP, _BOX_H = 0.86, 0.13, 0.09  # the first row, the row step and every box's height


def _architecture_layout(spec: Mapping[str, Any], lower: float) -> tuple[list[tuple], list[tuple]]:
    """The diagram as data: boxes (gid, column, y, text, face, component, detail) and arrows
    (from gid, to gid, line style, colour), one table row per module of the built model."""
    crop, channel, backbone = spec["crop"], spec["channel"], spec["backbone"]
    fusion = {int(k): v for k, v in spec["fusion_blocks"].items()}
    boxes = [("input:frames", "input", _TOP, "frames\n[B·T, 3, S, S]", "#f2f2f2", None, None)]
    links = []
    for i, c in enumerate(spec["stage_channels"]):  # sequential stages, each tapped by its fusion block
        boxes.append((f"stage:{i}", "stage", _TOP - i * _STEP, f"stage {i + 1}: {backbone}\n{c} ch → {channel} ch",
                      "#dbe9f6", f"encoder stage {i + 1}", f"{backbone}, {c} channels"))
        links.append(("input:frames" if i == 0 else f"stage:{i - 1}", f"stage:{i}", "-", "0.35"))
        out = f"stage:{i}"
        if i in fusion:
            boxes.append((f"fusion:{i}", "fusion", _TOP - i * _STEP, f"{fusion[i]}\n{channel} ch", "#fde2c8",
                          f"fusion at stage {i + 1}", fusion[i]))
            links.append((out, f"fusion:{i}", "-", "0.35"))
            out = f"fusion:{i}"
        if f"path{i + 1}" in spec["decoder"]:  # stage i feeds path{i+1}
            links.append((out, f"decoder:path{i + 1}", "-", "0.35"))
    chain = [f"decoder:{name}" for name in spec["decoder"]] + ["output"]  # the deepest block at the bottom
    boxes += [(chain[k], "decoder", _TOP - (len(chain) - 2 - k) * _STEP, f"decoder {name}\n{channel} ch", "#e4f2e4",
               f"decoder {name}", f"{channel} channels") for k, name in enumerate(spec["decoder"])]
    boxes.append(("output", "output", _TOP, "mask logits\n[B·T, 1, S, S]", "#f2f2f2", None, None))
    links += [(a, b, "-", "0.35") for a, b in zip(chain[:-1], chain[1:], strict=True)]
    if spec["audio_encoder"] is not None:
        frozen = " (frozen)" if spec.get("audio_frozen") else " (trained)"
        boxes.append(("audio", "stage", lower + (0.2 if crop else 0.0), f"log-mel [B·T, 1, 96, 64]\n→ "
                      f"{spec['audio_encoder']}{frozen}", "#efe3f3", "audio encoder", spec["audio_encoder"] + frozen))
        links += [("audio", f"fusion:{i}", "--", "#8e44ad") for i in fusion]
    if crop:
        shared = crop["shared"]
        boxes += [("input:crops", "input", lower, "crops of the\nsounding object", "#f2f2f2", None, None),
                  ("crop-trunk", "fusion", lower, "crop trunk: the AVS encoder\n(shared weights)" if shared
                   else f"crop trunk: own {crop['trunk']}\n(separate)", "#dbe9f6" if shared else "#fff3c4", None, None),
                  ("crop-head", "decoder", lower, f"embedding {crop['embedding']}\n→ {crop['classes']} classes",
                   "#fff3c4", "crop network", f"{crop['trunk']}, embedding {crop['embedding']}, {crop['classes']} classes")]
        links += [("input:crops", "crop-trunk", "-", "0.35"), ("crop-trunk", "crop-head", "-", "0.35")]
        if shared:
            links.append((f"stage:{len(spec['stage_channels']) - 1}", "crop-trunk", ":", "0.3"))
    return boxes, links


def plot_architecture(spec: Mapping[str, Any]) -> tuple[Figure, pd.DataFrame]:
    """The model as the code builds it (`inspection.architecture_spec`), a red label where each loss
    with a non-zero weight attaches; boxes and labels carry gids ("stage:i", "loss:name", ...)."""
    crop, losses = spec["crop"], dict(spec["losses"])
    lower = 0.05 if crop else 0.1
    boxes, links = _architecture_layout(spec, lower)
    fig = _new_figure(10.0, 6.4 if crop else 4.8, layout=None)  # boxes placed by hand on one axis
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    patches, rows = {}, []
    for gid, column, y, text, face, component, detail in boxes:
        x, w = _COLUMNS[column]
        patches[gid] = ax.add_patch(FancyBboxPatch((x, y), w, _BOX_H, boxstyle="round,pad=0.004", facecolor=face,
                                                   edgecolor="0.3", linewidth=1, gid=gid))
        ax.text(x + w / 2, y + _BOX_H / 2, text, ha="center", va="center", fontsize=7)
        rows += [{"component": component, "detail": detail}] if component else []
    if spec["audio_encoder"] is None:
        ax.text(0.25, lower + (0.2 if crop else 0.0) + _BOX_H / 2, "no audio encoder (the model hears nothing)", ha="center", fontsize=7,
                color="0.4")
        rows.append({"component": "audio encoder", "detail": "none"})
    for a, b, style, color in links:  # centre to centre, clipped at the two boxes
        ax.annotate("", xy=(0.5, 0.5), xycoords=patches[b], xytext=(0.5, 0.5), textcoords=patches[a],
                    arrowprops={"arrowstyle": "->", "color": color, "linestyle": style, "linewidth": 0.9,
                                "patchA": patches[a], "patchB": patches[b]})
    stages = ", ".join(str(s + 1) for s in spec.get("avm_stages", []))
    crop_y = lower + _BOX_H + 0.07
    places = {"avs_bce": (0.86, _TOP + _BOX_H + 0.04, ""),
              "counterfactual": (0.86, _TOP - 0.05, "(second pass with\nanother clip's audio)"),
              "avm": (0.465, _TOP - 3 * _STEP - 0.06, f"(fused maps of stages {stages})"),
              "crop_ce": (0.87, crop_y, "(class scores vs. the clip's class)"),
              "crop_pairwise": (0.87, crop_y - 0.075, "(embeddings of one clip's crops)"),
              "audio_crop_cosine": (0.87, crop_y - 0.15, f"(embedding → {(crop or {}).get('to_audio')} ch vs. the fused audio)")}
    for name, weight in ((n, w) for n, w in losses.items() if n in places):
        x, y, note = places[name]
        ax.text(x, y, f"{LOSS_LABELS.get(name, name)} ×{weight:g}", ha="center", va="center", fontsize=7, color="white",
                fontweight="bold", gid=f"loss:{name}", bbox={"boxstyle": "round,pad=0.3", "facecolor": LOSS_COLOR,
                                                             "edgecolor": "none"})
        ax.text(x, y - 0.028, note, ha="center", va="top", fontsize=6, color="0.3")
        if x == 0.87:  # a crop loss: fed by the crop network's embedding
            ax.annotate("", xy=(0.80, y), xytext=(0.73, lower + _BOX_H / 2), arrowprops={"arrowstyle": "->",
                                                                                      "color": LOSS_COLOR})
    rows += [{"component": f"loss {k}", "detail": f"weight {v:g}"} for k, v in losses.items()]
    ax.text(0.01, 0.995, f"{spec['name']}: {spec['backbone']}, {spec['channel']}-channel decoder", ha="left", va="top",
            fontsize=9, fontweight="bold")
    inactive = [label for k, label in LOSS_LABELS.items() if k not in losses]
    if inactive:
        ax.text(0.99, 0.005, "weight 0 (not computed): " + ", ".join(inactive), ha="right", va="bottom",
                fontsize=6, color="0.4")
    return fig, pd.DataFrame(rows)


def plot_swap_examples(rows: Sequence[Mapping[str, Any]], method: str = "") -> tuple[Figure, pd.DataFrame]:
    """Swapped-audio examples (`inspection.swap_example_rows`): the two objects ringed (on real data the ground
    truth alone), then the mask under each audio; and per example the pixels of each mask on each object."""
    if not rows:
        raise ValueError("plot_swap_examples: expected at least one example")
    ncols = 1 + max(len(r["panels"]) for r in rows)
    fig = _new_figure(2.3 * ncols, 2.9 * len(rows) + 0.4)
    numbers = []
    for r, (sub, row) in enumerate(zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, strict=True)):
        frame = _rgb(row["frame"], f"plot_swap_examples row {r} frame")
        sounding = _mask(row["sounding"], frame.shape[:2], "sounding")
        swapped_in = None if row["swapped_in"] is None else _mask(row["swapped_in"], frame.shape[:2], "swapped_in")
        axes = sub.subplots(1, ncols, squeeze=False)[0]
        _image_axis(axes[0], mark_masks(frame, gt=sounding, ring=swapped_in), "ground truth: dashed ring"
                    if swapped_in is None else "sounding: dashed ring\nswapped-in: white ring")
        outcome, share = str(row["outcome"]).upper(), row.get("follows")
        note = f" (follows on {share:.0%} of frames)" if share is not None and not math.isnan(share) else ""
        sub.suptitle(f"{outcome}{note}: {row['title']}", fontsize="small", fontweight="bold",
                     color={"HIT": _hex(TP_COLOR), "MISS": EMPTY_COLOR}.get(outcome, "black"))
        entry = {"outcome": row["outcome"], "title": row["title"], "follows": row.get("follows")}
        for c, (label, mask) in enumerate(row["panels"]):
            pred = _mask(mask, frame.shape[:2], f"panel {label!r}")
            _prediction_panel(axes[1 + c], frame, pred, label)
            if swapped_in is not None:
                entry[f"{label}: on swapped-in object"] = int((pred & swapped_in).sum())
            entry |= {f"{label}: on sounding object": int((pred & sounding).sum()), f"{label}: pixels": int(pred.sum())}
        for ax in axes[1 + len(row["panels"]):]:
            sub.delaxes(ax)
        numbers.append(entry)
    if method:
        fig.suptitle(f"Swapped audio: {method}", fontweight="bold")
    return fig, pd.DataFrame(numbers)


# ---------------------------------------------------------------- interactive browser


def wav_bytes(waveform: Any, sample_rate: int) -> bytes:
    """A mono float waveform in [-1, 1] as 16-bit PCM WAV bytes (for `ipywidgets.Audio`)."""
    samples = _numpy(waveform).astype(np.float64)
    if samples.ndim != 1:
        raise ValueError(f"wav_bytes: expected a mono waveform [N], got shape {samples.shape}")
    if sample_rate <= 0:
        raise ValueError(f"wav_bytes: sample rate must be positive, got {sample_rate}")
    buffer = io.BytesIO()
    wavfile.write(buffer, int(sample_rate), np.rint(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2"))
    return buffer.getvalue()


def compose_view(frame: np.ndarray, pred: np.ndarray | None, gt: np.ndarray | None,
                 show_gt: bool, show_pred: bool, show_errors: bool) -> np.ndarray:
    """The browser's picture, drawn as the figures draw it (`mark_masks`)."""
    errors = pred is not None and show_errors and gt is not None
    return mark_masks(frame, pred if errors or show_pred else None, gt if show_gt else None,
                      errors=gt if errors else None)


_LEGEND_HTML = " ".join(
    ['<span style="border:2px dashed black;background:white">&nbsp;&nbsp;&nbsp;</span> ground truth (dashed ring)',
     f'<span style="border:2px solid {_hex(PRED_EDGE)};background:{_hex(PRED_COLOR)}">&nbsp;&nbsp;&nbsp;</span> '
     "prediction (black edge)"] + [f'<span style="color:{_hex(c)}">&#9632;</span> {n}' for c, n in ERROR_PARTS])


class MaskBrowser:
    """Step through clips and frames, compare runs, and hear the audio a mask was predicted from.

    clips: dicts with `name`, `category`, `frames` uint8 [T, S, S, 3], `gt` (None, [T, S, S] or a
    list with Nones) and optionally `swap_partner` ("" or None: no partner, the toggle disabled).
    predict(run, clip_index, swapped) -> probabilities [T, S, S], foreground above `threshold`;
    audio(clip_index, swapped) -> (waveform [N] in [-1, 1], rate): what the model heard (None: no
    player). Both are cached. An exception in a callback is shown in red and kept in `last_error`.
    """

    def __init__(self, clips: Sequence[Mapping[str, Any]], predict: Callable[[str, int, bool], Any],
                 runs: Sequence[str], audio: Callable[[int, bool], tuple[Any, int]] | None = None,
                 threshold: float = 0.5, min_display_size: int = 256):
        import ipywidgets as widgets

        if not clips:
            raise ValueError("MaskBrowser: expected at least one clip")
        if not runs:
            raise ValueError("MaskBrowser: expected at least one run name")
        self.clips = [self._checked_clip(i, c) for i, c in enumerate(clips)]
        self.predict, self.audio = predict, audio
        self.runs = list(runs)
        self.threshold, self.min_display_size = threshold, min_display_size
        self.last_error: BaseException | None = None
        # Cached per (run, clip, swapped) and (clip, swapped); a callback that raises is not cached.
        self._probabilities = functools.cache(self._checked_probabilities)
        self._wav = functools.cache(lambda index, swapped: wav_bytes(*audio(index, swapped)))
        self._syncing = False

        self.clip_dropdown = widgets.Dropdown(
            options=[(f"{c['name']} ({c['category']})", i) for i, c in enumerate(self.clips)],
            value=0, description="clip")
        self.run_dropdown = widgets.Dropdown(options=self.runs, value=self.runs[0], description="run")
        self.frame_slider = widgets.IntSlider(value=1, min=1, max=len(self.clips[0]["frames"]),
                                              description="frame", continuous_update=False)
        self.swapped_toggle = widgets.ToggleButton(value=False, description="swapped audio",
                                                   tooltip="predict with another clip's audio")
        self.show_gt = widgets.Checkbox(value=True, description="GT outline", indent=False)
        self.show_prediction = widgets.Checkbox(value=True, description="prediction", indent=False)
        self.show_errors = widgets.Checkbox(value=False, description="errors (TP/FP/FN)", indent=False)
        self.image = widgets.Image(format="png")
        self.audio_player = widgets.Audio(format="wav", autoplay=False, loop=False) if audio is not None else None
        self.legend = widgets.HTML(_LEGEND_HTML)
        self.status = widgets.HTML()

        self._sync_clip_controls()
        # Observers: errors are caught in _update so they reach the user, not the kernel log; while
        # _sync_clip_controls fits the controls to a new clip, their changes render nothing.
        for control in (self.frame_slider, self.run_dropdown, self.show_gt, self.show_prediction, self.show_errors):
            control.observe(lambda _: self._syncing or self._update(), names="value")
        self.clip_dropdown.observe(lambda _: self._update(clip_changed=True, audio_changed=True), names="value")
        self.swapped_toggle.observe(lambda _: self._syncing or self._update(audio_changed=True), names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.clip_dropdown, self.run_dropdown]), widgets.HBox([self.frame_slider, self.swapped_toggle]),
            widgets.HBox([self.show_gt, self.show_prediction, self.show_errors]), self.image, self.legend,
            *([self.audio_player] if self.audio_player is not None else []), self.status])
        self._update(audio_changed=True)

    @staticmethod
    def _checked_clip(index: int, clip: Mapping[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("name", "category", "frames") if k not in clip]
        if missing:
            raise ValueError(f"MaskBrowser: clip {index} lacks {missing}")
        frames = _rgb(clip["frames"], f"MaskBrowser clip {index} ({clip['name']}) frames", ndim=4)
        gt = _frame_masks(clip.get("gt"), frames, f"MaskBrowser clip {index} ({clip['name']}) gt")
        return {**clip, "frames": frames, "gt": gt}

    def _checked_probabilities(self, run: str, index: int, swapped: bool) -> np.ndarray:
        probs = _numpy(self.predict(run, index, swapped)).astype(np.float64)
        expected = self.clips[index]["frames"].shape[:3]
        if probs.shape != expected:
            raise ValueError(f"predict({run!r}, {index}, {swapped}) returned shape {probs.shape}, "
                             f"expected probabilities {expected}")
        return probs

    def _update(self, clip_changed: bool = False, audio_changed: bool = False) -> None:
        """Run the steps a change needs; each failure is kept and shown, the others still run."""
        steps = [self._sync_clip_controls] if clip_changed else []
        if audio_changed and self.audio_player is not None:
            steps.append(self._load_audio)
        steps.append(self._render)
        errors = []
        for step in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - shown to the user, kept in last_error
                errors.append(error)
        if errors:
            self.last_error = errors[-1]
            lines = "<br>".join(f"<b>Error:</b> {html.escape(type(e).__name__)}: {html.escape(str(e))}"
                                for e in errors)
            self.status.value = f'<span style="color:#c00">{lines}</span><br>{self._context_html()}'

    def _sync_clip_controls(self) -> None:
        """Fit the frame slider and the swap toggle to the selected clip without re-rendering twice."""
        clip = self.clips[self.clip_dropdown.value]
        has_partner = bool(clip.get("swap_partner", True))
        self._syncing = True
        try:
            self.frame_slider.max = len(clip["frames"])
            self.frame_slider.value = 1
            if not has_partner:
                self.swapped_toggle.value = False
            self.swapped_toggle.disabled = not has_partner
        finally:
            self._syncing = False

    def _load_audio(self) -> None:
        self.audio_player.value = self._wav(self.clip_dropdown.value, self.swapped_toggle.value)

    def _render(self) -> None:
        index, run = self.clip_dropdown.value, self.run_dropdown.value
        swapped, t = self.swapped_toggle.value, self.frame_slider.value - 1
        clip = self.clips[index]
        gt = clip["gt"][t]
        try:
            pred = self._probabilities(run, index, swapped)[t] > self.threshold
        except Exception:
            # Show the frame that was asked for (without a prediction) before reporting the error.
            self._show(compose_view(clip["frames"][t], None, gt, self.show_gt.value, False, False))
            raise
        self._show(compose_view(clip["frames"][t], pred, gt, self.show_gt.value, self.show_prediction.value,
                                self.show_errors.value))
        score = f"IoU {frame_iou(pred, gt):.3f}" if gt is not None else "no GT for this frame"
        self.status.value = f"{self._context_html()} · {score}"

    def _show(self, image: np.ndarray) -> None:
        """Show `image` as PNG, enlarged (nearest neighbour, integer factor) to `min_display_size`."""
        from PIL import Image

        factor = max(1, math.ceil(self.min_display_size / max(image.shape[:2])))
        buffer = io.BytesIO()
        Image.fromarray(image.repeat(factor, axis=0).repeat(factor, axis=1)).save(buffer, format="PNG")  # [kH, kW, 3]
        self.image.value = buffer.getvalue()

    def _context_html(self) -> str:
        index = self.clip_dropdown.value
        clip = self.clips[index]
        layers = [n for n, box in (("GT", self.show_gt), ("prediction", self.show_prediction),
                                   ("errors", self.show_errors)) if box.value]
        heard = ("original audio" if not self.swapped_toggle.value else
                 f"swapped audio from {clip['swap_partner']}" if clip.get("swap_partner") else "swapped audio")
        return (f"<b>{html.escape(str(clip['name']))}</b> ({html.escape(str(clip['category']))}) · "
                f"frame {self.frame_slider.value}/{len(clip['frames'])} · run <code>{html.escape(str(self.run_dropdown.value))}</code> · "
                f"{html.escape(heard)} · showing {', '.join(layers) or 'frame only'}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
