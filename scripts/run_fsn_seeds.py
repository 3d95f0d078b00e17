"""Notebook 09's Table 2 over several training seeds: manipulation Top-K and NDCG@30.

    python scripts/run_fsn_seeds.py                       # quick profile, seeds 0 1 2
    python scripts/run_fsn_seeds.py --scale 0.25          # a quarter of the steps (loaded machine)
    FGFS_PROFILE=full python scripts/run_fsn_seeds.py     # paper settings, on a GPU

For every seed it trains (or reuses, through ``fgfs_lib.train.train_or_load``) the runs of
``fgfs_lib.models.fashionsearchnet.train_table2`` (stage-1 classifier; FashionSearchNet,
"w/o Loc." and AMNet-like from it) on FashionSynth (dataset seed 0; only the training seed
changes) and evaluates every searcher of ``table2_searchers`` plus random scores on the
test split's ADDE manipulation queries. Checkpoints are shared with notebook 09.

Writes ``results/09_fsn_seeds.json`` (config, seeds, device, commit, per-seed numbers,
mean/std, and how often each of the paper's orderings holds at Top-30) and
``results/09_fsn_seeds.md`` (``--out`` changes the stem). Both are rewritten after every
seed through a temporary file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import fgfs_lib
from fgfs_lib import config, manipulation, utils
from fgfs_lib.models import fashionsearchnet as fsn
from fgfs_lib.models.backbones import default_weights

ROOT = Path(__file__).resolve().parent.parent
KS = (1, 5, 10, 20, 30, 40, 50)
# the paper's Table 2 / Fig. 4 ordering at Top-30, as (better, worse) pairs of our labels
ORDERINGS = [("FashionSearchNet", "w/o Loc."), ("w/o Loc.", "AMNet-like"), ("AMNet-like", "attribute-based"),
             ("attribute-based", "random")]


def run_seed(seed: int, profile: str, scale: float, prototype_images: int | None) -> dict:
    cfg = config.load(profile, seed)
    utils.seed_everything(seed)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    t0 = time.perf_counter()
    runs = fsn.train_table2(data, cfg, scale=scale)
    train_s = time.perf_counter() - t0
    searchers = {**fsn.table2_searchers(runs, data.train, prototype_images), "random": manipulation.RandomSearcher(torch.Generator().manual_seed(seed))}
    queries = manipulation.manipulation_queries(data.test.labels, data.meta.num_values)
    out = {"seed": seed, "train_seconds": train_s, "queries": len(queries), "methods": {},
           "checkpoints": {k: str(r.checkpoint_dir) for k, r in runs.items()},
           "reused": {k: bool(r.reused) for k, r in runs.items()}}
    codes = manipulation.encode_all(searchers, data.test)
    for label, searcher in searchers.items():
        t1 = time.perf_counter()
        res = manipulation.evaluate(searcher, data.test, queries, ks=KS, codes=codes[label])
        out["methods"][label] = {"topk": {str(k): v for k, v in res["topk"].items()}, "ndcg30": res["ndcg"],
                                 "per_attribute_top30": {data.meta.attribute_names[a]: r["topk"][30]
                                                         for a, r in res["per_attribute"].items()},
                                 "ndcg30_gallery": res["ndcg_gallery"], "eval_seconds": time.perf_counter() - t1}
        print(f"seed {seed} {label:<40} Top-30 {res['topk'][30]:5.1f}  NDCG@30 {res['ndcg']:5.1f}", flush=True)
    return out


def summary(per_seed: list[dict], attribute_names: list[str]) -> dict:
    """Our table and orderings, plus ``models`` / ``orderings`` in the schema of
    :mod:`fgfs_lib.results` (overall = Top-30; per-attribute Top-30 where the run recorded it)."""
    from fgfs_lib import results

    labels = list(per_seed[0]["methods"])
    table = {}
    for label in labels:
        top30 = [s["methods"][label]["topk"]["30"] for s in per_seed]
        ndcg = [s["methods"][label]["ndcg30"] for s in per_seed]
        table[label] = {"top30_mean": statistics.fmean(top30), "top30_std": statistics.stdev(top30) if len(top30) > 1 else 0.0,
                        "ndcg30_mean": statistics.fmean(ndcg),
                        "topk_mean": {str(k): statistics.fmean(s["methods"][label]["topk"][str(k)] for s in per_seed)
                                      for k in KS}}
    orderings = [{"better": a, "worse": b,
                  "holds_in_seeds": sum(s["methods"][a]["topk"]["30"] > s["methods"][b]["topk"]["30"] for s in per_seed),
                  "of": len(per_seed), "holds_on_mean": table[a]["top30_mean"] > table[b]["top30_mean"]}
                 for a, b in ORDERINGS]
    for o in orderings:
        diffs = [s["methods"][o["better"]]["topk"]["30"] - s["methods"][o["worse"]]["topk"]["30"] for s in per_seed]
        o.update(claim=f"{o['better']} > {o['worse']}", seeds_holding=o["holds_in_seeds"], seeds=len(per_seed),
                 difference=results.summarise(diffs))
    models = {label: {"overall": results.summarise(s["methods"][label]["topk"]["30"] for s in per_seed),
                      "per_attribute": {n: results.summarise(s["methods"][label].get("per_attribute_top30", {}).get(n)
                                                             for s in per_seed) for n in attribute_names}}
              for label in labels}
    return {"table": table, "orderings": orderings, "models": models}


def schema_header(record: dict, attribute_names: list[str], argv: list[str]) -> dict:
    """The header of :mod:`fgfs_lib.results` (``random`` = the random ranking's Top-30)."""
    rand = [s["methods"]["random"]["topk"]["30"] for s in record["per_seed"]]
    return {"what": "notebook 09: manipulation search Top-K (Top-30 headline) of FashionSearchNet and Table 2's baselines",
            "command": "python scripts/run_fsn_seeds.py " + " ".join(argv), "attribute_names": attribute_names,
            "random": {**{n: float("nan") for n in attribute_names}, "overall": sum(rand) / len(rand)}}


def markdown(record: dict) -> str:
    done = [s["seed"] for s in record["per_seed"]]
    lines = [f"# Notebook 09: manipulation search over {len(done)} of the seeds {record['seeds']} "
             f"({record['profile']} profile)", "",
             f"Commit {record['commit']}, device {record['device']}, step scale {record['scale']}, "
             f"{record['per_seed'][0]['queries']} test queries (ADDE rule), prototypes from "
             f"{record['prototype_images'] or 'all'} training images. Percent, mean ± std over seeds {done}.", "",
             "| method | Top-1 | Top-10 | Top-30 | Top-50 | NDCG@30 (ADDE) |", "|---|---|---|---|---|---|"]
    for label, row in record["summary"]["table"].items():
        t = row["topk_mean"]
        lines.append(f"| {label} | {t['1']:.1f} | {t['10']:.1f} | {row['top30_mean']:.1f} ± {row['top30_std']:.1f} | "
                     f"{t['50']:.1f} | {row['ndcg30_mean']:.1f} |")
    lines += ["", "The paper's ordering at Top-30 (FashionSearchNet > w/o Loc. > AMNet > attribute-based):", ""]
    for o in record["summary"]["orderings"]:
        verdict = "holds" if o["holds_on_mean"] else "does NOT hold"
        lines.append(f"- {o['better']} > {o['worse']}: {verdict} on the mean ({o['holds_in_seeds']}/{o['of']} seeds)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the training steps (default 1)")
    parser.add_argument("--prototype-images", type=int, default=None, help="training images for the prototypes (default: the profile's, fsn.PROTOTYPE_IMAGES)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "09_fsn_seeds"), help="output stem (.json and .md)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        print(f"error: --scale must be positive, got {args.scale}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config.load(args.profile)
    if args.prototype_images is None:
        args.prototype_images = cfg.pick(**fsn.PROTOTYPE_IMAGES)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)  # the dataset's identity and names (each seed loads its own)
    names = data.meta.attribute_names
    record = {"profile": cfg.profile, "seeds": args.seeds, "scale": args.scale, "prototype_images": args.prototype_images,
              "commit": utils.git_commit(), "device": str(utils.device()), "env": utils.env_report(cfg),
              "settings": fsn.table2_settings(cfg, args.scale), "per_seed": [],
              # what notebook 09 checks before it shows this file beside its live run
              "data_config": json.loads(json.dumps(data.config, default=str)),
              "backbone_start": default_weights(cfg)}
    stem = Path(args.out)
    for seed in args.seeds:
        record["per_seed"].append(run_seed(seed, cfg.profile, args.scale, args.prototype_images))
        record["summary"] = summary(record["per_seed"], names)
        record.update(schema_header(record, names, sys.argv[1:] if argv is None else argv))
        utils.atomic_write_json(stem.with_suffix(".json"), record)
        utils.atomic_write_text(stem.with_suffix(".md"), markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
