"""Pretrain the quick profile's backbone once, the way the papers start from ImageNet weights.

    PYTHONPATH=. python scripts/pretrain_quick_backbone.py            # writes fgfs_lib/weights/
    PYTHONPATH=. python scripts/pretrain_quick_backbone.py --steps 500 --out /tmp/try.pt

The papers never train a backbone from scratch: ASEN, AG-MAN, ASEN++ and FashionSearchNet all
start from ImageNet weights. The quick profile's small CNN has no such weights, and from
scratch it learns none of FashionSynth's small design details within a notebook's budget
(measured: ``results/06_asen_cli_scratch_seed0.md``). This script makes its start:

* **Data disjoint from the course's.** A FashionSynth set generated with dataset seed
  ``--data-seed`` (default 1000; the course's data use seed 0). Every image is drawn from
  its own generator ``[seed, index]``, so no image of it is an image of the course's
  train, validation or test splits. 90 % of it is the training split.
* **The task:** notebook 03's attribute classifier (global average pooling, one linear
  head per attribute, summed cross-entropy), batch ``--batch-size``, Adam with a cosine
  schedule, through :class:`fgfs_lib.train.Trainer`.
* **The output:** the backbone's stages (``layer1``-``layer3`` of ``small_cnn``, width 32)
  as a plain state dict, with a ``record`` of how it was made (data config, settings, seed,
  commit, wall time, and the classifier's accuracy on the *course's* validation split,
  measured and written here). :func:`fgfs_lib.models.backbones.make_backbone` loads it for
  ``weights="fashionsynth"``, the quick profile's default.

Like ImageNet pretraining this is supervised pretraining; unlike it, the labels are the
attributes the course then retrieves by (notebook 05 shows training from scratch beside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fgfs_lib import config as config_module
from fgfs_lib import data as data_module
from fgfs_lib import train, utils
from fgfs_lib.models import backbones
from fgfs_lib.models import classifier as clf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-seed", type=int, default=1000)
    parser.add_argument("--num-images", type=int, default=24_000)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=backbones.SMALL_CNN_WEIGHTS)
    args = parser.parse_args(argv)

    cfg = config_module.load("quick", args.seed)
    pretrain = data_module.load("fashionsynth", cfg=cfg, seed=args.data_seed, num_images=args.num_images,
                                 valid_fraction=0.05, test_fraction=0.05)
    course = data_module.load("fashionsynth", cfg=cfg)
    if pretrain.config.get("seed") == course.config.get("seed"):
        raise SystemExit("error: --data-seed must differ from the course's dataset seed (0)")
    utils.seed_everything(args.seed)
    model = clf.build_classifier(pretrain.meta, cfg, weights=None)
    epochs = 4
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        train.fit(model, pretrain, cfg, out_dir=folder, verbose=True, sampling="classification",
                  epochs=epochs, steps_per_epoch=-(-args.steps // epochs), batch_size=args.batch_size,
                  lr=args.lr, lr_schedule="cosine", weight_decay=1e-4, validate=False)
    wall = time.perf_counter() - t0
    result = clf.evaluate_classifier(model, course.valid, train_labels=course.train.labels)
    names = list(course.meta.attribute_names)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip():
        commit += "+dirty"
    record = {
        "what": "small_cnn (width 32) stages layer1-layer3, pretrained as notebook 03's attribute classifier",
        "command": "python scripts/pretrain_quick_backbone.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "pretraining_data": pretrain.config,
        "settings": {"steps": epochs * -(-args.steps // epochs), "batch_size": args.batch_size, "lr": args.lr,
                     "schedule": "cosine", "weight_decay": 1e-4, "seed": args.seed},
        "commit": commit, "wall_seconds": round(wall, 1), "torch": torch.__version__,
        "course_valid_accuracy": {n: round(float(result["accuracy"][a]), 4) for a, n in enumerate(names)},
        "course_valid_majority": {n: round(float(result["majority"][a]), 4) for a, n in enumerate(names)},
    }
    state = {k: v.clone() for k, v in model.backbone.stages.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    torch.save({"state_dict": state, "record": json.loads(json.dumps(record, default=str))}, tmp)
    tmp.replace(args.out)
    print(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
