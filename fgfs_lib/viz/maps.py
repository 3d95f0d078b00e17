"""Figures for activation / attention maps: overlays with boxes, threshold curves, tables.

Introduced in ``notebooks/03_cam_localization.py``. Every function returns a
``matplotlib.figure.Figure``; boxes are ``(x0, y0, x1, y1)`` continuous pixel coordinates
(see :mod:`fgfs_lib.cam`), NaN where the attribute does not apply.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

BOX_COLOURS = ("lime", "cyan", "magenta", "yellow", "orange")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _draw_box(ax, box, colour: str, style: str = "-") -> None:
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return
    # imshow puts pixel x at [x - 0.5, x + 0.5]: shift continuous coordinates by -0.5
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                           linewidth=1.5, linestyle=style))


def overlay_maps(
    images,
    maps=None,
    titles: Sequence[str] | None = None,
    boxes: Mapping[str, object] | None = None,
    ncols: int = 6,
    alpha: float = 0.5,
    cmap: str = "jet",
    panel_size: float = 1.8,
) -> Figure:
    """Each image with its map on top (min-max scaled per panel) and optional boxes.

    ``images``: [N, 3, H, W] in [0, 1] (use ``split.denormalize``); ``maps``: [N, H, W] at
    the image size, or ``None`` to show the images alone; ``boxes``: legend name -> [N, 4], drawn in distinct colours
    (e.g. ``{"ground truth": gt, "CAM box": pred}``); ``titles``: one per panel.
    """
    images = _np(images)
    maps = _np(maps) if maps is not None else None
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.4), squeeze=False)
    boxes = {name: _np(b) for name, b in (boxes or {}).items()}
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.clip(images[i].transpose(1, 2, 0), 0, 1))
        if maps is not None:
            ax.imshow(maps[i], cmap=cmap, alpha=alpha)
        for (name, b), colour in zip(boxes.items(), BOX_COLOURS):
            _draw_box(ax, b[i], colour, "--" if name.lower().startswith("ground") else "-")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if boxes:
        handles = [plt.Line2D([], [], color=c, linestyle="--" if k.lower().startswith("ground") else "-")
                   for k, c in zip(boxes, BOX_COLOURS)]
        fig.legend(handles, list(boxes), loc="lower center", ncol=len(boxes), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05 if boxes else 0, 1, 1))
    return fig


def attribute_overlays(
    images,
    maps,
    attribute_names: Sequence[str],
    gt_boxes=None,
    pred_boxes=None,
    value_names: Sequence[Sequence[str]] | None = None,
    labels=None,
    predicted=None,
    alpha: float = 0.5,
    panel_size: float = 1.5,
) -> Figure:
    """Grid: one row per image (first column the plain image), one column per attribute.

    ``maps``: [N, A, H, W]; ``gt_boxes`` / ``pred_boxes``: [N, A, 4]. A panel whose ground
    truth box is NaN (attribute not applicable) is drawn faded. With ``labels`` and
    ``predicted`` ([N, A]) and ``value_names``, panels are titled ``pred / truth``.
    """
    images, maps = _np(images), _np(maps)
    N, A = maps.shape[:2]
    gt = _np(gt_boxes) if gt_boxes is not None else None
    pred = _np(pred_boxes) if pred_boxes is not None else None
    fig, axes = plt.subplots(N, A + 1, figsize=(panel_size * (A + 1), panel_size * N + 0.5), squeeze=False)
    for i in range(N):
        picture = np.clip(images[i].transpose(1, 2, 0), 0, 1)
        axes[i, 0].imshow(picture)
        axes[i, 0].axis("off")
        for a in range(A):
            ax = axes[i, a + 1]
            ax.axis("off")
            applies = gt is None or np.isfinite(gt[i, a]).all()
            ax.imshow(picture, alpha=1.0 if applies else 0.35)
            if not applies:
                continue
            ax.imshow(maps[i, a], cmap="jet", alpha=alpha)
            if gt is not None:
                _draw_box(ax, gt[i, a], BOX_COLOURS[0], "--")
            if pred is not None:
                _draw_box(ax, pred[i, a], BOX_COLOURS[1])
            if labels is not None and predicted is not None and value_names is not None:
                p, t = int(predicted[i, a]), int(labels[i, a])
                ok = "ok" if p == t else "x"
                ax.set_title(f"{value_names[a][p][:8]}/{value_names[a][t][:8]} {ok}", fontsize=6)
    for a, name in enumerate(attribute_names[:A]):
        axes[0, a + 1].text(0.5, 1.25 if labels is not None else 1.05, name, transform=axes[0, a + 1].transAxes,
                            ha="center", va="bottom", fontsize=7)
    handles = [plt.Line2D([], [], color=BOX_COLOURS[0], linestyle="--"), plt.Line2D([], [], color=BOX_COLOURS[1])]
    fig.legend(handles, ["ground truth", "predicted box"], loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def threshold_curves(
    thresholds,
    curves: Mapping[str, object],
    marks: Mapping[str, float] | None = None,
    baselines: Mapping[str, float] | None = None,
    ylabel: str = "mean box IoU",
    title: str = "",
) -> Figure:
    """Lines of a metric against the box threshold, one per name in ``curves``.

    ``marks``: name -> threshold to mark with a vertical line (the papers' choices);
    ``baselines``: name -> constant drawn as a horizontal dotted line.
    """
    thresholds = _np(thresholds)
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    for name, values in curves.items():
        ax.plot(thresholds, _np(values), marker="o", markersize=3, label=name)
    for name, value in (baselines or {}).items():
        ax.axhline(float(value), linestyle=":", color="grey")
        ax.text(thresholds[-1], float(value), f" {name}", va="bottom", ha="right", fontsize=7, color="grey")
    for name, value in (marks or {}).items():
        ax.axvline(float(value), linestyle="--", color="black", linewidth=0.8)
        ax.text(float(value), ax.get_ylim()[0], f" {name}", va="bottom", ha="right", fontsize=7, rotation=90)
    ax.set_xlabel("threshold on the min-max normalised map")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def metric_bars(
    table: Mapping[str, Sequence[float]],
    attribute_names: Sequence[str],
    ylabel: str,
    title: str = "",
) -> Figure:
    """Grouped bars: one group per attribute, one bar per method (``table``: method ->
    values per attribute, NaN drawn as missing)."""
    methods = list(table)
    x = np.arange(len(attribute_names))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(attribute_names), 3.5))
    for k, method in enumerate(methods):
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, _np(table[method]).astype(float), width, label=method)
    ax.set_xticks(x)
    ax.set_xticklabels(attribute_names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(len(methods), 4))
    fig.tight_layout()
    return fig
