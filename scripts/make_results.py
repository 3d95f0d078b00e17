"""Regenerate every committed result file, in order (the quick profile by default).

    python scripts/make_results.py               # everything (about an hour on a 2-core CPU)
    python scripts/make_results.py --only 10     # the files of one notebook

Each step is a script of its own (run it alone to redo one file); this one runs them one
after another with the same interpreter and stops at the first failure. Checkpoints are
shared through ``fgfs_lib.train.train_or_load``, so what a notebook or an earlier step
trained is reused, not retrained. Notebook 10 only reads what these write.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEPS = [
    ("06", ["scripts/compare_seeds.py", "--seeds", "0", "1", "2", "--quiet"]),
    ("07", ["scripts/run_asenpp_seeds.py", "--seeds", "0", "1", "2"]),
    ("08", ["scripts/run_agman_seeds.py"]),
    ("08", ["scripts/run_agman_seeds.py", "--budget", "long", "--group", "main", "--labels", "ASENet_V2", "AGA only",
            "AG-MAN", "--out", "results/08_agman_long.json"]),
    ("09", ["scripts/run_fsn_seeds.py", "--seeds", "0", "1", "2"]),
    ("10", ["scripts/index_tradeoff.py"]),
    ("10", ["scripts/new_attribute_run.py", "--seeds", "0", "1", "2"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 06 10")
    args = parser.parse_args()
    for number, command in STEPS:
        if args.only and number not in args.only:
            continue
        print(f"[make_results] {' '.join(command)}", flush=True)
        started = time.time()
        code = subprocess.call([sys.executable, *command], cwd=ROOT)
        print(f"[make_results] exit {code} after {time.time() - started:.0f} s", flush=True)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
