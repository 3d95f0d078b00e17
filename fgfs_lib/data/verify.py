"""``verify-data``: find missing, unreadable or corrupt images and malformed label lines, and
write a cleaned copy of the split files without them.

Introduced in ``notebooks/01_datasets.py``.

Every problem is reported as ``file:line: reason`` (the line of the list that names the
image, or of the label file). :func:`verify` collects them; :func:`write_clean` writes a new
folder whose split files leave out the bad images and lines (image ids are renumbered for the
ASEN format and Shopping100k; Zappos50k keeps its ids and drops the triplets that use a bad
image). Image paths in the cleaned lists point back to the original files, relative to the
new folder, so no image is copied. DARN users meet dead image links: this is for them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from . import asen_format, shopping100k, zappos
from .core import EVAL_SPLITS, PROTOCOLS, SPLITS
from .files import Problem, check_root, read_filenames, read_lines

ASEN_DATASETS = ("fashionsynth", "fashionai", "darn", "deepfashion")
CLEAN_COMMAND = "verify-data --write-clean"  # recorded in the cleaned folder's manifest


@dataclasses.dataclass
class VerifyReport:
    dataset: str
    root: Path
    problems: list[Problem]
    num_images: int
    bad_images: dict[str, set[int]]  # list name -> bad line indices (0-based)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, limit: int = 50) -> str:
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        kinds: dict[str, int] = {}
        for p in self.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        status = "OK" if self.ok else f"{len(self.problems)} problem(s) ({detail})"
        lines.append(f"{self.dataset} at {self.root}: {self.num_images} images checked, {status}")
        return "\n".join(lines)


def check_image(path: Path, decode: bool = True) -> tuple[str, str] | None:
    """None if the image is fine, else (kind, reason)."""
    if not path.is_file():
        return "missing", f"image {path} is missing"
    if not decode:
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # PIL raises many kinds for corrupt data
        return "corrupt", f"image {path} cannot be decoded ({type(err).__name__}: {err})"
    return None


def _check_list(root: Path, list_path: Path, names: list[str], decode: bool, problems: list[Problem]) -> set[int]:
    bad = set()
    for k, name in enumerate(names):
        if not name:
            bad.add(k)
            continue
        result = check_image(root / name, decode)
        if result is not None:
            kind, reason = result
            problems.append(Problem(list_path, k + 1, reason, kind))
            bad.add(k)
    return bad


def image_lists(dataset: str, root: Path, problems: list[Problem]) -> dict[str, tuple[Path, list[str]]]:
    """The dataset's image lists: name -> (list file, paths)."""
    if dataset in ASEN_DATASETS:
        return {s: (root / f"filenames_{s}.txt", read_filenames(root / f"filenames_{s}.txt", []))
                for s in SPLITS}
    if dataset == "zappos50k":
        return {"all": (root / "filenames.json", zappos.read_filenames_json(root / "filenames.json", []))}
    if dataset == "shopping100k":
        return {s: (root / f"imgs_{s}.txt", read_filenames(root / f"imgs_{s}.txt", []))
                for s in shopping100k.ADDE_SPLITS}
    raise ValueError(dataset)


def expected_files(dataset: str) -> list[str]:
    if dataset in ASEN_DATASETS:
        return ["meta.json", "filenames_train.txt", "label_train.txt"]
    if dataset == "zappos50k":
        return ["filenames.json", "tripletlists"]
    return ["attr_num.txt", "imgs_train.txt", "labels_train.txt", "imgs_test.txt", "labels_test.txt"]


def empty_files(root: Path, protocol: str = "fashionai") -> list[Problem]:
    """An ASEN split file that exists but holds no line: an empty split, which the readers
    accept and evaluation cannot use (MAP needs queries and candidates)."""
    names = [f"filenames_{s}.txt" for s in SPLITS] + ["label_train.txt"]
    names += [f for s in EVAL_SPLITS for f in asen_format.pair_file_names(s, protocol)]
    problems = []
    for name in names:
        path = root / name
        if path.is_file() and not any(line.strip() for line in read_lines(path)):
            problems.append(Problem(path, 1, "the file is empty (a split needs at least one line); "
                                             "restore it from the dataset's original files", "format"))
    return problems


def contradictions(contents: asen_format.FolderContents, protocol: str = "fashionai") -> list[Problem]:
    """Query and candidate lines whose value differs from the image's value in ``label_<split>.txt``."""
    problems = []
    for split in EVAL_SPLITS:
        label_path = contents.root / f"label_{split}.txt"
        labels = contents.labels.get(split)
        if not label_path.is_file() or labels is None:
            continue
        for fname in asen_format.pair_file_names(split, protocol):
            path = contents.root / fname
            if not path.is_file():
                continue
            for k, line in enumerate(read_lines(path), 1):
                values = asen_format._ints(line.split())
                if not values or len(values) < 3 or len(values) % 2 == 0 or not 0 <= values[0] < len(labels):
                    continue  # malformed lines are reported by the reader
                for a, v in zip(values[1::2], values[2::2]):
                    known = int(labels[values[0], a]) if 0 <= a < labels.shape[1] else -1
                    if known >= 0 and known != v:
                        problems.append(Problem(path, k, f"image {values[0]} attribute {a}: value {v} contradicts "
                                                         f"{label_path.name} (value {known}); fix one of the two"))
    return problems


def verify(dataset: str, root: str | Path, decode: bool = True, protocol: str = "fashionai") -> VerifyReport:
    """Check every label file and every image of a dataset folder."""
    from . import check_name

    dataset = check_name(dataset)
    root = Path(root)
    check_root(root, dataset, expected_files(dataset))
    if dataset in ASEN_DATASETS:
        contents = asen_format.read_folder(root, protocol)
        problems = list(contents.problems)
        problems += empty_files(root, protocol)
        if contents.meta is not None:
            problems += contradictions(contents, protocol)
    elif dataset == "zappos50k":
        problems = list(zappos.read_zappos(root)[2])
    else:
        problems = list(shopping100k.read_shopping100k(root)[3])
    bad: dict[str, set[int]] = {}
    total = 0
    for name, (list_path, names) in image_lists(dataset, root, []).items():
        bad[name] = _check_list(root, list_path, names, decode, problems)
        total += len(names)
    return VerifyReport(dataset, root, problems, total, bad)


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _clean_pair_file(src: Path, dst: Path, remap: dict[int, int], meta, triples: bool = True) -> int:
    """Copy an ``img a v [a v ...]`` file keeping valid pairs of kept images; returns dropped lines."""
    dropped = 0
    out = []
    if not src.is_file():
        return 0
    for line in read_lines(src):
        tokens = line.split()
        if not tokens:
            continue
        try:
            values = [int(t) for t in tokens]
        except ValueError:
            dropped += 1
            continue
        if len(values) < 3 or len(values) % 2 == 0 or values[0] not in remap:
            dropped += 1
            continue
        pairs = [(a, v) for a, v in zip(values[1::2], values[2::2])
                 if 0 <= a < meta.num_attributes and 0 <= v < meta.num_values[a]]
        if not pairs:
            dropped += 1
            continue
        out.append(f"{remap[values[0]]} " + " ".join(f"{a} {v}" for a, v in pairs) + "\n")
    dst.write_text("".join(out))
    return dropped


def check_clean_target(root: Path, out_dir: Path) -> None:
    """Refuse a ``--write-clean`` folder that is the dataset, holds it, or lies inside it."""
    from ..utils import InputError

    root_abs, out_abs = Path(root).resolve(), Path(out_dir).resolve()
    if out_abs == root_abs or out_abs in root_abs.parents:
        raise InputError(f"--write-clean {out_dir} is or contains the dataset folder {root}; refusing to write there",
                         out_dir, "give a new folder beside the dataset, e.g. --write-clean "
                                  f"{root_abs.parent / (root_abs.name + '_clean')}")
    if root_abs in out_abs.parents:
        raise InputError(f"--write-clean {out_dir} lies inside the dataset folder {root}; refusing to write there",
                         out_dir, f"give a folder outside {root}, e.g. {root_abs.parent / (root_abs.name + '_clean')}")


def write_clean(report: VerifyReport, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the cleaned split files of ``report``'s dataset into ``out_dir`` (atomically).

    ``out_dir`` must lie outside the dataset folder and not contain it; a non-empty folder that
    is not an earlier cleaned output is refused unless ``overwrite``
    (:func:`fgfs_lib.utils.atomic_path`). Nothing else is ever deleted.
    """
    from ..utils import atomic_path

    root, out_dir = report.root, Path(out_dir)
    check_clean_target(root, out_dir)
    lists = image_lists(report.dataset, root, [])
    with atomic_path(out_dir, directory=True, command=CLEAN_COMMAND, overwrite=overwrite) as tmp:
        rel_root = _rel(root, out_dir)
        if report.dataset in ASEN_DATASETS:
            meta = asen_format.read_meta(root, [], report.dataset)
            if meta is None:
                raise ValueError(f"{root / 'meta.json'} is unreadable; fix it before cleaning")
            (tmp / "meta.json").write_text((root / "meta.json").read_text(encoding="utf-8-sig"))
            for split in SPLITS:
                _, names = lists[split]
                keep = [k for k in range(len(names)) if k not in report.bad_images[split]]
                remap = {old: new for new, old in enumerate(keep)}
                (tmp / f"filenames_{split}.txt").write_text("".join(f"{rel_root}/{names[k]}\n" for k in keep))
                files = [f"label_{split}.txt"] + [f for p in PROTOCOLS
                                                 for f in asen_format.pair_file_names(split, p)]
                for fname in files:
                    if (root / fname).is_file():
                        _clean_pair_file(root / fname, tmp / fname, remap, meta)
        elif report.dataset == "zappos50k":
            _, names = lists["all"]
            bad = report.bad_images["all"]
            (tmp / "filenames.json").write_text("".join(f"{rel_root}/{n}\n" for n in names))
            (tmp / "tripletlists").mkdir()
            for condition in zappos.CONDITIONS:
                for split in zappos.TRIPLET_SPLITS:
                    src = zappos.triplet_path(root, condition, split)
                    if not src.is_file():
                        continue
                    out = []
                    for line in read_lines(src):
                        tokens = line.split()
                        if len(tokens) != 3 or not all(t.isdigit() for t in tokens):
                            continue
                        ids = [int(t) for t in tokens]
                        if any(i >= len(names) or i in bad for i in ids):
                            continue
                        out.append(" ".join(tokens) + "\n")
                    zappos.triplet_path(tmp, condition, split).write_text("".join(out))
        else:
            for extra in ("attr_num.txt", "attr_names.txt"):
                if (root / extra).is_file():
                    (tmp / extra).write_text((root / extra).read_text(encoding="utf-8-sig"))
            problems: list[Problem] = []
            attr_num = shopping100k.read_attr_num(root, problems)
            for split in shopping100k.ADDE_SPLITS:
                _, names = lists[split]
                label_path = root / f"labels_{split}.txt"
                label_problems: list[Problem] = []
                shopping100k.read_onehot_labels(label_path, attr_num, len(names), label_problems)
                bad_lines = {p.line - 1 for p in label_problems if p.line}
                label_lines = read_lines(label_path)
                keep = [k for k in range(len(names)) if k not in report.bad_images[split] and k not in bad_lines
                        and k < len(label_lines)]
                (tmp / f"imgs_{split}.txt").write_text("".join(f"{rel_root}/{names[k]}\n" for k in keep))
                (tmp / f"labels_{split}.txt").write_text("".join(label_lines[k].strip() + "\n" for k in keep))
        (tmp / "CLEANED_FROM.json").write_text(json.dumps({
            "source": str(root.resolve()), "dataset": report.dataset,
            "dropped_images": {k: sorted(v) for k, v in report.bad_images.items()},
            "problems": [str(p) for p in report.problems]}, indent=2) + "\n")
    return out_dir


def count_images(report: VerifyReport) -> int:
    return int(np.sum([len(v) for v in report.bad_images.values()]))
