"""Metrics: MAP against brute force and scikit-learn, hand-computed cases, random baselines,
TR accuracy, manipulation Top-K / NDCG and localisation."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from fgfs_lib import metrics


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def brute_force_ap(scores, relevant) -> float:
    """One query: rank by descending score, ties by ascending index; AP over the full ranking."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    R = sum(bool(r) for r in relevant)
    if R == 0:
        return 0.0
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if relevant[i]:
            hits += 1
            total += hits / rank
    return total / R


def brute_force_map(q, qa, qv, c, ca, cv):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    aps = []
    for i in range(len(q)):
        idx = [j for j in range(len(c)) if ca[j] == qa[i]]
        aps.append(brute_force_ap([float(c[j] @ q[i]) for j in idx], [cv[j] == qv[i] for j in idx]))
    return np.array(aps)


def test_map_hand_computed():
    # attribute 0: candidates at 0, 30, 60, 90 degrees with values 0, 1, 0, 1
    # attribute 1: candidates at 0 and 90 degrees, both value 2
    cand = torch.tensor([unit(0), unit(30), unit(60), unit(90), unit(0), unit(90)])
    cand_attr = [0, 0, 0, 0, 1, 1]
    cand_val = [0, 1, 0, 1, 2, 2]
    query = torch.tensor([unit(0), unit(0), unit(0)])
    query_attr = [0, 0, 1]
    query_val = [0, 1, 0]
    # q0 ranks values 0,1,0,1: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2 = 5/6
    # q1: relevant at ranks 2 and 4 -> (1/2 + 2/4) / 2 = 1/2
    # q2: no candidate of attribute 1 has value 0 -> R = 0 -> AP 0, and it counts
    out = metrics.mean_average_precision(query, query_attr, query_val, cand, cand_attr, cand_val)
    assert out["per_attribute"][0] == pytest.approx(100 * (5 / 6 + 1 / 2) / 2)
    assert out["per_attribute"][1] == pytest.approx(0.0)
    assert out["overall"] == pytest.approx(100 * (5 / 6 + 1 / 2 + 0) / 3)
    assert set(out["per_attribute"]) == {0, 1}
    # numpy inputs give the same
    out_np = metrics.mean_average_precision(query.numpy(), np.array(query_attr), np.array(query_val),
                                            cand.numpy(), np.array(cand_attr), np.array(cand_val))
    assert out_np == out


def test_ties_by_hand():
    scores = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.9, 0.5]])
    relevant = torch.tensor([[True, False], [False, True], [False, True]])
    # "index": the earlier candidate wins a tie -> AP 1, 1/2 ; no tie in row 3 -> 1/2
    assert metrics.average_precision(scores, relevant).tolist() == pytest.approx([1.0, 0.5, 0.5])
    # "group" (scikit-learn): a tied block is one threshold -> precision 1/2 for both
    assert metrics.average_precision(scores, relevant, ties="group").tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_map_matches_brute_force_on_random_data():
    g = torch.Generator().manual_seed(0)
    Q, N, D = 40, 120, 6
    q, c = torch.randn(Q, D, generator=g), torch.randn(N, D, generator=g)
    qa, ca = torch.randint(0, 3, (Q,), generator=g), torch.randint(0, 3, (N,), generator=g)
    qv, cv = torch.randint(0, 6, (Q,), generator=g), torch.randint(0, 4, (N,), generator=g)  # values 4, 5: R = 0
    want = brute_force_map(q.numpy(), qa.numpy(), qv.numpy(), c.numpy(), ca.numpy(), cv.numpy())
    assert (qv >= 4).any()
    got = metrics.average_precision_per_query(q, qa, qv, c, ca, cv, chunk_size=7)
    assert np.allclose(got.numpy(), want, atol=1e-6)
    out = metrics.mean_average_precision(q, qa, qv, c, ca, cv)
    assert out["overall"] == pytest.approx(100 * want.mean(), abs=1e-4)
    for a in range(3):
        assert out["per_attribute"][a] == pytest.approx(100 * want[qa.numpy() == a].mean(), abs=1e-4)


def test_ap_matches_sklearn_without_ties():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(60, 50, generator=g)
    relevant = torch.rand(60, 50, generator=g) < 0.3
    relevant[0] = False  # R = 0 row
    ours = metrics.average_precision(scores, relevant)
    for i in range(60):
        want = average_precision_score(relevant[i].numpy(), scores[i].numpy()) if relevant[i].any() else 0.0
        assert ours[i].item() == pytest.approx(want, abs=1e-6)
    # both tie rules agree when there are no ties
    assert torch.allclose(ours, metrics.average_precision(scores, relevant, ties="group"), atol=1e-6)


def test_ap_with_ties_group_rule_is_sklearn_index_rule_is_brute_force():
    g = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 4, (60, 40), generator=g).float()  # many ties
    relevant = torch.rand(60, 40, generator=g) < 0.3
    index_rule = metrics.average_precision(scores, relevant, ties="index")
    group_rule = metrics.average_precision(scores, relevant, ties="group")
    differs = 0
    for i in range(60):
        if not relevant[i].any():
            continue
        sk = average_precision_score(relevant[i].numpy(), scores[i].numpy())
        assert group_rule[i].item() == pytest.approx(sk, abs=1e-6)
        assert index_rule[i].item() == pytest.approx(brute_force_ap(scores[i], relevant[i]), abs=1e-6)
        differs += abs(index_rule[i].item() - sk) > 1e-6
    assert differs > 0  # with ties the two conventions really differ


def test_tied_candidates_are_ranked_by_their_index():
    # identical embeddings: every score ties, so the ranking is the candidate order
    cand = torch.tensor([unit(10)] * 4)
    query = torch.tensor([unit(0)])
    out = metrics.mean_average_precision(query, [0], [1], cand, [0] * 4, [0, 1, 0, 1])
    assert out["overall"] == pytest.approx(100 * (1 / 2 + 2 / 4) / 2)  # relevant at ranks 2 and 4
    out = metrics.mean_average_precision(query, [0], [1], cand, [0] * 4, [1, 0, 1, 0])
    assert out["overall"] == pytest.approx(100 * (1 / 1 + 2 / 3) / 2)  # relevant at ranks 1 and 3


def test_similarity_by_hand():
    q = torch.tensor([[3.0, 4.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    cosine = metrics.similarity(q, c, "cosine")
    assert cosine.tolist() == [pytest.approx([0.6, 0.8, 1.0])]  # (3, 4) / 5 against unit directions
    euclidean = metrics.similarity(q, c, "euclidean")
    assert euclidean.dtype == torch.float64
    assert euclidean.tolist() == [pytest.approx([-(4 + 16) ** 0.5, -(9 + 4) ** 0.5, 0.0])]
    with pytest.raises(ValueError, match="distance"):
        metrics.similarity(q, c, "dot")


def test_expected_random_ap_hand_and_enumeration():
    assert metrics.expected_random_ap(1, 2).item() == pytest.approx(0.75)  # (1 + 1/2) / 2
    assert metrics.expected_random_ap(2, 3).item() == pytest.approx(29 / 36)  # (1 + 5/6 + 7/12) / 3
    assert metrics.expected_random_ap(0, 5).item() == 0.0
    assert metrics.expected_random_ap(1, 1).item() == 1.0
    assert metrics.expected_random_ap(4, 4).item() == pytest.approx(1.0)
    for N, R in [(5, 2), (6, 1), (6, 4)]:
        aps = [brute_force_ap(list(range(N, 0, -1)), [p < R for p in perm]) for perm in itertools.permutations(range(N))]
        assert metrics.expected_random_ap(R, N).item() == pytest.approx(np.mean(aps), abs=1e-12)


def test_random_map_analytic_vs_simulated():
    g = torch.Generator().manual_seed(0)
    qa, qv = torch.randint(0, 3, (60,), generator=g), torch.randint(0, 4, (60,), generator=g)
    ca, cv = torch.randint(0, 3, (300,), generator=g), torch.randint(0, 4, (300,), generator=g)
    analytic = metrics.expected_random_map(qa, qv, ca, cv)
    simulated = metrics.simulated_random_map(qa, qv, ca, cv, torch.Generator().manual_seed(1), trials=20)
    assert abs(analytic["overall"] - simulated["overall"]) < 1.0
    assert metrics.random_map_expectation(qa, qv, ca, cv) == analytic
    R, N = metrics.relevant_counts(qa, qv, ca, cv)
    assert R[0].item() == int(((ca == qa[0]) & (cv == qv[0])).sum()) and N[0].item() == int((ca == qa[0]).sum())


def test_triplet_relation_accuracy():
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    first = torch.tensor([[1.0, 0.0], [0.2, 0.0], [1.0, 0.0]])
    second = torch.tensor([[0.5, 0.0], [0.9, 0.0], [0.0, 1.0]])  # closer, farther, tie
    assert metrics.triplet_relation_accuracy(anchor, first, second) == pytest.approx(100 / 3)
    truth = torch.tensor([True, False, False])
    assert metrics.triplet_relation_accuracy(anchor, first, second, truth) == pytest.approx(200 / 3)
    a = torch.tensor([unit(0)])
    assert metrics.triplet_relation_accuracy(a, torch.tensor([unit(80)]), torch.tensor([unit(10)]), distance="cosine") == 100.0


def test_manipulation_topk_by_hand():
    gallery = torch.tensor([[0, 1], [0, -1], [1, 1], [0, 0]])
    target = torch.tensor([[0, -1], [1, 1], [2, 2]])  # -1 must match -1; [2, 2] exists nowhere
    scores = torch.tensor([
        [0.9, 0.8, 0.1, 0.0],  # exact target (gallery 1) at rank 2
        [0.0, 0.1, 0.2, 0.9],  # exact target (gallery 2) at rank 2
        [0.4, 0.3, 0.2, 0.1],  # never
    ])
    out = metrics.manipulation_topk_accuracy(scores, target, gallery, ks=(1, 2, 4))
    assert out == {1: pytest.approx(0.0), 2: pytest.approx(200 / 3), 4: pytest.approx(200 / 3)}


def test_manipulation_ndcg_by_hand():
    gallery = torch.tensor([[0, 0], [0, 1], [1, 1]])
    target = torch.tensor([[0, 1]])
    scores = torch.tensor([[0.9, 0.5, 0.1]])  # ranking: g0 (rel 1/2), g1 (rel 1), g2 (rel 1/2)
    g = lambda r: 2**r - 1
    dcg = g(0.5) / math.log2(2) + g(1.0) / math.log2(3)
    ideal = g(1.0) / math.log2(2) + g(0.5) / math.log2(3)
    assert metrics.manipulation_ndcg(scores, target, gallery, k=2) == pytest.approx(100 * dcg / ideal)
    exact = (1 / math.log2(3)) / 1.0
    assert metrics.manipulation_ndcg(scores, target, gallery, k=2, gain="exact") == pytest.approx(100 * exact)


def test_pointing_game_and_mass_inside():
    maps = torch.zeros(3, 4, 4)
    maps[0, 1, 2] = 5.0  # max inside
    maps[1, 3, 3] = 5.0  # max outside
    maps[2] = 1.0
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, 0:2, 1:3] = True  # 4 of 16 pixels
    hits = metrics.pointing_game(maps, masks)
    assert hits[:2].tolist() == [1.0, 0.0]
    mass = metrics.mass_inside(maps, masks)
    assert mass.tolist() == pytest.approx([1.0, 0.0, 0.25])
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert torch.isnan(metrics.pointing_game(maps[:1], empty)).all()
    assert torch.isnan(metrics.mass_inside(maps[:1], empty)).all()


def test_localisation_upsamples_coarse_maps():
    coarse = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # feature-grid map
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True
    assert metrics.pointing_game(coarse, mask).item() == 1.0
    assert metrics.mass_inside(coarse, mask).item() > 0.5


def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [float("nan")] * 4])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    iou = metrics.box_iou(a, b)
    assert iou[:3].tolist() == pytest.approx([1 / 7, 1.0, 0.0])
    assert math.isnan(iou[3].item())


def test_euclidean_map_ranks_by_distance_like_sklearn():
    """distance='euclidean' (CSN): AP per query equals sklearn's on negative distances."""
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(5)
    q_emb, c_emb = torch.randn(12, 4, generator=g) * 3, torch.randn(40, 4, generator=g) * 3
    q_attr, q_val = torch.zeros(12, dtype=torch.long), torch.randint(0, 3, (12,), generator=g)
    c_attr, c_val = torch.zeros(40, dtype=torch.long), torch.randint(0, 3, (40,), generator=g)
    ours = metrics.mean_average_precision(q_emb, q_attr, q_val, c_emb, c_attr, c_val, distance="euclidean")
    scores = -torch.cdist(q_emb.double(), c_emb.double())
    expected = [average_precision_score((c_val == q_val[i]).numpy(), scores[i].numpy()) for i in range(12)]
    assert ours["overall"] == pytest.approx(100 * sum(expected) / 12, abs=1e-6)
    cosine = metrics.mean_average_precision(q_emb, q_attr, q_val, c_emb, c_attr, c_val)
    assert cosine["overall"] != pytest.approx(ours["overall"], abs=1e-6)
