"""Trivial statistics: retrieval from the garment's pixel count and mean colour, no learning.

Introduced in ``notebooks/06_asen.py`` as a shortcut detector. A learned model's MAP on an
attribute means something only where these two numbers cannot already rank the candidates:

* **pixel count** (the size of the labelled garment's ground-truth mask): a longer skirt,
  coat or trouser leg covers more pixels unless the generator cancels it (FashionSynth's
  ``size_balance``), so on ``hard`` data this ranks lengths as well as ASEN did;
* **mean colour** (RGB averaged over the same mask): it should rank colour and, through the
  secondary colour's share, pattern, and nothing else.

Each image ``i`` gets one feature vector per statistic; a query's candidates are ranked by
the Euclidean distance between their vectors, for every attribute alike (the statistic does
not know the attribute), and scored with the same exact MAP as every model
(:func:`fgfs_lib.metrics.mean_average_precision`), with tied candidates (equal pixel
counts are common) scored as a group, scikit-learn's rule, so no candidate gains from its
position in the file. It needs the ground-truth regions, so it
exists only for FashionSynth.
"""

from __future__ import annotations

from typing import Any

import torch

GARMENT_ATTRIBUTE = "colour"  # its region is the labelled garment's own pixels


def garment_statistics(split: Any, attribute: int, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """``{"pixel_count": [N, 1], "mean_colour": [N, 3]}`` over the garment mask (bit
    ``attribute`` of the split's region masks); images without the garment give zeros."""
    counts, colours = [], []
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        mask = split.region_masks(idx, attribute).float()           # [B, H, W]
        rgb = split.raw(idx).float() / 255.0                          # [B, 3, H, W]
        count = mask.flatten(1).sum(1, keepdim=True)                  # [B, 1]
        total = (rgb * mask[:, None]).flatten(2).sum(2)               # [B, 3]
        counts.append(count)
        colours.append(total / count.clamp(min=1.0))
    return {"pixel_count": torch.cat(counts), "mean_colour": torch.cat(colours)}


def trivial_maps(data: Any, split: str = "test") -> dict[str, dict[str, Any]]:
    """Test MAP (x100) of ranking by each statistic: ``{statistic: {"overall",
    "per_attribute", "per_attribute_name"}}`` for ``pixel_count`` and ``mean_colour``."""
    from . import metrics

    images = getattr(data, split)
    names = list(data.meta.attribute_names)
    stats = garment_statistics(images, names.index(GARMENT_ATTRIBUTE))
    queries, candidates = getattr(data, f"{split}_queries"), getattr(data, f"{split}_candidates")
    out = {}
    for name, feats in stats.items():
        result = metrics.mean_average_precision(
            feats[queries[:, 0]], queries[:, 1], queries[:, 2], feats[candidates[:, 0]], candidates[:, 1],
            candidates[:, 2], distance="euclidean", ties="group")
        result["per_attribute_name"] = {names[a]: v for a, v in result["per_attribute"].items()}
        out[name] = result
    return out
