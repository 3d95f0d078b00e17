"""The data containers every other module trains and evaluates on, and the protocols that
draw their query / candidate lists.

Introduced in ``notebooks/01_datasets.py``.

* :class:`DatasetMeta`: attribute and value names.
* :class:`ImageSplit`: one split's images and labels, either held in memory as a uint8
  tensor (FashionSynth: ``batch`` is one indexing op plus the normalisation) or read from
  image files (real datasets: PIL decode, resize the short side, centre crop).
* :class:`RetrievalData`: the three splits (:data:`SPLITS`) and the query / candidate lists of
  a protocol (:data:`PROTOCOLS`) for the splits that have them (:data:`EVAL_SPLITS`).
* The protocols, which draw those lists from a split's labels, for every dataset:
  :func:`fashionai_protocol` (one attribute per image), :func:`multilabel_protocol` (every
  attribute of an image) and :func:`stratified_protocol` (FashionSynth's, per category).

Images are normalised with the ImageNet mean and standard deviation in both profiles, so a
backbone with ImageNet weights sees what it expects; :meth:`ImageSplit.denormalize` undoes it
for display.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "valid", "test")
EVAL_SPLITS = ("valid", "test")
PROTOCOLS = ("fashionai", "multilabel")


@dataclasses.dataclass
class DatasetMeta:
    """Names of the attributes and of their values."""

    name: str
    attribute_names: list[str]
    value_names: list[list[str]]
    category_names: list[str] | None = None

    @property
    def num_values(self) -> list[int]:
        return [len(v) for v in self.value_names]

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def attribute_id(self, name: str) -> int:
        try:
            return self.attribute_names.index(name)
        except ValueError:
            raise KeyError(f"unknown attribute {name!r}; {self.name} has {self.attribute_names}") from None


def load_image_file(path: Path, image_size: int) -> torch.Tensor:
    """uint8 [3, S, S]: decode, resize the short side to ``image_size``, centre crop."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            k = image_size / min(w, h)
            if (w, h) != (image_size, image_size):
                nw, nh = max(image_size, round(w * k)), max(image_size, round(h * k))
                im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - image_size) // 2, (nh - image_size) // 2
                im = im.crop((left, top, left + image_size, top + image_size))
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"image file {path} is missing; run `python -m fgfs_lib verify-data` on the dataset folder "
            f"and use its --write-clean output") from None
    except OSError as err:
        raise OSError(f"cannot decode image {path}: {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


class ImageSplit(Dataset):
    """One split's images, labels [N, A] (-1 = not applicable / unknown) and, where known, regions.

    Give either ``images`` (uint8 [N, 3, H, W], in memory) or ``paths`` (image files).
    ``masks`` (uint16 [N, H, W], bit ``a`` = region of attribute ``a``; may be memory-mapped)
    and ``boxes`` (float [N, A, 4]) exist only for FashionSynth.
    """

    def __init__(self, labels: torch.Tensor, image_size: int, *, images: torch.Tensor | None = None,
                 paths: Sequence[str | Path] | None = None, boxes: torch.Tensor | None = None,
                 masks: np.ndarray | None = None, categories: torch.Tensor | None = None,
                 name: str = "", mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        if (images is None) == (paths is None):
            raise ValueError("give exactly one of images= (in memory) or paths= (files)")
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.image_size = int(image_size)
        self.images = images
        self.paths = [Path(p) for p in paths] if paths is not None else None
        n = len(self.images) if self.images is not None else len(self.paths)
        if len(self.labels) != n:
            raise ValueError(f"{name or 'split'}: {n} images but {len(self.labels)} label rows")
        self.boxes = boxes
        self._masks = masks
        self.categories = categories
        self.name = name
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "files"
        return (f"ImageSplit({self.name!r}, {len(self)} images, {self.image_size} px, {where}, "
                f"{self.labels.shape[1]} attributes, regions={'yes' if self.has_regions else 'no'})")

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def has_regions(self) -> bool:
        return self._masks is not None

    @property
    def num_attributes(self) -> int:
        return self.labels.shape[1]

    def raw(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """uint8 [B, 3, H, W] images, no normalisation."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if self.images is not None:
            return self.images[idx]
        if len(idx) == 0:
            return torch.zeros(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack([load_image_file(self.paths[int(i)], self.image_size) for i in idx])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] -> float, ImageNet-normalised, on ``x``'s device."""
        mean, std = self._mean.to(x.device), self._std.to(x.device)
        return x.float().div_(255.0).sub_(mean).div_(std)

    def batch_on(self, indices: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
        """Like :meth:`batch` (no augmentation) but normalised on ``device``: the uint8 images
        travel, 4x fewer bytes than floats."""
        raw = self.raw(indices)
        if torch.device(device).type == "cuda":
            raw = raw.pin_memory()
        return self.normalize(raw.to(device, non_blocking=True))

    def batch(self, indices: torch.Tensor | Sequence[int], augment: bool = False,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """float [B, 3, H, W] normalised images; ``augment`` flips a random half horizontally."""
        x = self.normalize(self.raw(indices))
        if augment and len(x):
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        i = i % len(self)
        return self.batch([i])[0], i

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        x = self.batch(list(indices))
        return [(x[k], int(i)) for k, i in enumerate(indices)]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation: float [., 3, H, W] in [0, 1] for display."""
        mean, std = self._mean.to(x.device), self._std.to(x.device)
        if x.dim() == 3:
            return (x * std[0] + mean[0]).clamp(0, 1)
        return (x * std + mean).clamp(0, 1)

    def _require_regions(self) -> np.ndarray:
        if self._masks is None:
            raise ValueError(f"split {self.name!r} has no ground-truth regions (only FashionSynth has them); "
                             "check split.has_regions first")
        return self._masks

    def mask(self, i: int, a: int) -> torch.Tensor:
        """bool [H, W]: the ground-truth region of attribute ``a`` in image ``i`` (empty if n/a)."""
        bits = np.asarray(self._require_regions()[int(i)])
        return torch.from_numpy(((bits >> int(a)) & 1).astype(bool))

    def region_masks(self, indices: torch.Tensor | Sequence[int], attributes: torch.Tensor | Sequence[int] | int
                     ) -> torch.Tensor:
        """bool [B, H, W]: region of ``attributes[b]`` (or one attribute for all) in image ``indices[b]``."""
        masks = self._require_regions()
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1).numpy()
        attrs = np.broadcast_to(torch.as_tensor(attributes, dtype=torch.long).numpy(), idx.shape)
        if len(idx) == 0:
            return torch.zeros(0, self.image_size, self.image_size, dtype=torch.bool)
        bits = np.asarray(masks[idx]).astype(np.int64)
        return torch.from_numpy(((bits >> attrs[:, None, None]) & 1).astype(bool))


@dataclasses.dataclass
class RetrievalData:
    """A dataset ready for attribute-specific retrieval: splits plus query/candidate rows.

    Query and candidate tensors are LongTensor [Q, 3] with rows (image index within that
    split, attribute id, value id).
    """

    meta: DatasetMeta
    train: ImageSplit
    valid: ImageSplit
    test: ImageSplit
    valid_queries: torch.Tensor
    valid_candidates: torch.Tensor
    test_queries: torch.Tensor
    test_candidates: torch.Tensor
    root: Path
    config: dict[str, Any]
    protocol: str = "fashionai"

    def split(self, name: str) -> ImageSplit:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; use train, valid or test")
        return getattr(self, name)

    def queries(self, split: str) -> torch.Tensor:
        return getattr(self, f"{_eval_split(split)}_queries")

    def candidates(self, split: str) -> torch.Tensor:
        return getattr(self, f"{_eval_split(split)}_candidates")

    def summary(self) -> str:
        lines = [f"{self.meta.name} ({self.protocol} protocol) at {self.root}"]
        for name in SPLITS:
            lines.append(f"  {name:<5} {len(self.split(name)):>7} images")
        for name in EVAL_SPLITS:
            lines.append(f"  {name:<5} {len(self.queries(name)):>7} queries {len(self.candidates(name)):>7} candidates")
        return "\n".join(lines)


def _eval_split(split: str) -> str:
    if split not in EVAL_SPLITS:
        raise KeyError(f"queries exist for 'valid' and 'test', not {split!r}")
    return split


# ----------------------------------------------------------------------------------------
# Protocols: the query / candidate rows [Q, 3] of a split, drawn from its labels [N, A]
# ----------------------------------------------------------------------------------------
def fashionai_protocol(labels: np.ndarray, rng: np.random.Generator, query_fraction: float = 0.2
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Each image gets one applicable attribute (balanced: the least-used so far), then per
    attribute ``query_fraction`` of its images become queries. Returns (queries, candidates) [Q, 3]."""
    n, num_attr = labels.shape
    counts = np.zeros(num_attr, dtype=np.int64)
    assigned = np.full(n, -1, dtype=np.int64)
    tie_break = rng.random((n, num_attr))
    for i in rng.permutation(n):
        applicable = np.flatnonzero(labels[i] >= 0)
        if len(applicable) == 0:
            continue
        order = np.lexsort((tie_break[i, applicable], counts[applicable]))
        a = applicable[order[0]]
        assigned[i] = a
        counts[a] += 1
    queries, candidates = [], []
    for a in range(num_attr):
        images = rng.permutation(np.flatnonzero(assigned == a))
        n_query = int(round(len(images) * query_fraction))
        for i in np.sort(images[:n_query]):
            queries.append((i, a, labels[i, a]))
        for i in np.sort(images[n_query:]):
            candidates.append((i, a, labels[i, a]))
    return np.array(queries, dtype=np.int64).reshape(-1, 3), np.array(candidates, dtype=np.int64).reshape(-1, 3)


def multilabel_protocol(labels: np.ndarray, rng: np.random.Generator, query_fraction: float = 0.2
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``query_fraction`` of the images are queries, the rest candidates; every applicable
    attribute of an image is one row."""
    n = len(labels)
    order = rng.permutation(n)
    is_query = np.zeros(n, dtype=bool)
    is_query[order[: int(round(n * query_fraction))]] = True
    img, attr = np.nonzero(labels >= 0)
    rows = np.stack([img, attr, labels[img, attr]], 1).astype(np.int64)
    return rows[is_query[img]], rows[~is_query[img]]


def stratified_protocol(labels: np.ndarray, categories: np.ndarray, rng: np.random.Generator,
                        query_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """FashionSynth's per-attribute protocol: every applicable attribute of an image is a row,
    and within each category ``query_fraction`` of the images are queries (for all their
    attributes), the rest candidates. Returns (queries, candidates) [Q, 3].

    Why not :func:`fashionai_protocol`: a FashionAI photo carries one attribute, a FashionSynth
    image carries three to five, and the greedy one-attribute-per-image assignment fills the
    attributes that few categories carry first (a coat is taken by coat length and lapel long
    before sleeve length), so whole categories went missing from an attribute's rows (0 of 438
    test coats among the sleeve-length rows). No one-attribute assignment can keep every
    category in proportion: a tee carries sleeve, neckline, colour and pattern, a dress the
    same plus skirt length, so equal per-attribute shares would leave skirt length no dress.
    Here each attribute's rows hold every image that carries it, so its categories appear in
    exactly their proportion, and queries are drawn per category so that holds for the
    queries too.
    """
    categories = np.asarray(categories)
    is_query = np.zeros(len(labels), dtype=bool)
    for c in np.unique(categories):
        members = rng.permutation(np.flatnonzero(categories == c))
        is_query[members[: int(round(len(members) * query_fraction))]] = True
    img, attr = np.nonzero(labels >= 0)
    rows = np.stack([img, attr, labels[img, attr]], 1).astype(np.int64)
    return rows[is_query[img]], rows[~is_query[img]]
