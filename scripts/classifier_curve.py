"""Learning curve of notebook 03's classifier trained from scratch on one FashionSynth setting.

    PYTHONPATH=. python scripts/classifier_curve.py --epochs 8 --set framing='"full"' --set detail_scale=1.15 \\
        --out results/synth_calibration/curve_full_framing.json

Prints, after each epoch of ``--steps-per-epoch`` steps (batch ``--batch``, Adam, one cosine
schedule over all epochs, seed 0, ``--threads`` CPU threads), the validation accuracy minus
the majority value's accuracy per attribute. With ``--out`` writes the rows as JSON and the
backbone's weights beside it (``.pt``, not committed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fgfs_lib import config as config_module
from fgfs_lib import data as data_module
from fgfs_lib import train, utils
from fgfs_lib.models import classifier as clf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], help="generator option NAME=VALUE (JSON value)")
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = config_module.load("quick", 0)
    data = data_module.load("fashionsynth", cfg=cfg, **options)
    names = list(data.meta.attribute_names)
    majority = clf.majority_accuracy(data.valid.labels, data.train.labels)
    utils.seed_everything(0)
    model = clf.build_classifier(data.meta, cfg, weights=None, width=args.width)  # from scratch
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = train.fit(model, data, cfg, out_dir=folder, verbose=False, sampling="classification",
                           epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch,
                           lr=args.lr, lr_schedule="cosine", weight_decay=1e-4, validate=True)
    rows = []
    for h in result.history:
        above = {names[int(a)]: round(v / 100 - float(majority[int(a)]), 3) for a, v in h["valid_per_attribute"].items()}
        rows.append({"epoch": h["epoch"], "s": round(h["train_seconds"], 1), **above})
        print(h["epoch"], round(h["train_seconds"]), " ".join(f"{n[:6]}:{above[n]:+.2f}" for n in names), flush=True)
    print("wall", time.perf_counter() - start)
    if args.out:
        utils.atomic_write_json(args.out, {"args": {**vars(args), "out": str(args.out)}, "rows": rows,
                                           "data": getattr(data, "config", None)})
        torch.save(model.backbone.state_dict(), args.out.with_suffix(".pt"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
