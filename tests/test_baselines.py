"""The two baselines: triplet network (one space) and CSN (masks), against hand computations."""

import types

import pytest
import torch
import torch.nn.functional as F

from fgfs_lib import config, losses
from fgfs_lib.models.csn import CSN, disjoint_masks
from fgfs_lib.models.registry import build_model
from fgfs_lib.models.triplet_net import TripletNet

META = types.SimpleNamespace(num_attributes=4, num_values=[3, 2, 4, 2])




@pytest.mark.parametrize("conditions,dim", [(4, 16), (10, 64), (3, 7), (5, 5)])
def test_fixed_masks_are_disjoint_blocks_covering_every_dimension(conditions, dim):
    m = disjoint_masks(conditions, dim)
    assert m.shape == (conditions, dim)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(m.sum(0), torch.ones(dim))            # each dimension in exactly one mask
    sizes = m.sum(1)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    for row in m:                                            # one contiguous block
        ones = torch.nonzero(row).squeeze(1)
        assert torch.equal(ones, torch.arange(int(ones[0]), int(ones[-1]) + 1))
    with pytest.raises(ValueError, match="smaller than"):
        disjoint_masks(8, 4)


def test_csn_embedding_is_general_embedding_times_mask():
    torch.manual_seed(0)
    model = CSN(4, embed_dim=12, mask="fixed").eval()
    x = torch.randn(5, 3, 32, 32)
    attrs = torch.tensor([0, 1, 2, 3, 1])
    with torch.no_grad():
        feats = model.features(x)
        f = model.general_embedding(feats)
        emb = model.embed(x, attrs)
        all_attrs = model.embed_all_attributes(feats)
    blocks = disjoint_masks(4, 12)
    assert torch.allclose(emb, f * blocks[attrs])
    for a in range(4):
        assert torch.allclose(all_attrs[a], f * blocks[a])
        assert torch.all(all_attrs[a][:, blocks[a] == 0] == 0)  # lives only in its block


def test_learned_masks_are_nonnegative_and_trainable():
    torch.manual_seed(0)
    model = CSN(4, embed_dim=12, mask="learned")
    assert (model.masks() >= 0).all()
    assert (model.mask_logits < 0).any()  # the N(0.9, 0.7) init has negatives that ReLU zeroes
    x = torch.randn(6, 3, 32, 32)
    loss, logs = model.loss({"images": x, "labels": torch.tensor([[0, 1, 2, 0]] * 3 + [[1, 0, 3, 1]] * 3)})
    loss.backward()
    assert model.mask_logits.grad is not None and model.mask_logits.grad.abs().sum() > 0


def test_csn_loss_is_euclidean_ranking_plus_published_regularisers():
    torch.manual_seed(0)
    model = CSN(4, embed_dim=12, mask="learned")
    a, p, n = (torch.randn(3, 3, 32, 32) for _ in range(3))
    attrs = torch.tensor([0, 2, 3])
    loss, logs = model.loss({"anchor": a, "positive": p, "negative": n, "attribute": attrs})
    f = model.general_embedding(model.features(torch.cat([a, p, n])))
    e = f * model.masks()[attrs.repeat(3)]
    ea, ep, en = e.chunk(3)
    hinge = torch.relu(0.2 + (ea - ep).norm(dim=1) - (ea - en).norm(dim=1)).mean()
    expected = hinge + 5e-3 * f.norm(dim=1).mean() + 5e-4 * torch.relu(model.mask_logits).sum()
    assert torch.allclose(loss, expected, atol=1e-5)
    assert logs["triplet"] == pytest.approx(float(hinge.detach()), abs=1e-5)
    fixed = CSN(4, embed_dim=12, mask="fixed")
    assert "mask_l1" not in fixed.loss({"anchor": a, "positive": p, "negative": n, "attribute": attrs})[1]


def test_triplet_net_ignores_the_attribute_and_is_unit_length():
    torch.manual_seed(0)
    model = TripletNet(4, embed_dim=8).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        e0 = model.embed(x, torch.zeros(4, dtype=torch.long))
        e3 = model.embed(x, torch.full((4,), 3))
        every = model.embed_all_attributes(model.features(x))
    assert torch.allclose(e0, e3)
    assert torch.allclose(e0.norm(dim=1), torch.ones(4), atol=1e-6)
    assert every.shape == (4, 4, 8) and all(torch.allclose(every[a], e0) for a in range(4))


def test_default_losses_equal_the_losses_module():
    torch.manual_seed(0)
    model = TripletNet(4, embed_dim=8)
    x = torch.randn(8, 3, 32, 32)
    labels = torch.randint(-1, 2, (8, 4))
    loss, logs = model.loss({"images": x, "labels": labels})
    emb = model.embed_all_attributes(model.features(x))
    ref, stats = losses.batch_all_triplet_loss(emb, labels, margin=0.2, average=model.triplet_average,
                                              distance="cosine")
    assert torch.allclose(loss, ref) and logs["valid"] == stats["valid"]
    a, p, n = x[:3], x[3:6], x[5:8]
    loss, _ = model.loss({"anchor": a, "positive": p, "negative": n, "attribute": torch.tensor([0, 1, 2])})
    emb = model.general_embedding(model.features(torch.cat([a, p, n])))
    assert torch.allclose(loss, losses.cosine_triplet_loss(*emb.chunk(3), margin=0.2), atol=1e-6)


def test_registry_options_and_profile_defaults():
    quick = config.load("quick")
    csn = build_model("csn", META, quick, mask="fixed")
    assert csn.mask_kind == "fixed" and csn.embed_dim == 64 and csn.backbone.name == "small_cnn"
    assert csn.distance == "euclidean"
    trip = build_model("triplet", META, quick)
    assert trip.distance == "cosine" and trip.backbone.name == "small_cnn"
    with pytest.raises(ValueError, match="mask kind"):
        build_model("csn", META, quick, mask="soft")
