"""Where ASEN's attribute attention puts its mass, per attribute, on the test split.

    python scripts/attention_mass.py RUN0/best.pt [RUN1/best.pt ...] --out results/06_asen_attention

Notebook 04's measure, over every test image carrying the attribute: the share of the
attention map (upsampled from the feature grid to the image) inside the ground-truth region
(``mass``), the share a uniform map would put there (the region's ``area``), and their
ratio. Issue 10's bar: ``mass >= 3 x area`` on each design detail. Writes ``<out>.json``
and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import fgfs_lib
from fgfs_lib import cam, config, train, utils
from fgfs_lib.data.synth import DETAIL_ATTRIBUTES as DETAILS



@torch.no_grad()
def attention_mass(model, split, attribute: int, batch: int = 200) -> dict[str, float]:
    """Mean mass inside the region and mean region area over the images carrying ``attribute``."""
    dev = utils.device()
    model.to(dev).eval()
    idx = torch.nonzero(split.labels[:, attribute] >= 0).flatten()
    maps = torch.cat([model.attention_maps(split.batch(chunk).to(dev), attribute).cpu() for chunk in idx.split(batch)])
    scores = cam.localisation_scores(cam.upsample_maps(maps, split.image_size), split.region_masks(idx, attribute),
                                     split.boxes[idx, attribute])
    mass, area = float(scores["mass"].nanmean()), float(scores["area"].mean())
    return {"images": len(idx), "mass": mass, "area": area, "ratio": mass / area}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    parser.add_argument("--split", default="test", choices=("test", "valid"))
    args = parser.parse_args()
    report: dict[str, dict] = {}
    data = None
    for path in args.checkpoints:
        rc = train.load_checkpoint(path)["run_config"]
        cfg = config.load(rc["profile"], rc["seed"])
        if data is None:
            root = rc["data"].get("root")
            data = fgfs_lib.data.load(rc["data"]["name"], root=root if root and Path(root).is_dir() else None, cfg=cfg)
        model, _ = train.load_model(path, cfg, data.meta)
        names = list(data.meta.attribute_names)
        label = f"{rc['model']['name']} seed {rc['seed']}"
        report[label] = {n: attention_mass(model, getattr(data, args.split), a) for a, n in enumerate(names)}
    names = list(data.meta.attribute_names)
    lines = ["| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, row in report.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{row[n]['mass']:.2f} / {row[n]['area']:.2f} = {row[n]['ratio']:.1f}x" for n in names) + " |")
    verdict = {label: all(row[n]["ratio"] >= 3 for n in DETAILS) for label, row in report.items()}
    text = (f"Attention mass inside the ground-truth region / the region's area (a uniform map's mass) = ratio, "
            f"{args.split} split, every image carrying the attribute. Written by `scripts/attention_mass.py`.\n\n"
            + "\n".join(lines) + "\n\nratio >= 3 on every design detail: "
            + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in verdict.items()) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    utils.atomic_write_json(args.out.with_suffix(".json"), {"runs": [str(p) for p in args.checkpoints],
                                                            "split": args.split, "per_run": report, "verdict": verdict})
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
