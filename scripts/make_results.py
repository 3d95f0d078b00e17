"""Regenerate every committed result file, in order (the quick profile by default).

    python scripts/make_results.py               # every file the notebooks read (hours on a 2-core CPU)
    python scripts/make_results.py --only 10     # the files of one notebook
    python scripts/make_results.py --studies     # also the one-off studies (the ladder alone: 30 min)

Each step is a script of its own (run it alone to redo one file); this one runs them one
after another with the same interpreter and stops at the first failure. Checkpoints are
shared through ``fgfs_lib.train.train_or_load``, so what a notebook or an earlier step
trained is reused, not retrained. Notebook 10 only reads what these write.

The default steps write every ``results/*.json`` the notebooks read. ``--studies`` adds the
one-off studies behind issue 10's calibration (``results/synth_calibration/``, the difficulty
ladder, ASEN trained 12 epochs). Three files there record the generator as it was before
today's preset and are not re-made (their ``.md`` or the folder's README gives the command
and the config hash): ``06_asen_cli_scratch_seed0``, ``synth_calibration/calibrated_full_framing``
and ``synth_calibration/curve_full_framing_detail115``.
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
    ("06", ["scripts/run_cli_seeds.py"]),
    ("09", ["scripts/run_fsn_seeds.py", "--seeds", "0", "1", "2"]),
    ("10", ["scripts/index_tradeoff.py"]),
    ("10", ["scripts/new_attribute_run.py", "--seeds", "0", "1", "2"]),
    ("10", ["scripts/evaluate_runs.py"]),  # last: it re-evaluates the checkpoints of 06-09
]

CALIBRATION = "results/synth_calibration"
STUDIES = [
    ("01", ["scripts/synth_calibration.py", "--preset", "hard", "--num-images", "4000", "--steps", "0",
            "--out", f"{CALIBRATION}/hard_4000.json"]),
    ("01", ["scripts/synth_calibration.py", "--steps", "0", "--out", f"{CALIBRATION}/calibrated.json"]),
    ("03", ["scripts/classifier_curve.py", "--epochs", "8", "--set", 'framing="tops"', "--set", "detail_scale=1.0",
            "--out", f"{CALIBRATION}/curve_tops_framing_detail100.json"]),
    ("06", ["scripts/difficulty_ladder.py", "--scales", "0.5", "0.7", "1", "1.4", "--models", "asen", "asen_wo_asa"]),
    ("06", ["scripts/run_cli_seeds.py", "--forms", "released", "--seeds", "0", "--epochs", "12"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 06 10")
    parser.add_argument("--studies", action="store_true", help="also the one-off calibration studies")
    args = parser.parse_args()
    for number, command in STEPS + (STUDIES if args.studies else []):
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
