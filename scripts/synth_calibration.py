"""Measure one FashionSynth setting: how small the details are, what trivial statistics
retrieve, and what a short classifier run learns.

    python scripts/synth_calibration.py --preset calibrated --steps 900
    python scripts/synth_calibration.py --preset hard --set detail_contrast=0.8 --out results/synth_calibration/x.json

Prints and (with ``--out``) writes JSON: per design detail the mean share of the image its
ground-truth region covers (over the test images that carry it); per attribute the test
MAP of the trivial statistics minus a random ranking (:mod:`fgfs_lib.trivial_baseline`);
with ``--steps > 0`` the test accuracy of notebook 03's classifier (batch 32, Adam, cosine)
against the majority value. Quick profile, dataset seed 0, training seed ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from fgfs_lib import config as config_module
from fgfs_lib import data as data_module
from fgfs_lib import evaluate, train, trivial_baseline, utils
from fgfs_lib.data import synth
from fgfs_lib.models import classifier as clf



def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--set", action="append", default=[], help="generator option NAME=VALUE (JSON value)")
    parser.add_argument("--num-images", type=int, default=None)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    options = dict(kv.split("=", 1) for kv in args.set)
    options = {k: parse_value(v) for k, v in options.items()}
    if args.preset:
        options["preset"] = args.preset
    if args.num_images:
        options["num_images"] = args.num_images
    cfg = config_module.load("quick")
    data = data_module.load("fashionsynth", cfg=cfg, **options)
    names = list(data.meta.attribute_names)
    random = evaluate.random_map(data, "test")["per_attribute"]
    trivial = trivial_baseline.trivial_maps(data, "test")
    report = {
        "generator": getattr(data, "config", options),
        "region_share": synth.detail_region_shares(data.test, names),
        "random_map": {names[a]: v for a, v in random.items()},
        "trivial_minus_random": {stat: {names[a]: r["per_attribute"][a] - random[a] for a in random}
                                 for stat, r in trivial.items()},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }
    if args.steps > 0:
        utils.seed_everything(args.seed)
        model = clf.build_classifier(data.meta, cfg)
        t0, c0 = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as folder:  # notebook 03's training, without its cache
            train.fit(model, data, config_module.load("quick", args.seed), out_dir=folder, verbose=False,
                      sampling="classification", epochs=1, steps_per_epoch=args.steps, batch_size=32, lr=args.lr,
                      lr_schedule="cosine", weight_decay=1e-4, validate=False)
        result = clf.evaluate_classifier(model, data.test, train_labels=data.train.labels)
        report["classifier"] = {"steps": args.steps, "lr": args.lr, "seed": args.seed,
                                "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                                "accuracy_minus_majority": {n: float(result["accuracy"][a] - result["majority"][a])
                                                            for a, n in enumerate(names)},
                                "accuracy": {n: float(result["accuracy"][a]) for a, n in enumerate(names)}}
    text = json.dumps(report, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
