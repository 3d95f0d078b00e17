"""The README's quick-profile figures -> figures/quick/ (committed, small PNGs).

Usage: .venv/bin/python scripts/make_figures.py [--out figures/quick] [--dpi 72]

Everything comes from the library, in the quick profile with dataset seed 0, so the lead can
re-run it whenever FashionSynth or a model changes:

* ``01_regions``: one FashionSynth image per garment category with the ground-truth region
  (mask and box) of every applicable attribute (notebook 01, section 4);
* ``01_difficulty``: the same image at other detail sizes and clutter levels (notebook 01, 7);
* ``06_attention_ASEN``: ASEN's spatial attention for every attribute, with the ground-truth
  boxes (notebook 06, section 5);
* ``06_retrieval_examples``: ASEN's top-8 for three queries, each under two attributes
  (notebook 06, section 6).

ASEN comes from :func:`fgfs_lib.train.train_or_load` with notebook 06's settings: the run
that notebook trained is reused from ``artifacts/quick/checkpoints``; without it, it is
trained here (a few minutes on a laptop CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from fgfs_lib import cam, config, data, search, train, utils, viz
from fgfs_lib.data import synth
from fgfs_lib.models import asen as asen_module
from fgfs_lib.viz import data as vdata
from fgfs_lib.viz import maps as viz_maps
from fgfs_lib.viz import retrieval as viz_retrieval

ROOT = Path(__file__).resolve().parents[1]


def save_small(fig, name: str, cfg: config.Config, dpi: int) -> Path:
    """Save through :func:`fgfs_lib.viz.save`, then store the PNG with a 256-colour palette."""
    from PIL import Image

    path = viz.save(fig, name, cfg, dpi=dpi)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with utils.atomic_path(path) as tmp:
        small.save(tmp, format="png", optimize=True)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size / 1024:.0f} KiB")
    return path


def one_per_category(split, count: int, step: int = 1) -> list[int]:
    return [int(torch.nonzero(split.categories == c)[0]) for c in range(0, count, step)]


def data_figures(ds, cfg: config.Config, dpi: int) -> None:
    meta, train_split = ds.meta, ds.train
    examples = one_per_category(train_split, len(meta.category_names))
    save_small(vdata.region_overlay(train_split, examples, meta=meta), "01_regions", cfg, dpi)
    i = examples[3]
    variants = {"default": {}, "detail_scale=0.7": {"detail_scale": 0.7}, "detail_scale=1.3": {"detail_scale": 1.3},
                "clutter=0": {"clutter": 0.0}, "clutter=2": {"clutter": 2.0}}
    images = []
    for options in variants.values():
        rgb, _, _ = synth.render_image(i, int(train_split.categories[i]), train_split.labels[i].numpy(),
                                       synth.synth_config(cfg.profile, 0, **options))
        images.append(torch.tensor(rgb).permute(2, 0, 1))  # a copy: render_image may return a read-only view
    assert torch.equal(images[0], train_split.raw([i])[0])  # the generator is deterministic
    save_small(vdata.image_row(images, list(variants)), "01_difficulty", cfg, dpi)


def asen_figures(ds, cfg: config.Config, dpi: int) -> None:
    meta, test = ds.meta, ds.test
    spec = dict(asen_module.comparison_runs(cfg)["ASEN"])
    model = train.train_or_load(spec.pop("model_name"), ds, cfg, **spec).model
    dev = next(model.parameters()).device
    show = torch.tensor(one_per_category(test, len(meta.category_names), step=2))
    with torch.no_grad():
        low = model.attention_maps_all(test.batch(show).to(dev)).cpu()
    maps = cam.upsample_maps(low.transpose(0, 1), test.image_size)
    fig = viz_maps.attribute_overlays(test.denormalize(test.batch(show)), maps, meta.attribute_names,
                                      gt_boxes=test.boxes[show])
    save_small(fig, "06_attention_ASEN", cfg, dpi)
    names, candidates = meta.attribute_names, ds.test_candidates
    query_rows, results = [], []
    for first, second in [("sleeve_length", "colour"), ("pant_length", "pattern"), ("coat_length", "colour")]:
        a, b = names.index(first), names.index(second)
        q = int(torch.nonzero((test.labels[:, a] >= 0) & (test.labels[:, b] >= 0))[0])
        for attr in (a, b):
            gallery = search.embed_gallery(model, test, attr, meta, indices=candidates[candidates[:, 1] == attr, 0])
            results.append(search.search(model, test.batch([q])[0], attr, gallery, meta, k=8, exclude=q))
            query_rows.append(q)
    fig = viz_retrieval.retrieval_grid(test, query_rows, results, meta, title="ASEN: top-8 per query and attribute")
    save_small(fig, "06_retrieval_examples", cfg, dpi)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the README's quick-profile figures.")
    parser.add_argument("--out", type=Path, default=ROOT / "figures" / "quick")
    parser.add_argument("--dpi", type=int, default=72)
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(config.load("quick", 0), figures_dir=args.out.resolve())
    utils.seed_everything(cfg.seed)
    ds = data.load("fashionsynth", cfg=cfg)
    data_figures(ds, cfg, args.dpi)
    asen_figures(ds, cfg, args.dpi)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
