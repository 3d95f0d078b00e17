"""The data commands of ``python -m fgfs_lib``: ``make-data`` and ``verify-data``.

Introduced in ``notebooks/01_datasets.py``.

``python -m fgfs_lib make-data --profile quick --seed 0 --out DIR``
    writes FashionSynth into DIR: the ASEN split files at the top level, ``images/``,
    ``regions/`` and ``cache/`` below it, and ``triplet_split/``: the triplet-relation task in
    Zappos50k's CSN list format, one condition per attribute (without ``--out``: the cache
    folder that ``fgfs_lib.data.load`` uses).
``python -m fgfs_lib verify-data --dataset NAME --root DIR [--write-clean OUT]``
    reports every missing, unreadable or corrupt image, every malformed, empty or
    contradictory split file as ``file:line: reason``; when there are problems it ends with
    ``error: N problem(s) ... (file:line of the first)`` and exits 2;
    ``--write-clean`` writes split files without them into OUT (a new folder outside the
    dataset; an earlier cleaned output is replaced, anything else refused without
    ``--overwrite``).

Both write through :func:`fgfs_lib.utils.atomic_path`: nothing is deleted that fgfs did not
write. Errors reach the user through :func:`fgfs_lib.cli.main` (``error: ... (file:line)``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli import command
from ..utils import InputError, check_output_dir


@command
def make_data(argv: list[str]) -> int:
    from .. import config as config_module
    from . import DATASETS, synth

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib make-data",
                                     description="Generate FashionSynth in the ASEN split format.")
    parser.add_argument("--profile", choices=list(synth.PROFILE_DEFAULTS), default=None,
                        help="quick (~12k images, 64 px) or full (180k, 224 px); default $FGFS_PROFILE")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the cache under $FGFS_DATA_DIR/fashionsynth/<hash>)")
    parser.add_argument("--num-images", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--preset", default=None, help="generator preset: calibrated (default) or hard")
    parser.add_argument("--detail-scale", type=float, default=None, help="size of local details (preset's default)")
    parser.add_argument("--clutter", type=float, default=None, help="background clutter and objects (1 = default)")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (output does not depend on it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out that make-data did not write (only files of the "
                             "same name are replaced)")
    parser.add_argument("--dataset", default="fashionsynth", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dataset != "fashionsynth":
        print(f"error: make-data generates only 'fashionsynth'; the real datasets ({', '.join(DATASETS[1:])}) "
              f"must be downloaded by you and checked with verify-data", file=sys.stderr)
        return 2
    cfg = config_module.load(args.profile)
    options = {"num_images": args.num_images, "image_size": args.image_size, "detail_scale": args.detail_scale,
               "clutter": args.clutter, "preset": args.preset}
    options = {k: v for k, v in options.items() if v is not None}
    t0 = time.perf_counter()
    if args.out is None:
        folder = synth.ensure_fashionsynth(cfg, seed=args.seed, processes=args.processes, verbose=False, **options)
    else:
        check_output_dir(args.out, "make-data", args.overwrite)  # before generating, not after
        folder = synth.make_fashionsynth(args.out, profile=cfg.profile, seed=args.seed, processes=args.processes,
                                         overwrite=args.overwrite, **options)
    config = (folder / "config.json").read_text()
    print(f"FashionSynth ({cfg.profile}, seed {args.seed}) written to {folder} in {time.perf_counter() - t0:.1f} s")
    print(config.strip())
    return 0


@command
def verify_data(argv: list[str]) -> int:
    from . import DATASETS
    from . import verify as verify_module
    from .core import PROTOCOLS

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib verify-data",
                                     description="Check a dataset folder; optionally write cleaned split files.")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=list(DATASETS),
                        help="one of: " + ", ".join(DATASETS))
    parser.add_argument("--root", required=True, type=Path, help="the dataset folder")
    parser.add_argument("--write-clean", type=Path, default=None, metavar="OUT",
                        help="write split files without the bad images and lines into OUT")
    parser.add_argument("--overwrite", action="store_true",
                        help="write the cleaned files into a non-empty OUT that verify-data did not write")
    parser.add_argument("--no-decode", action="store_true", help="only check that images exist (faster)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="fashionai")
    parser.add_argument("--limit", type=int, default=50, help="print at most this many problems")
    args = parser.parse_args(argv)
    if args.write_clean is not None:  # refuse a bad target before the (long) check
        verify_module.check_clean_target(args.root, args.write_clean)
        check_output_dir(args.write_clean, verify_module.CLEAN_COMMAND, args.overwrite)
    report = verify_module.verify(args.dataset, args.root, decode=not args.no_decode, protocol=args.protocol)
    print(report.format(args.limit))
    if args.write_clean is not None:
        out = verify_module.write_clean(report, args.write_clean, overwrite=args.overwrite)
        dropped = verify_module.count_images(report)
        print(f"cleaned split files written to {out} ({dropped} image(s) left out); "
              f"load it with fgfs_lib.data.load({args.dataset!r}, root={str(out)!r})")
    if report.ok:
        return 0
    first = report.problems[0]
    fix = ("use the cleaned copy written above" if args.write_clean is not None else
           "repair the files listed above, or write a copy without them: --write-clean OUT")
    raise InputError(f"{len(report.problems)} problem(s) in the {args.dataset} dataset at {args.root}; "
                     f"the first: {first.reason}", f"{first.path}:{first.line}" if first.line else first.path, fix)
