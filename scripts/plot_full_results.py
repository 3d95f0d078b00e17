"""Figures of the committed full-profile results (results/full/*.json) -> figures/full/.

Usage: .venv/bin/python scripts/plot_full_results.py

Reads what a GPU run wrote (no GPU needed here): the ASEN training curve and its test MAP per
attribute against a random ranking, and the training throughput rows of
``benchmarks/train_speed.py --profile full``.
"""

from __future__ import annotations

import json
from pathlib import Path

from fgfs_lib import config, viz
from fgfs_lib.viz.metrics import curves, grouped_bars

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    cfg = config.load("full")
    run = json.loads((ROOT / "results/full/asen_fashionsynth_seed0.json").read_text())
    epochs = [h["epoch"] for h in run["history"]]
    fig = curves({"ASEN, valid MAP": (epochs, [h["valid_map"] for h in run["history"]]),
                      "random ranking (test)": (epochs, [run["random_test"]["overall"]] * len(epochs))},
                     xlabel="epoch (1,500 steps of 16 triplets)", ylabel="MAP x100",
                     title="ASEN, full profile on an H100 (FashionSynth 224 px, random init)")
    print(viz.save(fig, "06_full_asen_curve", cfg))
    names = run["test"]["config"]["meta"]["attribute_names"]
    per = run["test"]["per_attribute"]
    rnd = run["random_test"]["per_attribute"]
    fig = grouped_bars({"ASEN (test)": [per[name] for name in names],  # keyed by name
                            "random ranking": [rnd[str(a)] for a in range(len(names))]},  # keyed by id
                           names, ylabel="MAP x100", title="Full profile, after 10 epochs: test MAP per attribute")
    print(viz.save(fig, "06_full_asen_per_attribute", cfg))
    speed = json.loads((ROOT / "results/full/train_speed_h100_run2.json").read_text())
    rows = speed["rows"]
    fig = grouped_bars({"images/s": [r["images_per_second"] for r in rows if "data path" not in r["row"]]},
                           [r["row"].replace(" x 1 img", "").replace(" x 3 img", "") for r in rows
                            if "data path" not in r["row"]],
                           ylabel="training images / s", title="ASEN at 224 px on one H100", figsize=(9, 4))
    print(viz.save(fig, "06_full_train_speed", cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
