"""Notebook 07's ASEN++ runs over several training seeds: mean ± sd per attribute and the paper's claims.

    python scripts/run_asenpp_seeds.py                    # quick profile, seeds 0 1 2
    python scripts/run_asenpp_seeds.py --seeds 0 1 2 3 --threads 1
    FGFS_PROFILE=full python scripts/run_asenpp_seeds.py  # paper settings, on a GPU

For every seed it trains (or, through ``fgfs_lib.train.train_or_load``, reuses) the runs of
``fgfs_lib.models.asen_global_local.stage_runs`` on the same FashionSynth data (dataset seed
0; only the training seed changes): stage 1 (the global branch alone), stage 2 from it, and
stage 2 without the alignment loss. It then scores the test split:

* stage 1; stage 2 ranked by the global branch only, the local branch only, the fused score
  (0.6 global + 0.4 local cosine) and the fusion sweep (one embedding pass per branch);
* stage 2 with the other ROI threshold at test time (0.1 against the profile's default);
* stage 2 without the alignment loss (fused, global only, local only).

Checkpoints are shared with notebook 07 (same config, same folder), so the notebook reuses
seed 0's runs. Writes ``results/07_asenpp_seeds.json`` (config, seeds, device, commit,
per-seed numbers, mean/sd/min/max, and how often each of the paper's claims holds, overall
and per attribute group) and ``results/07_asenpp_seeds.md``. The JSON is rewritten after
every seed, so an interrupted run keeps what it had.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import fgfs_lib
from fgfs_lib import config, evaluate, utils
from fgfs_lib.models import asen_global_local as agl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_seeds import summarise  # noqa: E402  (mean, sd, min, max of the finite values)

ROOT = Path(__file__).resolve().parent.parent

# The paper's claims as (better, worse) pairs of our labels (ASEN++, TIP 2021, ablations)
CLAIMS = [
    ("stage 2 fused", "stage 1 (global only)"),
    ("stage 2 fused", "stage 2 global only"),
    ("stage 2 fused", "stage 2 local only"),
    ("stage 2 fused", "stage 2 w/o alignment, fused"),
]


def _entry(result: dict[str, Any]) -> dict[str, Any]:
    return {"test_map": result["overall"], "test_per_attribute": result["per_attribute_name"]}


def score_seed(seed: int, profile: str, verbose: bool) -> tuple[dict[str, Any], Any]:
    """Train or load the three runs of one seed and score every variant on the test split."""
    cfg = config.load(profile, seed)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    t0 = time.perf_counter()
    runs = agl.train_stages(data, cfg, verbose=verbose)
    stage1, stage2, no_align = (runs[k].model for k in agl.stage_runs(cfg))
    default = stage2.threshold
    other = 0.1 if default != 0.1 else 0.4
    scores = {"stage 1 (global only)": _entry(evaluate.retrieval_map(stage1, data, "test"))}
    sweep = agl.fusion_maps(stage2, data, "test")
    scores.update({"stage 2 global only": _entry(sweep[1.0]), "stage 2 local only": _entry(sweep[0.0]),
                   "stage 2 fused": _entry(sweep[stage2.fusion])})
    scores.update({f"stage 2 fusion {b:.1f}": _entry(r) for b, r in sweep.items()})
    at_other = agl.fusion_maps(stage2, data, "test", fusions=(0.0, stage2.fusion), threshold=other)
    scores[f"stage 2 fused, test threshold {other}"] = _entry(at_other[stage2.fusion])
    scores[f"stage 2 local only, test threshold {other}"] = _entry(at_other[0.0])
    no = agl.fusion_maps(no_align, data, "test", fusions=(0.0, no_align.fusion, 1.0))
    scores.update({"stage 2 w/o alignment, fused": _entry(no[no_align.fusion]),
                   "stage 2 w/o alignment, global only": _entry(no[1.0]),
                   "stage 2 w/o alignment, local only": _entry(no[0.0])})
    record = {
        "scores": scores,
        "threshold": default,
        "runs": {label: {"checkpoint": str(r.checkpoint_dir), "reused_checkpoint": r.reused,
                         "best_valid_map": r.best_map, "best_epoch": r.best_epoch,
                         "valid_curve": [h["valid_map"] for h in r.history],
                         "train_seconds": [h["train_seconds"] for h in r.history],
                         "images_per_second": r.images_per_second, "settings": r.run_config["settings"],
                         "model_options": r.run_config["model"]["options"]}
                 for label, r in runs.items()},
        "wall_seconds": time.perf_counter() - t0,
    }
    for label, s in scores.items():
        if not label.startswith("stage 2 fusion"):
            print(f"seed {seed} {label:<44} test MAP {s['test_map']:6.2f}", flush=True)
    return record, data


def claim_rows(per_seed: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> list[dict[str, Any]]:
    """For each claim: seeds where it holds and the difference, overall and per attribute group."""
    rows = []
    for better, worse in CLAIMS:
        diffs = [r["scores"][better]["test_map"] - r["scores"][worse]["test_map"] for r in per_seed.values()]
        by_group = {}
        for group, names in groups.items():
            mean = lambda r, label: statistics.fmean(r["scores"][label]["test_per_attribute"][n] for n in names)  # noqa: E731
            by_group[group] = summarise([mean(r, better) - mean(r, worse) for r in per_seed.values()])
        rows.append({"claim": f"{better} > {worse}", "seeds_holding": sum(d > 0 for d in diffs), "seeds": len(diffs),
                     "difference": summarise(diffs), "difference_by_group": by_group})
    return rows


def build_report(per_seed: dict[str, Any], data: Any, profile: str, seeds: list[int], threads: int | None
                 ) -> dict[str, Any]:
    names = list(data.meta.attribute_names)
    groups = {g: [names[a] for a in idx] for g, idx in agl.attribute_groups(names).items() if idx}
    labels = list(next(iter(per_seed.values()))["scores"])
    models = {label: {"overall": summarise([r["scores"][label]["test_map"] for r in per_seed.values()]),
                      "per_attribute": {n: summarise([r["scores"][label]["test_per_attribute"][n]
                                                      for r in per_seed.values()]) for n in names}}
              for label in labels}
    random = evaluate.random_map(data, "test")
    cfg = config.load(profile, seeds[0])
    return {
        "what": "ASEN++ (notebook 07): stage 1, stage 2 branches and fusion, test MAP per attribute over seeds",
        "command": "python scripts/run_asenpp_seeds.py --seeds " + " ".join(map(str, seeds)),
        "profile": profile, "seeds": sorted(int(s) for s in per_seed), "requested_seeds": seeds,
        "dataset": {"name": "fashionsynth", "config": getattr(data, "config", None)},
        "config": {"stage_runs": agl.stage_runs(cfg), "model_defaults": {k: v for k, v in agl.default_options(cfg).items()},
                   "torch_threads": threads},
        "env": utils.env_report(cfg), "attribute_names": names, "groups": groups,
        "random": {"overall": random["overall"], **{names[a]: v for a, v in random["per_attribute"].items()}},
        "per_seed": per_seed, "summary": {"models": models, "orderings": claim_rows(per_seed, groups)},
    }


def markdown(report: dict[str, Any]) -> str:
    names = report["attribute_names"]
    fmt = lambda s: f"{s['mean']:.1f} ± {s['std']:.1f}"  # noqa: E731
    lines = [
        "# Notebook 07 (ASEN++) over training seeds", "",
        f"Profile `{report['profile']}`, seeds {report['seeds']}, device `{report['env']['device']}`, "
        f"commit `{report['env']['git_commit']}`. Test MAP x100 on FashionSynth, mean ± sample sd over seeds "
        f"(written by `scripts/run_asenpp_seeds.py`; the fusion sweep and the threshold are test-time "
        f"variants of the same stage-2 weights).", "",
        *([f"**Only {len(report['seeds'])} seed(s)**: the ± is not a spread over seeds, and no claim below is "
           f"settled by these numbers.", ""] if len(report["seeds"]) < 3 else []),
        "| run | " + " | ".join(names) + " | overall |", "|---|" + "---|" * (len(names) + 1),
        "| random (expected) | " + " | ".join(f"{report['random'][n]:.1f}" for n in names)
        + f" | {report['random']['overall']:.1f} |",
    ]
    for label, m in report["summary"]["models"].items():
        lines.append(f"| {label} | " + " | ".join(fmt(m["per_attribute"][n]) for n in names)
                     + f" | **{fmt(m['overall'])}** |")
    groups = list(report["groups"])
    lines += ["", "| paper's claim | seeds where it holds (overall) | difference overall | "
              + " | ".join(f"difference, {g}" for g in groups) + " |", "|---|---|---|" + "---|" * len(groups)]
    for c in report["summary"]["orderings"]:
        d = c["difference"]
        cells = [f"{c['difference_by_group'][g]['mean']:+.1f} ± {c['difference_by_group'][g]['std']:.1f}" for g in groups]
        lines.append(f"| {c['claim']} | {c['seeds_holding']}/{c['seeds']} | {d['mean']:+.1f} ± {d['std']:.1f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Groups: " + "; ".join(f"{g}: {', '.join(n)}" for g, n in report["groups"].items()) + ".", ""]
    return "\n".join(lines)


def combine(files: list[Path], out: Path) -> int:
    import json

    reports = [json.loads(f.read_text()) for f in files]
    per_seed = {s: r for rep in reports for s, r in rep["per_seed"].items()}
    profile = reports[0]["profile"]
    data = fgfs_lib.data.load("fashionsynth", cfg=config.load(profile, 0))
    report = build_report(per_seed, data, profile, sorted(int(s) for s in per_seed), reports[0]["config"]["torch_threads"])
    report["combined_from"] = [{"file": f.name, "env": rep["env"], "seeds": rep["seeds"]} for f, rep in zip(files, reports)]
    utils.atomic_write_json(out, report)
    utils.atomic_write_text(out.with_suffix(".md"), markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')} (seeds {report['seeds']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", choices=config.PROFILES, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "07_asenpp_seeds.json")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--combine", type=Path, nargs="+", default=None, metavar="JSON",
                        help="merge the per-seed records of earlier runs' JSON files (seeds run in separate "
                             "processes) into --out; trains nothing")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.load(args.profile).profile
    per_seed: dict[str, Any] = {}
    for seed in args.seeds:
        per_seed[str(seed)], data = score_seed(seed, profile, verbose=not args.quiet)
        report = build_report(per_seed, data, profile, args.seeds, args.threads)
        utils.atomic_write_json(args.out, report)
        utils.atomic_write_text(args.out.with_suffix(".md"), markdown(report))
        print(f"wrote {args.out} and {args.out.with_suffix('.md')} ({len(per_seed)} seed(s))", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
