"""Figures for triplet sampling and the evaluation protocols; each function returns a Figure.

Introduced in ``notebooks/02_triplets_and_metrics.py``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def grouped_bars(series: Mapping[str, Sequence[float]], labels: Sequence[str], ylabel: str = "",
                 title: str = "", reference: float | None = None, figsize=(9, 3.2)) -> Figure:
    """Bars of several named series side by side for each label (e.g. per-attribute MAP)."""
    fig, ax = plt.subplots(figsize=figsize)
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (n - 1) / 2) * width, _np(values), width, label=name)
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def negative_value_distribution(anchor_value, negative_value, value_names: Sequence[str],
                                styles: Sequence[str], value_frequency=None, attribute_name: str = "") -> Figure:
    """Share of triplets whose anchor / negative has each value, one panel per sampling style.

    ``anchor_value`` and ``negative_value`` are lists (one array per style) of value ids.
    ``value_frequency`` (optional) overlays each value's share of the images.
    """
    fig, axes = plt.subplots(1, len(styles), figsize=(4.2 * len(styles), 3.0), sharey=True, squeeze=False)
    x = np.arange(len(value_names))
    for ax, style, av, nv in zip(axes[0], styles, anchor_value, negative_value):
        av, nv = _np(av), _np(nv)
        ax.bar(x - 0.2, np.bincount(av, minlength=len(x)) / len(av), 0.4, label="anchor value")
        ax.bar(x + 0.2, np.bincount(nv, minlength=len(x)) / len(nv), 0.4, label="negative value")
        if value_frequency is not None:
            f = _np(value_frequency).astype(float)
            ax.plot(x, f / f.sum(), "k.--", lw=0.8, label="share of images")
        ax.set_xticks(x, value_names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{style} sampling" + (f": {attribute_name}" if attribute_name else ""), fontsize=10)
    axes[0, 0].set_ylabel("share of triplets")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def ranking_strip(relevant_sorted, title: str = "") -> Figure:
    """One ranking: coloured cells (relevant green, other grey) with precision@k above them and
    the AP as the mean of the precisions at the relevant ranks."""
    rel = _np(relevant_sorted).astype(bool)
    k = np.arange(1, len(rel) + 1)
    precision = np.cumsum(rel) / k
    fig, (top, strip) = plt.subplots(2, 1, figsize=(max(4, 0.45 * len(rel)), 2.8), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
    top.plot(k, precision, "k-", lw=0.8)
    top.scatter(k[rel], precision[rel], color="tab:green", zorder=3, label="P@k at relevant ranks")
    ap = precision[rel].mean() if rel.any() else 0.0
    top.axhline(ap, color="tab:green", ls="--", lw=0.8, label=f"AP = {ap:.3f}")
    top.set_ylim(0, 1.05)
    top.set_ylabel("precision@k")
    top.legend(fontsize=8, loc="upper right")
    top.set_title(title)
    strip.bar(k, np.ones_like(k), color=np.where(rel, "tab:green", "lightgrey"), width=0.9)
    strip.set_yticks([])
    strip.set_xlabel("rank k")
    strip.set_xticks(k)
    fig.tight_layout()
    return fig


def random_baseline(analytic: Sequence[float], simulated: Sequence[float], labels: Sequence[str],
                    measured: Sequence[float] | None = None, title: str = "",
                    measured_name: str = "measured") -> Figure:
    """Per-attribute random-ranking MAP: closed form vs simulation (and optionally a model)."""
    series = {"random: analytic": analytic, "random: simulated": simulated}
    if measured is not None:
        series[measured_name] = measured
    return grouped_bars(series, labels, ylabel="MAP (x100)", title=title)


def active_fractions(active_fraction, labels: Sequence[str], valid=None, title: str = "") -> Figure:
    """Fraction of valid triplets with a positive hinge, per attribute (and their number)."""
    frac = _np(active_fraction)
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(labels))
    ax.bar(x, frac, color="tab:orange")
    if valid is not None:
        for xi, f, v in zip(x, frac, _np(valid)):
            ax.text(xi, f + 0.02, f"{int(v)}", ha="center", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("active / valid triplets")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
           title: str = "") -> Figure:
    """Line plots of named ``(x, y)`` series."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, (x, y) in series.items():
        ax.plot(_np(x), _np(y), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def size_tradeoff(rows: Sequence[Mapping], title: str = "index size against test MAP") -> Figure:
    """Scatter of ``bytes_per_image`` (log scale) against ``map``, one marker per method,
    each point labelled with its ``codec`` (rows as written by ``scripts/index_tradeoff.py``)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    markers = {}
    for row in rows:
        marker = markers.setdefault(row["method"], "os^Dv"[len(markers) % 5])
        ax.scatter(row["bytes_per_image"], row["map"], marker=marker, color=f"C{list(markers).index(row['method'])}",
                   label=row["method"] if sum(r["method"] == row["method"] for r in rows[: rows.index(row) + 1]) == 1 else None)
        ax.annotate(row["codec"], (row["bytes_per_image"], row["map"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per gallery image (all attributes)")
    ax.set_ylabel("test MAP")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
