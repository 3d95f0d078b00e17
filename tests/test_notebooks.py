"""Course conventions for notebooks, checked on every run.

* every ``notebooks/NN_snake_title.py`` (jupytext percent, the reviewed source) has a paired
  ``.ipynb`` with identical cell sources, committed without outputs;
* numbers are unique and names follow the course map;
* the title cell states goals, papers/equations and run time per profile;
* the setup cell loads the configuration, seeds and prints the profile banner;
* CI cannot silently run the heavy profile (the sentinel).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from fgfs_lib import config

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
COURSE_MAP = {
    "00": "00_introduction",
    "01": "01_datasets",
    "02": "02_triplets_and_metrics",
    "03": "03_cam_localization",
    "04": "04_attribute_attention",
    "05": "05_baselines",
    "06": "06_asen",
    "07": "07_asen_global_local",
    "08": "08_agman",
    "09": "09_manipulation_search",
    "10": "10_results",
}
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
PAIRED = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_ci_runs_the_quick_profile():
    """The sentinel: CI must never run the full (GPU, hours) profile."""
    if os.environ.get("CI"):
        assert config.load().profile == "quick", "CI must run with FGFS_PROFILE=quick"
    assert os.environ.get("FGFS_PROFILE", "quick").lower() in config.PROFILES


def test_there_are_notebooks():
    assert SOURCES, "no notebooks/NN_*.py found"


def test_every_notebook_is_paired():
    stems_py = {p.stem for p in SOURCES}
    stems_nb = {p.stem for p in PAIRED}
    assert stems_py == stems_nb, (
        f"unpaired: .py without .ipynb {sorted(stems_py - stems_nb)}, "
        f".ipynb without .py {sorted(stems_nb - stems_py)}; run .venv/bin/jupytext --sync notebooks/*.py"
    )


def test_numbers_are_unique_and_follow_the_course_map():
    numbers = [p.name[:2] for p in SOURCES]
    assert len(numbers) == len(set(numbers)), f"duplicate notebook numbers in {numbers}"
    for path in SOURCES:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", path.stem), f"{path.name}: use NN_snake_title.py"
        expected = COURSE_MAP.get(path.name[:2])
        if expected is not None:
            assert path.stem == expected, f"{path.name}: the course map names notebook {path.name[:2]} {expected}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_has_identical_cells_and_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} missing: run .venv/bin/jupytext --sync {source}"
    text_cells = cells(jupytext.read(source))
    nb = nbformat.read(paired, as_version=4)
    assert text_cells == cells(nb), f"{source.name} and {paired.name} differ: run jupytext --sync {source}"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{paired.name} cell {index} has outputs: commit notebooks without outputs"
            assert cell.get("execution_count") is None, f"{paired.name} cell {index} has an execution count"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_title_cell_states_goals_papers_and_run_time(source):
    first = jupytext.read(source).cells[0]
    assert first.cell_type == "markdown", f"{source.name}: the first cell must be the title (markdown)"
    text = first.source
    number = source.name[:2]
    assert re.match(rf"#\s+{number}\s+·\s+\S", text), f"{source.name}: title must start with '# {number} · '"
    for heading in ("**Goals.**", "**Papers and equations.**", "**Run time and expected numbers.**"):
        assert heading in text, f"{source.name}: title cell lacks {heading}"
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("|") and line.count("|") >= 3}
    assert {"quick", "full"} <= rows, f"{source.name}: the run-time table needs a 'quick' and a 'full' row"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_setup_cell_loads_config_seeds_and_prints_the_profile(source):
    code = [c.source for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert code, f"{source.name} has no code"
    setup = code[0]
    for needle in ("config.load()", "seed_everything(", "cfg.banner()"):
        assert needle in setup, f"{source.name}: the first code cell must call {needle}"
    joined = "\n".join(code)
    assert "!pip" not in joined and "%pip" not in joined, f"{source.name}: install through ./course, not in cells"
    assert ".cuda()" not in joined, f"{source.name}: use fgfs_lib.utils.device(), never .cuda()"
