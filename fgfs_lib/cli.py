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
==============  ===========================================  ========================

``import-checkpoint`` (:mod:`fgfs_lib.models.released`) converts an authors' checkpoint.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "env": ("fgfs_lib.cli", "env_main", "print versions, device and profile"),
    "make-data": ("fgfs_lib.data.commands", "make_data", "write FashionSynth in the ASEN split format"),
    "verify-data": ("fgfs_lib.data.commands", "verify_data", "check a dataset folder (and write a cleaned split)"),
    "train": ("fgfs_lib.train", "cli_train", "train a model (quick or full profile)"),
    "evaluate": ("fgfs_lib.evaluate", "cli_evaluate", "evaluate a checkpoint, write metrics JSON"),
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
    lines += ["", "python -m fgfs_lib <command> --help  for the options of one command"]
    return "\n".join(lines)


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
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)
