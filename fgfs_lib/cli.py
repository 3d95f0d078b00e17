"""``python -m fgfs_lib <command>``: the course's command line.

Each command lives in the module of its concept and takes the remaining arguments:

==============  ===========================================  ========================
command         what it does                                 implemented in
==============  ===========================================  ========================
``env``         print versions, device and profile           :mod:`fgfs_lib.utils`
``make-data``   write FashionSynth in the ASEN split format  :mod:`fgfs_lib.data.commands`
``verify-data`` check a dataset folder, optionally clean it  :mod:`fgfs_lib.data.commands`
``train``       train a model on a dataset                   :mod:`fgfs_lib.train`
``evaluate``    MAP of a checkpoint, as JSON                 :mod:`fgfs_lib.evaluate`
``add-attribute`` a new attribute on a trained model         :mod:`fgfs_lib.new_attribute`
==============  ===========================================  ========================

``import-checkpoint`` (:mod:`fgfs_lib.models.released`) converts an authors' checkpoint.

A command registered here needs no error handling of its own (decorate it with
:func:`command` so that calling it directly behaves the same). :func:`main` turns every
mistake in the user's input into two lines on stderr and exit status 2::

    error: <what went wrong> (<the user's file:line, path, --option or environment variable>)
      fix: <what to do>

``--debug`` (anywhere on the line) shows the traceback instead. Library code says where
the mistake is by raising :class:`fgfs_lib.utils.InputError`; ``ValueError``/``OSError``
messages that start with ``path:line:`` or ``path:`` are read the same way. Anything else
is a bug in fgfs: one line, exit 1, and ``--debug`` for the report.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from pathlib import Path
from typing import Callable

COMMANDS = {
    "env": ("fgfs_lib.cli", "env_main", "print versions, device and profile"),
    "make-data": ("fgfs_lib.data.commands", "make_data", "write FashionSynth in the ASEN split format"),
    "verify-data": ("fgfs_lib.data.commands", "verify_data", "check a dataset folder (and write a cleaned split)"),
    "train": ("fgfs_lib.train", "cli_train", "train a model (quick or full profile)"),
    "evaluate": ("fgfs_lib.evaluate", "cli_evaluate", "evaluate a checkpoint, write metrics JSON"),
    "add-attribute": ("fgfs_lib.new_attribute", "cli_add_attribute",
                      "learn a held-out attribute on a trained model, the rest frozen"),
    "import-checkpoint": ("fgfs_lib.models.released", "cli_import_checkpoint",
                          "convert an authors' released checkpoint (ASEN, ASEN v2) into an fgfs checkpoint"),
}


def env_main(argv: list[str]) -> int:
    import argparse

    from .config import load
    from .utils import env_report, format_report

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib env", description="Print the environment report.")
    parser.parse_args(argv)
    print(format_report(env_report(load())))
    return 0


def usage() -> str:
    lines = ["usage: python -m fgfs_lib <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {desc}" for name, (_, _, desc) in COMMANDS.items()]
    lines += ["", "python -m fgfs_lib <command> --help  for the options of one command",
              "--debug (with any command) shows the traceback of an error"]
    return "\n".join(lines)


# errors a user's input causes; anything else is reported as a bug in fgfs
INPUT_ERRORS = (ValueError, TypeError, KeyError, LookupError, OSError)
LOCATION = re.compile(r"^(?P<file>[^\s:]+?)(?::(?P<line>\d+))?: (?P<what>.+)$", re.S)
DEBUG_HINT = "run again with --debug to see the traceback"


def check_environment() -> None:
    """The environment variables every command reads, checked before any work starts."""
    from . import config as config_module
    from .utils import InputError, check_device_name

    profile = os.environ.get(config_module.PROFILE_ENV)
    if profile is not None and profile.strip().lower() not in config_module.PROFILES:
        raise InputError(f"unknown profile {profile!r}", f"environment variable {config_module.PROFILE_ENV}",
                         f"export {config_module.PROFILE_ENV}=quick (or full), or unset it")
    seed = os.environ.get("FGFS_SEED")
    if seed is not None:
        try:
            int(seed)
        except ValueError:
            raise InputError(f"the seed must be an integer, got {seed!r}", "environment variable FGFS_SEED",
                             "export FGFS_SEED=0 (any integer), or unset it") from None
    check_device_name(os.environ.get("FGFS_DEVICE"))


def _where_from_message(message: str) -> tuple[str, str | None]:
    """Split a leading ``path:line:`` or ``path:`` (a user's file) from a library message."""
    match = LOCATION.match(message)
    if match and ("/" in match["file"] or Path(match["file"]).exists() or match["line"]):
        where = match["file"] + (f":{match['line']}" if match["line"] else "")
        return match["what"], where
    return message, None


def _unwrap_worker(message: str) -> str:
    """A DataLoader worker's error arrives as 'Caught X in DataLoader worker ... Original
    Traceback ...'; keep the original message only."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if re.match(r"^[\w.]+(Error|Exception): ", last) else last


def image_list_line(image: Path, levels: int = 4) -> str | None:
    """``list_file:line`` of the split list that names ``image`` (the user's file to fix)."""
    target = image.resolve()
    for folder in list(target.parents)[:levels]:
        for listing in sorted([*folder.glob("filenames_*.txt"), *folder.glob("imgs_*.txt")]):
            lines = listing.read_text(encoding="utf-8-sig", errors="replace").splitlines()
            for number, line in enumerate(lines, 1):
                if line.strip() and (folder / line.strip()).resolve() == target:
                    return f"{listing}:{number}"
    return None


def _where_in_argv(message: str, argv: list[str]) -> str | None:
    """The option whose value the message names: ``--model nope`` for "unknown model 'nope'"."""
    for k in range(1, len(argv)):
        if argv[k - 1].startswith("--") and not argv[k].startswith("--") and (
                repr(argv[k]) in message or f" {argv[k]} " in f" {message} "):
            return f"argument {argv[k - 1]} {argv[k]}"
    return None


def describe(error: BaseException, argv: list[str] = ()) -> tuple[str, str | None, str | None] | None:
    """``(what, where, fix)`` for a mistake in the user's input, ``None`` for a bug.

    ``where`` names the user's input: the file and line a library message starts with, the
    split list line of a missing or corrupt image, or the command-line option whose value
    the message quotes.
    """
    from .utils import InputError

    if isinstance(error, InputError):
        return error.what, error.where, error.fix
    problems = getattr(error, "problems", None)  # DataFormatError: one line per problem
    if problems:
        first = problems[0]
        where = f"{first.path}:{first.line}" if first.line else str(first.path)
        lines = str(error).split("\n")
        hint = " ".join(line for line in lines[1:] if not line.startswith("  "))
        return "\n".join(lines[:1] + [line for line in lines[1:] if line.startswith("  ")]), where, hint or None
    if not isinstance(error, INPUT_ERRORS):
        return None
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = _unwrap_worker(str(message))
    if isinstance(error, OSError) and error.filename and error.strerror:
        return error.strerror, str(error.filename), None
    image = re.search(r"image(?: file)? (\S+\.(?:png|jpe?g|bmp|gif|webp|tiff?))\b", message, re.I)
    if image:
        what, where = message, image_list_line(Path(image[1])) or image[1]
    else:
        what, where = _where_from_message(message)
        where = where or _where_in_argv(what, list(argv))
    first, _, rest = what.partition("\n")
    if "; " in first:  # library messages put the remedy after a semicolon
        head, _, fix = first.partition("; ")
        return head + (f"\n{rest}" if rest else ""), where, fix
    return what, where, None


def format_error(what: str, where: str | None, fix: str | None) -> str:
    """``error: <what> (<where>)``, further lines of ``what`` indented, then the fix."""
    first, *more = what.strip().split("\n")
    lines = [f"error: {first}" + (f" ({where})" if where else "")]
    lines += [line if line.startswith(" ") else f"  {line}" for line in more]
    lines.append(f"  fix: {fix}" if fix else f"  ({DEBUG_HINT})")
    return "\n".join(lines)


def run_command(function: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run a command function with the course's error style (``--debug``: the traceback)."""
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        check_environment()
        return int(function(argv) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure ends in one readable line
        if debug:
            raise
        described = describe(error, argv)
        if described is None:
            print(f"error: {type(error).__name__}: {error}\n  this looks like a bug in fgfs; {DEBUG_HINT} "
                  f"and report it", file=sys.stderr)
            return 1
        print(format_error(*described), file=sys.stderr)
        return 2


def command(function: Callable[[list[str]], int | None]) -> Callable[[list[str]], int]:
    """Decorator: the command function gives ``error: ...`` and exit 2 also when called
    directly (from a test or a script), not only through :func:`main`."""

    @functools.wraps(function)
    def wrapper(argv: list[str]) -> int:
        return run_command(function, list(argv))

    return wrapper


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    return run_command(lambda args: getattr(importlib.import_module(module_name), function_name)(args), rest)
