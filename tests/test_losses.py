"""Triplet losses: hand-computed values, both in-batch averages, agreement with per-triplet loops."""

import math

import pytest
import torch

from fgfs_lib import losses, sampling


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_cosine_triplet_loss_by_hand():
    a = torch.tensor([unit(0), unit(0)])
    p = torch.tensor([unit(90), unit(0)])
    n = torch.tensor([unit(0), unit(90)])
    # row 0: max(0, 0.2 - 0 + 1) = 1.2 ; row 1: max(0, 0.2 - 1 + 0) = 0
    per = losses.cosine_triplet_loss(a, p, n, reduction="none")
    assert torch.allclose(per, torch.tensor([1.2, 0.0]), atol=1e-6)
    assert losses.cosine_triplet_loss(a, p, n).item() == pytest.approx(0.6, abs=1e-6)
    # unnormalised inputs give the same cosine loss
    assert losses.cosine_triplet_loss(3 * a, 0.5 * p, 7 * n).item() == pytest.approx(0.6, abs=1e-6)


def test_euclidean_triplet_loss_by_hand():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    n = torch.tensor([[3.0, 0.0], [1.0, 0.0]])
    # row 0: max(0, 0.2 + 1 - 3) = 0 ; row 1: max(0, 0.2 + 5 - 1) = 4.2
    assert torch.allclose(losses.euclidean_triplet_loss(a, p, n, reduction="none"), torch.tensor([0.0, 4.2]), atol=1e-5)


def hand_batch():
    # 5 images, 1 attribute; image 4 is not annotated (-1) and must be ignored
    emb = torch.tensor([[unit(0), unit(90), unit(0), unit(180), unit(45)]])  # [A=1, B=5, 2]
    labels = torch.tensor([[0], [0], [1], [1], [-1]])
    return emb, labels


def test_batch_all_average_all_and_active_by_hand():
    emb, labels = hand_batch()
    # valid triplets (anchor, positive, negative) and their hinges, margin 0.2:
    # (0,1,2) 0.2-0+1=1.2  (0,1,3) 0.2-0-1<0 -> 0  (1,0,2) 0.2-0+0=0.2  (1,0,3) 0.2-0+0=0.2
    # (2,3,0) 0.2+1+1=2.2  (2,3,1) 0.2+1+0=1.2    (3,2,0) 0.2+1-1=0.2   (3,2,1) 0.2+1+0=1.2
    # sum 6.4 over 8 valid, 7 active
    loss_all, stats = losses.batch_all_triplet_loss(emb, labels, average="all")
    loss_active, stats_active = losses.batch_all_triplet_loss(emb, labels, average="active")
    assert loss_all.item() == pytest.approx(6.4 / 8, abs=1e-5)
    assert loss_active.item() == pytest.approx(6.4 / 7, abs=1e-5)
    assert stats["valid"] == 8 and stats["active"] == 7
    assert stats["active_fraction"] == pytest.approx(7 / 8)
    assert stats == stats_active


def test_batch_all_euclidean_by_hand_and_no_active():
    emb = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]])
    labels = torch.tensor([[0], [0], [1]])
    # (0,1,2): 0.2 + 1 - 3 -> 0 ; (1,0,2): 0.2 + 1 - 2 -> 0 ; label 1 has no positive
    loss, stats = losses.batch_all_triplet_loss(emb, labels, distance="euclidean", average="active")
    assert stats["valid"] == 2 and stats["active"] == 0
    assert loss.item() == 0.0
    emb2 = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.5, 0.0]]])
    # (0,1,2): 0.2 + 1 - 1.5 -> 0 ; (1,0,2): 0.2 + 1 - 0.5 = 0.7
    loss, stats = losses.batch_all_triplet_loss(emb2, labels, distance="euclidean", average="all")
    assert loss.item() == pytest.approx(0.35, abs=1e-5)


def test_batch_all_matches_explicit_triplets():
    g = torch.Generator().manual_seed(3)
    A, B = 3, 12
    labels = torch.randint(-1, 3, (B, A), generator=g)
    emb = torch.randn(A, B, 5, generator=g)
    rows = sampling.in_batch_triplets(labels)
    for distance, single in [("cosine", losses.cosine_triplet_loss), ("euclidean", losses.euclidean_triplet_loss)]:
        e = emb[rows[:, 3]]  # [K, B, D] embeddings for the row's attribute
        k = torch.arange(len(rows))
        per = single(e[k, rows[:, 0]], e[k, rows[:, 1]], e[k, rows[:, 2]], reduction="none")
        loss_all, stats = losses.batch_all_triplet_loss(emb, labels, distance=distance)
        loss_active, _ = losses.batch_all_triplet_loss(emb, labels, distance=distance, average="active")
        assert stats["valid"] == len(rows)
        assert loss_all.item() == pytest.approx(per.mean().item(), rel=1e-4)
        assert loss_active.item() == pytest.approx(per[per > 0].mean().item(), rel=1e-4)


def test_batch_all_gradient_and_empty_batch():
    emb = torch.randn(2, 4, 3, requires_grad=True)
    labels = torch.tensor([[0, -1], [1, -1], [2, -1], [3, -1]])  # no value twice: no triplet
    loss, stats = losses.batch_all_triplet_loss(emb, labels)
    assert stats["valid"] == 0 and loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and torch.all(emb.grad == 0)


def test_batch_all_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[B, A\]"):
        losses.batch_all_triplet_loss(torch.randn(2, 4, 3), torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="average"):
        losses.batch_all_triplet_loss(torch.randn(1, 4, 3), torch.zeros(4, 1, dtype=torch.long), average="mean")


def test_active_fraction_per_attribute():
    emb, labels = hand_batch()
    valid, frac = losses.active_fraction_per_attribute(emb, labels)
    assert valid.tolist() == [8] and frac.item() == pytest.approx(7 / 8)


def test_attribute_average_is_the_mean_of_per_attribute_means():
    """average='attribute' equals a per-attribute loop over the brute-force triplet list."""
    import itertools

    from fgfs_lib.losses import batch_all_triplet_loss

    torch.manual_seed(3)
    A, B, D = 3, 9, 4
    emb = torch.nn.functional.normalize(torch.randn(A, B, D), dim=-1)
    labels = torch.randint(0, 3, (B, A))
    labels[:6, 2] = -1  # attribute 2 applies to few images: few triplets
    means = []
    for a in range(A):
        hinges = []
        for i, j, k in itertools.permutations(range(B), 3):
            yi, yj, yk = labels[i, a], labels[j, a], labels[k, a]
            if yi >= 0 and yj == yi and yk >= 0 and yk != yi:
                hinges.append(max(0.0, 0.2 - float(emb[a, i] @ emb[a, j]) + float(emb[a, i] @ emb[a, k])))
        if hinges:
            means.append(sum(hinges) / len(hinges))
    loss, _ = batch_all_triplet_loss(emb, labels, average="attribute")
    assert loss.item() == pytest.approx(sum(means) / len(means), abs=1e-5)
    loss_all, stats = batch_all_triplet_loss(emb, labels, average="all")
    assert loss.item() != pytest.approx(loss_all.item(), abs=1e-6)


def test_in_batch_loss_runs_in_float32_under_bf16_autocast():
    """Under mixed precision the in-batch loss is computed in float32 (its sums over many
    triplets need it): the same value as outside autocast, for every averaging."""
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.functional.normalize(torch.randn(3, 16, 8, generator=g), dim=-1).bfloat16()
    labels = torch.randint(0, 3, (16, 3), generator=g)
    for average in ("all", "active", "attribute"):
        expected, _ = losses.batch_all_triplet_loss(emb.float(), labels, average=average)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = losses.batch_all_triplet_loss(emb, labels, average=average)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected)
