"""Per-attribute table of CLI evaluations beside random and the trivial statistics.

    python -m fgfs_lib train --model asen --data fashionsynth --profile quick --seed 0 --out RUN0
    python -m fgfs_lib evaluate --checkpoint RUN0/best.pt --split test
    python scripts/cli_seed_table.py RUN0/metrics_best_test.json [RUN1/...] --out results/06_asen_cli

Reads the metrics JSON that ``evaluate`` writes, loads the dataset the run trained on (its
folder, or the profile's default when that is gone), and writes ``<out>.json`` and ``<out>.md``: test MAP per attribute
for each run, the expected random MAP, the two trivial statistics
(:mod:`fgfs_lib.trivial_baseline`) and, per run, whether it beats random by at least
``--margin`` MAP points on every attribute (issue 10's bar for the quick profile).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import fgfs_lib
from fgfs_lib import config, evaluate, trivial_baseline, utils


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    parser.add_argument("--margin", type=float, default=10.0)
    args = parser.parse_args()
    runs = [json.loads(p.read_text()) for p in args.metrics]
    rc = runs[0]["config"]
    cfg = config.load(rc["profile"], rc["seed"])
    root = rc["data"].get("root")  # the folder the run trained on, if it is still there
    data = fgfs_lib.data.load(rc["data"]["name"], root=root if root and Path(root).is_dir() else None, cfg=cfg)
    names = list(data.meta.attribute_names)
    random = evaluate.random_map(data, "test")
    rows = {"random (expected)": {**{names[a]: v for a, v in random["per_attribute"].items()},
                                  "overall": random["overall"]}}
    for stat, result in trivial_baseline.trivial_maps(data, "test").items():
        rows[f"trivial: {stat.replace('_', ' ')}"] = {**result["per_attribute_name"], "overall": result["overall"]}
    verdicts = {}
    for run in runs:
        label = f"{run['config']['model']['name']} seed {run['seed']} (epoch {run['epoch']})"
        rows[label] = {**run["per_attribute"], "overall": run["map"]}
        margins = {n: run["per_attribute"][n] - rows["random (expected)"][n] for n in names}
        verdicts[label] = {"min_margin": min(margins.values()), "weakest": min(margins, key=margins.get),
                           "holds": all(m >= args.margin for m in margins.values())}
    report = {"rows": rows, "verdicts": verdicts, "margin": args.margin, "data_config": data.config,
              "runs": [str(p) for p in args.metrics], "commits": sorted({r["git_commit"] for r in runs}),
              "devices": sorted({r["device"] for r in runs})}
    lines = ["| row | " + " | ".join(names) + " | overall |", "|---|" + "---|" * (len(names) + 1)]
    for label, row in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:.1f}" for n in names) + f" | {row['overall']:.1f} |")
    lines += ["", f"| run | beats random by >= {args.margin:g} on every attribute | smallest margin |",
              "|---|---|---|"]
    for label, v in verdicts.items():
        lines.append(f"| {label} | {'yes' if v['holds'] else 'no'} | {v['min_margin']:+.1f} ({v['weakest']}) |")
    header = (f"Test MAP x100, FashionSynth `{data.config['preset']}` (version {data.config['version']}, "
              f"hash {data.config['config_hash']}), commits {report['commits']}, devices {report['devices']}. "
              f"Written by `scripts/cli_seed_table.py`.\n\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    utils.atomic_write_json(args.out.with_suffix(".json"), report)
    utils.atomic_write_text(args.out.with_suffix(".md"), header + "\n".join(lines) + "\n")
    print(header + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
