"""Plotting: every function here builds a figure and returns a ``matplotlib.figure.Figure``.

Notebooks write ``fig = fgfs_lib.viz.<topic>.<function>(...)`` and then
``fgfs_lib.viz.save(fig, "NN_what")``; :func:`save` puts it in the profile's figures folder.
Topic modules: one per subject (data, maps, retrieval, training curves).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from ..config import Config, load


def save(fig: "matplotlib.figure.Figure", name: str, cfg: Config | None = None, dpi: int = 100) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (name starts with the notebook number)."""
    from ..utils import atomic_path

    cfg = cfg if cfg is not None else load()
    if not name[:2].isdigit() or name[2:3] != "_":
        raise ValueError(f"figure name {name!r} must start with the notebook number, e.g. '01_samples'")
    path = cfg.figures_dir / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def __getattr__(name: str):
    """Topic modules load on first use: ``fgfs_lib.viz.data.value_grid(...)``."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise
