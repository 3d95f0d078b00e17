"""Single-image search: embed one image for a named attribute and rank a gallery.

Introduced in ``notebooks/06_asen.py``.

What users of the ASEN authors' code kept asking for: "I have one photo and want the
items with the same *neckline*; which value is it?". Works with any
:class:`~fgfs_lib.models.base.ConditionalEmbedder`::

    from fgfs_lib import search
    result = search.search(model, "my_dress.png", "neckline_design", data.test, meta, k=8)
    print(result)              # rank, index, score, value name
    result.indices, result.scores, result.value_names

* the query is a tensor (``[3,H,W]`` or ``[1,3,H,W]``, already normalised like the
  gallery's images), a ``PIL.Image`` or a path (resized, centre-cropped and normalised
  like the gallery's images);
* the attribute is a name (``"neckline_design"``) or an id;
* the gallery is an :class:`~fgfs_lib.data.ImageSplit` (embedded for that attribute on the
  fly; by default only its images annotated with the attribute, as in the evaluation
  protocol) or a :class:`Gallery` of precomputed embeddings (:func:`embed_gallery`), which
  is what to keep around when answering many queries.

Similarity is the cosine for models with ``distance == "cosine"`` and the negative
Euclidean distance for ``"euclidean"`` ones (CSN), so the best match always has the
highest score. Ties are broken by the lower gallery index (a stable sort).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from . import evaluate
from .metrics import similarity

__all__ = ["Gallery", "SearchResult", "resolve_attribute", "load_query", "embed_image", "embed_gallery", "search"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class Gallery:
    """Precomputed gallery embeddings for ONE attribute.

    ``embeddings`` [N, D]; ``indices`` [N] image index of each row in its split;
    ``values`` [N] value id of the attribute (-1 unknown) or ``None``.
    """

    attribute: int
    embeddings: Tensor
    indices: Tensor
    values: Tensor | None = None

    def __len__(self) -> int:
        return self.embeddings.shape[0]


@dataclasses.dataclass
class SearchResult:
    """Top-k of one query: gallery ``indices`` (image index in the split), ``scores``
    (higher = more similar), value ids and ``value_names`` of the attribute."""

    attribute: int
    attribute_name: str
    indices: Tensor
    scores: Tensor
    values: list[int]
    value_names: list[str | None]
    query_value_name: str | None = None  # the value most of the top-k agree on (a guess)

    def __len__(self) -> int:
        return len(self.values)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"rank": r + 1, "index": int(i), "score": float(s), "value": v, "value_name": n}
            for r, (i, s, v, n) in enumerate(zip(self.indices, self.scores, self.values, self.value_names))
        ]

    def __str__(self) -> str:
        head = f"top-{len(self)} for attribute {self.attribute_name!r}"
        if self.query_value_name is not None:
            head += f" (most results: {self.query_value_name!r})"
        lines = [head, f"{'rank':>4}  {'index':>6}  {'score':>7}  value"]
        for row in self.rows():
            lines.append(f"{row['rank']:>4}  {row['index']:>6}  {row['score']:>7.4f}  {row['value_name'] or '?'}")
        return "\n".join(lines)


def resolve_attribute(meta: Any, attribute: str | int | Tensor) -> int:
    """An attribute id from a name (case-insensitive, spaces or underscores) or an id."""
    names = list(meta.attribute_names)
    if isinstance(attribute, Tensor):
        attribute = int(attribute)
    if isinstance(attribute, int):
        if not 0 <= attribute < len(names):
            raise ValueError(f"attribute id {attribute} out of range: the dataset has {len(names)} attributes "
                             f"(0..{len(names) - 1}: {', '.join(names)})")
        return attribute
    key = str(attribute).strip().lower().replace(" ", "_").replace("-", "_")
    for a, name in enumerate(names):
        if name.lower() == key:
            return a
    raise ValueError(f"unknown attribute {attribute!r}; this dataset has: {', '.join(names)}")


def _normalisation(split: Any) -> tuple[Sequence[float], Sequence[float]]:
    for mean_key, std_key in (("mean", "std"), ("norm_mean", "norm_std")):
        mean, std = getattr(split, mean_key, None), getattr(split, std_key, None)
        if mean is not None and std is not None:
            return [float(x) for x in torch.as_tensor(mean).flatten()], [float(x) for x in torch.as_tensor(std).flatten()]
    return IMAGENET_MEAN, IMAGENET_STD


def load_query(image: Any, split: Any = None, image_size: int | None = None) -> Tensor:
    """A query as a normalised batch ``[1, 3, H, W]``.

    Tensors are taken as already normalised (``[3,H,W]`` or ``[1,3,H,W]``). A PIL image or
    a path is converted to RGB, its short side resized to the gallery's ``image_size``,
    centre-cropped (as :mod:`fgfs_lib.data` reads image files), and normalised like the
    gallery (``split.normalize``, else ``split.mean``/``split.std``, else ImageNet's).
    """
    if isinstance(image, Tensor):
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"a query tensor must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}")
        return image.float()
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"query image {path} does not exist")
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise ValueError(f"cannot read query image {path}: {error}") from error
    if not isinstance(image, Image.Image):
        raise TypeError(f"query must be a tensor, a PIL image or a path, got {type(image).__name__}")
    if split is not None and hasattr(split, "preprocess"):
        out = split.preprocess(image)
        return out.unsqueeze(0) if out.dim() == 3 else out
    size = image_size or getattr(split, "image_size", None)
    if size is None:
        raise ValueError("load_query needs the gallery split or image_size to resize a PIL image or a path")
    import numpy as np

    # as fgfs_lib.data reads image files: resize the short side (bilinear), centre crop
    image = image.convert("RGB")
    w, h = image.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
    if split is not None and hasattr(split, "normalize"):
        return split.normalize(pixels)
    mean, std = _normalisation(split)
    return (pixels.float() / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def embed_image(model: Any, image: Any, attribute: str | int, meta: Any = None, split: Any = None) -> Tensor:
    """[D] embedding of one image (tensor, PIL image or path) for ``attribute``."""
    a = resolve_attribute(meta, attribute) if meta is not None else int(attribute)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        x = load_query(image, split).to(device)
        emb = model.embed(x, torch.tensor([a], device=device))[0]
    finally:
        model.train(was_training)
    return emb.detach()


@torch.no_grad()
def embed_gallery(model: Any, split: Any, attribute: str | int, meta: Any = None, *,
                  indices: Tensor | None = None, only_annotated: bool = True, batch_size: int = 256) -> Gallery:
    """Embed a split's images (all, or ``indices``) for one attribute.

    ``only_annotated`` keeps the images with a known value of the attribute (the
    protocol's candidates); unannotated images would rank but could never be "correct".
    """
    a = resolve_attribute(meta, attribute) if meta is not None else int(attribute)
    labels = getattr(split, "labels", None)
    if indices is None:
        indices = torch.arange(len(split))
        if only_annotated and labels is not None:
            indices = indices[labels[:, a] >= 0]
    indices = torch.as_tensor(indices, dtype=torch.long)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    net, memory = evaluate.inference_net(model, device)  # the copy every evaluation runs on a CPU
    chunks = []
    try:
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            images = split.batch(idx).to(device).contiguous(memory_format=memory)
            chunks.append(net.embed(images, torch.full((len(idx),), a, device=device)).float().cpu())
    finally:
        model.train(was_training)
    embeddings = torch.cat(chunks) if chunks else torch.zeros(0, getattr(model, "embed_dim", 0))
    values = labels[indices, a].clone() if labels is not None else None
    return Gallery(attribute=a, embeddings=embeddings, indices=indices, values=values)


def search(model: Any, image: Any, attribute: str | int, gallery: Any, meta: Any, *, k: int = 8,
           exclude: int | None = None, split: Any = None, batch_size: int = 256) -> SearchResult:
    """Top-``k`` gallery items most similar to ``image`` with respect to ``attribute``.

    ``image``: tensor, PIL image or path. ``gallery``: an ImageSplit, or a :class:`Gallery`
    from :func:`embed_gallery` (same attribute), or a tensor [N, D] of embeddings (then the
    returned indices are row numbers and values are unknown). An
    :class:`fgfs_lib.index.AttributeIndex` (any codec) is searched through faiss; it then
    needs ``split``. ``exclude``: a gallery image
    index to leave out (the query itself, when it belongs to the gallery). ``split``: the
    split whose size and normalisation a PIL or path query is brought to (default: the
    gallery, when it is a split).
    """
    from .index import AttributeIndex

    a = resolve_attribute(meta, attribute)
    if isinstance(gallery, AttributeIndex):
        return _search_index(model, image, a, gallery, meta, k=k, exclude=exclude, split=split)
    if split is None and not isinstance(gallery, (Tensor, Gallery)):
        split = gallery
    if isinstance(gallery, Tensor):
        gallery = Gallery(attribute=a, embeddings=gallery, indices=torch.arange(gallery.shape[0]))
    elif not isinstance(gallery, Gallery):
        gallery = embed_gallery(model, gallery, a, meta, batch_size=batch_size)
    if gallery.attribute != a:
        name = meta.attribute_names[gallery.attribute]
        raise ValueError(f"the gallery was embedded for {name!r}, not {meta.attribute_names[a]!r}; "
                         f"embed it again with embed_gallery(model, split, {meta.attribute_names[a]!r})")
    query = embed_image(model, image, a, meta, split)
    scores = similarity(query.float().cpu().unsqueeze(0), gallery.embeddings, getattr(model, "distance", "cosine"))[0]
    if exclude is not None:
        scores = scores.masked_fill(gallery.indices == exclude, float("-inf"))
    k = min(k, int(torch.isfinite(scores).sum()))
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    values = gallery.values[order] if gallery.values is not None else None
    return _result(meta, a, gallery.indices[order], scores[order], values)


def _search_index(model: Any, image: Any, a: int, index: Any, meta: Any, *, k: int, exclude: int | None,
                  split: Any) -> SearchResult:
    """:func:`search` over an :class:`fgfs_lib.index.AttributeIndex` (any codec)."""
    if split is None:
        raise ValueError("searching an AttributeIndex with an image needs split= (the gallery's split) "
                         "to size and normalise the query")
    query = embed_image(model, image, a, meta, split)
    scores, rows = index.search_rows(query[None], a, k + (exclude is not None))
    scores, rows = scores[0], rows[0]
    ids = index.ids(a)[rows]
    keep = ids != exclude if exclude is not None else torch.ones_like(ids, dtype=torch.bool)
    scores, rows, ids = scores[keep][:k], rows[keep][:k], ids[keep][:k]
    values = index.values(a)
    return _result(meta, a, ids, scores, values[rows] if values is not None else None)


def _result(meta: Any, a: int, indices: Tensor, scores: Tensor, values: Tensor | None) -> SearchResult:
    values = [int(v) for v in values] if values is not None else [-1] * len(indices)
    names = list(meta.value_names[a])
    value_names = [names[v] if 0 <= v < len(names) else None for v in values]
    known = [v for v in values if v >= 0]
    majority = max(set(known), key=known.count) if known else None
    return SearchResult(
        attribute=a, attribute_name=meta.attribute_names[a], indices=indices, scores=scores,
        values=values, value_names=value_names,
        query_value_name=names[majority] if majority is not None else None,
    )
