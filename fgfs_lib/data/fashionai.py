"""FashionAI (Tianchi 2018): convert the raw CSV labels into the ASEN split format.

Introduced in ``notebooks/01_datasets.py``.

The raw release has lines ``path,<attr>_labels,nnnnynnnn``: the image path (relative to the
folder holding ``Images/``), the attribute key and one letter per value (``y`` = this value,
``n`` = not, ``m`` = maybe). The value is the position of the single ``y``.
:func:`convert_fashionai_csv` reads one or more such files and writes an ASEN split folder
(``filenames_*.txt``, ``label_*.txt``, ``query_/candidate_{valid,test}.txt``, ``meta.json``
with value names), so :func:`fgfs_lib.data.load` reads it as ``load("fashionai", root=...)``.

The split is a seeded random partition of the images (ASEN's published split files are a
particular partition; if you have them, point ``load`` at that folder instead: it is already
in the ASEN format). Value names are the ones published with the challenge data; the first
value of every attribute is "Invisible".
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .asen_format import write_folder
from .core import SPLITS, DatasetMeta
from .files import DataFormatError, Problem, read_lines

FASHIONAI_ATTRIBUTES = [
    "skirt_length", "sleeve_length", "coat_length", "pant_length", "collar_design", "lapel_design",
    "neckline_design", "neck_design",
]
FASHIONAI_VALUES = {
    "skirt_length": ["Invisible", "Short Length", "Knee Length", "Midi Length", "Ankle Length", "Floor Length"],
    "sleeve_length": ["Invisible", "Sleeveless", "Cup Sleeves", "Short Sleeves", "Elbow Sleeves", "3/4 Sleeves",
                      "Wrist Length", "Long Sleeves", "Extra Long Sleeves"],
    "coat_length": ["Invisible", "High Waist Length", "Regular Length", "Long Length", "Micro Length",
                    "Knee Length", "Midi Length", "Ankle&Floor Length"],
    "pant_length": ["Invisible", "Short Pant", "Mid Length", "3/4 Length", "Cropped Pant", "Full Length"],
    "collar_design": ["Invisible", "Shirt Collar", "Peter Pan", "Puritan Collar", "Rib Collar"],
    "lapel_design": ["Invisible", "Notched", "Collarless", "Shawl Collar", "Plus Size Shawl"],
    "neckline_design": ["Invisible", "Strapless Neck", "Deep V Neckline", "Straight Neck", "V Neckline",
                        "Square Neckline", "Off Shoulder", "Round Neckline", "Sweat Heart Neck",
                        "One Shoulder Neckline"],
    "neck_design": ["Invisible", "Turtle Neck", "Ruffle Semi-High Collar", "Low Turtle Neck", "Draped Collar"],
}


def fashionai_meta() -> DatasetMeta:
    return DatasetMeta("fashionai", list(FASHIONAI_ATTRIBUTES), [list(FASHIONAI_VALUES[a]) for a in FASHIONAI_ATTRIBUTES])


def read_fashionai_csv(path: str | Path, problems: list[Problem]) -> list[tuple[str, int, int]]:
    """(image path, attribute id, value id) per valid line; bad lines go to ``problems``."""
    path = Path(path)
    rows = []
    if not path.is_file():
        problems.append(Problem(path, 0, "FashionAI label CSV missing", "missing"))
        return rows
    for k, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            problems.append(Problem(path, k, f"expected 'path,<attr>_labels,nnyn..' (3 comma-separated fields), "
                                             f"got {len(parts)}"))
            continue
        image, key, letters = parts
        attr = key[:-len("_labels")] if key.endswith("_labels") else key
        if attr not in FASHIONAI_ATTRIBUTES:
            problems.append(Problem(path, k, f"unknown attribute {key!r}; expected one of "
                                             f"{', '.join(a + '_labels' for a in FASHIONAI_ATTRIBUTES)}"))
            continue
        n = len(FASHIONAI_VALUES[attr])
        letters = letters.lower()
        if len(letters) != n or set(letters) - set("ynm"):
            problems.append(Problem(path, k, f"{attr} needs {n} letters of y/n/m, got {letters!r}"))
            continue
        if letters.count("y") != 1:
            problems.append(Problem(path, k, f"{attr} labels {letters!r} must contain exactly one 'y'"))
            continue
        rows.append((image, FASHIONAI_ATTRIBUTES.index(attr), letters.index("y")))
    return rows


def convert_fashionai_csv(csv_paths: Iterable[str | Path] | str | Path, out_dir: str | Path | None = None,
                          image_root: str | Path | None = None, seed: int = 0, valid_fraction: float = 0.1,
                          test_fraction: float = 0.1, query_fraction: float = 0.2, strict: bool = True) -> Path:
    """Write an ASEN split folder for FashionAI from the Tianchi CSV file(s); return it.

    ``image_root`` is the folder the CSV paths are relative to (default: the first CSV's
    folder); ``out_dir`` defaults to ``image_root``. With ``strict`` any bad line raises
    :class:`DataFormatError` (file:line); otherwise bad lines are skipped.
    """
    from ..utils import atomic_path

    if isinstance(csv_paths, (str, Path)):
        csv_paths = [csv_paths]
    csv_paths = [Path(p) for p in csv_paths]
    problems: list[Problem] = []
    rows = [r for p in csv_paths for r in read_fashionai_csv(p, problems)]
    if problems and strict:
        raise DataFormatError(problems, hint="fix or remove these lines, or call with strict=False to skip them")
    image_root = Path(image_root) if image_root is not None else csv_paths[0].parent
    out_dir = Path(out_dir) if out_dir is not None else image_root
    meta = fashionai_meta()
    images = sorted({r[0] for r in rows})
    index = {p: i for i, p in enumerate(images)}
    labels = np.full((len(images), meta.num_attributes), -1, dtype=np.int64)
    for image, a, v in rows:
        labels[index[image], a] = v
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(images))
    n_valid = int(round(len(images) * valid_fraction))
    n_test = int(round(len(images) * test_fraction))
    parts = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test], "train": order[n_valid + n_test:]}
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = Path(_relpath(image_root, out_dir))
    filenames = {s: [(rel / images[i]).as_posix() for i in np.sort(parts[s])] for s in SPLITS}
    labels_split = {s: labels[np.sort(parts[s])] for s in SPLITS}
    # Write the split files into a temporary folder, then move them next to the images.
    with atomic_path(out_dir / ".fashionai_split", directory=True) as tmp:
        write_folder(tmp, meta, filenames, labels_split, seed=seed, query_fraction=query_fraction,
                     protocols=("fashionai",))
    staged = out_dir / ".fashionai_split"
    for f in sorted(staged.iterdir()):
        f.replace(out_dir / f.name)
    staged.rmdir()
    return out_dir


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())
