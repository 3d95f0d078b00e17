"""Profiles and paths: the one place that reads the course's environment variables.

Introduced in ``notebooks/00_introduction.py``.

Two profiles exist:

``quick``
    CPU, the embedded FashionSynth data at 64 px, minutes per notebook. What CI and the
    default run use.
``full``
    GPU, paper settings (224 px, ResNet backbones, tens of epochs).

The profile comes from ``FGFS_PROFILE`` (default ``quick``). Paths never depend on the
current directory (nbval starts kernels inside ``notebooks/``): they are resolved from
environment variables or from the location of the checkout.

=====================  ==========================================================
variable               meaning
=====================  ==========================================================
``FGFS_PROFILE``       ``quick`` (default) or ``full``
``FGFS_SEED``          the run's seed (default 0)
``FGFS_DATA_DIR``      where datasets live (default ``<repo>/data``)
``FGFS_OUTPUT_DIR``    checkpoints, executed notebooks, metrics
                       (default ``<repo>/artifacts/<profile>``)
``FGFS_FIGURES_DIR``   where notebooks save figures (default ``<repo>/figures``
                       in quick, ``<repo>/figures/full`` in full)
``FGFS_WEIGHTS``       a local file with ImageNet weights for the ResNet backbone
``FGFS_DEVICE``        force a device (``cpu``, ``cuda``, ``mps``)
=====================  ==========================================================

Each module keeps its own per-profile defaults next to the code that uses them, through
:meth:`Config.pick`::

    cfg = fgfs_lib.config.load()
    image_size = cfg.pick(quick=64, full=224)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

PROFILES = ("quick", "full")
PROFILE_ENV = "FGFS_PROFILE"

T = TypeVar("T")


def profile_name(profile: str | None = None) -> str:
    """The active profile: ``profile`` if given, else ``$FGFS_PROFILE``, else ``quick``."""
    name = profile if profile is not None else os.environ.get(PROFILE_ENV, "quick")
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r} (from {'argument' if profile else PROFILE_ENV}); "
            f"use one of {', '.join(PROFILES)}, e.g. export {PROFILE_ENV}=quick"
        )
    return name


def repo_root() -> Path | None:
    """The checkout this package lives in, or ``None`` when installed elsewhere."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "fgfs_lib").is_dir():
        return root
    return None


def _home() -> Path:
    root = repo_root()
    return root if root is not None else Path.home() / ".cache" / "fgfs"


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclasses.dataclass(frozen=True)
class Config:
    """What every notebook and command needs to know about the run it is part of."""

    profile: str
    seed: int
    data_dir: Path
    output_dir: Path
    figures_dir: Path

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    @property
    def full(self) -> bool:
        return self.profile == "full"

    def pick(self, *, quick: T, full: T) -> T:
        """The value for the active profile."""
        return quick if self.quick else full

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    def banner(self) -> str:
        if self.quick:
            return (
                f"QUICK profile: CPU-sized runs on embedded FashionSynth data (seed {self.seed}). "
                f"Set {PROFILE_ENV}=full on a GPU for the papers' settings."
            )
        return f"FULL profile: paper settings (seed {self.seed}). Expect GPU hours, not minutes."


def load(profile: str | None = None, seed: int | None = None) -> Config:
    """Read the profile, seed and paths from the environment (arguments win)."""
    name = profile_name(profile)
    if seed is None:
        raw = os.environ.get("FGFS_SEED", "0")
        try:
            seed = int(raw)
        except ValueError:
            raise ValueError(f"FGFS_SEED must be an integer, got {raw!r}") from None
    home = _home()
    default_figures = home / "figures" if name == "quick" else home / "figures" / "full"
    return Config(
        profile=name,
        seed=seed,
        data_dir=_env_path("FGFS_DATA_DIR", home / "data"),
        output_dir=_env_path("FGFS_OUTPUT_DIR", home / "artifacts" / name),
        figures_dir=_env_path("FGFS_FIGURES_DIR", default_figures),
    )


def stable_hash(obj: Any) -> str:
    """The library's one hash: 12 hex digits of SHA-256 over ``obj`` as sorted-key JSON
    (values JSON cannot hold are written with ``str``). Names cache folders: a generated
    dataset's, a training run's."""
    import hashlib
    import json

    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
