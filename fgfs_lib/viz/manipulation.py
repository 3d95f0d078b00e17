"""Pictures and the interactive search of notebook 09 (search with attribute manipulation).

Every plotting function returns a ``matplotlib`` Figure. :func:`search_widget` builds the
ipywidgets UI around :func:`run_search`, a plain function (tested without a browser).
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from .. import manipulation as manip
from .retrieval import CORRECT, WRONG, _frame, _show


def _describe(meta: Any, labels: torch.Tensor, attributes: Sequence[int]) -> str:
    return "\n".join(f"{meta.attribute_names[a]}={meta.value_names[a][int(labels[a])]}" if labels[a] >= 0
                     else f"{meta.attribute_names[a]}=n/a" for a in attributes)


def plot_search(result: dict[str, Any], split: Any, meta: Any, query: int | None = None,
                query_image: torch.Tensor | None = None, title: str = "") -> Figure:
    """The query, then the top-k results with their score and values of the searched
    attribute; results with exactly the target labels framed green, others red (when known)."""
    k = len(result["indices"])
    fig, axes = plt.subplots(1, k + 1, figsize=(1.6 * (k + 1), 2.6))
    a = result["attribute"]
    if query is not None:
        _show(axes[0], split, query)
        axes[0].set_xlabel("query\n" + _describe(meta, split.labels[query], [a]), fontsize=7)
    elif query_image is not None:
        axes[0].imshow(split.denormalize(query_image)[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        axes[0].set_xticks([]), axes[0].set_yticks([])
        axes[0].set_xlabel("query (file)", fontsize=7)
    _frame(axes[0], None)
    for col, (idx, score) in enumerate(zip(result["indices"].tolist(), result["scores"].tolist()), start=1):
        _show(axes[col], split, idx)
        axes[col].set_xlabel(f"{score:.2f}\n" + _describe(meta, split.labels[idx], [a]), fontsize=7)
        correct = None if result["correct"] is None else bool(result["correct"][col - 1])
        _frame(axes[col], None if correct is None else (CORRECT if correct else WRONG))
    wish = meta.attribute_names[a] + ("" if result["value"] is None else f" = {meta.value_names[a][result['value']]}")
    fig.suptitle(title or f"wish: {wish}", fontsize=9)
    fig.tight_layout()
    return fig


def topk_curves(results: dict[str, dict[int, float]], title: str = "") -> Figure:
    """Top-K accuracy (%) against K, one line per method."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, topk in results.items():
        ks = sorted(topk)
        ax.plot(ks, [topk[k] for k in ks], marker="o", ms=3, label=label)
    ax.set_xlabel("K")
    ax.set_ylabel("Top-K accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run_search(searchers: dict[str, Any], codes: dict[str, torch.Tensor], split: Any, meta: Any, *, method: str,
               query: int | str, mode: str, attribute: str, value: str | None = None, k: int = 8) -> tuple[dict, Figure]:
    """The widget's callback: search with ``method`` for gallery image ``query`` (an index)
    or an image file (a path); ``mode`` ``"manipulate"`` (attribute = value) or
    ``"similar"`` (by attribute). Returns (the result of :func:`fgfs_lib.manipulation.search`,
    its figure)."""
    if mode not in ("manipulate", "similar"):
        raise ValueError(f"mode must be 'manipulate' or 'similar', got {mode!r}")
    wish = f"{attribute}={value}" if mode == "manipulate" else attribute
    searcher = searchers[method]
    if isinstance(query, str) and not query.strip().isdigit():
        from ..search import load_query

        image = load_query(query, split)
        result = manip.search(searcher, codes[method], split, meta, 0, wish, k=k,
                              query_codes=manip.encode_image(searcher, image, split))
        return result, plot_search(result, split, meta, query_image=image, title=f"{method}: {wish}")
    index = int(query)
    result = manip.search(searcher, codes[method], split, meta, index, wish, k=k)
    return result, plot_search(result, split, meta, index, title=f"{method}: {wish}")


def search_widget(searchers: dict[str, Any], codes: dict[str, torch.Tensor], split: Any, meta: Any, k: int = 8):
    """An ipywidgets box: method, query (index or file path), mode, attribute, value, and a
    Search button that shows :func:`run_search`'s figure."""
    import ipywidgets as w
    from IPython.display import display

    method = w.Dropdown(options=list(searchers), description="method")
    query = w.Text(value="0", description="query", placeholder="gallery index or image path")
    mode = w.ToggleButtons(options=["manipulate", "similar"], description="mode")
    attribute = w.Dropdown(options=meta.attribute_names, description="attribute")
    value = w.Dropdown(options=meta.value_names[0], description="value")
    button, out = w.Button(description="Search"), w.Output()

    def on_attribute(change: Any) -> None:
        value.options = meta.value_names[meta.attribute_names.index(change["new"])]

    def on_click(_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                _, fig = run_search(searchers, codes, split, meta, method=method.value, query=query.value,
                                    mode=mode.value, attribute=attribute.value, value=value.value, k=k)
                display(fig)
                plt.close(fig)
            except (KeyError, ValueError, FileNotFoundError, TypeError) as error:
                print(f"error: {error}")

    attribute.observe(on_attribute, names="value")
    button.on_click(on_click)
    return w.VBox([w.HBox([method, query]), mode, w.HBox([attribute, value]), button, out])
