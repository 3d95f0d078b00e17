"""Evaluate every committed multi-seed run again, in one run on one machine: test MAP, the
time that takes, and triplet-relation (TR) accuracy; and FashionSearchNet's attribute
representations scored as attribute-specific retrieval.

    python scripts/evaluate_runs.py            # after the seeds scripts (make_results runs it last)

Reads the reports of notebooks 06-09 (``results/06_asen_seeds.json``, ``07_asenpp_seeds.json``,
``08_agman_seeds.json``, ``09_fsn_seeds.json``) and loads each run's checkpoint from this
profile's checkpoint folder, by the run folder's name the report recorded (the name is the
run's cache key, so a run retrained by the seeds scripts on another machine is found the same
way). Nothing is trained: a missing checkpoint is an error that names the script to run.

For every (report, method, seed):

* **test MAP** again with :func:`fgfs_lib.evaluate.retrieval_map`, and the wall seconds it
  takes (embed the test split's queries and candidates, rank, score: what a user pays per
  evaluation); the MAP must equal the report's (within 0.05), else the checkpoint is not the
  run the report measured and the script stops;
* **TR accuracy** on 5,000 rows drawn from the test labels (``synth.relation_triplets``,
  seed 0, the rows notebook 08 uses): AG-MAN's Table 4 task, chance 50 %.

FashionSearchNet's models (stage 1, FashionSearchNet, w/o Loc., AMNet-like) were measured by
notebook 09 on manipulation search only; here their attribute embeddings rank the test split
like every other method's. Writes

* ``results/10_evaluation.json`` / ``.md``: per source, method and seed, and mean ± sd;
* ``results/09_fsn_retrieval_seeds.json``: the FSN models' test MAP in the retrieval
  schema of :mod:`fgfs_lib.results`, so notebook 10's one table holds them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

import fgfs_lib
from fgfs_lib import config, evaluate, results, train, utils
from fgfs_lib.data import synth

ROOT = Path(__file__).resolve().parent.parent
TR_ROWS, TR_SEED = 5000, 0
FSN_LABELS = {"stage1": "FSN stage 1 (attributes only)", "FashionSearchNet": "FashionSearchNet",
              "w/o Loc.": "FashionSearchNet w/o Loc.", "AMNet-like": "AMNet-like"}


def checkpoints(source: str, report: dict[str, Any]) -> list[tuple[str, int, str, float | None]]:
    """``(method, seed, recorded checkpoint folder, reported test MAP or None)`` of a report."""
    out = []
    per_seed = report["per_seed"]
    seeds = per_seed.items() if isinstance(per_seed, dict) else ((s["seed"], s) for s in per_seed)
    aliases = results.same_runs(per_seed) if isinstance(per_seed, dict) and source != "07_asenpp_seeds" else {}
    for seed, record in seeds:
        if source == "07_asenpp_seeds":  # runs by stage; the fused score is the model's default
            runs = {"stage 1 (global only)": ("stage 1 (global only)", "stage 1 (global only)"),
                    "stage 2 fused": ("stage 2", "stage 2 fused"),
                    "stage 2 w/o alignment, fused": ("stage 2 w/o alignment", "stage 2 w/o alignment, fused")}
            for label, (run, score) in runs.items():
                out.append((label, int(seed), record["runs"][run]["checkpoint"], record["scores"][score]["test_map"]))
        elif source == "09_fsn_seeds":
            for key, path in record["checkpoints"].items():
                out.append((FSN_LABELS.get(key, key), int(seed), path, None))
        else:
            for label, run in record.items():
                if isinstance(run, dict) and run.get("checkpoint") and label not in aliases:
                    out.append((label, int(seed), run["checkpoint"], run["test_map"]))
    return out


def locate(recorded: str, cfg: Any) -> Path:
    """The run's ``best.pt`` in this profile's checkpoint folder (by the recorded folder name)."""
    path = cfg.checkpoint_dir / Path(recorded).name / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; train the runs first (python scripts/make_results.py)")
    return path


def evaluate_one(path: Path, data: Any, tr_rows: torch.Tensor, cfg: Any) -> dict[str, Any]:
    model, _ = train.load_model(path, cfg, data.meta)
    start = time.perf_counter()
    scored = evaluate.retrieval_map(model, data, "test")
    seconds = time.perf_counter() - start
    return {"test_map": scored["overall"], "test_per_attribute": scored["per_attribute_name"],
            "eval_seconds": seconds, "tr_accuracy": evaluate.triplet_relation(model, data.test, tr_rows)}


def summary(per_seed: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    labels = {label: None for seed in per_seed.values() for label in seed}
    out = {}
    for label in labels:
        rows = [seed[label] for seed in per_seed.values() if label in seed]
        out[label] = {key: results.summarise(r[key] for r in rows) for key in ("test_map", "eval_seconds", "tr_accuracy")}
    return out


def fsn_retrieval_report(per_seed: dict, names: list[str], random: dict, env: dict, argv: list[str],
                         data_config: dict) -> dict[str, Any]:
    """FSN's models in the retrieval schema of :mod:`fgfs_lib.results` (no published ordering)."""
    models = {}
    for label in FSN_LABELS.values():
        rows = [seed[label] for seed in per_seed.values() if label in seed]
        models[label] = {"overall": results.summarise(r["test_map"] for r in rows),
                         "per_attribute": {n: results.summarise(r["test_per_attribute"][n] for r in rows) for n in names}}
    seeds = sorted(int(s) for s in per_seed)
    return {"what": "notebook 09's FashionSearchNet models (checkpoints of results/09_fsn_seeds.json) ranking the "
                    "test split by their attribute representations: attribute-specific retrieval MAP",
            "command": "python scripts/evaluate_runs.py " + " ".join(argv), "profile": env["profile"], "seeds": seeds,
            "env": env, "data_config": data_config, "attribute_names": names, "random": random,
            "summary": {"models": models, "orderings": []},
            "per_seed": {str(s): {label: per_seed[str(s)][label] for label in FSN_LABELS.values()} for s in seeds}}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['what']}", "", f"Command: `{report['command']}`; device {report['env']['device']}, "
             f"commit {report['env']['git_commit']}, load average {report['load_average']['start'][0]:.1f} at the "
             f"start and {report['load_average']['end'][0]:.1f} at the end (2 cores: above 2, another job shared them).", "",
             "| source | method | test MAP | eval seconds | TR accuracy % |", "|---|---|---|---|---|"]
    for source, methods in report["summary"].items():
        for label, s in methods.items():
            lines.append(f"| {source} | {label} | {s['test_map']['mean']:.1f} ± {s['test_map']['std']:.1f} | "
                         f"{s['eval_seconds']['mean']:.2f} | {s['tr_accuracy']['mean']:.1f} ± {s['tr_accuracy']['std']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    cfg = config.load()
    utils.seed_everything(cfg.seed)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    data_config = json.loads(json.dumps(data.config, default=str))
    tr_rows = synth.relation_triplets(data.test.labels, TR_ROWS, seed=TR_SEED)
    env = utils.env_report(cfg)
    load_before = os.getloadavg()
    per_source: dict[str, dict[str, dict[str, Any]]] = {}
    for source in ("06_asen_seeds", "07_asenpp_seeds", "08_agman_seeds", "09_fsn_seeds"):
        path = args.results / f"{source}.json"
        report = results.load(path, kind="other")
        recorded = report.get("data_config") or report.get("dataset", {}).get("config") or {}
        if recorded.get("config_hash") != data_config["config_hash"]:
            raise SystemExit(f"error: {path}: measured on data {recorded.get('config_hash')}, this profile makes "
                             f"{data_config['config_hash']}; re-run its seeds script first")
        per_seed: dict[str, dict[str, Any]] = {}
        for label, seed, folder, reported in checkpoints(source, report):
            row = evaluate_one(locate(folder, cfg), data, tr_rows, cfg)
            if reported is not None and abs(row["test_map"] - reported) > 0.05:
                raise SystemExit(f"error: {folder}: test MAP {row['test_map']:.2f} now, {reported:.2f} in {path.name}; "
                                 "the checkpoint is not the run the report measured (re-run its seeds script)")
            row["reported_test_map"] = reported
            per_seed.setdefault(str(seed), {})[label] = row
            print(f"{source} seed {seed} {label:<34} MAP {row['test_map']:5.1f}  {row['eval_seconds']:5.2f} s  "
                  f"TR {row['tr_accuracy']:5.1f} %", flush=True)
        per_source[source] = per_seed
    names = list(data.meta.attribute_names)
    rnd = evaluate.random_map(data, "test")
    random = {**{names[a]: v for a, v in rnd["per_attribute"].items()}, "overall": rnd["overall"]}
    fsn = fsn_retrieval_report(per_source["09_fsn_seeds"], names, random, env, argv, data_config)
    out = {"what": "every committed multi-seed run evaluated again in one run: test MAP, evaluation seconds, "
                   f"triplet-relation accuracy ({TR_ROWS} test rows, relation_triplets seed {TR_SEED})",
           "command": "python scripts/evaluate_runs.py " + " ".join(argv), "profile": cfg.profile,
           "seeds": sorted({int(s) for p in per_source.values() for s in p}), "env": env,
           "load_average": {"start": load_before, "end": os.getloadavg()},
           "data_config": data_config, "tr_rows": TR_ROWS, "tr_seed": TR_SEED,
           "num_test_queries": int(len(data.test_queries)), "num_test_candidates": int(len(data.test_candidates)),
           "summary": {source: summary(p) for source, p in per_source.items()}, "per_seed": per_source}
    for name, report, text in (("10_evaluation", out, markdown(out)), ("09_fsn_retrieval_seeds", fsn, None)):
        utils.atomic_write_json(args.results / f"{name}.json", report)
        if text is not None:
            utils.atomic_write_text(args.results / f"{name}.md", text)
    print(f"wrote {args.results / '10_evaluation.json'} and {args.results / '09_fsn_retrieval_seeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
