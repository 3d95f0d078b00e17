"""fgfs_lib.new_attribute: what is trained, what is frozen, and that the other attributes'
embeddings do not move by a single bit."""

import pytest
import torch
from test_train import tiny_data

from fgfs_lib import config, evaluate, train
from fgfs_lib.cli import main
from fgfs_lib.models.registry import build_model
from fgfs_lib.new_attribute import (add_attribute, attribute_parameters, freeze_all_but_attribute, hold_out,
                                    only_attribute)


@pytest.fixture()
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("FGFS_DATA_DIR", str(tmp_path / "data"))
    return config.load("quick", 0)


def _asen(data, cfg):
    torch.manual_seed(0)
    return build_model("asen", data.meta, cfg, embed_dim=16)


def test_asen_rows_are_its_two_attribute_embeddings(cfg):
    model = _asen(tiny_data(), cfg)
    rows = attribute_parameters(model)
    assert sorted(rows) == ["channel.attribute_embedding.weight", "spatial.attribute_embedding.weight"]
    assert all(p.shape[0] == 2 for p in rows.values())
    with pytest.raises(ValueError, match="no per-attribute parameter rows"):
        attribute_parameters(build_model("triplet", tiny_data().meta, cfg, embed_dim=16))


def test_hold_out_and_only_attribute_hide_labels_not_test_rows():
    data = tiny_data()
    held = hold_out(data, 1)
    assert (held.train.labels[:, 1] == -1).all() and torch.equal(held.train.labels[:, 0], data.train.labels[:, 0])
    assert (held.valid_queries[:, 1] == 0).all() and (held.valid_candidates[:, 1] == 0).all()
    assert torch.equal(held.test_queries, data.test_queries) and torch.equal(held.test.labels, data.test.labels)
    assert (data.train.labels[:, 1] >= 0).any()  # the original is untouched
    only = only_attribute(data, 1)
    assert (only.train.labels[:, 0] == -1).all() and torch.equal(only.train.labels[:, 1], data.train.labels[:, 1])
    assert held.config["held_out_attribute"] == 1 and only.config["only_attribute"] == 1


def test_frozen_model_moves_only_the_new_rows(cfg):
    data = tiny_data()
    model = _asen(data, cfg).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = freeze_all_but_attribute(model, 1)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images = data.train.batch(torch.arange(16))
    for _ in range(3):
        optimiser.zero_grad()
        model.embed(images, torch.tensor([0, 1] * 8)).square().sum().backward()  # gradients reach both rows
        optimiser.step()
    after = model.state_dict()
    for name in before:
        if name in trained:
            assert torch.equal(after[name][0], before[name][0]), name
            assert not torch.equal(after[name][1], before[name][1]), name
        else:  # weights and BatchNorm running statistics alike
            assert torch.equal(after[name], before[name]), name


def test_added_attribute_learns_and_the_others_are_bit_identical(cfg, tmp_path):
    data = tiny_data()
    model = _asen(data, cfg)
    small = dict(epochs=2, steps_per_epoch=8, batch_size=24, lr=3e-3, verbose=False)
    train.fit(model, hold_out(data, 1), cfg, out_dir=tmp_path / "held", **small)
    feats_before = evaluate.embed_pairs(model, data.test, data.test_candidates)
    map_before = evaluate.retrieval_map(model, data, "test")["per_attribute"]
    result = add_attribute(model, data, 1, cfg, out_dir=tmp_path / "add", epochs=3, steps_per_epoch=8,
                           batch_size=24, lr=3e-2, verbose=False)
    assert result.stopped is None
    feats_after = evaluate.embed_pairs(model, data.test, data.test_candidates)
    other = data.test_candidates[:, 1] == 0
    assert torch.equal(feats_after[other], feats_before[other])
    assert not torch.allclose(feats_after[~other], feats_before[~other])
    map_after = evaluate.retrieval_map(model, data, "test")["per_attribute"]
    assert map_after[0] == map_before[0]
    rnd = evaluate.random_map(data, "test")["per_attribute"][1]
    assert map_after[1] > rnd + 10  # the tiny "side" attribute is easy once its rows are trained


def test_cli_adds_an_attribute_and_refuses_an_unknown_one(cfg, tmp_path, capsys):
    data = tiny_data()
    model = _asen(data, cfg)
    train.fit(model, hold_out(data, 1), cfg, out_dir=tmp_path / "held", epochs=1, steps_per_epoch=4,
              batch_size=24, verbose=False)
    code = main(["add-attribute", "--checkpoint", str(tmp_path / "held" / "last.pt"), "--attribute", "sleeve",
                 "--out", str(tmp_path / "add")])
    assert code == 2 and "error: unknown attribute 'sleeve'" in capsys.readouterr().err
