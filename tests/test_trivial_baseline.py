"""Trivial statistics baseline: the features by brute force, the MAP against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

import fgfs_lib.data as data
from fgfs_lib import evaluate, trivial_baseline
from fgfs_lib.data import synth


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = synth.make_fashionsynth(tmp_path_factory.mktemp("synth") / "fs", seed=0, num_images=300, processes=1)
    return data.load("fashionsynth", root=root)


def test_statistics_equal_a_per_image_loop(tiny_data):
    split = tiny_data.test
    a = synth.ATTR_ID["colour"]
    stats = trivial_baseline.garment_statistics(split, a, batch_size=7)
    for i in (0, 5, len(split) - 1):
        mask = split.mask(i, a).numpy()
        rgb = split.raw([i])[0].numpy().astype(np.float64) / 255.0
        assert stats["pixel_count"][i, 0] == mask.sum()
        expected = rgb[:, mask].mean(1)
        assert np.allclose(stats["mean_colour"][i].numpy(), expected, atol=1e-5)


def test_maps_equal_scikit_learn_per_query(tiny_data):
    result = trivial_baseline.trivial_maps(tiny_data, "test")
    split = tiny_data.test
    stats = trivial_baseline.garment_statistics(split, synth.ATTR_ID["colour"])
    q, c = tiny_data.test_queries.numpy(), tiny_data.test_candidates.numpy()
    for name in ("pixel_count", "mean_colour"):
        feats = stats[name].double().numpy()
        for attr in (synth.ATTR_ID["pant_length"], synth.ATTR_ID["colour"]):
            aps = []
            for i, a, v in q[q[:, 1] == attr]:
                cand = c[c[:, 1] == attr]
                relevant = cand[:, 2] == v
                if not relevant.any():
                    aps.append(0.0)
                    continue
                scores = -np.linalg.norm(feats[cand[:, 0]] - feats[i], axis=1)
                aps.append(average_precision_score(relevant, scores))
            assert result[name]["per_attribute"][attr] == pytest.approx(100 * np.mean(aps), abs=1e-3), (name, attr)


def test_mean_colour_finds_colour_and_hard_data_lets_size_find_pant_length(tmp_path):
    root = synth.make_fashionsynth(tmp_path / "hard", seed=0, num_images=1500, preset="hard", processes=1)
    d = data.load("fashionsynth", root=root)
    random = evaluate.random_map(d, "test")["per_attribute"]
    result = trivial_baseline.trivial_maps(d, "test")
    colour, pant = synth.ATTR_ID["colour"], synth.ATTR_ID["pant_length"]
    assert result["mean_colour"]["per_attribute"][colour] > random[colour] + 30
    # the shortcut size balance removes: on hard data a garment's size ranks pant length
    assert result["pixel_count"]["per_attribute"][pant] > random[pant] + 10
