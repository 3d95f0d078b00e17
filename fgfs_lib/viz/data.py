"""Figures about datasets: samples per attribute value, region overlays, label statistics.

Introduced in ``notebooks/01_datasets.py``. Every function returns a ``matplotlib`` Figure.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

REGION_COLOUR = np.array([1.0, 0.0, 1.0])


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    """uint8 [3,H,W] or float [3,H,W] in [0,1] -> float [H,W,3] in [0,1]."""
    x = img.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(1, 2, 0).clamp(0, 1).numpy()


def _crop_box(box: np.ndarray, size: int, side: int) -> tuple[int, int, int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = min(side, size)
    x0 = int(np.clip(round(cx - side / 2), 0, size - side))
    y0 = int(np.clip(round(cy - side / 2), 0, size - side))
    return x0, y0, x0 + side, y0 + side


def value_grid(split, meta, attribute: int | str, per_value: int = 6, seed: int = 0, crop: bool = False,
               crop_fraction: float = 0.45, cell: float = 1.1) -> Figure:
    """Rows = the values of one attribute, columns = random training images with that value.

    ``crop`` zooms on the attribute's ground-truth box (FashionSynth only).
    """
    a = meta.attribute_id(attribute) if isinstance(attribute, str) else int(attribute)
    values = meta.value_names[a]
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(values), per_value, figsize=(cell * per_value + 1.6, cell * len(values)),
                             squeeze=False)
    labels = split.labels[:, a].numpy()
    for v, name in enumerate(values):
        pool = np.flatnonzero(labels == v)
        chosen = rng.choice(pool, size=min(per_value, len(pool)), replace=False) if len(pool) else []
        for j in range(per_value):
            ax = axes[v, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j >= len(chosen):
                continue
            i = int(chosen[j])
            img = _to_hwc(split.raw([i])[0])
            if crop and split.boxes is not None:
                side = int(round(split.image_size * crop_fraction))
                x0, y0, x1, y1 = _crop_box(split.boxes[i, a].numpy(), split.image_size, side)
                img = img[y0:y1, x0:x1]
            ax.imshow(img, interpolation="nearest")
        axes[v, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{meta.attribute_names[a]}" + (" (zoomed on its region)" if crop else ""), fontsize=10)
    fig.tight_layout()
    return fig


def region_overlay(split, indices: Sequence[int], attributes: Sequence[int] | None = None, meta=None,
                   alpha: float = 0.45, cell: float = 1.6) -> Figure:
    """Images (rows) with each applicable attribute's region (columns) tinted and boxed."""
    indices = [int(i) for i in indices]
    attributes = list(range(split.num_attributes)) if attributes is None else [int(a) for a in attributes]
    fig, axes = plt.subplots(len(indices), len(attributes) + 1,
                             figsize=(cell * (len(attributes) + 1), cell * len(indices)), squeeze=False)
    for r, i in enumerate(indices):
        img = _to_hwc(split.raw([i])[0])
        axes[r, 0].imshow(img, interpolation="nearest")
        for c, a in enumerate(attributes, start=1):
            ax = axes[r, c]
            if split.labels[i, a] < 0:
                ax.imshow(np.clip(img * 0.35 + 0.65, 0, 1), interpolation="nearest")  # clip: float rounding
                ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", va="center", fontsize=8)
            else:
                m = split.mask(i, a).numpy()[..., None]
                ax.imshow(np.clip(np.where(m, (1 - alpha) * img + alpha * REGION_COLOUR, img), 0, 1),
                          interpolation="nearest")
                x0, y0, x1, y1 = split.boxes[i, a].tolist()
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow",
                                       linewidth=1))
                if meta is not None:
                    ax.set_xlabel(meta.value_names[a][int(split.labels[i, a])], fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    for c, a in enumerate(attributes, start=1):
        axes[0, c].set_title(meta.attribute_names[a] if meta is not None else f"attribute {a}", fontsize=7)
    axes[0, 0].set_title("image", fontsize=7)
    fig.tight_layout()
    return fig


def applicability(split, meta) -> Figure:
    """Heat map: fraction of images of each category for which each attribute is labelled."""
    if split.categories is None or not meta.category_names:
        raise ValueError("applicability needs per-image categories (FashionSynth)")
    cats = split.categories.numpy()
    known = (split.labels >= 0).numpy()
    table = np.array([known[cats == c].mean(0) if (cats == c).any() else np.zeros(known.shape[1])
                      for c in range(len(meta.category_names))])
    fig, ax = plt.subplots(figsize=(0.7 * meta.num_attributes + 2, 0.45 * len(meta.category_names) + 1.5))
    ax.imshow(table, cmap="Greens", vmin=0, vmax=1)
    ax.set_xticks(range(meta.num_attributes), meta.attribute_names, rotation=45, ha="right", fontsize=8)
    counts = np.bincount(cats, minlength=len(meta.category_names))
    ax.set_yticks(range(len(meta.category_names)),
                  [f"{n} ({k})" for n, k in zip(meta.category_names, counts)], fontsize=8)
    ax.set_title("attribute applies (fraction of images per category)", fontsize=9)
    fig.tight_layout()
    return fig


def value_histograms(split, meta, ncols: int = 5) -> Figure:
    """One bar chart per attribute: images per value (labelled images only)."""
    nrows = int(np.ceil(meta.num_attributes / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.3 * nrows), squeeze=False)
    for a in range(meta.num_attributes):
        ax = axes.flat[a]
        col = split.labels[:, a]
        counts = torch.bincount(col[col >= 0], minlength=meta.num_values[a]).numpy()
        ax.bar(range(len(counts)), counts, color="tab:blue")
        ax.set_xticks(range(len(counts)), meta.value_names[a], rotation=60, ha="right", fontsize=6)
        ax.set_title(f"{meta.attribute_names[a]} ({int((col >= 0).sum())} imgs)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[meta.num_attributes:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def protocol_counts(data) -> Figure:
    """Queries and candidates per attribute in the valid and test splits."""
    meta = data.meta
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
    x = np.arange(meta.num_attributes)
    for ax, split in zip(axes, ("valid", "test")):
        q = torch.bincount(data.queries(split)[:, 1], minlength=meta.num_attributes).numpy()
        c = torch.bincount(data.candidates(split)[:, 1], minlength=meta.num_attributes).numpy()
        ax.bar(x - 0.2, q, width=0.4, label="queries")
        ax.bar(x + 0.2, c, width=0.4, label="candidates")
        ax.set_xticks(x, meta.attribute_names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{split} ({data.protocol} protocol)", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_row(images: Sequence[torch.Tensor], titles: Sequence[str] | None = None, cell: float = 1.6) -> Figure:
    """A row of images (uint8 or float in [0, 1], [3,H,W]) with optional titles."""
    fig, axes = plt.subplots(1, len(images), figsize=(cell * len(images), cell + 0.4), squeeze=False)
    for k, (ax, img) in enumerate(zip(axes[0], images)):
        ax.imshow(_to_hwc(torch.as_tensor(img)), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    fig.tight_layout()
    return fig
