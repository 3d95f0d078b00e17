"""Embedding figures: CSN masks as a picture, and 2-D (t-SNE) maps of an embedding coloured by
different attributes.

Introduced in ``notebooks/05_baselines.py``.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import is_color_like
from matplotlib.figure import Figure


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def mask_matrix(masks, attribute_names: Sequence[str], title: str = "CSN masks") -> Figure:
    """``masks`` [A, D] as an image: one row per attribute (condition), one column per dimension."""
    m = _numpy(masks)
    fig, ax = plt.subplots(figsize=(min(14.0, 2 + 0.12 * m.shape[1]), 0.9 + 0.35 * m.shape[0]))
    image = ax.imshow(m, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0)
    ax.set_yticks(range(len(attribute_names)), attribute_names)
    ax.set(xlabel="embedding dimension", title=title)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    fig.tight_layout()
    return fig


def tsne_2d(embeddings, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """A 2-D t-SNE map (scikit-learn, PCA init, fixed seed) of ``[N, D]`` embeddings; display only."""
    from sklearn.manifold import TSNE

    x = _numpy(embeddings).astype(np.float64)
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def scatter_by_attributes(points, labels, attribute_names: Sequence[str], value_names: Sequence[Sequence[str]],
                          title: str = "") -> Figure:
    """One panel per attribute: the same 2-D ``points`` [N, 2] coloured by that attribute's
    value (``labels`` [N, k], -1 = not applicable, drawn grey)."""
    pts, lab = _numpy(points), _numpy(labels)
    k = lab.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(4.6 * k, 4.2), squeeze=False)
    for j, ax in enumerate(axes[0]):
        known = lab[:, j] >= 0
        ax.scatter(pts[~known, 0], pts[~known, 1], s=6, color="0.85", label="n/a")
        cmap = plt.get_cmap("tab10" if len(value_names[j]) <= 10 else "tab20")
        # values that name colours (a colour attribute) are drawn in their own colour
        literal = all(is_color_like(name) for name in value_names[j])
        for v, name in enumerate(value_names[j]):
            sel = lab[:, j] == v
            if sel.any():
                ax.scatter(pts[sel, 0], pts[sel, 1], s=10, color=name if literal else cmap(v % cmap.N),
                           edgecolors="0.3" if literal else "none", linewidths=0.3, label=name)
        ax.set(title=f"coloured by {attribute_names[j]}", xticks=[], yticks=[])
        ax.legend(fontsize=7, markerscale=2, loc="best", framealpha=0.7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
