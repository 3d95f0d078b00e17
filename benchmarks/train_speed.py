"""Training throughput (images/s) of the one training loop, per model and sampling.

Usage (quick profile, CPU):   .venv/bin/python benchmarks/train_speed.py
       (full profile, GPU):   FGFS_PROFILE=full .venv/bin/python benchmarks/train_speed.py --steps 100
Options: --models triplet csn [--sampling in_batch triplets] [--steps N] [--batch-size B]
         [--no-amp] [--no-channels-last]

Quick profile: FashionSynth 64 px, small CNN. Full profile: 224 px images, ResNet-50 to layer3
(random weights; speed does not depend on them). One warm-up epoch of a few steps is not
timed. Prints one line per configuration and the command's settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from fgfs_lib import config, train, utils


def synthetic_full_data(cfg, num_images: int = 512):
    """Random 224 px images with FashionSynth-shaped labels: speed does not need real data."""
    from fgfs_lib.data import DatasetMeta, ImageSplit, RetrievalData

    g = torch.Generator().manual_seed(0)
    num_values = [6, 7, 7, 6, 5, 5, 7, 4, 8, 5]
    labels = torch.stack([torch.randint(v, (num_images,), generator=g) for v in num_values], 1)
    images = torch.randint(0, 256, (num_images, 3, 224, 224), dtype=torch.uint8, generator=g)
    split = ImageSplit(labels, 224, images=images, name="train")
    meta = DatasetMeta("speed", [f"a{i}" for i in range(10)], [[str(j) for j in range(v)] for v in num_values])
    rows = torch.stack([torch.arange(8), torch.zeros(8, dtype=torch.long), labels[:8, 0]], 1)
    return RetrievalData(meta, split, split, split, rows, rows, rows, rows, root=None, config={"speed": 1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["triplet", "csn"])
    parser.add_argument("--sampling", nargs="+", default=["in_batch", "triplets"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args(argv)
    cfg = config.load()
    print(cfg.banner())
    print(f"device {utils.device()}, torch threads {torch.get_num_threads()}")
    if cfg.quick:
        from fgfs_lib import data as data_module

        data = data_module.load("fashionsynth", cfg=cfg)
    else:
        data = synthetic_full_data(cfg)
    steps = args.steps or cfg.pick(quick=30, full=60)
    for name in args.models:
        for sampling in args.sampling:
            batch = args.batch_size or (cfg.pick(quick=64, full=64) if sampling == "in_batch" else
                                        cfg.pick(quick=32, full=16))
            utils.seed_everything(cfg.seed)
            from fgfs_lib.models.registry import build_model

            model = build_model(name, data.meta, cfg)
            settings = train.default_settings(cfg, sampling=sampling, epochs=2, steps_per_epoch=steps,
                                              batch_size=batch, validate=False, checkpoint_every=0,
                                              amp=not args.no_amp, channels_last=not args.no_channels_last)
            with tempfile.TemporaryDirectory() as tmp:
                warm = dataclasses.replace(settings, epochs=1, steps_per_epoch=3)
                train.fit(model, data, cfg, out_dir=f"{tmp}/warm", settings=warm, verbose=False, resume=False)
                t0 = time.perf_counter()
                result = train.fit(model, data, cfg, out_dir=f"{tmp}/run", settings=settings, verbose=False,
                                   resume=False)
                wall = time.perf_counter() - t0
            per_item = 1 if sampling == "in_batch" else 3
            print(f"{cfg.profile:5s} {name:8s} {sampling:8s} batch {batch:3d} x {per_item} img  "
                  f"{result.images_per_second:7.1f} img/s (median epoch)  {2 * steps} steps in {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
