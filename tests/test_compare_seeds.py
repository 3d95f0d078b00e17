"""The multi-seed comparison (scripts/compare_seeds.py): its summary, the paper's orderings,
the table, and the equal backbone-pass budget of notebook 06's sampler comparison."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from fgfs_lib import config, results, train
from fgfs_lib.models import asen

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_seeds.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summarise_by_hand(script):
    s = script.summarise([1.0, 2.0, 6.0, float("nan"), None])
    assert s["n"] == 3 and s["mean"] == 3.0 and s["min"] == 1.0 and s["max"] == 6.0
    assert s["std"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))  # sample std
    assert script.summarise([4.0])["std"] == 0.0
    assert math.isnan(script.summarise([])["mean"]) and script.summarise([])["n"] == 0


def _run(overall, colour, folder):
    return {"test_map": overall, "test_per_attribute": {"colour": colour}, "images_per_second": 10.0,
            "checkpoint": folder}


def _per_seed():
    # seed 0: ASEN 30 > CSN 25;  seed 1: ASEN 24 < CSN 26;  "ASEN (in-batch)" = ASEN's runs
    return {
        "0": {"ASEN": _run(30.0, 90.0, "a0"), "CSN": _run(25.0, 50.0, "c0"), "ASEN (in-batch)": _run(30.0, 90.0, "a0")},
        "1": {"ASEN": _run(24.0, 80.0, "a1"), "CSN": _run(26.0, 60.0, "c1"), "ASEN (in-batch)": _run(24.0, 80.0, "a1")},
    }


def test_summary_and_orderings_by_hand(script):
    summary = script.build_summary(_per_seed(), {"overall": 20.0, "colour": 14.0}, ["ASEN", "CSN"], ["colour"])
    asen_row = summary["models"]["ASEN"]
    assert asen_row["overall"]["mean"] == 27.0 and asen_row["overall"]["std"] == pytest.approx(math.sqrt(18))
    assert asen_row["per_attribute"]["colour"]["mean"] == 85.0
    orderings = {o["claim"]: o for o in summary["orderings"]}
    holds = orderings["ASEN > CSN"]
    assert (holds["seeds_holding"], holds["seeds"]) == (1, 2)
    assert holds["difference"]["mean"] == pytest.approx((5.0 - 2.0) / 2)
    assert "CSN > triplet network" not in orderings  # no triplet network runs: no claim to count


def test_the_table_shows_identical_runs_once(script):
    per_seed = _per_seed()
    assert results.same_runs(per_seed) == {"ASEN (in-batch)": "ASEN"}
    per_seed["1"]["ASEN (in-batch)"] = _run(24.0, 80.0, "other")  # another checkpoint in one seed: not the same
    assert results.same_runs(per_seed) == {}
    labels = ["ASEN", "CSN", "ASEN (in-batch)"]
    report = {"attribute_names": ["colour"], "profile": "quick", "seeds": [0, 1],
              "env": {"device": "cpu", "git_commit": "abc"}, "random": {"colour": 14.0, "overall": 20.0},
              "per_seed": _per_seed()}
    report["summary"] = script.build_summary(report["per_seed"], report["random"], labels, ["colour"])
    rows = [line for line in script.markdown(report).splitlines() if line.startswith("| ASEN") and "±" in line.split("|")[2]]
    assert len(rows) == 1 and rows[0].startswith("| ASEN = ASEN (in-batch) | 85.0 ± 7.1 |")


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_sampler_comparison_gives_both_samplers_the_same_backbone_passes(profile):
    cfg = config.load(profile, 0)
    runs = asen.sampler_runs(cfg)
    default = train.default_settings(cfg)
    passes = {}
    for label, spec in runs.items():
        settings = train.default_settings(cfg, **{k: v for k, v in spec.items() if k != "model_name"})
        assert settings.epochs == default.epochs
        per_step = settings.batch_size * (3 if settings.sampling == "triplets" else 1)
        passes[label] = settings.steps_per_epoch * per_step
        history = [{"steps": settings.steps_per_epoch}] * settings.epochs
        assert asen.backbone_passes(history, {"batch_size": settings.batch_size, "sampling": settings.sampling})[-1] \
            == passes[label] * settings.epochs
    budget = default.steps_per_epoch * default.batch_size * (3 if default.sampling == "triplets" else 1)
    # each sampler gets the default run's images per epoch, less than one of its own steps short
    for label, spec in runs.items():
        step = 3 * 16 if "3-image" in label else 64
        assert budget - step < passes[label] <= budget, (label, passes[label], budget)
