"""Notebook 06's command-line evidence: ASEN trained and evaluated through ``python -m fgfs_lib``
for three seeds, in the released (tanh-bounded) and the paper's (unbounded) ASA score.

    python scripts/run_cli_seeds.py                   # seeds 0 1 2, both forms (one seed and form: 129 s, 2-core CPU)
    python scripts/run_cli_seeds.py --forms released  # one form
    python scripts/run_cli_seeds.py --forms released --seeds 0 --epochs 12   # ..._12epochs

For each form and seed S it runs, exactly as a user would (each a subprocess):

    python -m fgfs_lib train --model asen --data fashionsynth --profile quick --seed S [--option bounded=false] --out RUN
    python -m fgfs_lib evaluate --checkpoint RUN/best.pt --split test

into ``<output dir>/cli_runs/asen-<form>-seed<S>`` (a run already finished there is resumed,
i.e. reused, by ``train``), then ``scripts/cli_seed_table.py`` (test MAP per attribute beside
random and the trivial statistics) and ``scripts/attention_mass.py`` (notebook 04's attention
measure) over the three runs. Writes, for the released form, ``results/06_asen_cli`` and
``results/06_asen_cli_attention`` (``.json`` and ``.md``), and for the unbounded form the same
names with ``_unbounded`` (and ``_<N>epochs`` with ``--epochs N``); each ``.md`` ends with the
commands that made it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from fgfs_lib import config, utils

ROOT = Path(__file__).resolve().parent.parent
FORMS = {"released": ([], ""), "unbounded": (["--option", "bounded=false"], "_unbounded")}


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (what the ``.md`` records)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run(command: list[str]) -> None:
    print("[cli_seeds] " + " ".join(command), flush=True)
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)


def append_commands(md: Path, lines: list[str]) -> None:
    text = md.read_text().rstrip("\n")
    utils.atomic_write_text(md, text + "\n\nMade by `python scripts/run_cli_seeds.py`, which ran:\n\n"
                  + "\n".join(f"    {line}" for line in lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--forms", nargs="+", choices=sorted(FORMS), default=sorted(FORMS))
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs, not the profile's")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    cfg = config.load("quick")
    for form in args.forms:
        option, suffix = FORMS[form]
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        longer = f"_{args.epochs}epochs" if args.epochs else ""
        suffix += longer
        commands, metrics, checkpoints = [], [], []
        for seed in args.seeds:
            out = Path(shown(cfg.output_dir / "cli_runs" / f"asen-{form}{longer}-seed{seed}"))
            train = ["-m", "fgfs_lib", "train", "--model", "asen", "--data", "fashionsynth", "--profile", "quick",
                     "--seed", str(seed), *option, *epochs, "--out", str(out)]
            evaluate = ["-m", "fgfs_lib", "evaluate", "--checkpoint", str(out / "best.pt"), "--split", "test"]
            for command in (train, evaluate):
                run(command)
                commands.append("python " + " ".join(command))
            metrics.append(str(out / "metrics_best_test.json"))
            checkpoints.append(str(out / "best.pt"))
        tables = (["scripts/cli_seed_table.py", *metrics, "--out", shown(args.results / f"06_asen_cli{suffix}")],
                  ["scripts/attention_mass.py", *checkpoints, "--out", shown(args.results / f"06_asen_cli_attention{suffix}")])
        for command in tables:
            run(command)
        for command in tables:
            append_commands(ROOT / (command[-1] + ".md"), [*commands, *("python " + " ".join(c) for c in tables)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
