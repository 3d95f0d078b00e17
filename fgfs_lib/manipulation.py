"""Search with attribute manipulation: the queries, prototypes, scores and metrics.

Introduced in ``notebooks/09_manipulation_search.py``.

The task (FashionSearchNet, Ak et al.; AMNet, Zhao et al.): a query is an image plus a
wish, "this one, but with attribute ``a`` = value ``v``". The images that answer it are
the gallery images whose label vector equals the query's with ``a`` replaced by ``v``
(the *target vector*; attributes that do not apply, ``-1``, must match too).

**Queries, built the way ADDE (Hou et al.) builds them for Shopping100k.** Every test image
x every attribute the image has x every *other* value of it, kept only when some gallery
image has exactly the target vector (:func:`manipulation_queries`).

**Metrics** (per query, vectorised; ``scores [Q, N]`` come from one matrix product per
batch of queries, :func:`similarity`):

* Top-K accuracy: a hit when one of the K best gallery images has exactly the target
  vector (:func:`topk_hits`; the same as :func:`fgfs_lib.metrics.manipulation_topk_accuracy`);
* NDCG@K as ADDE computes it (:func:`adde_ndcg`), the number it publishes: relevance
  ``rel`` = share of attribute groups equal to the target's, gain ``2^rel - 1``,
  discount ``1 / log2(i + 1)`` and an *ideal* DCG that assumes K fully relevant results,
  ``sum_{i<=K} 1 / log2(i + 1)``. :func:`fgfs_lib.metrics.manipulation_ndcg` divides by the
  best ordering of the actual gallery instead (``ndcg_gallery``): higher numbers, and not
  comparable with ADDE's.

**Searchers.** Every method is a small object with three methods, so that one evaluation
loop (:func:`evaluate`) serves them all:

* ``encode(split) -> codes [N, ...]``: one pass over the images;
* ``gallery_vectors(codes, attribute) -> [N, D]``: the gallery as seen for a manipulation
  of ``attribute``;
* ``query_vectors(codes, attribute, values) -> [Q, D]``: the manipulated queries;

and a class attribute ``similarity`` (``"euclidean"``: minus the squared distance, or
``"dot"``). :class:`AttributeBasedSearcher` (the paper's "Att. Based" baseline) is here;
FashionSearchNet's and AMNet's searchers live with their models
(:mod:`fgfs_lib.models.fashionsearchnet`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

DEFAULT_KS = (1, 5, 10, 20, 30, 40, 50)

__all__ = [
    "manipulation_queries",
    "target_vectors",
    "similarity",
    "topk_hits",
    "adde_ndcg",
    "ndcg_gallery",
    "value_prototypes",
    "manipulate",
    "evaluate",
    "encode_all",
    "AttributeBasedSearcher",
    "RandomSearcher",
    "random_topk",
    "encode_image",
    "search",
    "parse_wish",
]


# ----------------------------------------------------------------------------- queries


def _row_ids(rows: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Integer ids of label rows such that equal rows get equal ids: (ids of ``rows``,
    ids of ``reference``)."""
    _, inverse = torch.unique(torch.cat([rows, reference]), dim=0, return_inverse=True)
    return inverse[: len(rows)], inverse[len(rows):]


def target_vectors(query_labels: Tensor, attributes: Tensor, values: Tensor) -> Tensor:
    """[Q, A]: each query's label vector with ``attributes`` set to ``values``."""
    target = query_labels.clone()
    target[torch.arange(len(target)), attributes] = values
    return target


def manipulation_queries(labels: Tensor, num_values: Sequence[int], gallery_labels: Tensor | None = None) -> Tensor:
    """ADDE's manipulation queries: LongTensor [Q, 3] of (image, attribute, wanted value).

    ``labels [N, A]`` of the query images (-1 = the attribute does not apply: never
    manipulated); ``gallery_labels`` defaults to the same images. Every labelled
    (image, attribute) pair x every other value, kept when some gallery row equals the
    target vector exactly. Ordered by image, then attribute, then value.
    """
    labels = torch.as_tensor(labels).long()
    gallery = labels if gallery_labels is None else torch.as_tensor(gallery_labels).long()
    rows = []
    for a, n in enumerate(num_values):
        img = torch.nonzero(labels[:, a] >= 0, as_tuple=True)[0].repeat_interleave(n)
        val = torch.arange(n).repeat(len(img) // n)  # every value for every labelled image
        keep = labels[img, a] != val
        img, val = img[keep], val[keep]
        rows.append(torch.stack([img, torch.full_like(img, a), val], dim=1))
    cand = torch.cat(rows)
    target = target_vectors(labels[cand[:, 0]], cand[:, 1], cand[:, 2])
    ids, gallery_ids = _row_ids(target, gallery)
    present = torch.zeros(int(max(ids.max(), gallery_ids.max())) + 1, dtype=torch.bool)
    present[gallery_ids] = True
    kept = cand[present[ids]]
    order = torch.argsort(kept[:, 0] * (len(num_values) * max(num_values)) + kept[:, 1] * max(num_values) + kept[:, 2])
    return kept[order]


# ----------------------------------------------------------------------------- scores, metrics


def similarity(queries: Tensor, gallery: Tensor, kind: str = "euclidean") -> Tensor:
    """[Q, N] scores, higher = better, from one matrix product: ``"dot"`` or
    ``"euclidean"`` = ``-(|q|^2 - 2 q.g + |g|^2)``."""
    dots = queries @ gallery.T
    if kind == "dot":
        return dots
    if kind != "euclidean":
        raise ValueError(f"similarity must be 'euclidean' or 'dot', got {kind!r}")
    return 2 * dots - (queries * queries).sum(1, keepdim=True) - (gallery * gallery).sum(1)[None, :]


def _top(scores: Tensor, k: int) -> Tensor:
    # stable descending sort: ties go to the lower gallery index (as in fgfs_lib.metrics)
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :min(k, scores.shape[1])]


def topk_hits(scores: Tensor, target: Tensor, gallery_labels: Tensor, ks: Sequence[int] = DEFAULT_KS) -> Tensor:
    """Bool [Q, len(ks)]: does one of the K best gallery images have exactly the target vector?"""
    top = _top(scores, max(ks))
    exact = (gallery_labels[top] == target[:, None, :]).all(-1)
    seen = exact.cumsum(1) > 0
    return torch.stack([seen[:, min(k, top.shape[1]) - 1] for k in ks], dim=1)


def _discount(k: int, device: Any) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=device))


def _relevance(gallery_labels: Tensor, target: Tensor, scores: Tensor, top: Tensor | None = None) -> Tensor:
    """[Q, N] (or [Q, K] at the ``top`` indices) share of attributes equal to the target's;
    0 where the score is ``-inf``: an image left out of the ranking (the query itself, which
    a gallery of K or fewer images would otherwise put in the top K, and which the best
    ordering of the gallery would otherwise count)."""
    if top is None:
        rel = (gallery_labels[None] == target[:, None, :]).double().mean(-1)
    else:
        rel, scores = (gallery_labels[top] == target[:, None, :]).double().mean(-1), scores.gather(1, top)
    return rel.masked_fill(scores == float("-inf"), 0.0)


def adde_ndcg(scores: Tensor, target: Tensor, gallery_labels: Tensor, k: int = 30) -> Tensor:
    """[Q] NDCG@K as ADDE computes it (module notes): graded relevance = share of matching
    attribute groups, gain ``2^rel - 1``, ideal DCG of K fully relevant results."""
    top = _top(scores, k)
    rel = _relevance(gallery_labels, target, scores, top)  # [Q, K]
    discount = _discount(top.shape[1], scores.device)
    return ((2 ** rel - 1) * discount).sum(1) / _discount(k, scores.device).sum()


def ndcg_gallery(scores: Tensor, target: Tensor, gallery_labels: Tensor, k: int = 30) -> Tensor:
    """[Q] the same DCG divided by the best ordering of *this* gallery (as
    :func:`fgfs_lib.metrics.manipulation_ndcg` with ``gain="fraction"``)."""
    top = _top(scores, k)
    rel_all = _relevance(gallery_labels, target, scores)
    discount = _discount(top.shape[1], scores.device)
    dcg = ((2 ** torch.gather(rel_all, 1, top) - 1) * discount).sum(1)
    ideal = ((2 ** torch.sort(rel_all, 1, descending=True).values[:, :top.shape[1]] - 1) * discount).sum(1)
    return torch.where(ideal > 0, dcg / ideal.clamp_min(1e-12), torch.zeros_like(dcg))


# ----------------------------------------------------------------------------- prototypes


def value_prototypes(reps: Tensor, labels: Tensor, num_values: Sequence[int]) -> list[Tensor]:
    """FashionSearchNet's prototypes: for each attribute ``a`` a matrix [n_a, D] whose row
    ``v`` is the mean of ``reps[:, a]`` over the images with value ``v`` (zeros if none).

    ``reps [N, A, D]`` attribute representations, ``labels [N, A]`` (-1 ignored).
    """
    out = []
    for a, n in enumerate(num_values):
        known = labels[:, a] >= 0
        sums = reps.new_zeros(n, reps.shape[-1]).index_add_(0, labels[known, a], reps[known, a])
        counts = torch.bincount(labels[known, a], minlength=n).to(reps.dtype).clamp_min(1)
        out.append(sums / counts[:, None])
    return out


def manipulate(reps: Tensor, attributes: Tensor, values: Tensor, prototypes: Sequence[Tensor]) -> Tensor:
    """[Q, A, D]: ``reps`` with row ``attributes[q]`` replaced by the prototype of
    ``values[q]`` (the manipulation step of FashionSearchNet)."""
    out = reps.clone()
    for a in torch.unique(attributes).tolist():
        rows = (attributes == a).nonzero(as_tuple=True)[0]
        out[rows, a] = prototypes[a][values[rows]].to(out.dtype)
    return out


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(searcher: Any, split: Any, queries: Tensor, ks: Sequence[int] = DEFAULT_KS, ndcg_k: int = 30,
             batch_size: int = 512, codes: Tensor | None = None) -> dict[str, Any]:
    """Top-K accuracy and NDCG@``ndcg_k`` of ``searcher`` on ``queries [Q, 3]`` over the
    gallery ``split`` (queries come from the same split; a query's own image is excluded
    from its ranking).

    Returns ``{"topk": {K: %}, "ndcg": %, "ndcg_gallery": %, "per_attribute": {a: {"topk":
    {K: %}, "count": n}}, "hits": Bool [Q, len(ks)]}`` (percent).
    """
    codes = searcher.encode(split) if codes is None else codes
    labels = split.labels.to(codes.device) if isinstance(codes, Tensor) else split.labels
    queries = torch.as_tensor(queries).long()
    hits = torch.zeros(len(queries), len(ks), dtype=torch.bool)
    ndcg, ndcg_g = torch.zeros(len(queries), dtype=torch.float64), torch.zeros(len(queries), dtype=torch.float64)
    for a in torch.unique(queries[:, 1]).tolist():
        rows = (queries[:, 1] == a).nonzero(as_tuple=True)[0]
        gallery = searcher.gallery_vectors(codes, a)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            img, val = queries[chunk, 0], queries[chunk, 2]
            q = searcher.query_vectors(codes[img.to(codes.device)], a, val.to(codes.device))
            scores = similarity(q, gallery, searcher.similarity).float()
            scores[torch.arange(len(chunk)), img.to(scores.device)] = float("-inf")  # not the query itself
            target = target_vectors(labels[img.to(labels.device)], torch.full_like(img, a).to(labels.device),
                                    val.to(labels.device))
            hits[chunk] = topk_hits(scores, target, labels, ks).cpu()
            ndcg[chunk] = adde_ndcg(scores, target, labels, ndcg_k).cpu()
            ndcg_g[chunk] = ndcg_gallery(scores, target, labels, ndcg_k).cpu()
    per_attribute = {}
    for a in torch.unique(queries[:, 1]).tolist():
        mask = queries[:, 1] == a
        per_attribute[a] = {"topk": dict(zip(ks, (hits[mask].double().mean(0) * 100).tolist())),
                            "count": int(mask.sum())}
    return {"topk": dict(zip(ks, (hits.double().mean(0) * 100).tolist())),
            "ndcg": float(ndcg.mean() * 100), "ndcg_gallery": float(ndcg_g.mean() * 100),
            "per_attribute": per_attribute, "hits": hits}


def encode_all(searchers: dict[str, Any], split: Any) -> dict[str, Any]:
    """Label -> ``searcher.encode(split)``, encoding once for searchers of the same class
    around the same model (FashionSearchNet searched two ways)."""
    cache, out = {}, {}
    for label, searcher in searchers.items():
        key = (type(searcher), id(getattr(searcher, "model", searcher)))
        if key not in cache:
            cache[key] = searcher.encode(split)
        out[label] = cache[key]
    return out


# ----------------------------------------------------------------------------- baselines


class AttributeBasedSearcher:
    """The paper's "Att. Based" baseline: predict every attribute of every image with a
    classifier, substitute the wanted value in the query's prediction, and rank the gallery
    by how well its predictions match that vector.

    Matching is soft, so that ties are rare: the score of a gallery image is the summed
    log-probability the classifier gives to the target value of every attribute the query
    has (``dot`` of a one-hot target with the gallery's log-probabilities). Attributes the
    query's *predicted* vector cannot express (the classifier has no "does not apply"
    class) are those labelled -1 in no image: all attributes count.
    """

    similarity = "dot"

    def __init__(self, classifier: Any, batch_size: int = 256):
        self.classifier = classifier
        self.batch_size = batch_size
        self.offsets = torch.tensor([0, *torch.tensor(classifier.num_values).cumsum(0).tolist()])

    @torch.no_grad()
    def encode(self, split: Any) -> Tensor:
        """[N, sum n_a]: concatenated log-probabilities of every attribute."""
        from .utils import device

        dev = device()
        self.classifier.to(dev).eval()
        out = []
        for start in range(0, len(split), self.batch_size):
            idx = torch.arange(start, min(start + self.batch_size, len(split)))
            logits = self.classifier(split.batch(idx).to(dev))
            out.append(torch.cat([lg.log_softmax(1) for lg in logits], 1))
        return torch.cat(out)

    def gallery_vectors(self, codes: Tensor, attribute: int) -> Tensor:
        return codes

    def query_vectors(self, codes: Tensor, attribute: int, values: Tensor) -> Tensor:
        predicted = torch.stack([codes[:, self.offsets[a]:self.offsets[a + 1]].argmax(1)
                                 for a in range(len(self.offsets) - 1)], 1)
        predicted[:, attribute] = values
        onehot = torch.zeros_like(codes)
        onehot.scatter_(1, predicted + self.offsets[:-1].to(codes.device), 1.0)
        return onehot


class RandomSearcher:
    """Random scores from ``generator``: every gallery image equally likely at every rank."""

    similarity = "dot"

    def __init__(self, generator: torch.Generator, dim: int = 64):
        self.generator, self.dim = generator, dim

    def encode(self, split: Any) -> Tensor:
        return torch.randn(len(split), self.dim, generator=self.generator)

    def gallery_vectors(self, codes: Tensor, attribute: int) -> Tensor:
        return codes

    def query_vectors(self, codes: Tensor, attribute: int, values: Tensor) -> Tensor:
        return torch.randn(len(codes), self.dim, generator=self.generator)


def random_topk(queries: Tensor, gallery_labels: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """The exact Top-K (percent) of a random ranking: a query with ``m`` targets among the
    ``n = N - 1`` other gallery images misses them all in its first K with probability
    ``C(n - m, K) / C(n, K)``; averaged over ``queries [Q, 3]`` (the gallery holds the queries)."""
    labels = torch.as_tensor(gallery_labels).long()
    target = target_vectors(labels[queries[:, 0]], queries[:, 1], queries[:, 2])
    ids, gallery_ids = _row_ids(target, labels)
    m = torch.bincount(gallery_ids, minlength=int(ids.max()) + 1)[ids].double()
    n = float(len(labels) - 1)
    out = {}
    for k in ks:
        log_miss = (torch.lgamma(n - m + 1) - torch.lgamma((n - m - k + 1).clamp_min(1))
                    - math.lgamma(n + 1) + math.lgamma(max(n - k + 1, 1)))  # K > n: found surely
        miss = torch.where(n - m >= k, log_miss.exp(), torch.zeros_like(m))
        out[int(k)] = float((1 - miss).mean() * 100)
    return out


# ----------------------------------------------------------------------------- interactive


def parse_wish(meta: Any, wish: str | None) -> tuple[int, int | None]:
    """``"sleeve_length=wrist"`` -> (attribute, value); ``"sleeve_length"`` (similar by
    attribute, no manipulation) -> (attribute, None)."""
    if not wish:
        raise ValueError("wish must be 'attribute' or 'attribute=value'")
    name, _, value = wish.partition("=")
    a = meta.attribute_id(name.strip())
    if not value.strip():
        return a, None
    names = meta.value_names[a]
    if value.strip() not in names:
        raise KeyError(f"unknown value {value.strip()!r} of {name.strip()}; choose one of {names}")
    return a, names.index(value.strip())


@torch.no_grad()
def search(searcher: Any, codes: Tensor, split: Any, meta: Any, query: int, wish: str, k: int = 8,
           query_codes: Tensor | None = None) -> dict[str, Any]:
    """One interactive search: the ``k`` best gallery images of ``split`` for gallery image
    ``query`` (or, with ``query_codes [1, ...]``, an outside image's codes) and a ``wish``
    (``"attribute=value"`` to manipulate, ``"attribute"`` for similar by attribute:
    the query's own value is kept, so the target is the query's label vector).

    Returns ``{"indices", "scores", "labels", "correct", "target", "attribute", "value"}``;
    ``correct`` [k] marks results with exactly the target vector (only when the query is a
    gallery image, whose labels are known).
    """
    a, value = parse_wish(meta, wish)
    q_codes = codes[query:query + 1] if query_codes is None else query_codes
    if value is None:  # "similar by attribute": keep the query's predicted/known representation
        value = int(split.labels[query, a]) if query_codes is None and split.labels[query, a] >= 0 else None
    vals = torch.tensor([value if value is not None else 0], device=q_codes.device)
    q = searcher.query_vectors(q_codes, a, vals) if value is not None else searcher.gallery_vectors(q_codes, a)
    scores = similarity(q, searcher.gallery_vectors(codes, a), searcher.similarity)[0].float()
    if query_codes is None:
        scores[query] = float("-inf")
    order = torch.sort(scores, descending=True, stable=True).indices[:k].cpu()
    labels = split.labels
    result = {"indices": order, "scores": scores[order.to(scores.device)].cpu(), "labels": labels[order],
              "attribute": a, "value": value, "target": None, "correct": None}
    if query_codes is None:
        target = labels[query].clone()
        if value is not None:
            target[a] = value
        result["target"] = target
        result["correct"] = (labels[order] == target).all(1)
    return result


class _Images:
    """A batch of normalised images seen as a split (``len``, ``batch``) for ``encode``."""

    def __init__(self, images: Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: Tensor) -> Tensor:
        return self.images[idx]


def encode_image(searcher: Any, image: Any, split: Any) -> Tensor:
    """Codes ``[1, ...]`` of an outside query (a path, a PIL image or a normalised tensor),
    preprocessed like ``split``'s images (:func:`fgfs_lib.search.load_query`)."""
    from .search import load_query

    return searcher.encode(_Images(load_query(image, split)))
