"""fgfs_lib: the library behind the fgfs course on fine-grained (attribute-specific)
fashion similarity. Each module names the notebook that introduces it.

Submodules are imported lazily (``fgfs_lib.metrics`` works after ``import fgfs_lib``),
so ``import fgfs_lib`` stays fast and never touches a GPU.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "config", "utils", "viz", "data", "sampling", "losses", "metrics", "models",
    "train", "evaluate", "cam", "cli", "search",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
