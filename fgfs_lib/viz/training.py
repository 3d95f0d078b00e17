"""Training figures: loss and validation-MAP curves, MAP per attribute beside the random baseline.

Introduced in ``notebooks/05_baselines.py``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def training_curves(histories: Mapping[str, Sequence[Mapping]], random_map: float | None = None) -> Figure:
    """Left: mean training loss per epoch; right: validation MAP per epoch; one line per run.

    ``histories``: run name -> the ``history`` of :class:`fgfs_lib.train.TrainResult`.
    """
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["loss"] for h in history], marker="o", label=name)
        ax_map.plot(epochs, [h["valid_map"] for h in history], marker="o", label=name)
    if random_map is not None:
        ax_map.axhline(random_map, color="k", linestyle="--", linewidth=1, label="random ranking")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_map.set(xlabel="epoch", ylabel="MAP (valid, x100)", title="validation MAP")
    for ax in (ax_loss, ax_map):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def map_per_attribute(results: Mapping[str, Mapping[str, float]], random: Mapping[str, float] | None = None,
                      title: str = "MAP per attribute") -> Figure:
    """Grouped bars: one group per attribute (plus ``overall`` if present), one bar per model;
    the random-ranking MAP as a black tick over each group.

    ``results``: model name -> {attribute name: MAP}; ``random``: {attribute name: MAP}.
    """
    names = list(dict.fromkeys(k for r in results.values() for k in r))
    x = np.arange(len(names))
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 3.8))
    for i, (model, values) in enumerate(results.items()):
        heights = [values.get(n, np.nan) for n in names]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=model)
    if random is not None:
        ax.scatter(x, [random.get(n, np.nan) for n in names], marker="_", s=600, color="k", zorder=3,
                   label="random ranking")
    ax.set_xticks(x, names, rotation=35, ha="right")
    ax.set(ylabel="MAP (x100)", title=title, ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, len(results) + 1))
    fig.tight_layout()
    return fig


def difficulty_ladder(levels: Sequence[float], gains: Mapping[str, Sequence[float]], knob: str = "detail_scale",
                      region_share: Sequence[float] | None = None,
                      title: str = "design details: MAP above random against difficulty") -> Figure:
    """One line per model: the mean over the design details of test MAP minus random, at each
    level of a difficulty knob (``levels``). ``region_share`` (optional): the details' mean
    share of the image at each level, written under the ticks."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for model, values in gains.items():
        ax.plot(levels, values, marker="o", label=model)
    ax.axhline(0.0, color="k", linestyle="--", linewidth=1, label="random ranking")
    labels = [f"{v:g}" if region_share is None else f"{v:g}\n({100 * r:.1f} %)" for v, r in
              zip(levels, region_share if region_share is not None else levels)]
    ax.set_xticks(list(levels), labels)
    ax.set(xlabel=knob + ("" if region_share is None else " (details' share of the image)"),
           ylabel="MAP - random (x100)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
