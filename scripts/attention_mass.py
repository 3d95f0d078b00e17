"""Where ASEN's attribute attention puts its mass, per attribute, on the test split.

    python scripts/attention_mass.py RUN0/best.pt [RUN1/best.pt ...] --out results/06_asen_attention

Notebook 04's measure, over every test image carrying the attribute: the share of the
attention map (upsampled from the feature grid to the image) inside the ground-truth region
(``mass``), the share a uniform map would put there (the region's ``area``), and their
ratio. Issue 10's bar: ``mass >= 3 x area`` on each design detail. Two checks that the bar
alone cannot make: the mass that a map which never looks at the image puts there (the
*position prior*, the share of training images whose region covers each pixel; FashionSynth
frames its garments alike, so this prior is strong), and whether the map follows the region
from image to image (Pearson correlation of their centres of mass, rows and columns; a fixed
map has none). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import fgfs_lib
from fgfs_lib import cam, config, metrics, train, utils
from fgfs_lib.data.synth import DETAIL_ATTRIBUTES as DETAILS



PRIOR_IMAGES = 4000  # training images (carrying the attribute) averaged into the position prior


def training_prior(train_split, attribute: int) -> torch.Tensor:
    """[H, W] share of the first PRIOR_IMAGES training images carrying ``attribute`` whose region
    covers each pixel."""
    idx = torch.nonzero(train_split.labels[:, attribute] >= 0).flatten()[:PRIOR_IMAGES]
    return cam.position_prior(train_split.region_masks(idx, attribute))


@torch.no_grad()
def attention_mass(model, split, attribute: int, prior: torch.Tensor, batch: int = 200) -> dict[str, float]:
    """Over the images carrying ``attribute``: mean mass inside the region, mean region area,
    the prior's mean mass inside, and the centroid correlation of map and region."""
    dev = utils.device()
    model.to(dev).eval()
    idx = torch.nonzero(split.labels[:, attribute] >= 0).flatten()
    maps = torch.cat([model.attention_maps(split.batch(chunk).to(dev), attribute).cpu() for chunk in idx.split(batch)])
    maps = cam.upsample_maps(maps, split.image_size)
    masks = split.region_masks(idx, attribute)
    scores = cam.localisation_scores(maps, masks, split.boxes[idx, attribute])
    prior_mass = float(metrics.mass_inside(prior.expand_as(maps), masks).nanmean())
    corr_row, corr_col = cam.centroid_correlation(maps, masks).tolist()
    mass, area = float(scores["mass"].nanmean()), float(scores["area"].mean())
    return {"images": len(idx), "mass": mass, "area": area, "ratio": mass / area, "prior_mass": prior_mass,
            "prior_ratio": prior_mass / area, "centroid_corr_row": corr_row, "centroid_corr_col": corr_col}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    parser.add_argument("--split", default="test", choices=("test", "valid"))
    args = parser.parse_args()
    report: dict[str, dict] = {}
    data, priors = None, []  # the priors depend on the data only: made once
    for path in args.checkpoints:
        rc = train.load_checkpoint(path)["run_config"]
        cfg = config.load(rc["profile"], rc["seed"])
        if data is None:
            root = rc["data"].get("root")
            data = fgfs_lib.data.load(rc["data"]["name"], root=root if root and Path(root).is_dir() else None, cfg=cfg)
            priors = [training_prior(data.train, a) for a in range(len(data.meta.attribute_names))]
        model, _ = train.load_model(path, cfg, data.meta)
        names = list(data.meta.attribute_names)
        label = f"{rc['model']['name']} seed {rc['seed']}"
        report[label] = {n: attention_mass(model, getattr(data, args.split), a, priors[a]) for a, n in enumerate(names)}
    names = list(data.meta.attribute_names)
    lines = ["| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, row in report.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{row[n]['mass']:.2f} / {row[n]['area']:.2f} = {row[n]['ratio']:.1f}x" for n in names) + " |")
    first = next(iter(report.values()))
    lines += ["", "The same ratio for the position prior (a fixed map: the share of training images whose region "
              "covers each pixel), and the correlation of the map's centre of mass with the region's over the "
              "images (rows / columns; a fixed map has none):", "",
              "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
              "| position prior | " + " | ".join(f"{first[n]['prior_ratio']:.1f}x" for n in names) + " |"]
    for label, row in report.items():
        lines.append(f"| {label}: centroid corr. | " + " | ".join(
            f"{row[n]['centroid_corr_row']:+.2f} / {row[n]['centroid_corr_col']:+.2f}" for n in names) + " |")
    verdict = {label: all(row[n]["ratio"] >= 3 for n in DETAILS) for label, row in report.items()}
    above_prior = {label: all(row[n]["mass"] > row[n]["prior_mass"] for n in DETAILS) for label, row in report.items()}
    text = (f"Attention mass inside the ground-truth region / the region's area (a uniform map's mass) = ratio, "
            f"{args.split} split, every image carrying the attribute. Written by `scripts/attention_mass.py`.\n\n"
            + "\n".join(lines) + "\n\nratio >= 3 on every design detail: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in verdict.items())
            + "\n\nmore mass inside than the position prior on every design detail: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in above_prior.items()) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    utils.atomic_write_json(args.out.with_suffix(".json"), {"runs": [str(p) for p in args.checkpoints],
                                                            "split": args.split, "per_run": report, "verdict": verdict,
                                                            "above_prior": above_prior,
                                                            "prior_images": PRIOR_IMAGES})
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
