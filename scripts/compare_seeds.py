"""Notebook 06's comparison over several training seeds: mean and spread per model and attribute.

    python scripts/compare_seeds.py                      # quick profile, seeds 0 1 2
    python scripts/compare_seeds.py --seeds 0 1 2 3 4 --threads 1
    FGFS_PROFILE=full python scripts/compare_seeds.py    # paper settings, on a GPU

For every seed it trains (or, through ``fgfs_lib.train.train_or_load``, reuses) the models of
``fgfs_lib.models.asen.comparison_runs``: triplet network, CSN, ASEN w/o ASA, ASEN w/o ACA
and ASEN, plus ASEN with the papers' 3-image triplets (``sampler_runs``), on the same
FashionSynth data (dataset seed 0; only the training seed changes), and evaluates test MAP
per attribute. Checkpoints are shared with the notebooks (same config, same folder), so
notebooks 04-06 reuse seed 0's runs.

Writes ``results/06_asen_seeds.json`` (config, seeds, device, commit, per-seed numbers,
mean/std/min/max, and how often each of the paper's orderings holds) and a short markdown
table ``results/06_asen_seeds.md``. The JSON is rewritten after every finished model, so an
interrupted run keeps what it had; running again skips nothing but retrains nothing either
(the checkpoints are reused).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

import fgfs_lib
from fgfs_lib import config, evaluate, results, train, utils
from fgfs_lib.models import asen

ROOT = Path(__file__).resolve().parent.parent

# The paper's claims, as (better, worse) pairs of our labels (ASEN poster, FashionAI and DARN)
ORDERINGS = [
    ("ASEN", "ASEN w/o ASA"),
    ("ASEN", "ASEN w/o ACA"),
    ("ASEN w/o ASA", "ASEN w/o ACA"),
    ("ASEN", "CSN"),
    ("CSN", "triplet network"),
    ("ASEN w/o ASA", "CSN"),
    ("triplet network", "random"),
]


def summarise(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "mean": statistics.fmean(finite),
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }


def all_runs(cfg: config.Config) -> dict[str, dict[str, Any]]:
    """Label -> train_or_load arguments: notebook 06's table plus the two samplers."""
    return {**asen.comparison_runs(cfg), **{f"ASEN ({k})": v for k, v in asen.sampler_runs(cfg).items()}}


def run_seed(seed: int, profile: str, labels: list[str], verbose: bool) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Train or load each labelled model for one seed; yield (label, record, data)."""
    cfg = config.load(profile, seed)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    specs = all_runs(cfg)
    out: dict[str, Any] = {}
    for label in labels:
        spec = dict(specs[label])
        name = spec.pop("model_name")
        t0 = time.perf_counter()
        result = train.train_or_load(name, data, cfg, verbose=verbose, **spec)
        test = evaluate.retrieval_map(result.model, data, "test")
        settings = result.run_config["settings"]
        out[label] = {
            "model": name,
            "test_map": test["overall"],
            "test_per_attribute": test["per_attribute_name"],
            "best_valid_map": result.best_map,
            "best_epoch": result.best_epoch,
            "valid_curve": [h["valid_map"] for h in result.history],
            "train_seconds": [h["train_seconds"] for h in result.history],
            "backbone_passes": asen.backbone_passes(result.history, settings),
            "images_per_second": result.images_per_second,
            "reused_checkpoint": result.reused,
            "checkpoint": str(result.checkpoint_dir),
            "settings": settings,
            "model_options": result.run_config["model"]["options"],
            "wall_seconds": time.perf_counter() - t0,
        }
        print(f"seed {seed} {label:<28} test MAP {test['overall']:6.2f} "
              f"({'loaded' if result.reused else 'trained'}, {time.perf_counter() - t0:.0f} s)", flush=True)
        yield label, out[label], data


def build_summary(per_seed: dict[str, dict[str, Any]], random: dict[str, float], labels: list[str],
                  attribute_names: list[str]) -> dict[str, Any]:
    seeds = sorted(per_seed, key=int)
    summary: dict[str, Any] = {}
    for label in labels:
        runs = [per_seed[s][label] for s in seeds if label in per_seed[s]]
        if not runs:
            continue
        summary[label] = {
            "overall": summarise([r["test_map"] for r in runs]),
            "per_attribute": {a: summarise([r["test_per_attribute"][a] for r in runs]) for a in attribute_names},
            "images_per_second": summarise([r["images_per_second"] for r in runs]),
        }
    orderings = []
    for better, worse in ORDERINGS:
        diffs = []
        for s in seeds:
            get = lambda lab: random["overall"] if lab == "random" else per_seed[s].get(lab, {}).get("test_map")  # noqa: E731
            hi, lo = get(better), get(worse)
            if hi is not None and lo is not None:
                diffs.append(hi - lo)
        if diffs:
            orderings.append({"claim": f"{better} > {worse}", "seeds_holding": sum(d > 0 for d in diffs),
                              "seeds": len(diffs), "difference": summarise(diffs)})
    return {"models": summary, "orderings": orderings}


def markdown(report: dict[str, Any]) -> str:
    names = report["attribute_names"]
    aliases = results.same_runs(report["per_seed"])
    models = {label: m for label, m in report["summary"]["models"].items() if label not in aliases}
    lines = [
        "# Notebook 06 comparison over training seeds",
        "",
        f"Profile `{report['profile']}`, seeds {report['seeds']}, device `{report['env']['device']}`, "
        f"commit `{report['env']['git_commit']}`. Test MAP x100 on FashionSynth, mean ± sample std over seeds "
        f"(written by `scripts/compare_seeds.py`). Labels joined by = are the same runs (same checkpoints).",
        "",
        "| model | " + " | ".join(names) + " | overall |",
        "|---|" + "---|" * (len(names) + 1),
        "| random (expected) | " + " | ".join(f"{report['random'][n]:.1f}" for n in names)
        + f" | {report['random']['overall']:.1f} |",
    ]
    for label, m in models.items():
        cells = [f"{m['per_attribute'][n]['mean']:.1f} ± {m['per_attribute'][n]['std']:.1f}" for n in names]
        label = " = ".join([label, *(alias for alias, same in aliases.items() if same == label)])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | **{m['overall']['mean']:.1f} ± {m['overall']['std']:.1f}** |")
    lines += ["", "| paper's ordering | seeds where it holds | difference (mean ± std) |", "|---|---|---|"]
    for o in report["summary"]["orderings"]:
        d = o["difference"]
        lines.append(f"| {o['claim']} | {o['seeds_holding']}/{o['seeds']} | {d['mean']:+.1f} ± {d['std']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", choices=config.PROFILES, default=None,
                        help="default: $FGFS_PROFILE or quick")
    parser.add_argument("--models", nargs="+", default=None,
                        help="labels to run (default: all of comparison_runs and sampler_runs)")
    parser.add_argument("--out", default=str(ROOT / "results" / "06_asen_seeds.json"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    if len(args.seeds) < 1:
        parser.error("give at least one seed")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = config.load(args.profile, args.seeds[0])
    specs = all_runs(cfg)
    all_labels = list(specs)
    labels = args.models or all_labels
    unknown = [m for m in labels if m not in all_labels]
    if unknown:
        parser.error(f"unknown model label(s) {unknown}; choose from {all_labels}")
    out = Path(args.out)
    env = utils.env_report(cfg)
    report: dict[str, Any] = {
        "what": "notebook 06 comparison over training seeds (test MAP x100, FashionSynth, dataset seed 0)",
        "profile": cfg.profile, "seeds": args.seeds, "models": labels, "env": env,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": torch.get_num_threads(),
        "runs": {label: specs[label] for label in labels},
        "per_seed": {},
    }
    t_start = time.perf_counter()
    for seed in args.seeds:
        report["per_seed"][str(seed)] = {}
        for label, record, data in run_seed(seed, cfg.profile, labels, verbose=not args.quiet):
            report["per_seed"][str(seed)][label] = record
            if "random" not in report:
                rnd = evaluate.random_map(data, "test")
                names = list(data.meta.attribute_names)
                report["attribute_names"] = names
                report["random"] = {**{names[a]: v for a, v in rnd["per_attribute"].items()}, "overall": rnd["overall"]}
                report["data_config"] = data.config
            report["summary"] = build_summary(report["per_seed"], report["random"], labels, report["attribute_names"])
            report["elapsed_seconds"] = time.perf_counter() - t_start
            utils.atomic_write_json(out, report)
            utils.atomic_write_text(out.with_suffix(".md"), markdown(report))
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    utils.atomic_write_json(out, report)
    utils.atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
