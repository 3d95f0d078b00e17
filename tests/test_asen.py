"""ASEN and its ablations (fgfs_lib.models.asen): shapes, invariants, registry, a few training steps."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fgfs_lib import config
from fgfs_lib.models.asen import ASEN
from fgfs_lib.models.attention import GlobalAveragePooling
from fgfs_lib.models.registry import build_model

A = 3
TINY = dict(backbone="small_cnn", width=4, embed_dim=8, hidden=6)


def _model(seed: int = 0, **options) -> ASEN:
    torch.manual_seed(seed)
    return ASEN(A, **{**TINY, **options}).eval()


@pytest.mark.parametrize("form", ["v1", "v2"])
@pytest.mark.parametrize("size", [32, 48])
def test_embeddings_are_unit_norm_and_maps_follow_the_input_size(form, size):
    model = _model(form=form)
    images = torch.randn(4, 3, size, size)
    attributes = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        emb = model.embed(images, attributes)
        maps = model.attention_maps(images, attributes)
    assert emb.shape == (4, 8)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    h = size // 8  # small_cnn layer3 has stride 8
    assert maps.shape == (4, h, h)
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(4))


@pytest.mark.parametrize("options", [{}, {"form": "v2"}, {"use_asa": False}, {"use_aca": False}])
def test_embed_all_attributes_equals_one_attribute_at_a_time(options):
    model = _model(**options)
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(images)
        all_emb = model.embed_all_attributes(feats)
        assert all_emb.shape == (A, 5, 8)
        for a in range(A):
            one = model.embed_from_features(feats, torch.full((5,), a))
            torch.testing.assert_close(all_emb[a], one, atol=1e-6, rtol=1e-5)


def test_embedding_depends_on_the_attribute():
    model = _model()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        e0 = model.embed(images, torch.tensor([0, 0]))
        e1 = model.embed(images, torch.tensor([1, 1]))
    assert (e0 - e1).abs().max() > 1e-4


def test_without_asa_the_pooled_feature_is_the_spatial_mean():
    model = _model(use_asa=False)
    assert isinstance(model.spatial, GlobalAveragePooling)
    images = torch.randn(3, 3, 40, 40)
    attributes = torch.tensor([2, 0, 1])
    with torch.no_grad():
        feats = model.features(images)
        head = model.head(feats, attributes)
        torch.testing.assert_close(head["pooled"], feats.mean(dim=(2, 3)))
        # ... and the rest is ACA and the projection on that mean: the GAP-conditioned path
        gated, _ = model.channel(feats.mean(dim=(2, 3)), attributes)
        expected = torch.nn.functional.normalize(model.projection(gated), dim=-1)
        torch.testing.assert_close(head["embedding"], expected)
        maps = model.attention_maps(images, attributes)
    torch.testing.assert_close(maps, torch.full_like(maps, 1 / maps[0].numel()))


def test_without_aca_the_gate_is_identity_and_full_asen_gate_is_in_unit_interval():
    feats = torch.randn(2, 16, 4, 4)  # width 4 -> layer3 has 16 channels
    attributes = torch.tensor([0, 2])
    with torch.no_grad():
        head = _model(use_aca=False).head(feats, attributes)
        torch.testing.assert_close(head["gated"], head["pooled"])
        gate = _model().head(feats, attributes)["gate"]
    assert ((gate > 0) & (gate < 1)).all()


def test_both_attentions_off_is_refused():
    with pytest.raises(ValueError, match="triplet network"):
        ASEN(A, **TINY, use_asa=False, use_aca=False)


def test_registry_builds_the_four_variants_and_records_options():
    meta = SimpleNamespace(num_attributes=A)
    cfg = config.load(profile="quick")
    expected = {
        "asen": (True, True, "v1"), "asen_v2": (True, True, "v2"),
        "asen_wo_asa": (False, True, "v1"), "asen_wo_aca": (True, False, "v1"),
    }
    for name, (asa, aca, form) in expected.items():
        model = build_model(name, meta, cfg, width=4, embed_dim=8, hidden=6)
        assert (model.use_asa, model.use_aca, model.form) == (asa, aca, form), name
        assert model.model_config == {"name": name, "options": {"width": 4, "embed_dim": 8, "hidden": 6}}
        assert model.num_attributes == A and model.embed_dim == 8


def test_loss_on_both_batch_kinds_is_finite_and_differentiable():
    model = _model().train()
    labels = torch.tensor([[0, 1, -1], [0, 0, 1], [1, 1, 1], [1, 0, -1]])
    loss, logs = model.loss({"images": torch.randn(4, 3, 32, 32), "labels": labels})
    assert torch.isfinite(loss) and loss > 0 and logs["valid"] > 0
    loss.backward()
    assert model.spatial.attribute_embedding.weight.grad.abs().sum() > 0
    model.zero_grad()
    triplets = {k: torch.randn(3, 3, 32, 32) for k in ("anchor", "positive", "negative")}
    loss, logs = model.loss({**triplets, "attribute": torch.tensor([0, 2, 1])})
    assert torch.isfinite(loss) and 0 <= logs["active_fraction"] <= 1
    loss.backward()
    assert model.channel.fc2.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    import fgfs_lib
    from fgfs_lib.data.synth import make_fashionsynth

    root = make_fashionsynth(tmp_path_factory.mktemp("synth") / "fs", num_images=200, processes=1)
    return fgfs_lib.data.load("fashionsynth", root=root)


@pytest.mark.filterwarnings("ignore:attribute .* single image")  # tiny data: a rare value has one image
@pytest.mark.parametrize("name,sampling", [("asen", "in_batch"), ("asen_wo_asa", "in_batch"), ("asen", "triplets")])
def test_a_few_steps_reduce_the_loss_on_tiny_fashionsynth(tiny_synth, name, sampling):
    from fgfs_lib import sampling as fgfs_sampling

    cfg = config.load(profile="quick")
    torch.manual_seed(0)
    model = build_model(name, tiny_synth.meta, cfg, width=8, embed_dim=16, hidden=16).train()
    split = tiny_synth.train
    g = torch.Generator().manual_seed(0)
    if sampling == "in_batch":
        idx = torch.randperm(len(split), generator=g)[:16]
        batch = {"images": split.batch(idx), "labels": split.labels[idx]}
    else:
        rows = fgfs_sampling.sample_triplets(split.labels, 8, g)
        batch = {"anchor": split.batch(rows[:, 0]), "positive": split.batch(rows[:, 1]),
                 "negative": split.batch(rows[:, 2]), "attribute": rows[:, 3]}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    # BatchNorm stays in training mode (batch statistics of this same batch), so the loss
    # measured before and after is the loss being minimised
    with torch.no_grad():
        before, _ = model.loss(batch)
    for _ in range(10):
        loss, _ = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after, _ = model.loss(batch)
    assert before > 0
    assert after < 0.5 * before, (float(before), float(after))
