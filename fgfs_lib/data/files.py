"""The generic file readers every dataset module uses, whatever its format.

Introduced in ``notebooks/01_datasets.py``.

* :class:`Problem`: one thing wrong with a dataset folder, as ``file:line: reason``;
  readers collect them instead of stopping at the first;
* :class:`DataFormatError`: raised with the list of problems when a folder cannot be read;
* :func:`read_lines`: a text file's lines (LF or CRLF line endings, with or without a UTF-8
  BOM);
* :func:`read_filenames`: a list of image paths, one per line, the line number being the
  image id;
* :func:`check_root`: a clear error when a dataset folder is missing or lacks its files.

The formats themselves are read by :mod:`.asen_format`, :mod:`.zappos` and
:mod:`.shopping100k`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder, with the file and line it is on (0 = whole file)."""

    path: Path
    line: int
    reason: str
    kind: str = "format"  # "format", "missing", "corrupt"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else f"{self.path}"
        return f"{where}: {self.reason}"


class DataFormatError(ValueError):
    """A dataset folder could not be read; the message lists each problem as file:line."""

    def __init__(self, problems: list[Problem], hint: str = ""):
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s):\n  {shown}{more}" + (f"\n{hint}" if hint else ""))


def read_lines(path: Path) -> list[str]:
    """The file's lines without line endings (LF or CRLF) and without a UTF-8 BOM."""
    text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    return text.splitlines()


def read_filenames(path: Path, problems: list[Problem]) -> list[str]:
    """Image paths, one per line (line number = image id); blank lines at the end are dropped,
    any other blank line is a problem."""
    if not path.is_file():
        problems.append(Problem(path, 0, "file missing", "missing"))
        return []
    names = []
    lines = read_lines(path)
    while lines and not lines[-1].strip():  # trailing blank lines only
        lines.pop()
    for k, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            problems.append(Problem(path, k, "empty line (line numbers are image ids; remove it)"))
        names.append(name)
    return names


def check_root(root: Path, dataset: str, expected: Iterable[str]) -> None:
    """Raise a clear FileNotFoundError when ``root`` is not a folder holding ``expected`` files."""
    root = Path(root)
    expected = list(expected)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{dataset}: dataset folder {root} does not exist; expected a folder holding {', '.join(expected)} "
            f"(pass root=... or set FGFS_DATA_DIR)")
    missing = [e for e in expected if not (root / e).exists()]
    if missing:
        raise FileNotFoundError(
            f"{dataset}: {root} is not a {dataset} folder: missing {', '.join(missing)} "
            f"(expected {', '.join(expected)})")
