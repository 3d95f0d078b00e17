"""UT Zappos50k in the CSN triplet-list format (triplet relation prediction).

Introduced in ``notebooks/01_datasets.py``.

Folder layout (as released with Conditional Similarity Networks):

* ``filenames.json``: the image paths, one per line (a JSON list is accepted too); the line
  number is the image id;
* ``tripletlists/{class,closure,gender,heel}_tripletlist_{train,val,test}.txt``: conditions
  0..3 in that order; a line ``i j k`` means image ``i`` is closer to ``k`` than to ``j``.

The same layout with other condition names is read by passing them:
``load_zappos(root, conditions=[...])`` (condition ``c`` = position ``c`` in that list);
FashionSynth's triplet-relation split (``<root>/triplet_split``, written by ``make-data``,
:func:`fgfs_lib.data.synth.write_relation_split`) is read that way with its attributes.

:func:`load_zappos` returns :class:`TripletData`: one :class:`ImageSplit` over all images
(labels are all unknown: Zappos50k's task gives relations, not values) and per split a
LongTensor [T, 4] of rows ``(anchor, closer, farther, condition)``, the same column meaning
as :func:`fgfs_lib.sampling.sample_triplets` (anchor, positive, negative, attribute).
The metric is the triplet-relation accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .core import DatasetMeta, ImageSplit
from .files import DataFormatError, Problem, check_root, read_filenames, read_lines

CONDITIONS = ["class", "closure", "gender", "heel"]
TRIPLET_SPLITS = {"train": "train", "valid": "val", "test": "test"}


@dataclasses.dataclass
class TripletData:
    """Zappos50k: every image in one split, triplets per split (anchor, closer, farther, condition)."""

    meta: DatasetMeta
    images: ImageSplit
    triplets: dict[str, torch.Tensor]
    root: Path
    config: dict

    def summary(self) -> str:
        parts = ", ".join(f"{s} {len(t)}" for s, t in self.triplets.items())
        return f"{self.meta.name} at {self.root}: {len(self.images)} images; triplets: {parts}"


def triplet_path(root: Path, condition: str, split: str) -> Path:
    return Path(root) / "tripletlists" / f"{condition}_tripletlist_{TRIPLET_SPLITS[split]}.txt"


def read_filenames_json(path: Path, problems: list[Problem]) -> list[str]:
    """The image paths of ``filenames.json``: a JSON list, or one path per line."""
    text = path.read_text(encoding="utf-8-sig") if path.is_file() else ""
    if not text.lstrip().startswith("["):
        return read_filenames(path, problems)  # one path per line, or the file is missing
    try:
        names = json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(Problem(path, err.lineno, f"not valid JSON: {err.msg}"))
        return []
    return [str(n).strip() for n in names]


def read_triplets(path: Path, num_images: int, condition: int, problems: list[Problem]) -> np.ndarray:
    """Rows (anchor, closer, farther, condition) from one triplet list."""
    rows = []
    if not path.is_file():
        problems.append(Problem(path, 0, "file missing", "missing"))
        return np.zeros((0, 4), dtype=np.int64)
    for k, line in enumerate(read_lines(path), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            values = [int(t) for t in tokens]
        except ValueError:
            problems.append(Problem(path, k, f"expected three integers 'i j k', got {line.strip()!r}"))
            continue
        if len(values) != 3:
            problems.append(Problem(path, k, f"expected three integers 'i j k', got {len(values)}"))
            continue
        bad = [v for v in values if not 0 <= v < num_images]
        if bad:
            problems.append(Problem(path, k, f"image id {bad[0]} out of range 0..{num_images - 1}"))
            continue
        i, j, kk = values
        rows.append((i, kk, j, condition))  # i is closer to k than to j
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def read_zappos(root: str | Path, conditions: Sequence[str] | None = None
                ) -> tuple[list[str], dict[str, np.ndarray], list[Problem]]:
    """Image names, rows per split and problems; ``conditions`` default to Zappos50k's four."""
    root = Path(root)
    conditions = CONDITIONS if conditions is None else list(conditions)
    problems: list[Problem] = []
    names = read_filenames_json(root / "filenames.json", problems)
    triplets = {}
    for split in TRIPLET_SPLITS:
        parts = [read_triplets(triplet_path(root, c, split), len(names), ci, problems)
                 for ci, c in enumerate(conditions)]
        triplets[split] = np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)
    return names, triplets, problems


def load_zappos(root: str | Path, image_size: int = 112, conditions: Sequence[str] | None = None,
                name: str = "zappos50k") -> TripletData:
    """Read a CSN triplet-list folder; ``conditions`` (default Zappos50k's four) name the
    lists, ``name`` the dataset (in the metadata and messages)."""
    root = Path(root)
    check_root(root, name, ["filenames.json", "tripletlists"])
    names, triplets, problems = read_zappos(root, conditions)
    if problems:
        hint = (f"run `python -m fgfs_lib verify-data --dataset zappos50k --root {root} --write-clean DIR` "
                f"for a cleaned copy" if conditions is None else
                f"fix the lines listed above (conditions: {', '.join(conditions)})")
        raise DataFormatError(problems, hint=hint)
    conditions = CONDITIONS if conditions is None else list(conditions)
    meta = DatasetMeta(name, list(conditions), [[] for _ in conditions])
    labels = torch.full((len(names), len(conditions)), -1, dtype=torch.long)
    images = ImageSplit(labels, image_size, paths=[root / n for n in names], name="all")
    config = {"dataset": name, "root": str(root), "image_size": image_size}
    if conditions != CONDITIONS:
        config["conditions"] = list(conditions)
    return TripletData(meta, images, {s: torch.from_numpy(t) for s, t in triplets.items()}, root, config)
