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


def _hand_csn():
    """A CSN whose 'images' are their own 2-d general embeddings f(x), masks m_0 = (1, 0) and
    m_1 = (0.5, 2) (logits (1, -1) and (0.5, 2) through ReLU)."""
    model = CSN(2, embed_dim=2, mask="learned")
    with torch.no_grad():
        model.mask_logits.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
    model.features = lambda x: x
    model.general_embedding = lambda feats: feats
    return model


def test_csn_loss_by_hand_with_the_released_mask_term():
    model = _hand_csn()
    # triplet 1, attribute 1: masked a (0.5, 2), p (0.5, 4), n (1.5, 2): d(a,p) = 2, d(a,n) = 1,
    #   hinge 0.2 + 2 - 1 = 1.2;  triplet 2, attribute 0: a (2, 0), p (2, 0), n (0, 0): hinge 0
    a, p, n = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.tensor([[1.0, 2.0], [2.0, 5.0]]), torch.tensor([[3.0, 1.0], [0.0, 0.0]])
    loss, logs = model.loss({"anchor": a, "positive": p, "negative": n, "attribute": torch.tensor([1, 0])})
    embed_norm = (2 ** 0.5 + 5 ** 0.5 + 10 ** 0.5 + 2 + 29 ** 0.5 + 0) / 6  # ||f(x)||_2 over the 6 images
    mask_l1 = (2.5 + 1.0) / 2  # ||m_1||_1 + ||m_0||_1 of the batch's masks / batch size (not 3.5, all masks)
    assert logs["triplet"] == pytest.approx(0.6, abs=1e-4)
    assert logs["mask_l1"] == pytest.approx(mask_l1)
    assert loss.item() == pytest.approx(0.6 + 5e-3 * embed_norm + 5e-4 * mask_l1, abs=1e-4)
    # in-batch: one mask per labelled (image, attribute) pair: m_0 (image 0), m_0, m_1 (image 1), m_1 (image 2)
    labels = torch.tensor([[0, -1], [1, 1], [-1, 0]])
    assert model.selected_attributes({"labels": labels}).tolist() == [0, 0, 1, 1]
    _, logs = model.loss({"images": torch.randn(3, 2), "labels": labels})
    assert logs["mask_l1"] == pytest.approx((1.0 + 1.0 + 2.5 + 2.5) / 4)
    fixed = CSN(2, embed_dim=2, mask="fixed")
    fixed.features, fixed.general_embedding = model.features, model.general_embedding
    assert "mask_l1" not in fixed.loss({"anchor": a, "positive": p, "negative": n, "attribute": torch.tensor([1, 0])})[1]


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
