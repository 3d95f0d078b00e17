"""Notebook 08's AG-MAN comparison over several training seeds: mean and spread per model and attribute.

    python scripts/run_agman_seeds.py                       # quick profile, seeds 0 1 2, every run
    python scripts/run_agman_seeds.py --group main          # ASENet_V2, AG-MAN and the Tables 5-6 grid
    python scripts/run_agman_seeds.py --budget long --group main --labels ASENet_V2 "AGA only" AG-MAN \
        --out results/08_agman_long.json                    # 7.5x the images: does the gap close?
    FGFS_PROFILE=full python scripts/run_agman_seeds.py     # paper settings, on a GPU

For every seed it trains (or, through ``fgfs_lib.train.train_or_load``, reuses) the runs of
``fgfs_lib.models.agman.ablation_runs``: ASENet_V2 (``asen_v2``), AG-MAN, AG-MAN with fixed
equal loss weights, the multi-level x classification grid of Tables 5-6 and the
one-AGA-part-off runs of Tables 7-8, on the same FashionSynth data (dataset seed 0; only the
training seed changes), with the settings of ``agman.run_settings``, and evaluates test MAP
per attribute. Checkpoints are shared with notebook 08 (seed 0 is its live run).

Writes ``results/08_agman_seeds.json`` (config, seeds, device, commit, per-seed numbers,
mean/std/min/max, and how often each of the paper's claims ``agman.CLAIMS`` holds) and
``results/08_agman_seeds.md``, rewritten after every finished model (temporary file, then
rename), so an interrupted run keeps what it had.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import fgfs_lib
from fgfs_lib import config, evaluate, train, utils
from fgfs_lib.models import agman

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_seeds import summarise  # noqa: E402  (one summary helper for every seeds script)


def run_one(label: str, spec: dict[str, Any], data: Any, cfg: config.Config, verbose: bool) -> dict[str, Any]:
    """Train or load one labelled run; its test MAP and what produced it."""
    spec = dict(spec)
    name = spec.pop("model_name")
    t0 = time.perf_counter()
    result = train.train_or_load(name, data, cfg, verbose=verbose, **spec)
    test = evaluate.retrieval_map(result.model, data, "test")
    record = {
        "model": name,
        "test_map": test["overall"],
        "test_per_attribute": test["per_attribute_name"],
        "best_valid_map": result.best_map,
        "best_epoch": result.best_epoch,
        "valid_curve": [h["valid_map"] for h in result.history],
        "train_seconds": [h["train_seconds"] for h in result.history],
        "images_per_second": result.images_per_second,
        "reused_checkpoint": result.reused,
        "checkpoint": str(result.checkpoint_dir),
        "settings": result.run_config["settings"],
        "model_options": result.run_config["model"]["options"],
        "loss_weights": (result.model.loss_weights.detach().cpu().tolist()
                         if getattr(result.model, "classify", False) else None),
        "wall_seconds": time.perf_counter() - t0,
        "git_commit": utils.git_commit(),
    }
    print(f"seed {cfg.seed} {label:<26} test MAP {test['overall']:6.2f} "
          f"({'loaded' if result.reused else 'trained'}, {record['wall_seconds']:.0f} s)", flush=True)
    return record


def summary(per_seed: dict[str, dict[str, Any]], random: dict[str, float], labels: list[str],
            names: list[str]) -> dict[str, Any]:
    """Mean/std per model and attribute, and per claim the seeds where it holds."""
    seeds = sorted(per_seed, key=int)
    models = {}
    for label in labels:
        runs = [per_seed[s][label] for s in seeds if label in per_seed[s]]
        if runs:
            models[label] = {"overall": summarise([r["test_map"] for r in runs]),
                             "per_attribute": {a: summarise([r["test_per_attribute"][a] for r in runs]) for a in names}}
    claims = []
    for better, worse in agman.CLAIMS:
        diffs = [per_seed[s][better]["test_map"] - per_seed[s][worse]["test_map"]
                 for s in seeds if better in per_seed[s] and worse in per_seed[s]]
        if diffs:
            claims.append({"claim": f"{better} > {worse}", "seeds_holding": sum(d > 0 for d in diffs),
                           "seeds": len(diffs), "difference": summarise(diffs)})
    return {"models": models, "orderings": claims}


def markdown(report: dict[str, Any]) -> str:
    names = report["attribute_names"]
    s = report["summary"]
    lines = [
        "# Notebook 08 (AG-MAN) comparison over training seeds",
        "",
        f"Profile `{report['profile']}`, seeds {report['seeds']}, device `{report['env']['device']}`, "
        f"commit `{report['env']['git_commit']}`, settings {report['settings']}. Test MAP x100 on "
        f"FashionSynth, mean ± sample std over seeds (written by `scripts/run_agman_seeds.py`). "
        f"The paper's column is its FashionAI overall MAP (Tables 5, 7, 9). FashionSynth data: generator "
        f"version {report.get('data_config', {}).get('version')}, config {report.get('data_config', {}).get('config_hash')}.",
        "",
        "| run | " + " | ".join(names) + " | overall | paper (FashionAI) |",
        "|---|" + "---|" * (len(names) + 2),
        "| random (expected) | " + " | ".join(f"{report['random'][n]:.1f}" for n in names)
        + f" | {report['random']['overall']:.1f} | |",
    ]
    for label, m in s["models"].items():
        cells = [f"{m['per_attribute'][n]['mean']:.1f} ± {m['per_attribute'][n]['std']:.1f}" for n in names]
        paper = agman.PAPER_FASHIONAI.get(label)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | **{m['overall']['mean']:.1f} ± "
                     f"{m['overall']['std']:.1f}** ({m['overall']['n']} seeds) | "
                     f"{'' if paper is None else f'{paper:.2f}'} |")
    lines += ["", "| the paper's claim | seeds where it holds | difference (mean ± std) | verdict |",
              "|---|---|---|---|"]
    for c in s["orderings"]:
        d = c["difference"]
        lines.append(f"| {c['claim']} | {c['seeds_holding']}/{c['seeds']} | {d['mean']:+.1f} ± {d['std']:.1f} "
                     f"| {agman.claim_verdict(c, d['mean'])} |")
    return "\n".join(lines) + "\n"


def save(out: Path, report: dict[str, Any]) -> str:
    """Write the JSON and the markdown table (each to a temporary file, then renamed)."""
    text = markdown(report)
    utils.atomic_write_json(out, report)
    utils.atomic_write_text(out.with_suffix(".md"), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="training seeds (none: only combine --merge-files)")
    parser.add_argument("--profile", choices=config.PROFILES, default=None, help="default: $FGFS_PROFILE or quick")
    parser.add_argument("--group", choices=("main", "aga", "all"), default="all",
                        help="main: ASENet_V2, AG-MAN and Tables 5-6; aga: Tables 7-8; all: both")
    parser.add_argument("--budget", choices=agman.BUDGETS, default="notebook",
                        help="notebook: the notebook's 2 x 40 steps of 32; long: 4 x 75 steps of 64 (notebook 06's ASEN)")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="only these run labels of the group (e.g. ASENet_V2 AG-MAN for extra seeds)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the per-seed records already in --out (same profile) and add these")
    parser.add_argument("--merge-files", nargs="+", default=[],
                        help="reports of earlier runs (same profile) whose per-seed records join this one")
    parser.add_argument("--out", default=str(ROOT / "results" / "08_agman_seeds.json"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = config.load(args.profile, args.seeds[0] if args.seeds else 0)
    specs = agman.ablation_runs(args.group, cfg, args.budget)
    unknown = sorted(set(args.labels or []) - set(specs))
    if unknown:
        parser.error(f"unknown label(s) {unknown} in group {args.group}; choose from {list(specs)}")
    labels = (args.labels or list(specs)) if args.seeds else []
    out = Path(args.out)
    previous: dict[str, Any] = {}
    for path in ([out] if args.merge and out.is_file() else []) + [Path(f) for f in args.merge_files]:
        other = json.loads(path.read_text())
        if other.get("profile") != cfg.profile:
            parser.error(f"{path} holds the {other.get('profile')} profile, not {cfg.profile}")
        previous.setdefault("runs", {}).update(other.get("runs", {}))
        for seed, records in other.get("per_seed", {}).items():
            previous.setdefault("per_seed", {}).setdefault(seed, {}).update(records)
        for key in ("random", "attribute_names", "data_config"):
            previous.setdefault(key, other.get(key))
    report: dict[str, Any] = {
        "what": "notebook 08 AG-MAN comparison over training seeds (test MAP x100, FashionSynth, dataset seed 0)",
        "profile": cfg.profile, "seeds": args.seeds, "group": args.group, "models": labels,
        "env": utils.env_report(cfg), "settings": agman.run_settings(cfg, args.budget), "budget": args.budget,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "threads": torch.get_num_threads(),
        "runs": {**previous.get("runs", {}), **{label: specs[label] for label in labels}},
        "per_seed": previous.get("per_seed", {}),
        **{k: previous[k] for k in ("random", "attribute_names", "data_config") if previous.get(k)},
    }
    report["seeds"] = sorted({*map(int, report["per_seed"]), *args.seeds})
    report["models"] = list(report["runs"])
    t_start = time.perf_counter()
    for seed in args.seeds:
        seed_cfg = config.load(cfg.profile, seed)
        data = fgfs_lib.data.load("fashionsynth", cfg=seed_cfg)
        if "random" not in report:
            rnd = evaluate.random_map(data, "test")
            names = list(data.meta.attribute_names)
            report["attribute_names"] = names
            report["random"] = {**{names[a]: v for a, v in rnd["per_attribute"].items()}, "overall": rnd["overall"]}
            report["data_config"] = data.config
        report["per_seed"].setdefault(str(seed), {})
        for label in labels:
            report["per_seed"][str(seed)][label] = run_one(label, specs[label], data, seed_cfg, not args.quiet)
            report["summary"] = summary(report["per_seed"], report["random"], report["models"],
                                        report["attribute_names"])
            report["elapsed_seconds"] = time.perf_counter() - t_start
            save(out, report)
    if "attribute_names" in report:
        report["summary"] = summary(report["per_seed"], report["random"], report["models"], report["attribute_names"])
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(save(out, report))
    print(f"wrote {out} and {out.with_suffix('.md')} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
