"""Every figure of the report, and the notebook's mask browser.

Each plotting function takes plain data (numpy arrays, pandas DataFrames, lists), never a
model, and returns a `matplotlib.figure.Figure` built without pyplot: nothing is shown twice,
nothing stays open, and a figure appears in a notebook when it is a cell's last expression.
`save_figure` writes it as a named PNG. The look of every plot is decided once, in the style
sheet `avs.mplstyle` beside this file, which `set_style` applies.

One method has one colour in every figure (`METHOD_COLORS`; `method_color` gives a name outside
it a fixed colour of its own). The figures that answer the report's question (qualitative grid,
where the mask goes, IoU against object size, validation curves, architecture, swapped-audio
examples) return `(figure, numbers)`: the numbers they draw, for the sentence under the figure.
An empty predicted mask is marked (`mark_empty`: red frame, "empty"), never left invisible.

Colours are the Okabe-Ito palette (readable with colour-blindness). The synthetic objects wear
every hue (avs_lib.data.synth), so no colour alone stays visible on all of them: every mask is
drawn as a fill *and* an edge in black and white (`mark_masks`, the one definition the figures and
the mask browser share): prediction = blue fill inside a solid black edge; ground truth (the
sounding object) = a dashed black-and-white ring just outside the mask; the errors view fills
true positives green, false positives vermillion, false negatives purple, with the same two edges
on top, so which is which reads from the edges on any object colour.
"""

from __future__ import annotations

import html
import io
import math
import re
import wave
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from avs_lib.atomic import write_bytes_atomically
from avs_lib.data.categories import S4_CATEGORIES
from avs_lib.metrics import frame_iou

RGB = tuple[int, int, int]

OKABE_ITO: tuple[RGB, ...] = (
    (0, 114, 178),  # blue
    (230, 159, 0),  # orange
    (0, 158, 115),  # bluish green
    (204, 121, 167),  # reddish purple
    (86, 180, 233),  # sky blue
    (213, 94, 0),  # vermillion
    (240, 228, 66),  # yellow
    (0, 0, 0),  # black
)
PRED_COLOR: RGB = (0, 114, 178)
GT_COLOR: RGB = (240, 228, 66)
TP_COLOR: RGB = (0, 158, 115)
FP_COLOR: RGB = (213, 94, 0)
FN_COLOR: RGB = (204, 121, 167)
PRED_EDGE: RGB = (0, 0, 0)  # the prediction's edge; the ground truth's ring is dashed black and white
FILL_ALPHA = 0.55

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LOG_MEL_HOP_S = 0.01  # VGGish frames are 10 ms apart; an example is 96 frames = 0.96 s

STYLE_SHEET = Path(__file__).with_name("avs.mplstyle")

# One colour per method, the same in every figure. The main comparison takes the Okabe-Ito colours
# (the floor in grey, the baseline blue, the thesis vermillion); variants and ablations take
# distinct darker or lighter shades. A method not named here gets `method_color`'s fallback.
METHOD_COLORS: dict[str, str] = {
    "visual_only": "#999999",
    "tpavi": "#0072b2",
    "tpavi_avm": "#56b4e9",
    "thesis": "#d55e00",
    "thesis_shared": "#e69f00",
    "thesis_no_relu": "#8c564b",
    "cross_attention": "#cc79a7",
    "counterfactual": "#009e73",
    "thesis_counterfactual": "#000000",
    "thesis_minus_crop_ce": "#f4a582",
    "thesis_minus_pairwise": "#b2182b",
    "thesis_minus_cosine": "#762a83",
    "thesis_shared_trainable": "#6a3d9a",
    "tpavi_random_closed": "#a6cee3",
    "tpavi_random_open": "#b2df8a",
    "tpavi_pretrained_closed": "#fb9a99",
    "tpavi_pretrained_trained": "#cab2d6",
    "counterfactual_random_closed": "#33a02c",
    # the thesis as written (trained AVS encoder), its control, and Loss C read literally
    "tpavi_trained": "#003f6b",
    "thesis_trained": "#8a3b00",
    "thesis_literal_c": "#ff7f0e",
    "thesis_trained_literal_c": "#5c2700",
    "thesis_trained_lambda0.1": "#c26a2e",
    "thesis_trained_lambda0.01": "#e0a47a",
    # the headline pair at twice the budget
    "tpavi_2x": "#2b6f9e",
    "thesis_2x": "#b04a10",
}
# For names outside METHOD_COLORS: none of these is in METHOD_COLORS.
FALLBACK_COLORS: tuple[str, ...] = ("#1b9e77", "#7570b3", "#66a61e", "#a6761d", "#e7298a",
                                    "#17becf", "#bcbd22", "#525252", "#9e9ac8", "#fdae6b")

_style_applied = False


# ---------------------------------------------------------------- style and saving


def set_style() -> None:
    """Apply the report's style sheet (avs.mplstyle): the one place the look of every figure is
    decided. Figures made after it take its rcParams."""
    import matplotlib.style

    global _style_applied
    if not STYLE_SHEET.is_file():
        raise FileNotFoundError(f"the report's style sheet is missing: {STYLE_SHEET} "
                                "(package data of avs_lib.report; reinstall the package)")
    matplotlib.style.use(STYLE_SHEET)
    _style_applied = True


def method_color(method: str) -> str:
    """The colour of `method` in every figure: METHOD_COLORS, else a fallback picked by a checksum
    of the name (the same in every session and every figure, whatever the other methods are)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return FALLBACK_COLORS[zlib.crc32(method.encode()) % len(FALLBACK_COLORS)]


class ReportFigure(Figure):
    """A Figure that shows itself as PNG when it is a notebook cell's last expression, whether or
    not pyplot's inline backend is loaded (figures here are made without pyplot, so no cell shows
    a figure twice and none stays open)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi, bbox_inches="tight")
        return buffer.getvalue()


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure outside pyplot's registry, styled once per session."""
    if not _style_applied:
        set_style()
    return ReportFigure(figsize=(width, height), layout=layout)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def save_figure(fig: Figure, name: str, figures_dir: str | Path = "figures", dpi: int = 150) -> Path:
    """Write `fig` to `figures_dir/name.png` atomically and return the path.

    `name` is a file stem (letters, digits, `_`, `-`, `.`; a trailing `.png` is accepted), so
    notebooks cite figures by a stable name. A crash leaves the old PNG or the new one, never a
    torn file.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"save_figure: expected a matplotlib Figure, got {type(fig).__name__}")
    stem = name[:-4] if name.lower().endswith(".png") else name
    if not _NAME.match(stem):
        raise ValueError(
            f"save_figure: figure name {name!r} must be a plain file stem "
            "(letters, digits, '_', '-', '.'; no folders)"
        )
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    write_bytes_atomically(path, buffer.getvalue())  # the umask's mode, like every other output
    return path


def legend_outside(fig: Figure, ax: Axes, **kwargs: Any) -> None:
    """The legend of `ax`'s labelled artists, outside every axis (right of the figure's panels,
    placed by constrained layout): the rule for every legend of the report, so none covers data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", **kwargs)


# ---------------------------------------------------------------- input checks


def _numpy(x: Any) -> np.ndarray:
    """numpy view of an array or a (CPU or GPU) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _rgb_frames(frames: Any, what: str) -> np.ndarray:
    """uint8 [T, H, W, 3]."""
    frames = _numpy(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what}: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def _rgb_frame(frame: Any, what: str) -> np.ndarray:
    """uint8 [H, W, 3]."""
    frame = _numpy(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{what}: expected a uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
    return frame


def _mask(mask: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """A bool [H, W] mask from a bool or 0/1 array; other values are an error, not a threshold."""
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
    if isinstance(masks, (list, tuple)):
        if len(masks) != t:
            raise ValueError(f"{what}: expected {t} per-frame masks, got {len(masks)}")
        return [None if m is None else _mask(m, (h, w), f"{what}[{i}]") for i, m in enumerate(masks)]
    masks = _numpy(masks)
    if masks.shape != (t, h, w):
        raise ValueError(f"{what}: expected masks [T, H, W] = {(t, h, w)}, got {masks.shape}")
    return [_mask(m, (h, w), f"{what}[{i}]") for i, m in enumerate(masks)]


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


def _method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Each method's fixed colour (`method_color`): the same in every figure, whatever the order."""
    return {m: method_color(m) for m in methods}


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
    if present <= set(S4_CATEGORIES):
        return [c for c in S4_CATEGORIES if c in present]
    return sorted(present)


def _image_axis(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize="small")


# ---------------------------------------------------------------- pixels


def denormalize(frames: Any) -> np.ndarray:
    """ImageNet-normalised frames back to displayable pixels.

    Args:
        frames: float [T, 3, S, S] (or one frame [3, S, S]), tensor or array, as the readers give.
    Returns:
        uint8 [T, S, S, 3] (or [S, S, 3]), rounded and clipped to 0..255.
    """
    x = _numpy(frames).astype(np.float64)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"denormalize: expected frames [T, 3, S, S] or [3, S, S], got {x.shape}")
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD).reshape(3, 1, 1)
    x = (x * std + mean) * 255.0
    x = np.moveaxis(x, -3, -1)  # [..., 3, S, S] -> [..., S, S, 3]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def overlay(frame: Any, mask: Any, color: RGB = PRED_COLOR, alpha: float = 0.5) -> np.ndarray:
    """Blend `color` into the masked pixels: round((1 - alpha) * pixel + alpha * color).

    Args:
        frame: uint8 [S, S, 3]. mask: bool (or 0/1) [S, S]. color: (r, g, b) in 0..255.
    Returns:
        a new uint8 [S, S, 3]; pixels outside the mask are unchanged.
    """
    frame = _rgb_frame(frame, "overlay frame")
    mask = _mask(mask, frame.shape[:2], "overlay mask")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    out = frame.copy()
    blended = (1.0 - alpha) * frame[mask].astype(np.float64) + alpha * np.asarray(color, dtype=np.float64)
    out[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def error_overlay(frame: Any, pred: Any, gt: Any, alpha: float = 0.5) -> np.ndarray:
    """Where a prediction is right and wrong: true positives TP_COLOR, false positives FP_COLOR,
    false negatives FN_COLOR, blended like `overlay`; true negatives unchanged.

    Args:
        frame: uint8 [S, S, 3]; pred, gt: bool (or 0/1) [S, S].
    """
    frame = _rgb_frame(frame, "error_overlay frame")
    pred = _mask(pred, frame.shape[:2], "error_overlay pred")
    gt = _mask(gt, frame.shape[:2], "error_overlay gt")
    out = overlay(frame, pred & gt, TP_COLOR, alpha)
    out = overlay(out, pred & ~gt, FP_COLOR, alpha)
    return overlay(out, ~pred & gt, FN_COLOR, alpha)


def mask_outline(mask: Any) -> np.ndarray:
    """The mask's boundary pixels (inside the mask, with a 4-neighbour outside it or off the image)."""
    mask = _numpy(mask).astype(bool)
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def mask_ring(mask: Any) -> np.ndarray:
    """The pixels just outside the mask (outside it, with a 4-neighbour inside it)."""
    mask = _numpy(mask).astype(bool)
    padded = np.pad(mask, 1, constant_values=False)
    near = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return near & ~mask


def _dashes(shape: tuple[int, int]) -> np.ndarray:
    """True on every other pair of diagonals: the white half of a black-and-white dash."""
    ys, xs = np.indices(shape)
    return (xs + ys) // 2 % 2 == 0


def mark_masks(frame: Any, pred: Any = None, gt: Any = None, errors: Any = None,
               ring: Any = None) -> np.ndarray:
    """The one way every figure and the mask browser draw masks on a frame.

    The prediction is filled (PRED_COLOR; or, scored against the mask `errors`, TP/FP/FN colours)
    and edged in solid black (PRED_EDGE); the ground truth gets a dashed black-and-white ring just
    outside it; `ring` (another object, e.g. the swapped-in one) a solid white ring with a black
    one outside it. Black and white are in no object's palette, so the edges show on any colour.

    Args:
        frame: uint8 [S, S, 3]; pred, gt, errors, ring: None or bool (or 0/1) [S, S].
    """
    frame = _rgb_frame(frame, "mark_masks frame")
    shape = frame.shape[:2]
    pred = None if pred is None else _mask(pred, shape, "mark_masks pred")
    gt = None if gt is None else _mask(gt, shape, "mark_masks gt")
    image = frame.copy()
    if pred is not None:
        image = (overlay(image, pred, PRED_COLOR, FILL_ALPHA) if errors is None
                 else error_overlay(image, pred, _mask(errors, shape, "mark_masks errors"), FILL_ALPHA))
        image[mask_outline(pred)] = PRED_EDGE
    if gt is not None:
        edge = mask_ring(gt)
        image[edge] = np.where(_dashes(shape)[edge][:, None], (255, 255, 255), (0, 0, 0))
    if ring is not None:
        ring = _mask(ring, shape, "mark_masks ring")
        inner = mask_ring(ring)
        image[inner] = (255, 255, 255)
        image[mask_ring(inner | ring) & ~ring] = (0, 0, 0)
    return image


# ---------------------------------------------------------------- data figures


def plot_clip(frames: Any, masks: Mapping[str, Any], title: str = "",
              colors: Mapping[str, RGB] | None = None) -> Figure:
    """A clip as a grid: the frames, then one row per named mask overlaid on them.

    Args:
        frames: uint8 [T, S, S, 3].
        masks: row label -> bool [T, S, S], a length-T list of [S, S] masks or None (a frame
            without a mask, e.g. train GT beyond frame 1), or None (the row shows the frames).
        title: figure title.
        colors: row label -> (r, g, b); rows not named take the Okabe-Ito colours in order.
    Axes: (1 + len(masks)) * T.
    """
    frames = _rgb_frames(frames, "plot_clip frames")
    rows = [("frame", [None] * len(frames), None)]
    for i, (label, value) in enumerate(masks.items()):
        color = (colors or {}).get(label, OKABE_ITO[i % len(OKABE_ITO)])
        rows.append((label, _frame_masks(value, frames, f"plot_clip masks[{label!r}]"), color))
    t = len(frames)
    fig = _new_figure(1.8 * t, 1.8 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), t, squeeze=False)
    for r, (label, row_masks, color) in enumerate(rows):
        for c in range(t):
            mask = row_masks[c]
            image = frames[c] if mask is None else overlay(frames[c], mask, color)
            _image_axis(axes[r, c], image, f"frame {c + 1}" if r == 0 else None)
            if mask is None and r > 0:
                axes[r, c].text(0.5, 0.5, "no mask", transform=axes[r, c].transAxes, ha="center",
                                va="center", color="white", fontsize="small")
        axes[r, 0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    return fig


def plot_class_counts(df: pd.DataFrame, title: str = "Videos per category") -> Figure:
    """Videos per category and split (horizontal grouped bars).

    Args:
        df: one row per video, columns `split`, `category` (e.g. the metadata CSV).
    Axes: 1.
    """
    _require_columns(df, ["split", "category"], "plot_class_counts")
    categories = _category_order(df["category"])
    splits = _ordered(df["split"], ["train", "val", "test"] if set(df["split"]) <= {"train", "val", "test"} else None)
    counts = pd.crosstab(df["category"], df["split"]).reindex(index=categories, columns=splits, fill_value=0)
    fig = _new_figure(7, 0.3 * len(categories) + 1.2)
    ax = fig.subplots()
    height = 0.8 / len(splits)
    y = np.arange(len(categories))
    for i, split in enumerate(splits):
        ax.barh(y + (i - (len(splits) - 1) / 2) * height, counts[split], height, label=split)
    ax.set_yticks(y, categories)
    ax.invert_yaxis()
    ax.set_xlabel("videos")
    legend_outside(fig, ax, title="split")
    ax.set_title(title)
    return fig


def plot_mask_area_hist(areas: pd.DataFrame, bins: int = 40, title: str = "Ground-truth mask area") -> Figure:
    """Distribution of the mask's share of the frame, per split (step histograms, density).

    Args:
        areas: one row per mask, columns `split`, `area_fraction` (0..1).
    Axes: 1.
    """
    _require_columns(areas, ["split", "area_fraction"], "plot_mask_area_hist")
    top = float(areas["area_fraction"].max())
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)  # the data's range, not 0..1
    fig = _new_figure(6, 3.5)
    ax = fig.subplots()
    for split in _ordered(areas["split"], None):
        values = areas.loc[areas["split"] == split, "area_fraction"].to_numpy(dtype=float)
        ax.hist(values, bins=edges, density=True, histtype="step", linewidth=1.8, label=f"{split} (n={len(values)})")
    ax.set_xlabel("mask area / frame area")
    ax.set_ylabel("density")
    legend_outside(fig, ax, title="split")
    ax.set_title(title)
    return fig


def plot_waveform_and_logmel(waveform: Any, sr: int, log_mel: Any, title: str = "") -> Figure:
    """A clip's sound: the waveform above the VGGish log-mel examples laid end to end.

    Args:
        waveform: float [N] mono, in [-1, 1]. sr: its sample rate (Hz).
        log_mel: [n, 1, 96, 64] or [n, 96, 64] (examples of 96 frames x 64 mel bands).
    Axes: 3 (waveform, log-mel, colour bar).
    """
    wave_np = _numpy(waveform).astype(np.float64)
    if wave_np.ndim != 1:
        raise ValueError(f"plot_waveform_and_logmel: expected a mono waveform [N], got {wave_np.shape}")
    if sr <= 0:
        raise ValueError(f"plot_waveform_and_logmel: sample rate must be positive, got {sr}")
    mel = _numpy(log_mel).astype(np.float64)
    if mel.ndim == 4 and mel.shape[1] == 1:
        mel = mel[:, 0]  # [n, 1, 96, 64] -> [n, 96, 64]
    if mel.ndim != 3 or mel.shape[1:] != (96, 64):
        raise ValueError(f"plot_waveform_and_logmel: expected log-mel [n, 1, 96, 64] or [n, 96, 64], got {_numpy(log_mel).shape}")
    n = mel.shape[0]
    example_s = 96 * LOG_MEL_HOP_S
    fig = _new_figure(8, 4.5)
    ax_wave, ax_mel = fig.subplots(2, 1, sharex=True)
    ax_wave.plot(np.arange(len(wave_np)) / sr, wave_np, linewidth=0.5, color=_hex(OKABE_ITO[0]))
    ax_wave.set_ylabel("amplitude")
    image = ax_mel.imshow(
        mel.reshape(n * 96, 64).T,  # [n, 96, 64] -> [n*96 frames, 64] -> [64 bands, time]
        origin="lower", aspect="auto", extent=(0.0, n * example_s, 0.0, 64.0), cmap="magma",
    )
    for k in range(1, n):
        ax_mel.axvline(k * example_s, color="white", linewidth=0.8, linestyle="--")
    ax_mel.grid(False)
    ax_mel.set_xlabel("time (s)")
    ax_mel.set_ylabel("mel band")
    fig.colorbar(image, ax=ax_mel, label="log(mel + 0.01)")
    if title:
        fig.suptitle(title)
    return fig


def plot_boxes_on_frames(frames: Any, boxes: Any, masks: Any = None, title: str = "") -> Figure:
    """Crop labels drawn on their frames, optionally over the ground-truth masks.

    Args:
        frames: uint8 [T, S, S, 3].
        boxes: [T, 4] (xmin, ymin, xmax, ymax) in pixels, max exclusive (CONTRACTS: boxes).
        masks: None, bool [T, S, S], or a length-T list of optional [S, S] masks.
    Axes: T.
    """
    frames = _rgb_frames(frames, "plot_boxes_on_frames frames")
    boxes = _numpy(boxes).astype(np.float64)
    if boxes.shape != (len(frames), 4):
        raise ValueError(f"plot_boxes_on_frames: expected boxes [{len(frames)}, 4], got {boxes.shape}")
    frame_masks = _frame_masks(masks, frames, "plot_boxes_on_frames masks")
    fig = _new_figure(2.2 * len(frames), 2.6)
    axes = fig.subplots(1, len(frames), squeeze=False)[0]
    for i, (ax, box) in enumerate(zip(axes, boxes, strict=True)):
        mask = frame_masks[i]
        _image_axis(ax, frames[i] if mask is None else overlay(frames[i], mask, GT_COLOR), f"frame {i + 1}")
        xmin, ymin, xmax, ymax = box
        # Pixel k spans [k - 0.5, k + 0.5] in imshow coordinates; the box covers pixels xmin..xmax-1.
        ax.add_patch(Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin, ymax - ymin,
                               fill=False, edgecolor=_hex(FP_COLOR), linewidth=2))
    if title:
        fig.suptitle(title)
    return fig


def plot_crop_grid(crops: Any, labels: Sequence[str], ncols: int = 5, title: str = "") -> Figure:
    """Crops of the sounding object with their labels.

    Args:
        crops: uint8 [N, c, c, 3]. labels: N strings. ncols: grid width.
    Axes: N (empty grid cells are removed).
    """
    crops = _rgb_frames(crops, "plot_crop_grid crops")
    if len(labels) != len(crops):
        raise ValueError(f"plot_crop_grid: {len(crops)} crops but {len(labels)} labels")
    if ncols < 1:
        raise ValueError(f"plot_crop_grid: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(crops))
    nrows = math.ceil(len(crops) / ncols)
    fig = _new_figure(2.0 * ncols, 2.2 * nrows + (0.3 if title else 0))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i < len(crops):
            _image_axis(ax, crops[i], labels[i])
        else:
            fig.delaxes(ax)
    if title:
        fig.suptitle(title)
    return fig


def plot_box_mask_iou_hist(df: pd.DataFrame, threshold: float | None = None, bins: int = 40,
                           title: str = "Crop box vs. box of the GT mask") -> Figure:
    """How well the crop labels agree with the masks; flagged frames stacked in another colour.

    Args:
        df: one row per labelled frame, columns `iou` (0..1) and `flagged` (bool).
        threshold: draw the flagging threshold as a vertical line.
    Axes: 1.
    """
    _require_columns(df, ["iou", "flagged"], "plot_box_mask_iou_hist")
    flagged = df["flagged"].astype(bool).to_numpy()
    iou = df["iou"].to_numpy(dtype=float)
    fig = _new_figure(6, 3.5)
    ax = fig.subplots()
    ax.hist([iou[~flagged], iou[flagged]], bins=np.linspace(0, 1, bins + 1), stacked=True,
            color=[_hex(OKABE_ITO[0]), _hex(FP_COLOR)],
            label=[f"ok ({int((~flagged).sum())})", f"flagged ({int(flagged.sum())})"])
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("IoU(crop box, box of GT mask)")
    ax.set_ylabel("frames")
    legend_outside(fig, ax)
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------- training and results


def plot_loss_curves(df: pd.DataFrame, smooth: int = 1, terms: Sequence[str] | None = None,
                     order: Sequence[str] | None = None, logy: bool = False, ncols: int = 3) -> Figure:
    """Training losses, one panel per loss term, one colour per method.

    Args:
        df: long format, one row per (method, seed, global_step, term): columns `method`,
            `seed`, `global_step`, `term`, `value` (`experiments.loss_curves` builds it from steps.jsonl).
        smooth: rolling-mean window in steps, applied per seed (1 = raw).
        terms: which terms, in which order (default: order of appearance). order: method order.
    Thin lines are single seeds; the thick line is the mean over seeds at each step.
    Axes: number of terms.
    """
    _require_columns(df, ["method", "seed", "global_step", "term", "value"], "plot_loss_curves")
    if smooth < 1:
        raise ValueError(f"plot_loss_curves: smooth must be >= 1, got {smooth}")
    terms = _ordered(df["term"], terms)
    methods = _ordered(df["method"], order)
    colors = _method_colors(methods)
    ncols = min(ncols, len(terms))
    nrows = math.ceil(len(terms) / ncols)
    fig = _new_figure(4.0 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, term in zip(axes, terms, strict=False):
        for method in methods:
            rows = df[(df["term"] == term) & (df["method"] == method)]
            if rows.empty:
                continue
            per_seed = (
                rows.pivot_table(index="global_step", columns="seed", values="value", aggfunc="mean")
                .sort_index()
                .rolling(smooth, min_periods=1)
                .mean()
            )  # [steps, seeds]
            ax.plot(per_seed.index, per_seed.to_numpy(), color=colors[method], linewidth=0.6, alpha=0.35)
            ax.plot(per_seed.index, per_seed.mean(axis=1), color=colors[method], linewidth=1.8, label=method)
        ax.set_title(term)
        ax.set_xlabel("global step")
        if logy:
            ax.set_yscale("log")
    for ax in axes[len(terms):]:
        fig.delaxes(ax)
    legend_outside(fig, axes[0], title="method")
    return fig


REFERENCE_GREYS = ("#000000", "#555555", "#888888")
REFERENCE_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))


def _mean_std(df: pd.DataFrame, methods: list[str], column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-method mean and sample std (ddof=1) over seeds; std is 0 for a single seed."""
    grouped = df.groupby("method")[column]
    mean = grouped.mean().reindex(methods).to_numpy()
    std = grouped.std(ddof=1).reindex(methods).fillna(0.0).to_numpy()
    return mean, std


def plot_results_bars(df: pd.DataFrame, metric: str, order: Sequence[str] | None = None,
                      references: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """A metric per method: bar = mean over seeds, error bar = sample std, dots = single seeds.

    Args:
        df: one row per (method, seed), columns `method`, `seed` and the metric column(s).
        metric: the column to plot (e.g. "miou", "f_score").
        references: label -> value drawn as dashed lines (e.g. {"paper baseline": 0.679}).
    Axes: 1.
    """
    _require_columns(df, ["method", "seed", metric], "plot_results_bars")
    methods = _ordered(df["method"], order)
    colors = _method_colors(methods)
    mean, std = _mean_std(df, methods, metric)
    fig = _new_figure(0.95 * len(methods) + 3.0, 3.8)
    ax = fig.subplots()
    x = np.arange(len(methods))
    ax.bar(x, mean, yerr=std, capsize=4, color=[colors[m] for m in methods], alpha=0.75)
    for i, method in enumerate(methods):
        values = df.loc[df["method"] == method, metric].to_numpy(dtype=float)
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x[i] + jitter, values, color="black", s=14, zorder=3)
        ax.annotate(f"{mean[i]:.3f}", (x[i], mean[i] + std[i]), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontsize="small")
    # References in shades of grey with their own dashes: no method colour means two things.
    for k, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color=REFERENCE_GREYS[k % len(REFERENCE_GREYS)],
                   linestyle=REFERENCE_DASHES[k % len(REFERENCE_DASHES)], linewidth=1, label=label)
    legend_outside(fig, ax)
    ax.set_xticks(x, methods, rotation=20, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(title if title is not None else f"{metric} (mean ± std over seeds)")
    return fig


CHANCE_METHOD = "visual_only"


def listening_chance(df: pd.DataFrame, method: str = CHANCE_METHOD, column: str = "listening_rate") -> float | None:
    """The listening rate's chance level: what a model that hears nothing scores (its looks-based
    pick lands on the swapped-in object by chance), the mean of `method` over its seeds; None
    when `df` has no run of it."""
    rows = df.loc[df["method"] == method, column].dropna()
    return float(rows.mean()) if not rows.empty else None


def top_follower(df: pd.DataFrame, methods: Sequence[str] | None = None, column: str = "test_following_rate",
                 deaf: str = CHANCE_METHOD) -> str | None:
    """The method that follows the audio most often: the highest mean of `column` over its seeds
    among `methods` (every method of `df` when None), the deaf `deaf` left out, ties by name. The
    one rule notebooks 04 and 05 name it by; None when no method has the rate (real data)."""
    rows = df[df["method"] != deaf] if methods is None else df[df["method"].isin(methods) & (df["method"] != deaf)]
    means = rows.groupby("method")[column].mean().dropna() if column in rows.columns else pd.Series(dtype=float)
    if means.empty:
        return None
    return str(means.sort_index().idxmax())


def plot_listening_vs_miou(df: pd.DataFrame, order: Sequence[str] | None = None,
                           title: str = "Listening rate against mIoU",
                           chance: float | None = None, chance_method: str = CHANCE_METHOD) -> Figure:
    """Listening rate (x) against mIoU (y): one small point per seed, a large marker per method
    mean, and the chance level of the listening rate as a dashed vertical line.

    Args:
        df: one row per (method, seed), columns `method`, `seed`, `miou`, `listening_rate`.
        chance: the chance level; None: `listening_chance(df, chance_method)` (the visual-only
            model's mean), and no line when `df` has no run of `chance_method`.
    Axes: 1.
    """
    _require_columns(df, ["method", "seed", "miou", "listening_rate"], "plot_listening_vs_miou")
    methods = _ordered(df["method"], order)
    colors = _method_colors(methods)
    fig = _new_figure(8.0, 4.6)  # the legend sits right of the axis
    ax = fig.subplots()
    for method in methods:
        rows = df[df["method"] == method]
        ax.scatter(rows["listening_rate"], rows["miou"], color=colors[method], s=20, alpha=0.7)
        ax.scatter(rows["listening_rate"].mean(), rows["miou"].mean(), color=colors[method], s=160,
                   marker="D", edgecolor="black", label=method, zorder=3)
    label = "chance"
    if chance is None:
        chance = listening_chance(df, chance_method)
        label = f"chance ({chance_method}: {chance:.2f})" if chance is not None else label
    if chance is not None:
        ax.axvline(chance, color="black", linestyle="--", linewidth=1, label=label, zorder=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("listening rate (swapped audio moves the mask)")
    ax.set_ylabel("mIoU")
    legend_outside(fig, ax, title="method (mean)")
    ax.set_title(title)
    return fig


def plot_per_category(df: pd.DataFrame, order: Sequence[str] | None = None,
                      title: str = "IoU per category") -> tuple[Figure, pd.DataFrame]:
    """Mean IoU per category, one point per method with the spread over seeds (horizontal, one
    row per category; each category's clip count in its label).

    Args:
        df: columns `method`, `seed`, `category`, `iou`: one row per (category, run) with its clip
            count `n_clips` (`experiments.per_category`), or one row per clip and run without it.
    Returns:
        the figure (1 axis) and its numbers: one row per (category, method) with the mean over
        seeds of the per-seed mean IoU, its sample std over seeds (NaN for one seed), seeds and clips.
    """
    _require_columns(df, ["method", "seed", "category", "iou"], "plot_per_category")
    methods = _ordered(df["method"], order)
    categories = _category_order(df["category"])
    per_seed = df.groupby(["category", "method", "seed"])["iou"].mean()
    table = per_seed.groupby(["category", "method"]).agg(mean="mean", std=lambda v: v.std(ddof=1), seeds="size")
    # per_category.csv counts its clips (`n_clips`); a table of one row per clip counts its rows
    counted = df["n_clips"] if "n_clips" in df.columns else pd.Series(1, index=df.index)
    clips = counted.groupby([df["category"], df["method"], df["seed"]]).sum().groupby("category").max()
    table = table.join(clips.rename("clips"), on="category").reset_index()
    fig = _new_figure(9.5, 0.5 * len(categories) + 1.6)  # the legend sits right of the axis
    ax = fig.subplots()
    step = 0.8 / len(methods)
    for i, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("category").reindex(categories)
        y = np.arange(len(categories)) + (i - (len(methods) - 1) / 2) * step
        ax.errorbar(rows["mean"], y, xerr=rows["std"].fillna(0.0), fmt="o", color=method_color(method),
                    markersize=5, capsize=2, label=method)
    ax.set_yticks(range(len(categories)), [f"{c} ({int(clips.get(c, 0))} clips)" for c in categories])
    ax.set_ylim(len(categories) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean test IoU (bar: ± std over seeds)")
    legend_outside(fig, ax, title="method")
    ax.set_title(title)
    return fig, table


# ---------------------------------------------------------------- qualitative figures


def plot_audio_swap_panels(frame: Any, panels: Sequence[tuple[str, Any]], title: str = "") -> Figure:
    """One frame, its predicted mask under different audio (true, swapped, silent, ...).

    Args:
        frame: uint8 [S, S, 3]. panels: (title, bool mask [S, S]) per condition.
    Axes: 1 + len(panels) (the plain frame first).
    """
    frame = _rgb_frame(frame, "plot_audio_swap_panels frame")
    if not panels:
        raise ValueError("plot_audio_swap_panels: expected at least one (title, mask) panel")
    fig = _new_figure(2.4 * (len(panels) + 1), 2.8)
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    _image_axis(axes[0], frame, "frame")
    for ax, (label, mask) in zip(axes[1:], panels, strict=True):
        _image_axis(ax, mark_masks(frame, _mask(mask, frame.shape[:2], f"panel {label!r}")), label)
    if title:
        fig.suptitle(title)
    return fig


def _error_legend(fig: Figure) -> None:
    handles = [Patch(facecolor="white", edgecolor="black", linestyle="--", label="ground truth (dashed ring)"),
               Patch(facecolor=_hex(PRED_COLOR), edgecolor=_hex(PRED_EDGE), label="prediction (black edge)")]
    handles += [Patch(color=_hex(c), label=n) for c, n in
                ((TP_COLOR, "true positive"), (FP_COLOR, "false positive"), (FN_COLOR, "false negative"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small")


def plot_failure_cases(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Failure cases, one per row: frame | ground truth | prediction (with IoU; an empty one marked) | errors.

    Args:
        rows: dicts with `frame` uint8 [S, S, 3], `gt` and `pred` bool [S, S], `title` str.
    Axes: 4 * len(rows).
    """
    if not rows:
        raise ValueError("plot_failure_cases: expected at least one case")
    fig = _new_figure(9.0, 2.4 * len(rows) + 0.5)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for r, case in enumerate(rows):
        missing = [k for k in ("frame", "gt", "pred", "title") if k not in case]
        if missing:
            raise ValueError(f"plot_failure_cases: case {r} lacks {missing}")
        frame = _rgb_frame(case["frame"], f"plot_failure_cases case {r} frame")
        gt = _mask(case["gt"], frame.shape[:2], f"plot_failure_cases case {r} gt")
        pred = _mask(case["pred"], frame.shape[:2], f"plot_failure_cases case {r} pred")
        _image_axis(axes[r, 0], frame, "frame" if r == 0 else None)
        _image_axis(axes[r, 1], mark_masks(frame, gt=gt), "ground truth" if r == 0 else None)
        _prediction_panel(axes[r, 2], frame, pred, f"prediction, IoU {frame_iou(pred, gt):.2f}")
        _image_axis(axes[r, 3], mark_masks(frame, pred, gt, errors=gt), "errors" if r == 0 else None)
        axes[r, 0].set_ylabel(case["title"], fontsize="small")
    _error_legend(fig)
    return fig


# ---------------------------------------------------------------- figures that answer the question

EMPTY_COLOR = "#c00000"  # the marker of an empty prediction: a red frame and a red "empty" label
CONDITION_LABELS = {"true": "own audio", "swapped": "swapped audio", "silent": "silent"}
DESTINATION_COLORS = {"sounding object": _hex(TP_COLOR), "distractor": _hex(FP_COLOR),
                      "background": "#bbbbbb", "empty": "#ffffff"}
LOSS_LABELS = {"avs_bce": "segmentation BCE", "avm": "AVM", "crop_ce": "A: crop CE",
               "crop_pairwise": "B: pairwise", "audio_crop_cosine": "C: audio-crop cosine",
               "counterfactual": "counterfactual BCE"}
LOSS_COLOR = "#c00000"


def mark_empty(ax: Axes) -> None:
    """Mark an image panel whose predicted mask is empty (an empty mask draws nothing at all):
    a thick red frame and a red "empty" label, so a reader sees it."""
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(EMPTY_COLOR)
        spine.set_linewidth(3)
    label = ax.text(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center", color="white",
                    fontsize="small", fontweight="bold", bbox={"facecolor": EMPTY_COLOR, "edgecolor": "none"})
    label.set_gid("empty-marker")


def _prediction_panel(ax: Axes, frame: np.ndarray, pred: np.ndarray | None, title: str | None) -> None:
    """A prediction over its frame; an empty prediction marked, a missing one (None) said."""
    if pred is None:
        _image_axis(ax, frame, title)
        ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", va="center", color="white")
        return
    _image_axis(ax, mark_masks(frame, pred), title)
    if not pred.any():
        mark_empty(ax)


def plot_qualitative_grid(rows: Sequence[Mapping[str, Any]], methods: Sequence[str],
                          conditions: Sequence[str] = ("true", "swapped", "silent"),
                          rule: str = "") -> tuple[Figure, pd.DataFrame]:
    """One block per clip (stacked, so the figure stays narrow): methods down, the ground truth and
    the audio conditions across; the predicted mask over the frame; empty predictions marked.

    Args:
        rows: dicts with `name`, `frame` uint8 [S, S, 3], `gt` bool [S, S] and `masks`:
            (method, condition) -> bool [S, S] or None (no such condition for the clip).
            `inspection.qualitative_rows` builds them.
        rule: how the clips were chosen (shown as the figure's title).
    Returns:
        the figure (per clip: 1 + methods x conditions axes) and its numbers: one row per
        (name, method, condition) with the IoU against the ground truth and whether it is empty.
    """
    if not rows or not methods or not conditions:
        raise ValueError("plot_qualitative_grid: expected at least one clip, one method and one condition")
    ncols = 1 + len(conditions)  # one block per clip: methods down, ground truth + conditions across
    fig = _new_figure(1.8 * ncols + 1.0, (1.75 * len(methods) + 0.45) * len(rows) + 0.5)
    numbers = []
    for r, (sub, row) in enumerate(zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, strict=True)):
        frame = _rgb_frame(row["frame"], f"plot_qualitative_grid row {r} frame")
        gt = _mask(row["gt"], frame.shape[:2], f"plot_qualitative_grid row {r} gt")
        sub.suptitle(f"clip {row['name']}", fontsize="small", fontweight="bold")
        axes = sub.subplots(len(methods), ncols, squeeze=False)
        _image_axis(axes[0, 0], mark_masks(frame, gt=gt), "ground truth")
        for ax in axes[1:, 0]:
            sub.delaxes(ax)
        for m, method in enumerate(methods):
            axes[m, 1].set_ylabel(method, color=method_color(method), fontweight="bold", fontsize="small")
            for c, condition in enumerate(conditions):
                key = (method, condition)
                if key not in row["masks"]:
                    raise ValueError(f"plot_qualitative_grid: clip {row['name']!r} has no mask for {key}")
                value = row["masks"][key]
                pred = None if value is None else _mask(value, frame.shape[:2], f"mask {key} of {row['name']!r}")
                ax = axes[m, 1 + c]
                _prediction_panel(ax, frame, pred, CONDITION_LABELS.get(condition, condition) if m == 0 else None)
                if pred is not None:
                    ax.set_xlabel(f"IoU {frame_iou(pred, gt):.2f}", fontsize="x-small")
                numbers.append({"name": row["name"], "method": method, "condition": condition,
                                "iou": float("nan") if pred is None else frame_iou(pred, gt),
                                "empty": None if pred is None else not pred.any()})
    if rule:
        fig.suptitle(rule, fontsize="small")
    return fig, pd.DataFrame(numbers)


def plot_paired_differences(comparisons: pd.DataFrame, title: str = "Paired differences") -> Figure:
    """One row per comparison (`stats.compare_to_baseline`): the mean per-seed difference with its
    95 % t-interval (thick) and the clip-bootstrap interval (thin, below), a line at 0. A row whose
    verdict is "higher" or "lower" is drawn in its method's colour, the others in grey; a row whose
    two sides have identical runs (`identical`, `same_as` columns, when present) says so.

    Axes: 1, with one labelled row per comparison.
    """
    _require_columns(comparisons, ["method", "reference", "seed_diff", "seed_low", "seed_high",
                                   "clip_low", "clip_high", "verdict"], "plot_paired_differences")
    fig = _new_figure(7.0, 0.45 * len(comparisons) + 1.2)
    ax = fig.subplots()
    labels = []
    for y, row in enumerate(comparisons.itertuples(index=False)):
        decided = row.verdict in ("higher", "lower")
        color = method_color(row.method) if decided else "0.55"
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
    ax.set_xlabel("difference (thick: 95 % t-interval over seeds; thin: clip bootstrap)")
    ax.set_title(title)
    return fig


def plot_mask_destinations(df: pd.DataFrame, order: Sequence[str] | None = None,
                           conditions: Sequence[str] = ("true", "swapped", "silent"),
                           title: str = "Where the mask goes", ncols: int = 4) -> tuple[Figure, pd.DataFrame]:
    """Per method and audio condition, where the predicted foreground lies (stacked bars): on the
    sounding object, on a distractor, on the background, or nowhere (the empty-mask rate).

    Each frame weighs the same: an empty frame adds to "empty", any other spreads its weight over
    the three places by pixel share; the bar is the mean over a method's runs of their mean over
    frames, so the four parts sum to 1.

    Args:
        df: one row per (method, run, condition, frame) with the four `DESTINATION_COLORS`
            columns (`inspection.mask_destinations`).
    Returns:
        the figure (one facet per method, `ncols` to a row, conditions x 4 bars) and its numbers: one row per (method,
        condition) with the mean and the std over runs of each part, and the number of runs.
    """
    parts = list(DESTINATION_COLORS)
    _require_columns(df, ["method", "run", "condition", *parts], "plot_mask_destinations")
    methods = _ordered(df["method"], order)
    conditions = [c for c in conditions if c in set(df["condition"])]
    per_run = df.groupby(["method", "condition", "run"])[parts].mean()
    mean = per_run.groupby(["method", "condition"]).mean()
    std = per_run.groupby(["method", "condition"]).std(ddof=1)
    runs = per_run.groupby(["method", "condition"]).size()
    ncols = min(ncols, len(methods))  # a facet per method, wrapped: the figure stays narrow
    nrows = math.ceil(len(methods) / ncols)
    fig = _new_figure(2.2 * ncols + 1.8, 2.7 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    labels = [{"true": "own", "swapped": "swapped"}.get(c, c) for c in conditions]
    rows = []
    for ax, method in zip(axes, methods, strict=False):
        for c, condition in enumerate(conditions):
            if (method, condition) not in mean.index:
                continue
            bottom = 0.0
            for part in parts:
                value = float(mean.loc[(method, condition), part])
                ax.bar(c, value, 0.8, bottom=bottom, color=DESTINATION_COLORS[part], edgecolor="black",
                       linewidth=0.5, hatch="//" if part == "empty" else None, label=part if not rows else None)
                bottom += value
            rows.append({"method": method, "condition": condition, "runs": int(runs.loc[(method, condition)]),
                         **{part: float(mean.loc[(method, condition), part]) for part in parts},
                         **{f"{part}_std": float(std.loc[(method, condition), part]) for part in parts}})
        ax.set_xticks(range(len(conditions)), labels, fontsize="small")
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
    fig.suptitle(title)
    return fig, pd.DataFrame(rows)


def area_bins(areas: pd.Series, bins: int = 4) -> np.ndarray:
    """Bin edges at the quantiles of the sounding object's area (so each bin holds about as many
    frames); duplicate edges (many equal areas) are merged."""
    values = areas.to_numpy(dtype=float)
    if len(values) == 0:
        raise ValueError("area_bins: no areas")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([values[0], values[0] + 1e-9])
    return edges


def plot_iou_vs_area(df: pd.DataFrame, bins: int = 4, order: Sequence[str] | None = None,
                     title: str = "IoU against the sounding object's size") -> tuple[Figure, pd.DataFrame]:
    """Test IoU per bin of the sounding object's share of the frame, per method: the mean over
    seeds of each seed's mean IoU in the bin, with a band of ± the seed std.

    Args:
        df: one row per (method, seed, frame) with `iou` and `area` (0..1)
            (`inspection.iou_with_area`). bins: quantile bins of the frames' areas.
    Returns:
        the figure (1 axis, one line per method) and its numbers: one row per (method, bin) with
        the bin's edges, frames, mean, std and seeds.
    """
    _require_columns(df, ["method", "seed", "iou", "area"], "plot_iou_vs_area")
    methods = _ordered(df["method"], order)
    frames = df.drop_duplicates(["name", "frame"]) if {"name", "frame"} <= set(df.columns) else df
    edges = area_bins(frames["area"], bins)
    df = df.assign(bin=np.clip(np.searchsorted(edges, df["area"].to_numpy(float), side="right") - 1,
                               0, len(edges) - 2))
    fig = _new_figure(9.0, 4.2)  # the legend sits right of the axis
    ax = fig.subplots()
    x = np.arange(len(edges) - 1)
    rows = []
    for method in methods:
        per_seed = df[df["method"] == method].groupby(["bin", "seed"])["iou"].mean().unstack("seed")
        per_seed = per_seed.reindex(range(len(edges) - 1))  # [bins, seeds]
        mean = per_seed.mean(axis=1).to_numpy()
        std = per_seed.std(axis=1, ddof=1).fillna(0.0).to_numpy() if per_seed.shape[1] > 1 else np.zeros(len(x))
        color = method_color(method)
        ax.plot(x, mean, marker="o", color=color, label=method)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        counts = df[df["method"] == method].groupby("bin").size().reindex(range(len(x)), fill_value=0)
        for b in range(len(x)):
            rows.append({"method": method, "bin": b, "area_low": float(edges[b]), "area_high": float(edges[b + 1]),
                         "frames": int(counts.iloc[b]), "mean": float(mean[b]),
                         "std": float(std[b]) if per_seed.shape[1] > 1 else float("nan"),  # one seed: unknown
                         "seeds": int(per_seed.shape[1])})
    ax.set_xticks(x, [f"{100 * lo:.1f}–{100 * hi:.1f} %" for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    ax.set_xlabel("sounding object's share of the frame (quantile bins)")
    ax.set_ylabel("mean test IoU")
    ax.set_ylim(0, 1)
    legend_outside(fig, ax, title="method (band: ± seed std)")
    ax.set_title(title)
    return fig, pd.DataFrame(rows)


VALIDATION_METRICS = ("val_miou", "val_listening_rate", "val_following_rate")


def plot_validation_curves(history: pd.DataFrame, metrics: Sequence[str] = VALIDATION_METRICS,
                           order: Sequence[str] | None = None) -> tuple[Figure, pd.DataFrame]:
    """Validation metrics over training epochs, per method: mean over seeds with a ± std band.
    A metric the runs did not log per epoch gets a panel that says so.

    Args:
        history: long format: method, seed, epoch, metric, value (`inspection.validation_history`).
    Returns:
        the figure (one axis per metric) and its numbers: one row per (method, metric, epoch)
        with mean, std and seeds; `attrs["not_logged"]` lists the metrics no run logged.
    """
    _require_columns(history, ["method", "seed", "epoch", "metric", "value"], "plot_validation_curves")
    methods = _ordered(history["method"], order)
    fig = _new_figure(4.0 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    rows, not_logged = [], []
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        values = history[history["metric"] == metric]
        if values.empty:
            not_logged.append(metric)
            note = ax.text(0.5, 0.5, f"{metric}\nnot logged per epoch", transform=ax.transAxes, ha="center",
                           va="center", color="0.4")
            note.set_gid("not-logged")
            continue
        for method in methods:
            per_seed = values[values["method"] == method].pivot_table(index="epoch", columns="seed", values="value")
            if per_seed.empty:
                continue
            mean = per_seed.mean(axis=1)
            std = per_seed.std(axis=1, ddof=1).fillna(0.0) if per_seed.shape[1] > 1 else mean * 0.0
            color = method_color(method)
            ax.plot(mean.index, mean.to_numpy(), color=color, marker="o", markersize=3, label=method)
            ax.fill_between(mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color=color,
                            alpha=0.2, linewidth=0)
            rows += [{"method": method, "metric": metric, "epoch": int(e), "mean": float(mean[e]),
                      "std": float(std[e]) if per_seed.shape[1] > 1 else float("nan"),  # one seed: unknown
                      "seeds": int(per_seed.loc[e].notna().sum())} for e in mean.index]
        ax.set_ylim(0, 1)
    legend_outside(fig, next((a for a in axes if a.lines), axes[0]), title="method (band: ± seed std)")
    table = pd.DataFrame(rows, columns=["method", "metric", "epoch", "mean", "std", "seeds"])
    table.attrs["not_logged"] = not_logged
    return fig, table


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, gid: str,
         face: str = "#f2f2f2", edge: str = "0.3", **text_kw: Any) -> tuple[float, float]:
    """A labelled box with its lower-left corner at (x, y) in axes units; returns its centre."""
    from matplotlib.patches import FancyBboxPatch

    box = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.004", facecolor=face, edgecolor=edge, linewidth=1)
    box.set_gid(gid)
    ax.add_patch(box)
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=text_kw.pop("fontsize", 7), **text_kw)
    return x + w / 2, y + h / 2


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], style: str = "-",
           color: str = "0.35") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": color, "linestyle": style,
                                                      "linewidth": 0.9, "shrinkA": 2, "shrinkB": 2})


def _loss(ax: Axes, x: float, y: float, name: str, weight: float) -> None:
    label = ax.text(x, y, f"{LOSS_LABELS.get(name, name)} ×{weight:g}", ha="center", va="center", fontsize=7,
                    color="white", fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.3", "facecolor": LOSS_COLOR, "edgecolor": "none"})
    label.set_gid(f"loss:{name}")


def plot_architecture(spec: Mapping[str, Any]) -> tuple[Figure, pd.DataFrame]:
    """The model of one method as the code builds it: encoder stages (channels), the fusion
    block of each stage that has one, the decoder, the audio encoder, the crop network, and a
    red label where each loss with a non-zero weight attaches (its weight beside it).

    Args:
        spec: `inspection.architecture_spec(cfg)` (read from a built system, not written by hand).
    Returns:
        the figure (1 axis; boxes carry gids "stage:i", "fusion:i", "decoder:name", "audio",
        "crop-trunk", "crop-head"; loss labels "loss:name") and its numbers: one row per component.
    """
    missing = [k for k in ("name", "backbone", "stage_channels", "channel", "fusion_blocks", "decoder",
                           "audio_encoder", "crop", "losses") if k not in spec]
    if missing:
        raise ValueError(f"plot_architecture: the spec lacks {missing} (build it with inspection.architecture_spec)")
    crop, losses = spec["crop"], dict(spec["losses"])
    fig = _new_figure(10.0, 6.4 if crop else 4.8, layout=None)  # boxes placed by hand on one axis
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    rows = []
    top, step, h = 0.86, 0.13, 0.09
    lower = 0.05 if crop else 0.1
    frames = _box(ax, 0.01, top, 0.11, h, "frames\n[B·T, 3, S, S]", "input:frames")
    channel, fusion = spec["channel"], {int(k): v for k, v in spec["fusion_blocks"].items()}
    stage_centres, decoder_centres = [], []
    for i, c in enumerate(spec["stage_channels"]):
        y = top - i * step
        centre = _box(ax, 0.17, y, 0.16, h, f"stage {i + 1}: {spec['backbone']}\n{c} ch → {channel} ch",
                      f"stage:{i}", face="#dbe9f6")
        # Sequential stages: the frames enter stage 1, stage i feeds stage i + 1 (and taps off to its fusion).
        start, end = ((frames[0] + 0.055, frames[1]), (0.17, centre[1])) if i == 0 else (
            (centre[0], stage_centres[-1][1] - h / 2), (centre[0], y + h))
        _arrow(ax, start, end)
        stage_centres.append(centre)
        rows.append({"component": f"encoder stage {i + 1}", "detail": f"{spec['backbone']}, {c} channels"})
        if i in fusion:
            f_centre = _box(ax, 0.40, y, 0.13, h, f"{fusion[i]}\n{channel} ch", f"fusion:{i}", face="#fde2c8")
            _arrow(ax, (0.33, centre[1]), (0.40, f_centre[1]))
            out = (0.53, f_centre[1])
            rows.append({"component": f"fusion at stage {i + 1}", "detail": fusion[i]})
        else:
            out = (0.33, centre[1])
        decoder_centres.append(out)
    names = list(spec["decoder"])
    dec_xy = []
    for k, name in enumerate(names):
        y = top - (len(names) - 1 - k) * step  # path4 (deepest) at the bottom, path1 on top
        dec_xy.append(_box(ax, 0.60, y, 0.13, h, f"decoder {name}\n{channel} ch", f"decoder:{name}", face="#e4f2e4"))
        rows.append({"component": f"decoder {name}", "detail": f"{channel} channels"})
    for k, out in enumerate(decoder_centres):  # stage i feeds path{i+1}
        target = next((xy for name, xy in zip(names, dec_xy, strict=True) if name == f"path{k + 1}"), None)
        if target is not None:
            _arrow(ax, out, (0.60, target[1]))
    for (x0, y0), (x1, y1) in zip(dec_xy[:-1], dec_xy[1:], strict=True):  # deepest block first, upwards
        _arrow(ax, (x0, y0 + h / 2), (x1, y1 - h / 2))
    head = _box(ax, 0.80, top, 0.12, h, "mask logits\n[B·T, 1, S, S]", "output")
    if dec_xy:
        _arrow(ax, (0.73, dec_xy[-1][1]), (0.80, head[1]))
    if "avs_bce" in losses:
        _loss(ax, head[0], top + h + 0.04, "avs_bce", losses["avs_bce"])
    if "counterfactual" in losses:
        _loss(ax, head[0], top - 0.05, "counterfactual", losses["counterfactual"])
        ax.text(head[0], top - 0.1, "(second pass with\nanother clip's audio)", ha="center", va="top", fontsize=6)
    if "avm" in losses:
        stages = ", ".join(str(s + 1) for s in spec.get("avm_stages", []))
        _loss(ax, 0.465, top - 3 * step - 0.06, "avm", losses["avm"])
        ax.text(0.465, top - 3 * step - 0.1, f"(fused maps of stages {stages})", ha="center", va="top", fontsize=6)
    _draw_audio_branch(ax, spec, lower + (0.2 if crop else 0.0), h, top, step, fusion, rows)
    if crop:
        _draw_crop_branch(ax, crop, losses, stage_centres[-1], lower, h, rows)
    inactive = [LOSS_LABELS.get(k, k) for k in LOSS_LABELS if k not in losses]
    rows += [{"component": f"loss {k}", "detail": f"weight {v:g}"} for k, v in losses.items()]
    ax.text(0.01, 0.995, f"{spec['name']}: {spec['backbone']}, {channel}-channel decoder", ha="left", va="top",
            fontsize=9, fontweight="bold")
    if inactive:
        ax.text(0.99, 0.005, "weight 0 (not computed): " + ", ".join(inactive), ha="right", va="bottom",
                fontsize=6, color="0.4")
    return fig, pd.DataFrame(rows)


def _draw_audio_branch(ax: Axes, spec: Mapping[str, Any], audio_y: float, h: float, top: float, step: float,
                       fusion: Mapping[int, str], rows: list[dict]) -> None:
    """The audio encoder's box (or the note that there is none), with its arrows into each fusion block."""
    if spec["audio_encoder"] is not None:
        frozen = " (frozen)" if spec.get("audio_frozen") else " (trained)"
        audio = _box(ax, 0.17, audio_y, 0.16, h, f"log-mel [B·T, 1, 96, 64]\n→ {spec['audio_encoder']}{frozen}",
                     "audio", face="#efe3f3")
        rows.append({"component": "audio encoder", "detail": spec["audio_encoder"] + frozen})
        for i in fusion:
            _arrow(ax, (0.33, audio[1]), (0.465, top - i * step), style="--", color="#8e44ad")
    else:
        ax.text(0.25, audio_y + h / 2, "no audio encoder (the model hears nothing)", ha="center", fontsize=7,
                color="0.4")
        rows.append({"component": "audio encoder", "detail": "none"})


def _draw_crop_branch(ax: Axes, crop: Mapping[str, Any], losses: Mapping[str, float], last_stage: tuple[float, float],
                      lower: float, h: float, rows: list[dict]) -> None:
    """The crop network (its own trunk, or the AVS encoder shared) and the crop losses it feeds."""
    shared = crop["shared"]
    trunk_text = "crop trunk: the AVS encoder\n(shared weights)" if shared else f"crop trunk: own {crop['trunk']}\n(separate)"
    crops = _box(ax, 0.01, lower, 0.11, h, "crops of the\nsounding object", "input:crops")
    trunk = _box(ax, 0.40, lower, 0.13, h, trunk_text, "crop-trunk", face="#dbe9f6" if shared else "#fff3c4")
    _arrow(ax, (0.12, crops[1]), (0.40, trunk[1]))
    if shared:
        _arrow(ax, last_stage, (trunk[0], lower + h), style=":", color="0.3")
    emb = _box(ax, 0.60, lower, 0.13, h, f"embedding {crop['embedding']}\n→ {crop['classes']} classes",
               "crop-head", face="#fff3c4")
    _arrow(ax, (0.53, trunk[1]), (0.60, emb[1]))
    rows.append({"component": "crop network", "detail": f"{crop['trunk']}, embedding {crop['embedding']}, "
                                                        f"{crop['classes']} classes"})
    notes = {"crop_ce": "(class scores vs. the clip's class)",
             "crop_pairwise": "(embeddings of one clip's crops)",
             "audio_crop_cosine": f"(embedding → {crop.get('to_audio')} ch vs. the fused audio)"}
    for k, name in enumerate(("crop_ce", "crop_pairwise", "audio_crop_cosine")):
        if name in losses:
            y = lower + h + 0.07 - k * 0.075
            _loss(ax, 0.87, y, name, losses[name])
            ax.text(0.87, y - 0.028, notes[name], ha="center", va="center", fontsize=5.5, color="0.3")
            _arrow(ax, (0.73, emb[1]), (0.80, y), color=LOSS_COLOR)


def plot_swap_examples(rows: Sequence[Mapping[str, Any]], method: str = "") -> tuple[Figure, pd.DataFrame]:
    """Swapped-audio examples chosen by rule, one per row (a sub-figure titled HIT or MISS with its
    clip): the frame with the sounding object (dashed ring) and the swapped-in object (solid white
    ring) marked, then the mask under each audio condition; empty masks marked.

    Args:
        rows: dicts with `outcome` ("hit" | "miss"), `title`, `frame` uint8 [S, S, 3], `panels`
            [(label, bool [S, S])], `sounding` and `swapped_in` bool [S, S], `follows` (share of
            the clip's frames that follow the audio). `inspection.swap_example_rows` builds them.
        method: the run or method shown, the figure's title.
    Returns:
        the figure (len(rows) x (1 + panels) axes) and its numbers: outcome, title, follows, and
        per panel the pixels of its mask on the swapped-in object, on the sounding object, and in all.
    """
    if not rows:
        raise ValueError("plot_swap_examples: expected at least one example")
    ncols = 1 + max(len(r["panels"]) for r in rows)
    fig = _new_figure(2.3 * ncols, 2.9 * len(rows) + 0.4)
    numbers = []
    for r, (sub, row) in enumerate(zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, strict=True)):
        frame = _rgb_frame(row["frame"], f"plot_swap_examples row {r} frame")
        sounding = _mask(row["sounding"], frame.shape[:2], "sounding")
        swapped_in = _mask(row["swapped_in"], frame.shape[:2], "swapped_in")
        axes = sub.subplots(1, ncols, squeeze=False)[0]
        _image_axis(axes[0], mark_masks(frame, gt=sounding, ring=swapped_in),
                    "sounding: dashed ring\nswapped-in: white ring")
        outcome, share = str(row["outcome"]).upper(), row.get("follows")
        note = f" (follows on {share:.0%} of frames)" if share is not None and not math.isnan(share) else ""
        sub.suptitle(f"{outcome}{note}: {row['title']}", fontsize="small", fontweight="bold",
                     color=_hex(TP_COLOR) if outcome == "HIT" else EMPTY_COLOR)
        entry = {"outcome": row["outcome"], "title": row["title"], "follows": row.get("follows")}
        for c, (label, mask) in enumerate(row["panels"]):
            pred = _mask(mask, frame.shape[:2], f"panel {label!r}")
            _prediction_panel(axes[1 + c], frame, pred, label)
            entry |= {f"{label}: on swapped-in object": int((pred & swapped_in).sum()),
                      f"{label}: on sounding object": int((pred & sounding).sum()), f"{label}: pixels": int(pred.sum())}
        for c in range(1 + len(row["panels"]), ncols):
            sub.delaxes(axes[c])
        numbers.append(entry)
    if method:
        fig.suptitle(f"Swapped audio: {method}", fontweight="bold")
    return fig, pd.DataFrame(numbers)


# ---------------------------------------------------------------- interactive browser


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 [H, W, 3] image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_rgb_frame(image, "png_bytes image")).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(waveform: Any, sample_rate: int) -> bytes:
    """A mono float waveform in [-1, 1] as 16-bit PCM WAV file bytes (for `ipywidgets.Audio`)."""
    samples = _numpy(waveform).astype(np.float64)
    if samples.ndim != 1:
        raise ValueError(f"wav_bytes: expected a mono waveform [N], got shape {samples.shape}")
    if sample_rate <= 0:
        raise ValueError(f"wav_bytes: sample rate must be positive, got {sample_rate}")
    pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _upscale(image: np.ndarray, min_size: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor so the longer side reaches `min_size`."""
    factor = max(1, math.ceil(min_size / max(image.shape[:2])))
    return image.repeat(factor, axis=0).repeat(factor, axis=1)  # [H, W, 3] -> [kH, kW, 3]


def compose_view(frame: np.ndarray, pred: np.ndarray | None, gt: np.ndarray | None,
                 show_gt: bool, show_pred: bool, show_errors: bool) -> np.ndarray:
    """The browser's picture: prediction filled (or TP/FP/FN colours when errors are shown and GT
    exists), then the GT outline on top."""
    errors = pred is not None and show_errors and gt is not None
    return mark_masks(frame, pred if errors or show_pred else None, gt if show_gt else None,
                      errors=gt if errors else None)


_LEGEND_HTML = " ".join(
    ['<span style="border:2px dashed black;background:white">&nbsp;&nbsp;&nbsp;</span> ground truth (dashed ring)',
     f'<span style="border:2px solid {_hex(PRED_EDGE)};background:{_hex(PRED_COLOR)}">&nbsp;&nbsp;&nbsp;</span> '
     "prediction (black edge)"]
    + [f'<span style="color:{_hex(c)}">&#9632;</span> {n}' for c, n in
       ((TP_COLOR, "true positive"), (FP_COLOR, "false positive"), (FN_COLOR, "false negative"))]
)


class MaskBrowser:
    """Step through clips and frames, compare runs, and hear the audio a mask was predicted from.

    Args:
        clips: dicts with `name` str, `category` str, `frames` uint8 [T, S, S, 3], `gt` (None,
            bool [T, S, S], or a length-T list of [S, S] masks or None), and optionally
            `swap_partner` str: the clip whose audio the "swapped audio" condition uses (shown in
            the status line; "" or None means the clip has no partner and the toggle is disabled).
        predict: predict(run, clip_index, swapped_audio) -> float probabilities [T, S, S] (array
            or tensor); thresholded at `threshold` (> threshold is foreground). Results are
            cached per (run, clip_index, swapped_audio).
        runs: run names offered in the run selector (passed to `predict` as given).
        audio: audio(clip_index, swapped_audio) -> (waveform float [N] in [-1, 1], sample_rate);
            the player plays what the model heard: the clip's own audio, or the swapped-in audio
            when the toggle is on. None: no player. Results are cached.
        threshold: probability threshold. min_display_size: smaller frames are enlarged
            (nearest neighbour, integer factor) until their longer side reaches this.

    Any exception in a callback (predict, audio, bad shapes) is caught: the status line shows it
    in red and `last_error` keeps it (it is not cleared by later successful updates).
    `widget` is the top-level VBox; the browser displays itself as the last expression of a cell.
    """

    def __init__(
        self,
        clips: Sequence[Mapping[str, Any]],
        predict: Callable[[str, int, bool], Any],
        runs: Sequence[str],
        audio: Callable[[int, bool], tuple[Any, int]] | None = None,
        threshold: float = 0.5,
        min_display_size: int = 256,
    ):
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
        self._predictions: dict[tuple[str, int, bool], np.ndarray] = {}
        self._audio_cache: dict[tuple[int, bool], bytes] = {}
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
        for control in (self.frame_slider, self.run_dropdown, self.show_gt, self.show_prediction, self.show_errors):
            control.observe(self._on_view_change, names="value")
        self.clip_dropdown.observe(self._on_clip_change, names="value")
        self.swapped_toggle.observe(self._on_audio_change, names="value")

        rows = [
            widgets.HBox([self.clip_dropdown, self.run_dropdown]),
            widgets.HBox([self.frame_slider, self.swapped_toggle]),
            widgets.HBox([self.show_gt, self.show_prediction, self.show_errors]),
            self.image, self.legend,
        ]
        if self.audio_player is not None:
            rows.append(self.audio_player)
        rows.append(self.status)
        self.widget = widgets.VBox(rows)
        self._update(audio_changed=True)

    # -- inputs

    @staticmethod
    def _checked_clip(index: int, clip: Mapping[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("name", "category", "frames") if k not in clip]
        if missing:
            raise ValueError(f"MaskBrowser: clip {index} lacks {missing}")
        frames = _rgb_frames(clip["frames"], f"MaskBrowser clip {index} ({clip['name']}) frames")
        gt = _frame_masks(clip.get("gt"), frames, f"MaskBrowser clip {index} ({clip['name']}) gt")
        return {**clip, "frames": frames, "gt": gt}

    def _probabilities(self, run: str, index: int, swapped: bool) -> np.ndarray:
        key = (run, index, swapped)
        if key not in self._predictions:
            probs = _numpy(self.predict(run, index, swapped)).astype(np.float64)
            expected = self.clips[index]["frames"].shape[:3]
            if probs.shape != expected:
                raise ValueError(f"predict({run!r}, {index}, {swapped}) returned shape {probs.shape}, "
                                 f"expected probabilities {expected}")
            self._predictions[key] = probs
        return self._predictions[key]

    def _has_partner(self, index: int) -> bool:
        clip = self.clips[index]
        return "swap_partner" not in clip or bool(clip["swap_partner"])

    # -- observers (errors are caught so they reach the user, not the kernel log)

    def _on_view_change(self, change: dict) -> None:
        if not self._syncing:
            self._update()

    def _on_clip_change(self, change: dict) -> None:
        self._update(clip_changed=True, audio_changed=True)

    def _on_audio_change(self, change: dict) -> None:
        if not self._syncing:
            self._update(audio_changed=True)

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
        index = self.clip_dropdown.value
        self._syncing = True
        try:
            self.frame_slider.max = len(self.clips[index]["frames"])
            self.frame_slider.value = 1
            has_partner = self._has_partner(index)
            if not has_partner:
                self.swapped_toggle.value = False
            self.swapped_toggle.disabled = not has_partner
        finally:
            self._syncing = False

    def _load_audio(self) -> None:
        key = (self.clip_dropdown.value, self.swapped_toggle.value)
        if key not in self._audio_cache:
            waveform, sample_rate = self.audio(*key)
            self._audio_cache[key] = wav_bytes(waveform, sample_rate)
        self.audio_player.value = self._audio_cache[key]

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
        self.image.value = png_bytes(_upscale(image, self.min_display_size))

    def _context_html(self) -> str:
        index = self.clip_dropdown.value
        clip = self.clips[index]
        layers = [n for n, box in (("GT", self.show_gt), ("prediction", self.show_prediction),
                                   ("errors", self.show_errors)) if box.value]
        if not self.swapped_toggle.value:
            heard = "original audio"
        elif clip.get("swap_partner"):
            heard = f"swapped audio from {clip['swap_partner']}"
        else:
            heard = "swapped audio"
        return (f"<b>{html.escape(str(clip['name']))}</b> ({html.escape(str(clip['category']))}) · "
                f"frame {self.frame_slider.value}/{len(clip['frames'])} · run <code>{html.escape(str(self.run_dropdown.value))}</code> · "
                f"{html.escape(heard)} · showing {', '.join(layers) or 'frame only'}")

    # -- display

    @property
    def image_bytes(self) -> bytes:
        """The PNG currently shown."""
        return bytes(self.image.value)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# ---------------------------------------------------------------- how a step's cost grows

COST_AXES = (("batch", "clips per step"), ("image_size", "image side (px)"), ("frames", "frames per clip"))


def plot_cost_growth(rows: Sequence[Mapping[str, Any]], base: Mapping[str, int]) -> Figure:
    """Step time and step memory against batch size, image size and frames, literal vs fast TPAVI.

    `rows` and `base` as `benchmarks/bench_cost_growth.py` writes them (its JSON's "rows" and
    "base"): each column varies one quantity from `base`, the others held at their base values.
    Skipped points (would not fit) are left out of the lines.
    """
    set_style()
    done = pd.DataFrame([dict(r) for r in rows if "skipped" not in r])
    fig = Figure(figsize=(11, 5.6), layout="constrained")
    axes = fig.subplots(2, len(COST_AXES), squeeze=False)
    for col, (axis, label) in enumerate(COST_AXES):
        held = [k for k, _ in COST_AXES if k != axis]
        for impl, style in (("naive", "o--"), ("fast", "s-")):
            sel = done[done["impl"] == impl]
            for k in held:
                sel = sel[sel[k] == base[k]]
            sel = sel.sort_values(axis)
            text = "literal TPAVI (official)" if impl == "naive" else "fast TPAVI"
            axes[0, col].plot(sel[axis], sel["median_s"], style, label=text)
            axes[1, col].plot(sel[axis], sel["step_mb"], style, label=text)
        axes[1, col].set_xlabel(label)
        axes[0, col].set_title(", ".join(f"{k.replace('image_size', 'px')}={base[k]}" for k in held), fontsize=9)
    axes[0, 0].set_ylabel("step time (s)")
    axes[1, 0].set_ylabel("step memory (MiB)")
    legend_outside(fig, axes[0, 0])
    fig.suptitle("Training step cost as the inputs grow (ResNet-18, width 32, TPAVI at 4 stages, CPU)")
    return fig
