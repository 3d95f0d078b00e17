"""Model registry: name -> factory, so the trainer, the CLI and checkpoints build models by name.

Introduced in ``notebooks/05_baselines.py``.

A factory has the signature ``factory(meta, cfg, **options) -> ConditionalEmbedder`` where
``meta`` is the dataset's :class:`fgfs_lib.data.DatasetMeta` (the number of attributes and
values) and ``cfg`` the :class:`fgfs_lib.config.Config` (the profile picks defaults such as
the backbone). Model modules register themselves::

    from .registry import register

    @register("triplet")
    def build_triplet(meta, cfg, **options): ...

:func:`build_model` imports every module of this package on first use (whatever modules
exist: nothing to list here when a method is added), so ``build_model("asen", ...)`` works
without importing :mod:`fgfs_lib.models.asen` first.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable

MODELS: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``factory`` buildable as ``build_model(name, ...)``."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        existing = MODELS.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                factory.__module__, factory.__qualname__):
            raise ValueError(f"model name {name!r} is already registered by {existing.__module__}")
        MODELS[name] = factory
        return factory

    return decorate


def load_builtin_models() -> dict[str, Callable[..., Any]]:
    """Import every module of :mod:`fgfs_lib.models` (each registers its models); return :data:`MODELS`."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{module.name}")
    return MODELS


def available_models() -> list[str]:
    return sorted(load_builtin_models())


def build_model(name: str, meta: Any, cfg: Any = None, **options: Any):
    """Build the registered model ``name`` for dataset ``meta``; records ``model.model_config``
    (``{"name": name, "options": options}``) so checkpoints can rebuild it."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    if name not in MODELS:
        load_builtin_models()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(available_models())}")
    model = MODELS[name](meta, cfg, **options)
    model.model_config = {"name": name, "options": dict(options)}
    return model
