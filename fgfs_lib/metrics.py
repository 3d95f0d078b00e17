"""Evaluation protocols: ASFR MAP, triplet relation accuracy, manipulation Top-K / NDCG@K,
localisation against ground-truth regions, and random-ranking baselines.

Introduced in ``notebooks/02_triplets_and_metrics.py``.

ASFR MAP (ASEN's protocol, as the authors' evaluation code computes it)
-----------------------------------------------------------------------
1. Each query and candidate is embedded conditioned on its own attribute.
2. Per attribute ``a``, a query ranks *all* candidates annotated with ``a`` by cosine
   similarity.
3. Over the full ranking, with ``rel_k`` = 1 if the candidate at rank ``k`` has the query's
   value and ``R`` relevant candidates in total:

   .. math:: AP = \\frac{1}{R} \\sum_{k=1}^{N} rel_k \\, P@k, \\qquad P@k = \\frac{1}{k}\\sum_{j \\le k} rel_j

   and ``AP = 0`` when ``R = 0`` (the query still counts).
4. Per-attribute MAP = mean AP over that attribute's queries; overall MAP = mean over all
   queries (query-weighted). Both x100.

**Ties** (the reference code uses an unstable argsort, so its result depends on the
sort implementation). Ours, ``ties="index"`` (default): candidates with equal scores are
ranked by ascending candidate index (a stable sort by descending score, candidates in the
order given). Deterministic, and the same as giving every candidate an infinitesimal
bonus decreasing with its index. ``ties="group"`` reproduces scikit-learn's
``average_precision_score``: a block of tied candidates is one threshold, and every
relevant item in it gets the precision at the *end* of the block (pessimistic). Without
ties both rules are the same number.

Vectorised: one ``[q, n]`` similarity block per chunk of queries of one attribute, one sort,
cumulative sums for precision@k. Same code on CPU and GPU.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Ties = Literal["index", "group"]


def _tensor(x, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(dtype) if dtype is not None else t


def similarity(queries: torch.Tensor, candidates: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """``[Q, N]`` scores that every ranking in the library sorts by, higher = more similar:
    the cosine of the L2-normalised embeddings (``"cosine"``, ASEN and most models) or minus
    the Euclidean distance, in float64 (``"euclidean"``, CSN, whose embeddings are not
    normalised)."""
    if distance == "cosine":
        return F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).t()
    if distance == "euclidean":
        return -torch.cdist(queries.double(), candidates.double())
    raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")


# ----------------------------------------------------------------------------- AP / MAP


def average_precision(scores, relevant, ties: Ties = "index") -> torch.Tensor:
    """AP of each row of ``scores [Q, N]`` (higher = ranked first) given ``relevant [Q, N]``.

    Returns float64 ``[Q]`` in [0, 1]; a row with no relevant item scores 0.
    """
    scores = _tensor(scores)
    relevant = _tensor(relevant).bool().to(scores.device)
    if scores.dim() == 1:
        return average_precision(scores[None], relevant[None], ties)[0]
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and relevant {tuple(relevant.shape)} must match")
    if ties not in ("index", "group"):
        raise ValueError(f"ties must be 'index' or 'group', got {ties!r}")
    Q, N = scores.shape
    if N == 0:
        return torch.zeros(Q, dtype=torch.float64, device=scores.device)
    sorted_scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    # float32 counts are exact up to 2^24 candidates; the final sum is float64
    work = torch.float32 if N < 2**24 else torch.float64
    rel = torch.gather(relevant, 1, order).to(work)
    hits = torch.cumsum(rel, dim=1)  # relevant items in the top k
    ranks = torch.arange(1, N + 1, device=scores.device, dtype=work)
    if ties == "index":
        precision = hits / ranks  # P@k
    else:
        # the precision at the last position of each block of equal scores
        last = _block_last_index(sorted_scores)
        precision = torch.gather(hits, 1, last) / (last + 1).to(work)
    num_relevant = hits[:, -1].to(torch.float64)
    ap = (precision * rel).sum(1, dtype=torch.float64) / num_relevant.clamp_min(1)  # (1/R) sum_k rel_k P@k
    return torch.where(num_relevant > 0, ap, torch.zeros_like(ap))


def _block_last_index(sorted_scores: torch.Tensor) -> torch.Tensor:
    """For each position of rows sorted descending, the index of the last equal score."""
    Q, N = sorted_scores.shape
    idx = torch.arange(N, device=sorted_scores.device).expand(Q, N)
    is_last = torch.ones(Q, N, dtype=torch.bool, device=sorted_scores.device)
    is_last[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    # reverse cumulative minimum of "index if last else N": the next block end at or after k
    marked = torch.where(is_last, idx, torch.full_like(idx, N))
    return torch.flip(torch.cummin(torch.flip(marked, [1]), dim=1).values, [1])


def _require_rows(num_queries: int, num_candidates: int) -> None:
    """MAP is undefined without queries or candidates: say so instead of returning 0 or crashing."""
    if num_queries == 0 or num_candidates == 0:
        raise ValueError(f"MAP needs at least one query and one candidate, got {num_queries} queries and "
                         f"{num_candidates} candidates (is a query or candidate file empty?)")


def average_precision_per_query(
    query_emb, query_attr, query_val, cand_emb, cand_attr, cand_val,
    *, ties: Ties = "index", chunk_size: int = 1024, device: torch.device | str | None = None,
    distance: str = "cosine",
) -> torch.Tensor:
    """AP (float64, in [0, 1]) of every query, in the order given; see the module docstring.

    ``distance="cosine"`` ranks by cosine similarity (ASEN and most models);
    ``"euclidean"`` by negative Euclidean distance (CSN, whose embeddings are not normalised).
    """
    if distance not in ("cosine", "euclidean"):
        raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")
    q_emb = _tensor(query_emb, torch.float32)
    c_emb = _tensor(cand_emb, torch.float32)
    q_attr, q_val = _tensor(query_attr).long(), _tensor(query_val).long()
    c_attr, c_val = _tensor(cand_attr).long(), _tensor(cand_val).long()
    if q_emb.dim() != 2 or c_emb.dim() != 2 or q_emb.shape[1] != c_emb.shape[1]:
        raise ValueError(f"embeddings must be [Q, D] and [N, D], got {tuple(q_emb.shape)} and {tuple(c_emb.shape)}")
    if not (len(q_attr) == len(q_val) == len(q_emb)) or not (len(c_attr) == len(c_val) == len(c_emb)):
        raise ValueError("query_attr/query_val must have one entry per query and cand_attr/cand_val one per candidate")
    _require_rows(len(q_emb), len(c_emb))
    dev = torch.device(device) if device is not None else q_emb.device
    q_emb, c_emb = q_emb.to(dev), c_emb.to(dev)
    q_attr, q_val, c_attr, c_val = (t.to(dev) for t in (q_attr, q_val, c_attr, c_val))
    ap = torch.zeros(len(q_emb), dtype=torch.float64, device=dev)
    for a in torch.unique(q_attr).tolist():
        qi = torch.nonzero(q_attr == a).squeeze(1)
        ci = torch.nonzero(c_attr == a).squeeze(1)
        if len(ci) == 0:
            continue  # no candidate for this attribute: R = 0, AP = 0
        cand = c_emb[ci]
        values = c_val[ci]
        for start in range(0, len(qi), chunk_size):
            rows = qi[start : start + chunk_size]
            scores = similarity(q_emb[rows], cand, distance)
            relevant = values[None, :] == q_val[rows, None]
            ap[rows] = average_precision(scores, relevant, ties)
    return ap


def mean_average_precision(
    query_emb, query_attr, query_val, cand_emb, cand_attr, cand_val,
    *, ties: Ties = "index", chunk_size: int = 1024, device: torch.device | str | None = None,
    distance: str = "cosine",
) -> dict:
    """ASFR MAP, x100: ``{"overall": float, "per_attribute": {attr_id: float}}``.

    Inputs are tensors or arrays: embeddings ``[Q, D]`` / ``[N, D]`` (compared by cosine, or
    by Euclidean distance with ``distance="euclidean"``),
    attribute and value ids ``[Q]`` / ``[N]``. ``per_attribute`` has one entry per
    attribute that has queries. Ties: see the module docstring.
    """
    ap = average_precision_per_query(
        query_emb, query_attr, query_val, cand_emb, cand_attr, cand_val,
        ties=ties, chunk_size=chunk_size, device=device, distance=distance,
    )
    return summarize_ap(ap, _tensor(query_attr).long().to(ap.device))


def summarize_ap(ap: torch.Tensor, query_attr) -> dict:
    """Per-query APs -> ``{"overall", "per_attribute"}`` in percent (query-weighted overall)."""
    query_attr = _tensor(query_attr).long().to(ap.device)
    per_attribute = {int(a): float(ap[query_attr == a].mean() * 100) for a in torch.unique(query_attr).tolist()}
    overall = float(ap.mean() * 100) if len(ap) else 0.0
    return {"overall": overall, "per_attribute": per_attribute}


# ----------------------------------------------------------------------------- random baselines


def expected_random_ap(num_relevant, num_candidates) -> torch.Tensor:
    """Exact expected AP of a uniformly random ranking of ``N`` items with ``R`` relevant.

    With ``rel_k`` the indicator at rank ``k``, ``E[rel_k] = R/N`` and
    ``E[rel_j rel_k] = R(R-1)/(N(N-1))`` for ``j != k``, so

    .. math:: E[AP] = \\frac{1}{R}\\sum_{k=1}^{N}\\frac{1}{k}\\Bigl(\\frac{R}{N}
              + (k-1)\\frac{R(R-1)}{N(N-1)}\\Bigr)
              = \\frac{R-1}{N-1} + \\frac{(N-R)\\,H_N}{N(N-1)}

    with ``H_N`` the N-th harmonic number (``E[AP] = 1`` for ``N = 1``, ``0`` for ``R = 0``).
    """
    R = _tensor(num_relevant).to(torch.float64)
    N = _tensor(num_candidates).to(torch.float64)
    H = torch.special.digamma(N + 1) + 0.5772156649015329  # H_N = psi(N + 1) + gamma
    denom = (N * (N - 1)).clamp_min(1)
    e = (R - 1) / (N - 1).clamp_min(1) + (N - R) * H / denom
    e = torch.where(N <= 1, torch.ones_like(e), e)
    return torch.where(R > 0, e, torch.zeros_like(e))


def random_map_expectation(query_attr, query_val, cand_attr, cand_val) -> dict:
    """Alias of :func:`expected_random_map` (the name notebook 00 uses)."""
    return expected_random_map(query_attr, query_val, cand_attr, cand_val)


def relevant_counts(query_attr, query_val, cand_attr, cand_val) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: ``R`` (candidates with its attribute and value) and ``N`` (with its attribute)."""
    q_attr, q_val = _tensor(query_attr).long(), _tensor(query_val).long()
    c_attr, c_val = _tensor(cand_attr).long(), _tensor(cand_val).long()
    _require_rows(len(q_attr), len(c_attr))
    width = int(max(int(q_val.max()) if len(q_val) else 0, int(c_val.max()) if len(c_val) else 0)) + 1
    pair_counts = torch.bincount(c_attr * width + c_val, minlength=(int(max(q_attr.max(), c_attr.max())) + 1) * width)
    attr_counts = pair_counts.view(-1, width).sum(1)
    return pair_counts[q_attr * width + q_val], attr_counts[q_attr]


def expected_random_map(query_attr, query_val, cand_attr, cand_val) -> dict:
    """Expected MAP (x100) of random rankings for a query/candidate split, in the same format
    as :func:`mean_average_precision` (analytic: :func:`expected_random_ap` per query)."""
    R, N = relevant_counts(query_attr, query_val, cand_attr, cand_val)
    return summarize_ap(expected_random_ap(R, N), query_attr)


def simulated_random_map(query_attr, query_val, cand_attr, cand_val, generator: torch.Generator,
                         trials: int = 10) -> dict:
    """MAP (x100) of random rankings, averaged over ``trials`` draws of uniform random scores
    (continuous scores, so no ties). Also returns ``"std_overall"`` across trials."""
    q_attr, q_val = _tensor(query_attr).long(), _tensor(query_val).long()
    c_attr, c_val = _tensor(cand_attr).long(), _tensor(cand_val).long()
    aps = torch.zeros(trials, len(q_attr), dtype=torch.float64)
    for t in range(trials):
        for a in torch.unique(q_attr).tolist():
            qi = torch.nonzero(q_attr == a).squeeze(1)
            cv = c_val[c_attr == a]
            scores = torch.rand(len(qi), len(cv), generator=generator)
            aps[t, qi] = average_precision(scores, cv[None, :] == q_val[qi, None])
    out = summarize_ap(aps.mean(0), q_attr)
    out["std_overall"] = float((aps.mean(1) * 100).std()) if trials > 1 else 0.0
    return out


# ----------------------------------------------------------------------------- triplet relation


def triplet_relation_accuracy(anchor, first, second, closer_to_second=None,
                              distance: Literal["cosine", "euclidean"] = "euclidean") -> float:
    """Zappos50k TR accuracy in percent: is the anchor closer to the right one of two images?

    With CSN rows ``i j k`` (i closer to k than to j) pass ``anchor=emb[i], first=emb[j],
    second=emb[k]`` and leave ``closer_to_second`` as None (= all True). A prediction is
    correct when the strictly closer image is the true one; a tie counts as wrong (as in
    CSN's evaluation, which tests ``d(i, j) > d(i, k)``).
    """
    anchor, first, second = (_tensor(x, torch.float32) for x in (anchor, first, second))
    if distance == "cosine":
        a = F.normalize(anchor, dim=1)
        d_first = 1 - (a * F.normalize(first, dim=1)).sum(1)
        d_second = 1 - (a * F.normalize(second, dim=1)).sum(1)
    elif distance == "euclidean":
        d_first = F.pairwise_distance(anchor, first)
        d_second = F.pairwise_distance(anchor, second)
    else:
        raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")
    truth = torch.ones(len(anchor), dtype=torch.bool) if closer_to_second is None else _tensor(closer_to_second).bool()
    correct = torch.where(truth, d_second < d_first, d_first < d_second)
    return float(correct.double().mean() * 100) if len(correct) else 0.0


# ----------------------------------------------------------------------------- manipulation


def _ranked(scores, k: int) -> torch.Tensor:
    scores = _tensor(scores, torch.float32)
    k = min(k, scores.shape[1])
    # stable descending sort: ties by gallery index, as for MAP
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def manipulation_topk_accuracy(scores, target_labels, gallery_labels, ks: Sequence[int] = (1, 5, 10, 20, 30)) -> dict:
    """Top-K accuracy (percent) for search with attribute manipulation.

    ``scores [Q, N]``: similarity of each manipulated query to each gallery image.
    ``target_labels [Q, A]``: the query's label vector with the manipulated attribute
    replaced; ``gallery_labels [N, A]``. A hit at K: one of the K best has *exactly* the target
    vector (``-1`` groups, i.e. missing attributes, must match too). Returns ``{K: percent}``.
    """
    target = _tensor(target_labels).long()
    gallery = _tensor(gallery_labels).long()
    top = _ranked(scores, max(ks))
    exact = (gallery[top] == target[:, None, :]).all(-1)  # [Q, K]
    first_hits = exact.cumsum(1) > 0
    return {int(k): float(first_hits[:, min(k, top.shape[1]) - 1].double().mean() * 100) for k in ks}


def manipulation_ndcg(scores, target_labels, gallery_labels, k: int = 30,
                      gain: Literal["fraction", "exact"] = "fraction") -> float:
    """NDCG@K (percent) for search with attribute manipulation.

    Relevance of a gallery image to a target vector: ``gain="fraction"`` (default) the share
    of attributes equal to the target (graded, 1 = exact match), ``gain="exact"`` 1 for an
    exact match else 0. ``DCG@K = sum_i (2^rel_i - 1) / log2(i + 1)`` over the top K, divided
    by the DCG of the ideal ordering of the whole gallery. Queries whose ideal DCG is 0
    score 0.
    """
    target = _tensor(target_labels).long()
    gallery = _tensor(gallery_labels).long()
    match = (gallery[None, :, :] == target[:, None, :]).double()  # [Q, N, A]
    rel = match.mean(-1) if gain == "fraction" else match.all(-1).double()
    top = _ranked(scores, k)
    kk = top.shape[1]
    discount = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float64))
    dcg = ((2 ** torch.gather(rel, 1, top) - 1) * discount).sum(1)
    ideal = ((2 ** torch.sort(rel, dim=1, descending=True).values[:, :kk] - 1) * discount).sum(1)
    ndcg = torch.where(ideal > 0, dcg / ideal.clamp_min(1e-12), torch.zeros_like(dcg))
    return float(ndcg.mean() * 100) if len(ndcg) else 0.0


# ----------------------------------------------------------------------------- localisation


def _match_maps(maps, masks) -> tuple[torch.Tensor, torch.Tensor]:
    maps = _tensor(maps, torch.float32)
    masks = _tensor(masks).bool()
    if maps.dim() == 2:
        maps, masks = maps[None], masks[None] if masks.dim() == 2 else masks
    if maps.dim() != 3 or masks.dim() != 3 or len(maps) != len(masks):
        raise ValueError(f"maps [N, h, w] and masks [N, H, W] expected, got {tuple(maps.shape)} and {tuple(masks.shape)}")
    if maps.shape[-2:] != masks.shape[-2:]:
        # attention maps live on the feature grid: upsample bilinearly to the mask's size
        maps = F.interpolate(maps[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return maps, masks.to(maps.device)


def pointing_game(maps, masks) -> torch.Tensor:
    """Per map: 1.0 if its maximum lies inside the region, 0.0 if not, NaN for an empty mask.

    ``maps [N, h, w]`` (upsampled to the masks' size if different), ``masks [N, H, W]`` bool.
    Several equal maxima: the first in row-major order is used. Average with ``nanmean``.
    """
    maps, masks = _match_maps(maps, masks)
    flat = maps.flatten(1).argmax(1)
    hit = torch.gather(masks.flatten(1), 1, flat[:, None])[:, 0].float()
    return torch.where(masks.flatten(1).any(1), hit, torch.full_like(hit, float("nan")))


def mass_inside(maps, masks) -> torch.Tensor:
    """Per map: share of its mass inside the region, ``sum(map * mask) / sum(map)``.

    Negative values (e.g. raw CAMs) are clamped to 0 first. NaN for an empty mask or an
    all-zero map.
    """
    maps, masks = _match_maps(maps, masks)
    m = maps.clamp_min(0).flatten(1)
    total = m.sum(1)
    inside = (m * masks.flatten(1)).sum(1)
    ok = masks.flatten(1).any(1) & (total > 0)
    return torch.where(ok, inside / total.clamp_min(1e-12), torch.full_like(total, float("nan")))


def box_iou(boxes_a, boxes_b) -> torch.Tensor:
    """Paired IoU of boxes ``[N, 4]`` given as ``(x0, y0, x1, y1)`` (continuous coordinates,
    area = (x1 - x0) (y1 - y0)). NaN where either box is NaN (attribute not applicable)."""
    a = _tensor(boxes_a, torch.float64)
    b = _tensor(boxes_b, torch.float64)
    if a.shape != b.shape or a.shape[-1] != 4:
        raise ValueError(f"boxes must both be [N, 4] (x0, y0, x1, y1), got {tuple(a.shape)} and {tuple(b.shape)}")
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_min(0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_min(0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]).clamp_min(0) * (a[..., 3] - a[..., 1]).clamp_min(0)
    area_b = (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)
    union = area_a + area_b - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))
    nan = torch.isnan(a).any(-1) | torch.isnan(b).any(-1)
    return torch.where(nan, torch.full_like(iou, math.nan), iou)
