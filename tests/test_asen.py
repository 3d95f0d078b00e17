"""ASEN, ASENet_V2 and the ablations (fgfs_lib.models.asen): the equations by hand, shapes, invariants,
registry. The released forward passes at full size are checked in test_released.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fgfs_lib import config
from fgfs_lib.models.asen import ASEN, ASENv2
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


@pytest.mark.parametrize("bounded", [True, False])
def test_asen_head_equals_the_equations_by_hand(bounded):
    """ASA (eqs. 1-4), ACA (eqs. 5-6) and the projection (eq. 7), written out with the model's
    own weights; ``bounded`` puts the released tanh on the score."""
    import torch.nn.functional as F

    model = _model(bounded=bounded)
    feats = torch.randn(2, 16, 5, 3)  # width 4 -> 16 channels; any grid
    attributes = torch.tensor([2, 0])
    sp, ch = model.spatial, model.channel
    with torch.no_grad():
        p = torch.tanh(F.conv2d(feats, sp.feature_proj.weight, sp.feature_proj.bias))
        q = torch.tanh(sp.attribute_embedding.weight[attributes])[:, :, None, None]
        s = F.conv2d(p * q, sp.score.weight, sp.score.bias)[:, 0]
        s = torch.tanh(s) if bounded else s
        alpha = torch.exp(s) / torch.exp(s).sum(dim=(1, 2), keepdim=True)
        pooled = (feats * alpha[:, None]).sum(dim=(2, 3))
        joint = torch.cat([pooled, torch.relu(ch.attribute_embedding.weight[attributes])], dim=1)
        beta = torch.sigmoid(ch.fc2(torch.relu(ch.fc1(joint))))
        expected = F.normalize(model.projection(pooled * beta), dim=1)
        head = model.head(feats, attributes)
    torch.testing.assert_close(head["attention"], alpha)
    torch.testing.assert_close(head["embedding"], expected)
    assert ch.fc1.in_features == 2 * 16  # the attribute vector has as many dims as channels, as released


def test_asen_v2_is_unit_norm_without_projection_and_batched_like_one_at_a_time():
    torch.manual_seed(0)
    model = ASENv2(A, backbone="small_cnn", width=4, hidden=6).eval()
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(images)
        every = model.embed_all_attributes(feats)
        assert every.shape == (A, 5, 16) and model.embed_dim == 16  # D = the backbone's channels
        for a in range(A):
            head = model.head(feats, torch.full((5,), a))
            torch.testing.assert_close(every[a], head["embedding"], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(head["embedding"], torch.nn.functional.normalize(head["gated"], dim=1))
    assert not any("projection" in name for name, _ in model.named_parameters())


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
        "asen": (True, True, "v1"),
        "asen_wo_asa": (False, True, "v1"), "asen_wo_aca": (True, False, "v1"),
    }
    for name, (asa, aca, form) in expected.items():
        model = build_model(name, meta, cfg, width=4, embed_dim=8, hidden=6)
        assert (model.use_asa, model.use_aca, model.form) == (asa, aca, form), name
        assert model.model_config == {"name": name, "options": {"width": 4, "embed_dim": 8, "hidden": 6}}
        assert model.num_attributes == A and model.embed_dim == 8
    v2 = build_model("asen_v2", meta, cfg, width=4, hidden=6)
    assert isinstance(v2, ASENv2) and v2.model_config == {"name": "asen_v2", "options": {"width": 4, "hidden": 6}}


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
