"""Triplet ranking losses for attribute-conditioned embeddings.

Introduced in ``notebooks/02_triplets_and_metrics.py``.

Papers and equations
--------------------
* ASEN (Ma et al., AAAI 2020) and ASEN++ (Dong et al., TIP 2021) train with the cosine
  triplet ranking loss on L2-normalised embeddings:

  .. math:: \\ell(a, p, n) = \\max\\bigl(0,\\; m - \\cos(a, p) + \\cos(a, n)\\bigr),\\quad m = 0.2

* CSN (Veit et al., CVPR 2017) uses a margin ranking loss on Euclidean distances:

  .. math:: \\ell(a, p, n) = \\max\\bigl(0,\\; m + \\lVert a - p\\rVert - \\lVert a - n\\rVert\\bigr)

* :func:`batch_all_triplet_loss` is the course's in-batch variant: one backbone pass per
  image, one embedding per (attribute, image), and every valid triplet of every attribute
  inside the batch. How it is *averaged* matters:

  - ``average="all"`` (default): sum of the hinge terms / number of valid triplets.
    Solved triplets contribute zero but still count, so an attribute that is already
    separated does not take a bigger share of the gradient from the others.
  - ``average="active"``: sum / number of triplets with a positive hinge ("batch-all" as
    in Hermans et al. 2017). The loss stays large as long as *any* triplet is active, and
    when easy attributes are solved the few remaining active triplets of those attributes
    get the same weight as the many of the hard ones: solved attributes starve the rest.
  - ``average="attribute"``: the mean over attributes of each attribute's mean over its
    valid triplets. With "all", an attribute's weight is its share of the batch's valid
    triplets, and that share grows with the square of how many images carry it: on
    FashionSynth, colour and pattern (on every image) hold about 80% of the triplets of a
    batch of 64, and a length attribute that applies to one category in seven under 1%,
    so "all" learns colour and pattern and leaves the rest at random. Balancing over
    attributes gives every attribute the same weight, whatever its applicability.

No Python loop runs over triplets: the hinge is evaluated as a ``[P, B]`` tensor, one row
per valid (attribute, anchor, positive) pair and one column per candidate negative, masked
by validity (:func:`valid_triplet_mask` gives the same set as a dense ``[A, B, B, B]`` mask).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Average = Literal["all", "active", "attribute"]
Distance = Literal["cosine", "euclidean"]


def cosine_triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """ASEN's loss ``max(0, m - cos(a, p) + cos(a, n))`` for ``[B, D]`` embeddings.

    The inputs are L2-normalised here as well (a no-op for normalised embeddings), so the
    dot product is exactly the cosine.
    """
    _check_triplet_shapes(anchor, positive, negative)
    a, p, n = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    losses = torch.relu(margin - (a * p).sum(-1) + (a * n).sum(-1))
    return _reduce(losses, reduction)


def euclidean_triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """CSN's margin ranking loss ``max(0, m + ||a - p|| - ||a - n||)`` (no normalisation).

    Zappos50k rows ``i j k`` (``i`` closer to ``k`` than to ``j``) map to
    ``anchor=i, positive=k, negative=j``.
    """
    _check_triplet_shapes(anchor, positive, negative)
    d_ap = F.pairwise_distance(anchor, positive)
    d_an = F.pairwise_distance(anchor, negative)
    losses = torch.relu(margin + d_ap - d_an)
    return _reduce(losses, reduction)


def valid_triplet_mask(labels: torch.Tensor) -> torch.Tensor:
    """Bool ``[A, B, B, B]``: ``mask[a, i, j, k]`` is True when ``(i, j, k)`` is a valid triplet
    for attribute ``a``: ``i != j``, ``y_i = y_j``, ``y_k != y_i`` and all three annotated
    (label ``-1`` = not applicable, never used).
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be [B, A], got shape {tuple(labels.shape)}")
    y = labels.t()  # [A, B]
    known = y >= 0
    same = y[:, :, None] == y[:, None, :]  # [A, B, B]
    eye = torch.eye(y.shape[1], dtype=torch.bool, device=y.device)
    pos = same & ~eye & known[:, :, None] & known[:, None, :]  # (i, j) anchor-positive
    neg = ~same & known[:, :, None] & known[:, None, :]  # (i, k) anchor-negative
    return pos[:, :, :, None] & neg[:, :, None, :]


def pairwise_scores(embeddings: torch.Tensor, distance: Distance) -> torch.Tensor:
    """``[A, B, B]`` cosine similarities or Euclidean distances within each attribute."""
    if distance == "cosine":
        e = F.normalize(embeddings, dim=-1)
        return e @ e.transpose(1, 2)
    if distance == "euclidean":
        sq = (embeddings * embeddings).sum(-1)
        d2 = sq[:, :, None] + sq[:, None, :] - 2 * embeddings @ embeddings.transpose(1, 2)
        # clamp keeps sqrt's gradient finite on the (masked-out) diagonal
        return d2.clamp_min(1e-12).sqrt()
    raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")


def batch_triplet_hinges(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, distance: Distance = "cosine"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hinge values of every valid in-batch triplet, grouped by anchor-positive pair.

    Returns ``(hinges [P, B], negative_mask [P, B], pair_attribute [P])``: row ``p`` is one
    valid pair ``(a, i, j)`` (``i != j``, same annotated value of ``a``), column ``k`` a
    candidate negative; ``hinges`` is zero where ``k`` is not a valid negative.

    cosine:    ``h[a,i,j,k] = max(0, m - s_a(i,j) + s_a(i,k))``
    euclidean: ``h[a,i,j,k] = max(0, m + d_a(i,j) - d_a(i,k))``

    Working per pair (``P x B`` entries) instead of on the dense ``[A, B, B, B]`` cube keeps
    the cost proportional to the number of valid triplets.
    """
    if embeddings.dim() != 3:
        raise ValueError(f"embeddings must be [A, B, D] (one per attribute and image), got {tuple(embeddings.shape)}")
    A, B, _ = embeddings.shape
    if labels.shape != (B, A):
        raise ValueError(f"labels must be [B, A] = [{B}, {A}] to match embeddings [A, B, D], got {tuple(labels.shape)}")
    y = labels.to(embeddings.device).long().t()  # [A, B]
    known = y >= 0
    eye = torch.eye(B, dtype=torch.bool, device=y.device)
    pos = (y[:, :, None] == y[:, None, :]) & known[:, :, None] & ~eye  # [A, B, B]
    a, i, j = torch.nonzero(pos, as_tuple=True)
    negative = (y[a] != y[a, i][:, None]) & known[a]  # [P, B]
    scores = pairwise_scores(embeddings, distance)  # [A, B, B]
    s_ij = scores[a, i, j][:, None]
    s_ik = scores[a, i]
    raw = margin - s_ij + s_ik if distance == "cosine" else margin + s_ij - s_ik
    hinges = torch.where(negative, torch.relu(raw), torch.zeros((), dtype=raw.dtype, device=raw.device))
    return hinges, negative, a


def batch_all_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    average: Average = "all",
    distance: Distance = "cosine",
) -> tuple[torch.Tensor, dict[str, float]]:
    """In-batch triplet loss over every valid triplet of every attribute.

    Args:
        embeddings: ``[A, B, D]``, row ``a`` = the batch embedded for attribute ``a``.
        labels: ``[B, A]`` value ids, ``-1`` = not annotated.
        average: ``"all"`` divides by the number of valid triplets (default), ``"active"``
            by the number with a positive hinge, ``"attribute"`` averages each attribute's
            mean hinge over the attributes that have a valid triplet in the batch.
    Returns:
        ``(loss, stats)``; stats holds floats ``valid`` (number of valid triplets),
        ``active``, ``active_fraction``, ``loss_all`` and ``loss_active``.
        With no valid triplet the loss is a zero connected to the graph.
    """
    if average not in ("all", "active", "attribute"):
        raise ValueError(f"average must be 'all', 'active' or 'attribute', got {average!r}")
    # in float32 whatever the autocast dtype: the sums over thousands of triplets need it
    with torch.autocast(embeddings.device.type, enabled=False):
        hinges, negative, pair_attribute = batch_triplet_hinges(embeddings.float(), labels, margin, distance)
    total = hinges.sum()
    valid = int(negative.sum())
    active = int((hinges > 0).sum())
    loss_all = total / max(valid, 1)
    loss_active = total / max(active, 1)
    if average == "attribute":
        A = embeddings.shape[0]
        per_attribute_sum = hinges.new_zeros(A).index_add(0, pair_attribute, hinges.sum(1))
        per_attribute_valid = hinges.new_zeros(A).index_add(0, pair_attribute, negative.sum(1).to(hinges.dtype))
        present = per_attribute_valid > 0
        loss = (per_attribute_sum[present] / per_attribute_valid[present]).mean() if bool(present.any()) else total
    else:
        loss = loss_all if average == "all" else loss_active
    if valid == 0:
        loss = embeddings.sum() * 0.0
    stats = {
        "valid": float(valid),
        "active": float(active),
        "active_fraction": active / valid if valid else 0.0,
        "loss_all": float(loss_all.detach()),
        "loss_active": float(loss_active.detach()),
    }
    return loss, stats


def active_fraction_per_attribute(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, distance: Distance = "cosine"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per attribute: number of valid triplets ``[A]`` and the fraction of them that are active.

    Used to show how ``average="active"`` re-weights attributes (an attribute with few
    active triplets gets, per triplet, as much weight as one with many).
    """
    with torch.no_grad():
        hinges, negative, pair_attr = batch_triplet_hinges(embeddings, labels, margin, distance)
        A = embeddings.shape[0]
        valid = torch.zeros(A, dtype=torch.long).index_add_(0, pair_attr.cpu(), negative.sum(1).cpu())
        active = torch.zeros(A, dtype=torch.long).index_add_(0, pair_attr.cpu(), (hinges > 0).sum(1).cpu())
    return valid, active / valid.clamp_min(1)


def _check_triplet_shapes(*xs: torch.Tensor) -> None:
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1 or xs[0].dim() != 2:
        raise ValueError(f"anchor, positive, negative must share one [B, D] shape, got {[tuple(x.shape) for x in xs]}")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
