"""Run-time helpers: seeding, the lazy device choice, progress bars, safe writes, env report.

Introduced in ``notebooks/00_introduction.py``.

* :func:`seed_everything` is the only seed helper: it seeds ``random``, NumPy and torch and
  returns a ``torch.Generator`` to pass explicitly to samplers and loaders.
* :func:`device` is the only place that decides between CUDA, MPS and CPU. It decides on
  first call, never at import, so importing the library never touches a GPU driver.
* :func:`progress` wraps tqdm so long loops show a bar in a terminal or notebook but do not
  flood CI logs (disabled when ``CI`` or ``TQDM_DISABLE`` is set).
* :func:`atomic_path` / :func:`atomic_write_text` write to a temporary sibling and rename,
  so an interrupted run never leaves a half-written file or folder behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@functools.lru_cache(maxsize=None)
def device() -> torch.device:
    """The best available device: ``$FGFS_DEVICE`` if set, else cuda, then mps, then cpu."""
    forced = os.environ.get("FGFS_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def progress_disabled() -> bool:
    """True in CI or when ``TQDM_DISABLE`` is set: bars would only flood the log."""
    flag = os.environ.get("TQDM_DISABLE", "")
    return bool(os.environ.get("CI")) or flag.lower() not in ("", "0", "false")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, disable: bool = False,
             **kwargs: Any) -> Iterator[T]:
    """A tqdm progress bar that stays quiet in CI (one bar, refreshed at most twice a second)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, desc=desc, total=total, disable=disable or progress_disabled(), **kwargs)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    For a directory, an existing ``final`` is replaced. On any exception the temporary
    path is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` if it has uncommitted changes), if any."""
    from .config import repo_root

    root = repo_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def env_report(cfg: Any = None) -> dict[str, Any]:
    """Versions, device and profile: what a bug report or a results file should carry."""
    from . import config as config_module

    cfg = cfg if cfg is not None else config_module.load()
    import torchvision

    dev = device()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "profile": cfg.profile,
        "seed": cfg.seed,
        "git_commit": git_commit(),
        "executable": sys.executable,
    }
    return report


def format_report(report: dict[str, Any]) -> str:
    width = max(len(k) for k in report)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in report.items())
