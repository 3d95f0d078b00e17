"""Issue 10's difficulty ladder: the design details' test MAP against the detail size, for
ASEN and for ASEN without its spatial attention ("w/o ASA").

    PYTHONPATH=. python scripts/difficulty_ladder.py                       # scales 0.5 0.7 1.0 1.4
    PYTHONPATH=. python scripts/difficulty_ladder.py --scales 0.6 1.0 --models asen

For every ``detail_scale`` the calibrated FashionSynth preset is generated with that one knob
changed (dataset seed 0, 12,000 images; the details and their regions are scaled about the
neck), each model is trained with the quick profile's defaults from the pretrained small CNN
(``fgfs_lib.train.train_or_load``: the checkpoints are cached, so a rerun only evaluates), and
the test MAP per attribute is recorded beside the random ranking and the details' mean region
share. Writes ``<out>.json`` and ``<out>.png`` (:func:`fgfs_lib.viz.training.difficulty_ladder`).
The pretrained backbone saw ``detail_scale=1.0`` only, so other scales also test how far its
features carry.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import fgfs_lib
from fgfs_lib import config, evaluate, train, utils
from fgfs_lib.data import synth
from fgfs_lib.data.synth import DETAIL_ATTRIBUTES as DETAILS
from fgfs_lib.viz import training as viz_training

LABELS = {"asen": "ASEN", "asen_wo_asa": "ASEN w/o ASA"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 0.7, 1.0, 1.4])
    parser.add_argument("--models", nargs="+", default=["asen", "asen_wo_asa"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/06_difficulty_ladder"))
    args = parser.parse_args()
    cfg = config.load("quick", args.seed)
    start = time.perf_counter()
    report = {"what": "design details' test MAP against detail_scale (calibrated preset otherwise)",
              "command": "python scripts/difficulty_ladder.py --scales " + " ".join(f"{s:g}" for s in args.scales)
              + " --models " + " ".join(args.models), "seed": args.seed, "levels": []}
    for scale in args.scales:
        data = fgfs_lib.data.load("fashionsynth", cfg=cfg, detail_scale=scale)
        names = list(data.meta.attribute_names)
        random = evaluate.random_map(data, "test")["per_attribute"]
        level = {"detail_scale": scale, "data_config_hash": data.config["config_hash"],
                 "detail_region_share": sum(synth.detail_region_shares(data.test, names).values()) / len(DETAILS),
                 "random": {names[a]: v for a, v in random.items()}, "models": {}}
        for model_name in args.models:
            run = train.train_or_load(model_name, data, cfg, verbose=False)
            result = evaluate.retrieval_map(run.model, data, "test")["per_attribute_name"]
            gain = sum(result[n] - level["random"][n] for n in DETAILS) / len(DETAILS)
            level["models"][model_name] = {"test_per_attribute": result, "details_gain": gain}
            print(f"detail_scale {scale:g}: {model_name} details MAP - random {gain:+.1f}", flush=True)
        report["levels"].append(level)
    report["env"] = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
                     "device": str(utils.device()), "seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    utils.atomic_write_json(args.out.with_suffix(".json"), report)
    fig = viz_training.difficulty_ladder(
        args.scales, {LABELS.get(m, m): [lv["models"][m]["details_gain"] for lv in report["levels"]] for m in args.models},
        region_share=[lv["detail_region_share"] for lv in report["levels"]])
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    print(json.dumps({lv["detail_scale"]: {m: round(v["details_gain"], 1) for m, v in lv["models"].items()}
                      for lv in report["levels"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
