"""Retrieval pictures: a query and its top-k per attribute, correct results framed.

Introduced in ``notebooks/06_asen.py``. Every function returns a ``matplotlib`` Figure.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

CORRECT = "#1a9850"
WRONG = "#d73027"


def _show(ax: Any, split: Any, index: int) -> None:
    image = split.denormalize(split.batch(torch.tensor([int(index)])))[0]
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def _frame(ax: Any, colour: str | None, width: float = 4.0) -> None:
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(width)


def retrieval_grid(
    split: Any,
    query_indices: Sequence[int],
    results: Sequence[Any],
    meta: Any,
    *,
    query_split: Any = None,
    title: str | None = None,
    image_inches: float = 1.15,
) -> Figure:
    """One row per query: the query, then its top-k (:class:`fgfs_lib.search.SearchResult`).

    A result is framed green when its value of the row's attribute equals the query's,
    red otherwise (no frame when either value is unknown). ``split`` holds the results'
    images, ``query_split`` the queries' (default: the same split).
    """
    if len(query_indices) != len(results):
        raise ValueError(f"{len(query_indices)} queries but {len(results)} results")
    query_split = query_split if query_split is not None else split
    k = max((len(r) for r in results), default=0)
    rows = len(results)
    fig, axes = plt.subplots(rows, k + 1, figsize=(image_inches * (k + 1.3), image_inches * 1.35 * rows),
                             squeeze=False)
    for row, (q, result) in enumerate(zip(query_indices, results)):
        a = result.attribute
        q_value = int(query_split.labels[int(q), a])
        q_name = meta.value_names[a][q_value] if q_value >= 0 else "?"
        ax = axes[row, 0]
        _show(ax, query_split, q)
        _frame(ax, "black", 2.0)
        ax.set_title(f"query\n{result.attribute_name}\n= {q_name}", fontsize=7)
        hits = 0
        for col in range(k):
            ax = axes[row, col + 1]
            if col >= len(result):
                ax.axis("off")
                continue
            _show(ax, split, int(result.indices[col]))
            value = result.values[col]
            correct = None if (value < 0 or q_value < 0) else value == q_value
            hits += bool(correct)
            _frame(ax, None if correct is None else (CORRECT if correct else WRONG))
            ax.set_title(f"{result.value_names[col] or '?'}\n{float(result.scores[col]):.2f}", fontsize=6)
        axes[row, 0].set_ylabel(f"{hits}/{len(result)}", fontsize=8, rotation=0, labelpad=14)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def map_per_cost(curves: dict[str, dict[str, Sequence[float]]], random_map: float | None = None,
                 title: str = "") -> Figure:
    """Validation MAP against training cost: backbone passes (left) and seconds (right).

    ``curves``: run label -> ``{"passes": [...], "seconds": [...], "map": [...]}`` with one
    cumulative value per epoch (e.g. from :func:`fgfs_lib.models.asen.backbone_passes` and
    the history's ``train_seconds``). Compares samplers by what they buy per unit of work.
    """
    fig, (ax_passes, ax_seconds) = plt.subplots(1, 2, figsize=(10, 3.4))
    for label, c in curves.items():
        ax_passes.plot([0, *c["passes"]], [random_map if random_map is not None else float("nan"), *c["map"]],
                       marker="o", label=label)
        ax_seconds.plot([0, *c["seconds"]], [random_map if random_map is not None else float("nan"), *c["map"]],
                        marker="o", label=label)
    for ax, xlabel in ((ax_passes, "images through the backbone"), (ax_seconds, "training seconds")):
        if random_map is not None:
            ax.axhline(random_map, color="k", linestyle="--", linewidth=1, label="random ranking")
        ax.set(xlabel=xlabel, ylabel="valid MAP")
        ax.grid(alpha=0.3)
    ax_passes.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
