"""The committed results (``results/*.json``): one schema, read into one table.

Introduced in ``notebooks/10_results.py``.

Every multi-seed script writes a JSON report with the same header and, for retrieval, the
same summary, so notebook 10 can put every method in one table without knowing which script
wrote which file:

``header`` (every report)
    ``what`` (one line), ``command``, ``profile``, ``seeds`` (list), ``env`` (from
    :func:`fgfs_lib.utils.env_report`: ``git_commit``, ``device``, versions).
``retrieval`` reports (``results/NN_*_seeds.json`` of notebooks 06-08) add
    ``attribute_names``; ``random`` (``{attribute name: MAP, "overall": MAP}``, the analytic
    expectation); ``summary.models[label]`` with ``overall`` and ``per_attribute[name]``, each
    a :func:`summarise` dict (``mean``, ``std``, ``min``, ``max``, ``n``); and
    ``summary.orderings``: the papers' claims, each ``{"claim": "A > B", "seeds_holding",
    "seeds", "difference": summarise(...)}``.
``manipulation`` reports (notebook 09) add ``summary.table`` (Top-K per method) and
    ``summary.orderings`` instead.

:func:`load` checks a file against this and names the file and the missing keys when it
does not fit.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable

__all__ = ["PUBLISHED_FASHIONAI", "HEADER", "summarise", "check_report", "load", "load_all", "method_table", "claims_table", "cost_table", "evaluation_table"]

# FashionAI test MAP as published, by our method labels: the ASEN poster's Table 2 and the
# AG-MAN paper's comparison (each paper re-ran its own baselines), and the best result with
# public code after the seeds (RPF, SIGIR 2023).
PUBLISHED_FASHIONAI: dict[str, dict[str, float]] = {
    "random": {"ASEN poster": 15.79},
    "triplet network": {"ASEN poster": 38.52},
    "CSN": {"ASEN poster": 53.52, "AG-MAN paper": 50.80},
    "ASEN w/o ASA": {"ASEN poster": 56.35},
    "ASEN w/o ACA": {"ASEN poster": 50.87},
    "ASEN": {"ASEN poster": 61.02},
    "ASENet_V2": {"AG-MAN paper": 60.76},
    "AG-MAN": {"AG-MAN paper": 62.88},
    "RPF (after the seeds)": {"RPF, SIGIR 2023": 70.11},
}

HEADER = ("what", "command", "profile", "seeds", "env")
RETRIEVAL = ("attribute_names", "random", "summary")
STATS = ("mean", "std", "min", "max", "n")


def summarise(values: Iterable[float | None]) -> dict[str, float]:
    """Mean, sample standard deviation, min, max and count of the finite ``values``."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": statistics.fmean(finite), "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
            "min": min(finite), "max": max(finite), "n": len(finite)}


def _missing(obj: Any, keys: Iterable[str], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where} (not an object)"]
    return [f"{where}.{k}" if where else k for k in keys if k not in obj]


def check_report(report: dict[str, Any], path: str | Path = "<report>", kind: str = "retrieval") -> None:
    """Raise ``ValueError`` naming ``path`` and every key the schema needs but ``report`` lacks."""
    missing = _missing(report, HEADER, "") + _missing(report.get("env"), ("git_commit", "device"), "env")
    if kind == "manipulation":
        missing += _missing(report.get("summary"), ("table", "orderings"), "summary")
    if kind == "retrieval":
        missing += _missing(report, RETRIEVAL, "")
        summary = report.get("summary", {})
        missing += _missing(summary, ("models", "orderings"), "summary")
        for label, model in (summary.get("models") or {}).items():
            missing += _missing(model, ("overall", "per_attribute"), f"summary.models[{label!r}]")
            missing += _missing(model.get("overall"), STATS, f"summary.models[{label!r}].overall")
            per = model.get("per_attribute") or {}
            missing += [f"summary.models[{label!r}].per_attribute.{n}" for n in report.get("attribute_names", [])
                        if n not in per]
        for i, claim in enumerate(summary.get("orderings") or []):
            missing += _missing(claim, ("claim", "seeds_holding", "seeds", "difference"), f"summary.orderings[{i}]")
    if missing:
        raise ValueError(f"{path}: does not follow the results schema (fgfs_lib.results); missing: "
                         + ", ".join(missing) + ". Re-run the script that writes it.")


def data_description(report: dict[str, Any]) -> str:
    """The FashionSynth generator version and preset a report was measured on, as recorded."""
    data = report.get("data_config") or (report.get("dataset") or {}).get("config") or {}
    if not data:
        return "data config not recorded"
    preset = data.get("preset") or ("hard" if data.get("version", 4) < 4 else "?")
    return f"FashionSynth v{data.get('version', '?')} ({preset}), {data.get('image_size', '?')} px"


def load(path: str | Path, kind: str = "retrieval") -> dict[str, Any]:
    """Read and check one report."""
    path = Path(path)
    report = json.loads(path.read_text())
    check_report(report, path, kind)
    return report


def report_kind(report: dict[str, Any]) -> str:
    """``"manipulation"`` for notebook 09's Top-K reports (``summary.table``), else ``"retrieval"``."""
    return "manipulation" if "table" in (report.get("summary") or {}) else "retrieval"


def load_all(folder: str | Path, pattern: str = "*_seeds.json", kind: str = "retrieval") -> dict[str, dict[str, Any]]:
    """Every report of ``kind`` in ``folder`` matching ``pattern``, by file stem, each checked."""
    out = {}
    for path in sorted(Path(folder).glob(pattern)):
        report = json.loads(path.read_text())
        if report_kind(report) == kind:
            check_report(report, path, kind)
            out[path.stem] = report
    return out


def same_runs(per_seed: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Label -> an earlier label whose runs are the same checkpoints in every seed (e.g. "ASEN"
    and "ASEN (in-batch triplets)" in the quick profile, where the default sampler is in-batch)."""
    labels: list[str] = []
    for runs in per_seed.values():
        labels += [label for label in runs if label not in labels]
    def folders(label: str) -> list[Any]:
        entries = [runs.get(label) for runs in per_seed.values()]
        return [e.get("checkpoint") if isinstance(e, dict) else None for e in entries]  # other reports: no folders
    aliases: dict[str, str] = {}
    for i, label in enumerate(labels):
        for earlier in labels[:i]:
            if earlier not in aliases and None not in folders(label) and folders(label) == folders(earlier):
                aliases[label] = earlier
                break
    return aliases


def method_table(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (report, method): ``source``, ``method``, ``overall`` and ``per_attribute``
    stats, and ``random`` (the report's analytic random MAP per attribute)."""
    rows = []
    for source, report in reports.items():
        aliases = same_runs(report.get("per_seed", {}))  # one row for labels naming the same runs
        for label, model in report["summary"]["models"].items():
            if label in aliases:
                continue
            rows.append({"source": source, "method": label, "overall": model["overall"],
                         "same_runs_as": [alias for alias, same in aliases.items() if same == label],
                         "per_attribute": model["per_attribute"], "random": report["random"],
                         "seeds": report["seeds"], "commit": report["env"]["git_commit"]})
    return rows


def claims_table(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every published ordering the reports test: ``source``, ``claim``, mean gap ± sd, seeds
    holding, and a verdict (``holds`` in every seed, ``mixed``, or ``does not hold``)."""
    rows = []
    for source, report in reports.items():
        for claim in report["summary"]["orderings"]:
            held, total = claim["seeds_holding"], claim["seeds"]
            verdict = "holds" if held == total else ("does not hold" if held == 0 else "mixed")
            rows.append({"source": source, "claim": claim["claim"], "gap_mean": claim["difference"]["mean"],
                         "gap_std": claim["difference"]["std"], "seeds_holding": held, "seeds": total,
                         "verdict": verdict})
    return rows


def cost_table(reports: dict[str, dict[str, Any]], meta: Any, cfg: Any = None,
               evaluation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What each trained method costs, from the run records of the reports (those that keep
    one per seed: notebooks 06 and 08): ``source``, ``method``, ``parameters`` (of the model
    rebuilt from its recorded name and options for ``meta``), ``images_per_second`` and
    ``train_seconds`` (mean over seeds, as measured by each run on its own machine), and
    ``index_bytes`` (float32 bytes per image of an attribute-specific index: one
    ``embed_dim`` vector per attribute). With ``evaluation`` (``results/10_evaluation.json``,
    every run re-evaluated in one run on one machine), also ``eval_seconds``: the mean
    seconds to embed and rank the test split (None for a method it does not hold)."""
    from .models.registry import build_model

    rows = []
    for source, report in reports.items():
        aliases = same_runs(report.get("per_seed", {}))
        records: dict[str, list[dict[str, Any]]] = {}
        for runs in report.get("per_seed", {}).values():
            for label, run in runs.items():
                if isinstance(run, dict) and "model" in run and label not in aliases:
                    records.setdefault(label, []).append(run)
        for label, runs in records.items():
            model = build_model(runs[0]["model"], meta, cfg, **(runs[0].get("model_options") or {}))
            rows.append({
                "source": source, "method": label,
                "parameters": sum(p.numel() for p in model.parameters()),
                "images_per_second": statistics.fmean(r["images_per_second"] for r in runs),
                "train_seconds": statistics.fmean(sum(r["train_seconds"]) for r in runs),
                "index_bytes": 4 * model.embed_dim * meta.num_attributes,
                "eval_seconds": _evaluated(evaluation, source, label, "eval_seconds"),
            })
    return rows



def _evaluated(evaluation: dict[str, Any] | None, source: str, method: str, key: str) -> float | None:
    """Mean of ``key`` for ``method`` of ``source`` in an evaluation report, or None."""
    stats = ((evaluation or {}).get("summary", {}).get(source, {}).get(method) or {}).get(key)
    return None if stats is None else stats["mean"]


def evaluation_table(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (source, method) of ``results/10_evaluation.json``: ``test_map``,
    ``tr_accuracy`` and ``eval_seconds``, each a :func:`summarise` dict over the seeds."""
    return [{"source": source, "method": method, **stats}
            for source, methods in evaluation["summary"].items() for method, stats in methods.items()]
