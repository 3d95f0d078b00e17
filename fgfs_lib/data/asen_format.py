"""The ASEN split format: one folder per dataset, read and written here.

Introduced in ``notebooks/01_datasets.py``.

==============================================  =============================================
file                                            line
==============================================  =============================================
``filenames_{train,valid,test}.txt``            relative image path; line number = image id
``label_train.txt``                             ``img_id a v [a v ...]`` (several pairs allowed)
``query_{valid,test}.txt``,                     ``img_id a v`` (FashionAI protocol. FashionAI's
``candidate_{valid,test}.txt``                  folders: one attribute per image, 20 % of each
                                                attribute's images are queries. FashionSynth's:
                                                every applicable attribute of every image, 20 %
                                                of each category's images are queries)
``meta.json``                                   ``ATTRIBUTES`` (names), ``ATTRIBUTES_NUM``
                                                (name -> number of values)
==============================================  =============================================

Our additions (optional, so the folders of FashionAI, DARN and DeepFashion published with
ASEN read unchanged): ``VALUES`` (value names) in ``meta.json``; ``label_{valid,test}.txt``
(every known attribute of every image: FashionSynth); ``query_*_multilabel.txt`` and
``candidate_*_multilabel.txt`` (the multi-label protocol: every applicable attribute of every
image, 20 % of the images are queries; for search with attribute manipulation).

Lines are split on white space, so files with Windows line endings (CRLF) read the same.
Every problem is reported as ``file:line: reason`` (:class:`.files.Problem`);
:func:`read_folder` collects them all, :func:`load_folder` raises
:class:`.files.DataFormatError` listing them. :func:`write_folder` writes a folder, its
query / candidate files drawn by the protocols of :mod:`.core`. The generic readers (lines,
image lists, the root check) live in :mod:`.files`; FashionSynth's own writer is in
:mod:`.synth`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from .core import (EVAL_SPLITS, PROTOCOLS, SPLITS, DatasetMeta, ImageSplit, RetrievalData, fashionai_protocol,
                   multilabel_protocol, stratified_protocol)
from .files import DataFormatError, Problem, check_root, read_filenames, read_lines


def _ints(tokens: list[str]) -> list[int] | None:
    try:
        return [int(t) for t in tokens]
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class FolderContents:
    """What :func:`read_folder` found: everything needed to build :class:`RetrievalData`."""

    root: Path
    meta: DatasetMeta
    filenames: dict[str, list[str]]
    labels: dict[str, np.ndarray]             # [N, A], -1 unknown
    pairs: dict[str, np.ndarray]              # "query_valid" etc. -> [Q, 3]
    problems: list[Problem]
    extra: dict[str, Any]


def read_meta(root: Path, problems: list[Problem], name: str | None = None) -> DatasetMeta | None:
    path = root / "meta.json"
    if not path.is_file():
        problems.append(Problem(path, 0, "missing meta.json (needs ATTRIBUTES and ATTRIBUTES_NUM)", "missing"))
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        problems.append(Problem(path, err.lineno, f"not valid JSON: {err.msg}"))
        return None
    attributes = raw.get("ATTRIBUTES")
    counts = raw.get("ATTRIBUTES_NUM")
    if not isinstance(attributes, list) or counts is None:
        problems.append(Problem(path, 0, "meta.json needs a list ATTRIBUTES and ATTRIBUTES_NUM"))
        return None
    if isinstance(counts, dict):
        missing = [a for a in attributes if a not in counts]
        if missing:
            problems.append(Problem(path, 0, f"ATTRIBUTES_NUM has no entry for {missing}"))
            return None
        num = [int(counts[a]) for a in attributes]
    else:
        num = [int(c) for c in counts]
        if len(num) != len(attributes):
            problems.append(Problem(path, 0, f"{len(attributes)} ATTRIBUTES but {len(num)} ATTRIBUTES_NUM"))
            return None
    values_raw = raw.get("VALUES") or {}
    value_names = []
    for a, n in zip(attributes, num):
        names = values_raw.get(a) if isinstance(values_raw, dict) else None
        if names is None or len(names) != n:
            names = [f"{a}_{v}" for v in range(n)]
        value_names.append(list(names))
    return DatasetMeta(name=name or raw.get("DATASET", root.name), attribute_names=list(attributes),
                       value_names=value_names, category_names=raw.get("CATEGORIES"))


def read_pairs(path: Path, num_images: int, meta: DatasetMeta, problems: list[Problem],
               labels: np.ndarray | None = None) -> np.ndarray:
    """Rows (img, a, v) of a label / query / candidate file; lines may carry several pairs.

    When ``labels`` is given, each pair is also written into it (conflicts are problems).
    """
    rows: list[tuple[int, int, int]] = []
    if not path.is_file():
        problems.append(Problem(path, 0, "file missing", "missing"))
        return np.zeros((0, 3), dtype=np.int64)
    for k, line in enumerate(read_lines(path), 1):
        tokens = line.split()
        if not tokens:
            continue
        values = _ints(tokens)
        if values is None:
            problems.append(Problem(path, k, f"expected integers 'img_id a v [a v ...]', got {line.strip()!r}"))
            continue
        if len(values) < 3 or len(values) % 2 == 0:
            problems.append(Problem(path, k, f"expected 'img_id a v [a v ...]' (an odd number of integers), "
                                             f"got {len(values)}: {line.strip()!r}"))
            continue
        img = values[0]
        if not 0 <= img < num_images:
            problems.append(Problem(path, k, f"image id {img} out of range 0..{num_images - 1}"))
            continue
        for a, v in zip(values[1::2], values[2::2]):
            if not 0 <= a < meta.num_attributes:
                problems.append(Problem(path, k, f"attribute id {a} out of range 0..{meta.num_attributes - 1}"))
                continue
            if not 0 <= v < meta.num_values[a]:
                problems.append(Problem(path, k, f"value {v} out of range 0..{meta.num_values[a] - 1} for "
                                                 f"attribute {a} ({meta.attribute_names[a]})"))
                continue
            if labels is not None:
                if labels[img, a] not in (-1, v):
                    problems.append(Problem(path, k, f"image {img} attribute {a}: value {v} conflicts with "
                                                     f"{labels[img, a]} given earlier"))
                    continue
                labels[img, a] = v
            rows.append((img, a, v))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def pair_file_names(split: str, protocol: str) -> tuple[str, str]:
    suffix = "" if protocol == "fashionai" else "_multilabel"
    return f"query_{split}{suffix}.txt", f"candidate_{split}{suffix}.txt"


def read_folder(root: str | Path, protocol: str = "fashionai", name: str | None = None) -> FolderContents:
    """Parse every file of an ASEN split folder, collecting problems instead of stopping."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    root = Path(root)
    problems: list[Problem] = []
    meta = read_meta(root, problems, name)
    filenames = {s: read_filenames(root / f"filenames_{s}.txt", problems) for s in SPLITS}
    labels: dict[str, np.ndarray] = {}
    pairs: dict[str, np.ndarray] = {}
    if meta is None:
        return FolderContents(root, meta, filenames, labels, pairs, problems, {})  # type: ignore[arg-type]
    for split in SPLITS:
        labels[split] = np.full((len(filenames[split]), meta.num_attributes), -1, dtype=np.int64)
    read_pairs(root / "label_train.txt", len(filenames["train"]), meta, problems, labels["train"])
    for split in EVAL_SPLITS:
        full = root / f"label_{split}.txt"
        if full.is_file():
            read_pairs(full, len(filenames[split]), meta, problems, labels[split])
        for kind, fname in zip(("query", "candidate"), pair_file_names(split, protocol)):
            path = root / fname
            if protocol == "multilabel" and not path.is_file():
                problems.append(Problem(path, 0, "missing: this folder has no multi-label protocol files "
                                                 "(use protocol='fashionai')", "missing"))
                pairs[f"{kind}_{split}"] = np.zeros((0, 3), dtype=np.int64)
                continue
            # Without label_<split>.txt, the union of queries and candidates is the label set.
            pairs[f"{kind}_{split}"] = read_pairs(path, len(filenames[split]), meta, problems,
                                                  None if full.is_file() else labels[split])
    extra: dict[str, Any] = {}
    config_path = root / "config.json"
    if config_path.is_file():
        extra["config"] = json.loads(config_path.read_text())
    return FolderContents(root, meta, filenames, labels, pairs, problems, extra)


def load_folder(root: str | Path, protocol: str = "fashionai", image_size: int = 224, name: str | None = None,
                dataset: str = "asen") -> RetrievalData:
    """Read an ASEN split folder into :class:`RetrievalData` (in memory if it has a cache/ folder)."""
    root = Path(root)
    check_root(root, dataset, ["meta.json", "filenames_train.txt", "label_train.txt"])
    contents = read_folder(root, protocol, name)
    if contents.problems:
        raise DataFormatError(contents.problems, hint=(
            f"fix the lines above, or run `python -m fgfs_lib verify-data --dataset {dataset} --root {root} "
            f"--write-clean DIR` to write a cleaned copy of the split files"))
    meta = contents.meta
    config = contents.extra.get("config", {"dataset": meta.name, "root": str(root)})
    splits = {}
    for split in SPLITS:
        labels = torch.from_numpy(contents.labels[split])
        cache = root / "cache" / f"{split}_images.npy"
        boxes_path = root / f"boxes_{split}.npy"
        masks_path = root / "cache" / f"{split}_masks.npy"
        boxes = torch.from_numpy(np.load(boxes_path)) if boxes_path.is_file() else None
        masks = np.load(masks_path, mmap_mode="r") if masks_path.is_file() else None
        categories = None
        cat_path = root / f"categories_{split}.txt"
        if cat_path.is_file() and meta.category_names:
            index = {c: i for i, c in enumerate(meta.category_names)}
            categories = torch.tensor([index.get(line.strip(), -1) for line in read_lines(cat_path)
                                       if line.strip()], dtype=torch.long)
        if cache.is_file():
            images = load_image_cache(cache)
            splits[split] = ImageSplit(labels, images.shape[-1], images=images, boxes=boxes, masks=masks,
                                       categories=categories, name=split)
        else:
            if masks is None and (root / "regions").is_dir() and boxes is not None:
                masks = RegionFiles(root, contents.filenames[split])
            size = int(config.get("image_size", image_size)) if boxes is not None else image_size
            splits[split] = ImageSplit(labels, size, paths=[root / f for f in contents.filenames[split]],
                                       boxes=boxes, masks=masks, categories=categories, name=split)
    p = contents.pairs
    return RetrievalData(
        meta=meta, train=splits["train"], valid=splits["valid"], test=splits["test"],
        valid_queries=torch.from_numpy(p["query_valid"]), valid_candidates=torch.from_numpy(p["candidate_valid"]),
        test_queries=torch.from_numpy(p["query_test"]), test_candidates=torch.from_numpy(p["candidate_test"]),
        root=root, config=config, protocol=protocol)


def load_image_cache(path: Path, in_memory_limit: int = 4 * 2**30) -> torch.Tensor:
    """uint8 [N, 3, H, W] from a FashionSynth ``cache/<split>_images.npy``: read into memory
    when smaller than ``in_memory_limit`` bytes, else memory-mapped (copy-on-write, so the file
    is never changed): indexing a batch then reads only its images, from the page cache."""
    big = path.stat().st_size > in_memory_limit
    arr = np.load(path, mmap_mode="c" if big else None)
    if arr.ndim == 4 and arr.shape[-1] == 3 and arr.shape[1] != 3:  # generator version <= 3: [N, H, W, 3]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    return torch.from_numpy(arr)


class RegionFiles:
    """Region bit masks read lazily from ``regions/`` PNGs (large datasets without a cache):
    ``files[i]`` -> uint16 [H, W], ``files[index_array]`` -> uint16 [B, H, W]."""

    def __init__(self, root: Path, filenames: list[str]):
        self.paths = [root / f.replace("images/", "regions/", 1) for f in filenames]

    def __len__(self) -> int:
        return len(self.paths)

    def _one(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return np.array(im, dtype=np.uint16)

    def __getitem__(self, index: Any) -> np.ndarray:
        if np.ndim(index) == 0:
            return self._one(int(index))
        return np.stack([self._one(int(i)) for i in np.asarray(index).reshape(-1)])


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------
def format_pairs(rows: np.ndarray) -> str:
    return "".join(f"{i} {a} {v}\n" for i, a, v in rows.tolist())


def format_label_lines(labels: np.ndarray) -> str:
    """``img a v a v ...`` per image with at least one known attribute."""
    out = []
    for i, row in enumerate(labels.tolist()):
        pairs = [f"{a} {v}" for a, v in enumerate(row) if v >= 0]
        if pairs:
            out.append(f"{i} " + " ".join(pairs) + "\n")
    return "".join(out)


def write_meta(root: Path, meta: DatasetMeta, extra: dict[str, Any] | None = None) -> None:
    obj: dict[str, Any] = {
        "DATASET": meta.name,
        "ATTRIBUTES": meta.attribute_names,
        "ATTRIBUTES_NUM": {a: n for a, n in zip(meta.attribute_names, meta.num_values)},
        "VALUES": {a: v for a, v in zip(meta.attribute_names, meta.value_names)},
    }
    if meta.category_names:
        obj["CATEGORIES"] = meta.category_names
    obj.update(extra or {})
    (root / "meta.json").write_text(json.dumps(obj, indent=2) + "\n")


def write_folder(root: Path, meta: DatasetMeta, filenames: dict[str, list[str]], labels: dict[str, np.ndarray],
                 seed: int = 0, query_fraction: float = 0.2, protocols: Iterable[str] = PROTOCOLS,
                 meta_extra: dict[str, Any] | None = None, categories: dict[str, np.ndarray] | None = None) -> None:
    """Write a complete ASEN split folder: meta.json, filenames_*, label_* and the query /
    candidate files of each protocol (drawn from the valid and test labels with ``seed``).
    With ``categories`` (per split, FashionSynth) the "fashionai" files follow
    :func:`stratified_protocol` instead of the one-attribute-per-image assignment."""
    root = Path(root)
    write_meta(root, meta, meta_extra)
    for split in SPLITS:
        (root / f"filenames_{split}.txt").write_text("".join(f + "\n" for f in filenames[split]))
        (root / f"label_{split}.txt").write_text(format_label_lines(labels[split]))
    for k, split in enumerate(EVAL_SPLITS):
        for protocol in protocols:
            rng = np.random.default_rng([seed, 7, k, PROTOCOLS.index(protocol)])
            if protocol == "fashionai" and categories is not None:
                queries, candidates = stratified_protocol(labels[split], categories[split], rng, query_fraction)
            else:
                make = fashionai_protocol if protocol == "fashionai" else multilabel_protocol
                queries, candidates = make(labels[split], rng, query_fraction)
            qname, cname = pair_file_names(split, protocol)
            (root / qname).write_text(format_pairs(queries))
            (root / cname).write_text(format_pairs(candidates))
