"""Every module's "Introduced in" line names a notebook that exists, and nothing in the project points to files that users who clone it do not have."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTRODUCED = re.compile(r"Introduced in\s+``(notebooks/[^`]+)``(\s*\(planned)?")


def _modules() -> list[Path]:
    return sorted(p for p in (ROOT / "fgfs_lib").rglob("*.py") if p.name != "__main__.py")


def _introduced_in(path: Path) -> tuple[str, bool] | None:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    match = INTRODUCED.search(docstring)
    return (match.group(1), bool(match.group(2))) if match else None


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_the_check_reads_introduced_in_lines():
    assert _introduced_in(ROOT / "fgfs_lib" / "models" / "classifier.py") == ("notebooks/03_cam_localization.py", False)
    assert len([p for p in _modules() if _introduced_in(p)]) > 20


@pytest.mark.parametrize("path", [p for p in _modules() if _introduced_in(p)], ids=_dotted)
def test_introduced_in_names_a_notebook_that_exists(path):
    target, planned = _introduced_in(path)
    if planned:
        return  # "(planned ...": a notebook still to be written says so
    assert (ROOT / target).is_file(), f"{_dotted(path)}: 'Introduced in {target}' but there is no such notebook"


def test_no_reference_to_shared_files():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".ipynb", ".txt", ".toml", ".yml", ".yaml", ".cfg"} and path.is_file():
            if re.search(r"(?<![\w.])shared/(reference|seeds)", path.read_text(errors="ignore")):
                offenders.append(name)
    assert offenders == [], f"files pointing to shared/ (which users do not have): {offenders}"
