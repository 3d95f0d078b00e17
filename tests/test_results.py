"""fgfs_lib.results: the schema every committed multi-seed report follows, and the tables."""

import json
import math
from pathlib import Path

import pytest

from fgfs_lib import results

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _report(**changes):
    stats = results.summarise([1.0, 3.0])
    report = {
        "what": "x", "command": "python scripts/x.py", "profile": "quick", "seeds": [0, 1],
        "env": {"git_commit": "abc", "device": "cpu"}, "attribute_names": ["colour", "neck"],
        "random": {"colour": 10.0, "neck": 20.0, "overall": 15.0},
        "summary": {"models": {"M": {"overall": stats, "per_attribute": {"colour": stats, "neck": stats}}},
                    "orderings": [{"claim": "M > N", "seeds_holding": 1, "seeds": 2, "difference": stats}]},
    }
    report.update(changes)
    return report


def test_summarise_is_mean_and_sample_sd_of_finite_values():
    s = results.summarise([1.0, 2.0, 6.0, float("nan"), None])
    assert s["mean"] == 3.0 and s["n"] == 3 and s["min"] == 1.0 and s["max"] == 6.0
    assert s["std"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))
    assert results.summarise([]) ["n"] == 0


def test_check_names_the_file_and_every_missing_key():
    results.check_report(_report(), "ok.json")
    bad = _report(env={"device": "cpu"})
    del bad["summary"]["models"]["M"]["per_attribute"]["neck"]
    with pytest.raises(ValueError) as error:
        results.check_report(bad, "results/07_x.json")
    message = str(error.value)
    assert message.startswith("results/07_x.json:") and "env.git_commit" in message
    assert "summary.models['M'].per_attribute.neck" in message


def test_tables_carry_every_method_and_verdict():
    reports = {"a": _report(), "b": _report(seeds=[0, 1, 2])}
    rows = results.method_table(reports)
    assert [(r["source"], r["method"]) for r in rows] == [("a", "M"), ("b", "M")]
    claims = results.claims_table(reports)
    assert claims[0]["verdict"] == "mixed" and claims[0]["gap_mean"] == 2.0


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*_seeds.json")), ids=lambda p: p.name)
def test_committed_reports_share_the_schema(path):
    report = json.loads(path.read_text())
    results.check_report(report, path, results.report_kind(report))


def test_committed_index_and_new_attribute_reports_have_the_header():
    for name in ("10_index.json", "10_new_attribute.json"):
        path = RESULTS / name
        if path.is_file():
            results.check_report(json.loads(path.read_text()), path, kind="other")


def test_method_table_shows_runs_named_twice_once():
    """The committed notebook 06 report names the same checkpoints "ASEN" and "ASEN (in-batch
    triplets)" (in-batch is the quick profile's default sampler): one row, both names."""
    report = json.loads((RESULTS / "06_asen_seeds.json").read_text())
    aliases = results.same_runs(report["per_seed"])
    assert aliases == {"ASEN (in-batch triplets)": "ASEN"}
    rows = results.method_table({"06_asen_seeds": report})
    methods = [row["method"] for row in rows]
    assert methods.count("ASEN") == 1 and "ASEN (in-batch triplets)" not in methods
    assert [row["same_runs_as"] for row in rows if row["method"] == "ASEN"] == [["ASEN (in-batch triplets)"]]
    assert len(methods) == len(report["summary"]["models"]) - 1


def test_same_runs_reads_reports_without_checkpoint_folders():
    """Notebook 07's report keeps numbers, not run records, per seed: no label is an alias."""
    report = json.loads((RESULTS / "07_asenpp_seeds.json").read_text())
    assert results.same_runs(report["per_seed"]) == {}
    labels = [row["method"] for row in results.method_table({"07": report})]
    assert len(labels) == len(set(labels)) == len(report["summary"]["models"])


def test_cost_table_from_the_committed_run_records():
    """One row per distinct run of notebooks 06 and 08; index bytes by hand (quick profile:
    10 attributes x 64-d embeddings x 4 bytes; ASENet_V2 has no projection, 128-d); removing
    ASA removes parameters."""
    from fgfs_lib import config
    from fgfs_lib.data import DatasetMeta

    names = ["a%d" % i for i in range(10)]
    meta = DatasetMeta(name="fashionsynth", attribute_names=names,
                       value_names=[["v%d" % j for j in range(n)] for n in (6, 7, 7, 6, 5, 5, 7, 4, 8, 5)])
    cfg = config.load("quick", 0)
    reports = {stem: json.loads((RESULTS / f"{stem}.json").read_text()) for stem in ("06_asen_seeds", "08_agman_seeds")}
    rows = {(r["source"], r["method"]): r for r in results.cost_table(reports, meta, cfg)}
    assert ("06_asen_seeds", "ASEN (in-batch triplets)") not in rows  # the same runs as "ASEN"
    assert rows[("06_asen_seeds", "ASEN")]["index_bytes"] == 10 * 64 * 4
    assert rows[("08_agman_seeds", "ASENet_V2")]["index_bytes"] == 10 * 128 * 4
    assert rows[("06_asen_seeds", "ASEN w/o ASA")]["parameters"] < rows[("06_asen_seeds", "ASEN")]["parameters"]
    seeds = reports["06_asen_seeds"]["per_seed"].values()
    assert rows[("06_asen_seeds", "CSN")]["images_per_second"] == pytest.approx(
        sum(s["CSN"]["images_per_second"] for s in seeds) / len(seeds))


def test_cost_table_takes_evaluation_seconds_when_measured():
    """``eval_seconds`` is the evaluation report's mean for that (source, method), None when it
    does not hold the method."""
    from fgfs_lib import config
    from fgfs_lib.data import DatasetMeta

    names = ["a%d" % i for i in range(10)]
    meta = DatasetMeta(name="fashionsynth", attribute_names=names,
                       value_names=[["v%d" % j for j in range(n)] for n in (6, 7, 7, 6, 5, 5, 7, 4, 8, 5)])
    reports = {"06_asen_seeds": json.loads((RESULTS / "06_asen_seeds.json").read_text())}
    evaluation = {"summary": {"06_asen_seeds": {"ASEN": {"eval_seconds": results.summarise([2.0, 4.0]),
                                                         "test_map": results.summarise([80.0]),
                                                         "tr_accuracy": results.summarise([90.0, 92.0])}}}}
    rows = {r["method"]: r for r in results.cost_table(reports, meta, config.load("quick", 0), evaluation)}
    assert rows["ASEN"]["eval_seconds"] == 3.0 and rows["CSN"]["eval_seconds"] is None
    table = results.evaluation_table(evaluation)
    assert [(r["source"], r["method"]) for r in table] == [("06_asen_seeds", "ASEN")]
    assert table[0]["tr_accuracy"]["mean"] == 91.0


@pytest.mark.skipif(not (RESULTS / "10_evaluation.json").is_file(), reason="no committed evaluation report")
def test_committed_evaluation_re_scored_the_reported_runs():
    """scripts/evaluate_runs.py re-scored the checkpoints of the seeds reports: each run's test
    MAP equals the MAP its own report recorded, seed by seed; FSN's retrieval report is the
    mean of the same per-seed rows."""
    evaluation = json.loads((RESULTS / "10_evaluation.json").read_text())
    results.check_report(evaluation, "10_evaluation.json", kind="other")
    for source in ("06_asen_seeds", "08_agman_seeds"):
        report = json.loads((RESULTS / f"{source}.json").read_text())
        for seed, rows in evaluation["per_seed"][source].items():
            for label, row in rows.items():
                assert row["test_map"] == pytest.approx(report["per_seed"][seed][label]["test_map"], abs=0.05)
                assert 0.0 <= row["tr_accuracy"] <= 100.0 and row["eval_seconds"] > 0
    fsn = json.loads((RESULTS / "09_fsn_retrieval_seeds.json").read_text())
    for label, model in fsn["summary"]["models"].items():
        rows = [seed[label] for seed in evaluation["per_seed"]["09_fsn_seeds"].values()]
        assert model["overall"]["mean"] == pytest.approx(sum(r["test_map"] for r in rows) / len(rows))
        assert model["overall"]["n"] == len(rows) == len(fsn["seeds"])
