"""Run-time helpers: seeding, the lazy device choice, progress bars, safe writes, env report.

Introduced in ``notebooks/00_introduction.py``.

* :func:`seed_everything` is the only seed helper: it seeds ``random``, NumPy and torch and
  returns a ``torch.Generator`` to pass explicitly to samplers and loaders.
* :func:`device` is the only place that decides between CUDA, MPS and CPU. It decides on
  first call, never at import, so importing the library never touches a GPU driver.
* :func:`progress` wraps tqdm so long loops show a bar in a terminal or notebook but do not
  flood CI logs (disabled when ``CI`` or ``TQDM_DISABLE`` is set).
* :func:`atomic_path` / :func:`atomic_write_text` write to a temporary sibling and rename,
  so an interrupted run never leaves a half-written file or folder behind, and never delete
  what fgfs did not write (an output folder's manifest lists what a command wrote).
* :class:`InputError`: a mistake in the user's input, with where it is and how to fix it.
"""

from __future__ import annotations

import contextlib
import functools
import glob
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


class InputError(ValueError):
    """A mistake in what the user gave (a file, an argument, an environment variable).

    ``where`` names the user's input (``path:line``, ``path``, ``--option`` or ``$VARIABLE``),
    ``fix`` says what to do. The command line prints ``error: <what> (<where>)`` and the fix,
    and exits with status 2.
    """

    def __init__(self, what: str, where: str | os.PathLike | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, (str(where) if where is not None else None), fix
        super().__init__(what + (f" ({self.where})" if self.where else "") + (f"; fix: {fix}" if fix else ""))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def take_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` along dim 0, with a backward pass that gives the same gradient on every run.

    Plain indexing (``x[index]``) back-propagates through ``index_put_(accumulate=True)``,
    which on a CPU adds the rows of a repeated index with atomic adds from several threads:
    the order of the additions, hence the float rounding, changes from run to run, and a
    training run that gathers the same image several times (once per attribute, or as the
    anchor of several triplets) never repeats itself. ``index_select``'s backward adds the
    rows one index at a time. The forward values are the same. (On a GPU both add with
    atomics: see ``torch.use_deterministic_algorithms``.)"""
    return x.index_select(0, index)


DEVICE_ENV = "FGFS_DEVICE"


def check_device_name(name: str | None) -> None:
    """Check a ``$FGFS_DEVICE`` value (``cpu``, ``cuda``, ``cuda:N``, ``mps``) without touching a GPU."""
    if not name:
        return
    kind, _, index = name.strip().lower().partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise InputError(f"unknown device {name!r}", f"environment variable {DEVICE_ENV}",
                         f"export {DEVICE_ENV}=cpu, cuda, cuda:N or mps, or unset it to choose automatically")


@functools.lru_cache(maxsize=None)
def device() -> torch.device:
    """The best available device: ``$FGFS_DEVICE`` if set, else cuda, then mps, then cpu."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        check_device_name(forced)
        dev = torch.device(forced.strip().lower())
        mps = getattr(torch.backends, "mps", None)
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": mps is not None and mps.is_available()}[dev.type]
        if dev.type == "cuda" and available and (dev.index or 0) >= torch.cuda.device_count():
            available = False
        if not available:
            raise InputError(f"device {forced!r} is not available on this machine",
                             f"environment variable {DEVICE_ENV}",
                             f"unset {DEVICE_ENV} (fgfs then picks the best device) or export {DEVICE_ENV}=cpu")
        return dev
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


MANIFEST = ".fgfs-output.json"  # what an fgfs command wrote into an output folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in platform.node()) or "host"


def _tmp_prefix(final: Path) -> str:
    """``.<name>.<host>-<pid>.``: lets a later run recognise temporaries whose process died."""
    return f".{final.name}.{_host()}-{os.getpid()}."


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``final`` left by killed runs on this machine.

    Only names that :func:`atomic_path` makes (``.<name>.<host>-<pid>.<random>.tmp``) and whose
    process is gone are removed, so a running job's temporary and the user's files are safe.
    """
    final, host = Path(final), _host()
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for path in final.parent.glob(f".{glob.escape(final.name)}.{host}-*.tmp"):
        pid_text = path.name[len(final.name) + len(host) + 3:].split(".", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest an fgfs command wrote into ``folder`` (``None`` if there is none)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and isinstance(manifest.get("files"), list)
    return manifest if ok else None


def check_output_dir(final: str | os.PathLike, command: str | None, overwrite: bool = False) -> None:
    """Refuse to write into a non-empty ``final`` that is not an earlier output of ``command``.

    An earlier output (recognised by its manifest) may be replaced; any other non-empty folder
    only with ``overwrite``, and even then only the files of the new output replace theirs.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(f"the output {final} exists and is not a folder", final,
                         "choose another output folder")
    if not final.is_dir() or not any(final.iterdir()) or overwrite:
        return
    manifest = read_manifest(final)
    if command is not None and manifest is not None and manifest.get("command") == command:
        return
    raise InputError(f"the output folder {final} is not empty and was not written by "
                     f"{command or 'this command'}; refusing to write into it", final,
                     "choose a new or empty folder, or pass --overwrite to add the output to it "
                     "(only files of the same name are replaced; nothing else is deleted)")


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.name != MANIFEST)


def _merge_into(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst`` (replacing files of the same name)."""
    dst.mkdir(exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_into(entry, target)
        elif target.is_dir() and not target.is_symlink():
            raise InputError(f"cannot replace the folder {target} by a file", target,
                             "move that folder away and run the command again")
        else:
            os.replace(entry, target)


def _remove_listed(folder: Path, manifest: dict[str, Any] | None) -> None:
    """Delete the files an earlier run listed in its manifest, and folders they leave empty."""
    if manifest is None:
        return
    parents = set()
    for name in manifest["files"]:
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
        parents.update(p for p in path.relative_to(folder).parents if str(p) != ".")
    for rel in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            (folder / rel).rmdir()  # only succeeds when empty


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False, command: str | None = None,
                overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it onto ``final`` only on success.

    Files are replaced by one rename. A folder is renamed onto ``final`` when ``final`` is
    absent or empty. Nothing is deleted that this code did not write: with ``command`` the
    folder gets a manifest (:data:`MANIFEST`) listing its files, so a later run of the same
    command replaces exactly those files and keeps anything else the user put there; any other
    non-empty ``final`` is refused (:func:`check_output_dir`) unless ``overwrite`` is true.
    On any exception the temporary path is removed and ``final`` is left as it was;
    temporaries of killed runs are removed on the next run (:func:`remove_stale_temporaries`).
    Files and folders get the normal permissions of the user's umask.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    if directory:
        check_output_dir(final, command, overwrite)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), suffix=".tmp", dir=final.parent))
        tmp.chmod(0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(prefix=_tmp_prefix(final), suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~_umask())
    try:
        yield tmp
        if not directory:
            os.replace(tmp, final)
        else:
            if command is not None:
                (tmp / MANIFEST).write_text(json.dumps(
                    {"command": command, "files": _relative_files(tmp)}, indent=1) + "\n")
            _move_folder(tmp, final, command, overwrite)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _move_folder(tmp: Path, final: Path, command: str | None, overwrite: bool) -> None:
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
    if not final.exists():
        tmp.rename(final)
        return
    check_output_dir(final, command, overwrite)  # again: it may have changed meanwhile
    old = read_manifest(final)
    _remove_listed(final, old if old is not None and old.get("command") == command else None)
    _merge_into(tmp, final)
    shutil.rmtree(tmp, ignore_errors=True)


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
