"""Shopping100k in the ADDE format (search with attribute manipulation).

Introduced in ``notebooks/01_datasets.py``.

Folder layout:

* ``imgs_{train,test}.txt``: image paths, one per line;
* ``labels_{train,test}.txt``: per image (same line number) the concatenated one-hot groups
  of all attributes, as space-separated 0/1 (a run of digits without spaces is accepted);
  an all-zero group means the attribute is missing (label -1 here);
* ``attr_num.txt``: the number of values of each attribute type (12: 16, 17, 19, 14, 10, 15,
  2, 11, 16, 7, 9, 15);
* optional ``attr_names.txt``: one attribute name per line. Without it we use
  ``DEFAULT_NAMES``, the alphabetical attribute order we believe the release uses (it fits
  the value counts: ``gender`` is the 7th type with 2 values); check against your copy.

:func:`load_shopping100k` returns :class:`RetrievalData`: ``train`` is the training list
minus a seeded ``valid_fraction`` held out as ``valid``; ``test`` is the test list, with
query / candidate rows of the chosen protocol (``"multilabel"`` for manipulation search).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .core import DatasetMeta, ImageSplit, RetrievalData, fashionai_protocol, multilabel_protocol
from .files import DataFormatError, Problem, check_root, read_filenames, read_lines

DEFAULT_NAMES = ["category", "collar", "color", "fabric", "fastening", "fit", "gender", "length", "neckline",
                 "pattern", "pocket", "sleeve"]
ADDE_SPLITS = ("train", "test")


def read_attr_num(root: Path, problems: list[Problem]) -> list[int]:
    path = root / "attr_num.txt"
    if not path.is_file():
        problems.append(Problem(path, 0, "file missing (needs the number of values of each attribute)", "missing"))
        return []
    nums = []
    for k, line in enumerate(read_lines(path), 1):
        for token in line.replace(",", " ").split():
            try:
                nums.append(int(token))
            except ValueError:
                problems.append(Problem(path, k, f"expected integers, got {token!r}"))
    return nums


def read_onehot_labels(path: Path, attr_num: list[int], num_images: int, problems: list[Problem]) -> np.ndarray:
    """Labels [N, A] from concatenated one-hot groups (-1 where a group is all zero)."""
    labels = np.full((num_images, len(attr_num)), -1, dtype=np.int64)
    if not path.is_file():
        problems.append(Problem(path, 0, "file missing", "missing"))
        return labels
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    total = sum(attr_num)
    if len(lines) != num_images:
        problems.append(Problem(path, 0, f"{len(lines)} label lines but {num_images} images in the image list"))
    offsets = np.cumsum([0] + attr_num)
    for k, line in enumerate(lines[:num_images], 1):
        tokens = line.split()
        if len(tokens) == 1 and len(tokens[0]) == total:
            tokens = list(tokens[0])
        if len(tokens) != total or set(tokens) - {"0", "1"}:
            problems.append(Problem(path, k, f"expected {total} values of 0/1 (the one-hot groups), got "
                                             f"{len(tokens)} tokens"))
            continue
        bits = np.array([t == "1" for t in tokens])
        for a in range(len(attr_num)):
            group = np.flatnonzero(bits[offsets[a]:offsets[a + 1]])
            if len(group) > 1:
                problems.append(Problem(path, k, f"attribute {a} has {len(group)} values set (one-hot expected)"))
            elif len(group) == 1:
                labels[k - 1, a] = group[0]
    return labels


def read_shopping100k(root: str | Path) -> tuple[DatasetMeta | None, dict[str, list[str]], dict[str, np.ndarray],
                                                 list[Problem]]:
    root = Path(root)
    problems: list[Problem] = []
    attr_num = read_attr_num(root, problems)
    names_path = root / "attr_names.txt"
    names = [line.strip() for line in read_lines(names_path) if line.strip()] if names_path.is_file() else None
    if names is None or len(names) != len(attr_num):
        names = DEFAULT_NAMES if len(attr_num) == len(DEFAULT_NAMES) else [f"attr_{a}" for a in range(len(attr_num))]
    meta = DatasetMeta("shopping100k", names, [[f"{n}_{v}" for v in range(k)] for n, k in zip(names, attr_num)])
    filenames, labels = {}, {}
    for split in ADDE_SPLITS:
        filenames[split] = read_filenames(root / f"imgs_{split}.txt", problems)
        labels[split] = read_onehot_labels(root / f"labels_{split}.txt", attr_num, len(filenames[split]), problems)
    return (meta if attr_num else None), filenames, labels, problems


def load_shopping100k(root: str | Path, image_size: int = 224, protocol: str = "multilabel", seed: int = 0,
                      valid_fraction: float = 0.05, query_fraction: float = 0.2) -> RetrievalData:
    root = Path(root)
    check_root(root, "shopping100k", ["attr_num.txt", "imgs_train.txt", "labels_train.txt", "imgs_test.txt",
                                      "labels_test.txt"])
    meta, filenames, labels, problems = read_shopping100k(root)
    if problems:
        raise DataFormatError(problems, hint=f"run `python -m fgfs_lib verify-data --dataset shopping100k --root {root} "
                                             f"--write-clean DIR` for a cleaned copy")
    rng = np.random.default_rng([seed, 5])
    n_train = len(filenames["train"])
    held = np.zeros(n_train, dtype=bool)
    held[rng.permutation(n_train)[: int(round(n_train * valid_fraction))]] = True
    parts = {
        "train": ([filenames["train"][i] for i in np.flatnonzero(~held)], labels["train"][~held]),
        "valid": ([filenames["train"][i] for i in np.flatnonzero(held)], labels["train"][held]),
        "test": (filenames["test"], labels["test"]),
    }
    splits = {s: ImageSplit(torch.from_numpy(lab), image_size, paths=[root / f for f in files], name=s)
              for s, (files, lab) in parts.items()}
    make = fashionai_protocol if protocol == "fashionai" else multilabel_protocol
    pairs = {}
    for k, s in enumerate(("valid", "test")):
        q, c = make(parts[s][1], np.random.default_rng([seed, 7, k]), query_fraction)
        pairs[s] = (torch.from_numpy(q), torch.from_numpy(c))
    return RetrievalData(meta, splits["train"], splits["valid"], splits["test"], pairs["valid"][0], pairs["valid"][1],
                         pairs["test"][0], pairs["test"][1], root,
                         {"dataset": "shopping100k", "root": str(root), "valid_fraction": valid_fraction,
                          "seed": seed, "image_size": image_size}, protocol)
