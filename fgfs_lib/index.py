"""Compact attribute-specific indexes: what a per-attribute product index costs, and how to shrink it.

Introduced in ``notebooks/10_results.py``.

An attribute-specific model (ASEN, ASEN++, AG-MAN) gives every gallery image one vector per
attribute, so a shop's index holds ``A`` vectors of ``D`` float32 numbers per image: ``4 A D``
bytes (the "large memory footprint" the ASEN++ paper names as a limit of the approach).
:class:`AttributeIndex` keeps each attribute's gallery vectors with one of four codecs, all
built on `faiss <https://github.com/facebookresearch/faiss>`_:

=========  =====================  ===========================================================
codec      bytes per vector        what is stored
=========  =====================  ===========================================================
float32    ``4 D``                 the vectors (exact search, ``IndexFlat``)
float16    ``2 D``                 IEEE half precision (``ScalarQuantizer QT_fp16``)
int8       ``D``                   per dimension ``d``: ``code = floor(255 (x - lo_d) / (hi_d -
                                   lo_d))``, decoded as ``lo_d + (code + 0.5) (hi_d - lo_d) /
                                   255``, with ``lo``/``hi`` the gallery's range (``QT_8bit``)
pq         ``M * bits / 8``        product quantisation: the vector cut into ``M`` pieces, each
                                   replaced by the nearest of ``2^bits`` centroids learned on
                                   the gallery (``IndexPQ``); queries stay float32 and are
                                   scored against the decoded pieces (asymmetric distance)
=========  =====================  ===========================================================

Scores follow the model: the inner product for cosine models (their vectors are unit length)
and minus the squared Euclidean distance for ``distance = "euclidean"`` models (CSN); higher is
always better. :meth:`AttributeIndex.decode` returns what a codec keeps of the vectors, so the
retrieval MAP of a compressed index is the protocol's MAP with decoded candidates.

:class:`SharedVectorIndex` is the alternative the course compares against: a model whose
attribute spaces are masks over one general embedding (CSN: ``m_a * f(x)``) needs one vector per
image, re-weighted per attribute at query time.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import utils

__all__ = ["CODECS", "AttributeIndex", "SharedVectorIndex", "pq_bits_for", "build_faiss_index"]

CODECS = ("float32", "float16", "int8", "pq")
FORMAT_VERSION = 1


def _faiss():
    try:
        import faiss
    except ImportError as error:  # declared in pyproject; only missing in a hand-made environment
        raise ImportError("fgfs_lib.index needs faiss-cpu: pip install faiss-cpu") from error
    return faiss


def pq_bits_for(num_vectors: int, most: int = 8) -> int:
    """Bits per PQ piece that ``num_vectors`` training vectors support: faiss's k-means wants
    about 39 points per centroid, so ``2^bits <= num_vectors / 39`` (at least 1 bit)."""
    return max(1, min(most, int(math.floor(math.log2(max(2, num_vectors / 39))))))


def _array(x: Any) -> np.ndarray:
    return np.ascontiguousarray(torch.as_tensor(x).detach().float().cpu().numpy())


def build_faiss_index(vectors: np.ndarray, codec: str, metric: str, pq_pieces: int | None = None,
                      pq_bits: int | None = None, add: bool = True):
    """A faiss index with ``codec`` trained on ``vectors`` [N, D] (float32), holding them if ``add``."""
    faiss = _faiss()
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    n, dim = vectors.shape
    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if codec == "float32":
        index = faiss.IndexFlat(dim, kind)
    elif codec in ("float16", "int8"):
        qtype = faiss.ScalarQuantizer.QT_fp16 if codec == "float16" else faiss.ScalarQuantizer.QT_8bit
        index = faiss.IndexScalarQuantizer(dim, qtype, kind)
    else:
        pieces = pq_pieces or max(1, dim // 4)
        if dim % pieces:
            raise ValueError(f"pq_pieces={pieces} must divide the dimension {dim}")
        index = faiss.IndexPQ(dim, pieces, pq_bits or pq_bits_for(n), kind)
    if not index.is_trained:
        index.train(vectors)
    if add:
        index.add(vectors)
    return index


@dataclasses.dataclass
class _Entry:
    index: Any  # faiss index of one attribute's gallery
    ids: Tensor  # [N] image index of each row in its split
    values: Tensor | None  # [N] value id of the attribute, or None


class AttributeIndex:
    """Per-attribute gallery vectors with one codec; query by attribute.

    ``metric``: ``"cosine"`` (vectors already unit length; inner product) or ``"euclidean"``.
    ``pq_pieces`` / ``pq_bits``: the PQ shape (default ``D / 4`` pieces, bits from the gallery
    size by :func:`pq_bits_for`).
    """

    def __init__(self, codec: str = "float32", metric: str = "cosine", pq_pieces: int | None = None,
                 pq_bits: int | None = None):
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        self.codec, self.metric, self.pq_pieces, self.pq_bits = codec, metric, pq_pieces, pq_bits
        self.entries: dict[int, _Entry] = {}

    def add(self, attribute: int, vectors: Tensor, ids: Tensor | None = None, values: Tensor | None = None,
            train_vectors: Tensor | None = None) -> None:
        """Store ``vectors`` [N, D] as attribute ``attribute``'s gallery (replacing an earlier one).
        ``ids``: the image index of each row (default ``0..N-1``). The codec (int8 ranges, PQ
        centroids) is trained on ``train_vectors`` if given (e.g. the training split's
        embeddings, when the gallery is small), else on the gallery itself."""
        vectors = _array(vectors)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"attribute {attribute}: need a non-empty [N, D] array of vectors, got {vectors.shape}")
        ids = torch.arange(len(vectors)) if ids is None else torch.as_tensor(ids).long().cpu()
        trainer = vectors if train_vectors is None else _array(train_vectors)
        index = build_faiss_index(trainer, self.codec, self.metric, self.pq_pieces, self.pq_bits, add=False)
        index.add(vectors)
        self.entries[int(attribute)] = _Entry(index, ids, None if values is None else torch.as_tensor(values).long())

    @classmethod
    def from_gallery(cls, model: Any, split: Any, attributes: list[int], codec: str = "float32", **kwargs) -> "AttributeIndex":
        """Embed ``split``'s annotated images for each attribute and index them."""
        from .search import embed_gallery

        index = cls(codec, getattr(model, "distance", "cosine"), **kwargs)
        for a in attributes:
            gallery = embed_gallery(model, split, a)
            index.add(a, gallery.embeddings, gallery.indices, gallery.values)
        return index

    def _entry(self, attribute: int) -> _Entry:
        if int(attribute) not in self.entries:
            raise KeyError(f"attribute {attribute} is not in this index (it holds {sorted(self.entries)})")
        return self.entries[int(attribute)]

    def search_rows(self, queries: Tensor, attribute: int, k: int = 10) -> tuple[Tensor, Tensor]:
        """Top-``k`` of each query [Q, D]: ``(scores [Q, k], rows [Q, k])``, best first; rows
        number the attribute's gallery in the order it was added."""
        entry = self._entry(attribute)
        q = np.ascontiguousarray(torch.as_tensor(queries).detach().float().cpu().numpy().reshape(-1, entry.index.d))
        scores, rows = entry.index.search(q, min(k, entry.index.ntotal))
        scores = torch.from_numpy(scores)
        if self.metric == "euclidean":
            scores = -scores  # faiss returns squared distances, smallest first
        return scores, torch.from_numpy(rows).long()

    def search(self, queries: Tensor, attribute: int, k: int = 10) -> tuple[Tensor, Tensor]:
        """Top-``k`` of each query [Q, D]: ``(scores [Q, k], ids [Q, k])``, best first."""
        scores, rows = self.search_rows(queries, attribute, k)
        return scores, self._entry(attribute).ids[rows]

    def values(self, attribute: int) -> Tensor | None:
        """[N] value ids of attribute ``attribute``'s gallery rows (``None`` if not given)."""
        return self._entry(attribute).values

    def ids(self, attribute: int) -> Tensor:
        return self._entry(attribute).ids

    def decode(self, attribute: int) -> Tensor:
        """[N, D] float32: what the codec kept of attribute ``attribute``'s vectors."""
        index = self._entry(attribute).index
        return torch.from_numpy(index.reconstruct_n(0, index.ntotal))

    def bytes_per_vector(self, attribute: int) -> int:
        return int(self._entry(attribute).index.sa_code_size())

    def nbytes(self) -> int:
        """Bytes of every stored code (what grows with the gallery), without the codebooks."""
        return sum(int(e.index.sa_code_size()) * int(e.index.ntotal) for e in self.entries.values())

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """One file (written to a temporary name, then renamed), readable with ``weights_only``."""
        faiss = _faiss()
        payload = {
            "format_version": FORMAT_VERSION, "codec": self.codec, "metric": self.metric,
            "pq_pieces": self.pq_pieces, "pq_bits": self.pq_bits,
            "entries": {a: {"index": torch.from_numpy(faiss.serialize_index(e.index)), "ids": e.ids,
                            "values": e.values} for a, e in self.entries.items()},
        }
        with utils.atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AttributeIndex":
        faiss = _faiss()
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: index format {payload.get('format_version')} is not {FORMAT_VERSION}; rebuild it")
        out = cls(payload["codec"], payload["metric"], payload["pq_pieces"], payload["pq_bits"])
        for a, e in payload["entries"].items():
            index = faiss.deserialize_index(e["index"].numpy())
            out.entries[int(a)] = _Entry(index, e["ids"], e["values"])
        return out


class SharedVectorIndex:
    """One general vector per image for a masked model (CSN): attribute ``a``'s score is
    ``-|| m_a * (f(q) - f(x)) ||^2``, computed at query time from the stored ``f(x)``.

    Expanded, ``-(m_a^2 . f(q)^2) + 2 (m_a^2 * f(q)) . f(x) - m_a^2 . f(x)^2``: two matrix
    products against the gallery, whatever the attribute. ``codec`` stores ``f(x)`` as
    ``float32``, ``float16`` or ``int8`` (as in :class:`AttributeIndex`).
    """

    def __init__(self, masks: Tensor, vectors: Tensor, ids: Tensor | None = None, codec: str = "float32"):
        if codec not in ("float32", "float16", "int8"):
            raise ValueError(f"SharedVectorIndex codec must be float32, float16 or int8, got {codec!r}")
        self.codec, self.masks = codec, masks.detach().float().cpu()
        store = build_faiss_index(_array(vectors), codec, "euclidean")
        self._store = store
        self.vectors = torch.from_numpy(store.reconstruct_n(0, store.ntotal))
        self.ids = torch.arange(len(self.vectors)) if ids is None else torch.as_tensor(ids).long()

    def bytes_per_vector(self) -> int:
        return int(self._store.sa_code_size())

    def nbytes(self) -> int:
        return self.bytes_per_vector() * len(self.vectors)

    def scores(self, queries: Tensor, attribute: int) -> Tensor:
        """[Q, N] scores of general query vectors ``queries`` [Q, D] for ``attribute``."""
        weight = self.masks[attribute] ** 2
        q = queries.detach().float().cpu()
        return -(q.square() @ weight)[:, None] + 2 * (q * weight) @ self.vectors.T - (self.vectors.square() @ weight)[None]

    def search(self, queries: Tensor, attribute: int, k: int = 10) -> tuple[Tensor, Tensor]:
        top = self.scores(queries, attribute).topk(min(k, len(self.ids)), dim=1)
        return top.values, self.ids[top.indices]
