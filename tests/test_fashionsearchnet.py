"""FashionSearchNet, its baselines and the manipulation-search protocol, against oracles:
brute-force connected components for the box rule, a hand computation of the soft triplet
loss, loops for prototypes and manipulation, brute-force Top-K / NDCG, a hand-checked tiny
ranking."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from fgfs_lib import cam, config, manipulation as manip, metrics
from fgfs_lib.models import fashionsearchnet as fsn
from fgfs_lib.models.registry import build_model

META = types.SimpleNamespace(num_values=[3, 2, 4], attribute_names=["a", "b", "c"],
                             value_names=[["x", "y", "z"], ["p", "q"], ["r", "s", "t", "u"]],
                             attribute_id=lambda name: ["a", "b", "c"].index(name))


# ----------------------------------------------------------------------------- box rule


def _components_brute_force(mask: np.ndarray) -> list[set]:
    """8-connected components by flood fill (the oracle for scipy's labelling)."""
    seen, comps = set(), []
    H, W = mask.shape
    for y in range(H):
        for x in range(W):
            if mask[y, x] and (y, x) not in seen:
                stack, comp = [(y, x)], set()
                seen.add((y, x))
                while stack:
                    cy, cx = stack.pop()
                    comp.add((cy, cx))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = cy + dy, cx + dx
                            if 0 <= ny < H and 0 <= nx < W and mask[ny, nx] and (ny, nx) not in seen:
                                seen.add((ny, nx))
                                stack.append((ny, nx))
                comps.append(comp)
    return comps


def _paper_box_brute_force(m: np.ndarray, threshold: float) -> list[float]:
    H, W = m.shape
    if m.max() <= 0:
        return [0.0, 0.0, float(W), float(H)]
    comps = _components_brute_force(m > threshold * m.max())
    # largest; ties to the component met first in raster order
    best = max(comps, key=lambda c: (len(c), -(min(c)[0] * W + min(c)[1])))  # min(c): first pixel in raster order
    ys, xs = [p[0] for p in best], [p[1] for p in best]
    return [float(min(xs)), float(min(ys)), float(max(xs) + 1), float(max(ys) + 1)]


@pytest.mark.parametrize("seed", range(6))
def test_paper_box_rule_matches_brute_force_components(seed):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(4, 12, 12, generator=g) + torch.linspace(-1, 1, 12)  # negative values included
    for m in maps:
        expected = _paper_box_brute_force(m.numpy(), 0.2)
        assert cam.fsn_boxes(m, 0.2, rule="max").tolist() == expected


def test_the_two_box_rules_differ_on_negative_maps():
    m = torch.full((10, 10), -1.0)
    m[2:4, 2:4] = 1.0     # peak
    m[6:9, 0:10] = -0.5   # above 20% of the max? no (-0.5 < 0.2); min-max: (-0.5+1)/2 = 0.25 > 0.2
    assert cam.fsn_boxes(m, rule="max").tolist() == [2.0, 2.0, 4.0, 4.0]
    assert cam.fsn_boxes(m, rule="minmax").tolist() == [0.0, 6.0, 10.0, 9.0]  # the larger stripe wins
    # all-negative map: no pixel above 20% of a negative maximum -> whole frame under the paper's rule
    assert cam.fsn_boxes(m - 5, rule="max").tolist() == [0.0, 0.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="rule"):
        cam.fsn_boxes(m, rule="mean")


# ----------------------------------------------------------------------------- losses and mining


def test_soft_triplet_loss_matches_a_hand_computation():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[3.0, 4.0], [1.0, 1.0]])   # distances 5 and 0
    n = torch.tensor([[0.0, 1.0], [1.0, 3.0]])   # distances 1 and 2
    by_hand = (math.exp(5) / (math.exp(5) + math.exp(1)) + 1 / (1 + math.exp(2))) / 2
    assert fsn.soft_triplet_loss(a, p, n).item() == pytest.approx(by_hand, rel=1e-6)


def test_in_batch_triplets_and_one_change_pairs_obey_their_rules():
    torch.manual_seed(0)
    labels = torch.tensor([[0, 1, -1], [0, 1, 2], [0, 0, -1], [1, 1, -1], [0, 1, -1], [2, -1, 3]])
    anchor, pos, neg = fsn.in_batch_triplets(labels[:, 0])
    v = labels[:, 0]
    assert len(anchor) == 4  # the four images with value 0 have a partner; 1 and 2 are alone
    assert (v[anchor] == v[pos]).all() and (anchor != pos).all() and (v[anchor] != v[neg]).all()
    i, j, a, k = fsn.one_change_pairs(labels)
    brute = {(x, y) for x in range(6) for y in range(6)
             if (labels[x] != labels[y]).sum() == 1 and (labels[x][labels[x] != labels[y]] >= 0).all()
             and (labels[y][labels[x] != labels[y]] >= 0).all()}
    assert set(zip(i.tolist(), j.tolist())) == brute
    target = manip.target_vectors(labels[i], a, labels[j, a])
    assert torch.equal(target, labels[j])
    assert not (labels[k] == target).all(1).any()


# ----------------------------------------------------------------------------- prototypes


def test_prototypes_and_manipulation_match_loops():
    g = torch.Generator().manual_seed(1)
    reps = torch.randn(20, 3, 5, generator=g)
    labels = torch.stack([torch.randint(-1, n, (20,), generator=g) for n in META.num_values], 1)
    protos = manip.value_prototypes(reps, labels, META.num_values)
    for a, n in enumerate(META.num_values):
        for v in range(n):
            rows = [r for r in range(20) if labels[r, a] == v]
            expected = torch.stack([reps[r, a] for r in rows]).mean(0) if rows else torch.zeros(5)
            assert torch.allclose(protos[a][v], expected, atol=1e-6)
    attrs, vals = torch.tensor([0, 2, 0]), torch.tensor([1, 3, 2])
    out = manip.manipulate(reps[:3], attrs, vals, protos)
    for q in range(3):
        for a in range(3):
            expected = protos[a][vals[q]] if a == attrs[q] else reps[q, a]
            assert torch.equal(out[q, a], expected)


# ----------------------------------------------------------------------------- queries and metrics


def test_manipulation_queries_follow_the_adde_rule():
    labels = torch.tensor([[0, 1, -1], [1, 1, -1], [0, 0, 2], [2, 0, 2], [0, 1, 3]])
    queries = manip.manipulation_queries(labels, META.num_values)
    brute = []
    for i in range(5):
        for a, n in enumerate(META.num_values):
            if labels[i, a] < 0:
                continue
            for v in range(n):
                if v == labels[i, a]:
                    continue
                t = labels[i].clone()
                t[a] = v
                if (labels == t).all(1).any():
                    brute.append([i, a, v])
    assert queries.tolist() == brute
    assert [0, 0, 1] in brute and [2, 0, 2] in brute and [4, 2, 2] not in brute  # -1 must match too


def _tiny_case():
    gallery = torch.tensor([[0, 1, 2], [1, 1, 2], [1, 0, 2], [1, 1, 3]])
    target = torch.tensor([[1, 1, 2]])
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.5]])  # ranking: 0, 2, 3, 1 -> the exact match is 4th
    return scores, target, gallery


def test_topk_and_ndcg_on_a_hand_checked_example():
    scores, target, gallery = _tiny_case()
    hits = manip.topk_hits(scores, target, gallery, ks=(1, 3, 4))
    assert hits.tolist() == [[False, False, True]]
    # relevances in rank order: 2/3, 2/3, 2/3, 1; ADDE's ideal assumes K fully relevant items
    rel = [2 / 3, 2 / 3, 2 / 3]
    dcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(rel))
    ideal = sum(1 / math.log2(i + 2) for i in range(3))
    assert manip.adde_ndcg(scores, target, gallery, k=3).item() == pytest.approx(dcg / ideal)
    # gallery-ideal NDCG: the best ordering puts the exact match first
    best = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate([1, 2 / 3, 2 / 3]))
    assert manip.ndcg_gallery(scores, target, gallery, k=3).item() == pytest.approx(dcg / best)
    assert manip.ndcg_gallery(scores, target, gallery, k=3).item() * 100 == pytest.approx(
        metrics.manipulation_ndcg(scores, target, gallery, k=3))


def test_topk_matches_brute_force_and_the_metrics_module():
    g = torch.Generator().manual_seed(3)
    gallery = torch.randint(0, 2, (60, 3), generator=g)
    target = torch.randint(0, 2, (25, 3), generator=g)
    scores = torch.randn(25, 60, generator=g)
    ks = (1, 5, 10, 20, 30)
    hits = manip.topk_hits(scores, target, gallery, ks)
    for q in range(25):
        order = sorted(range(60), key=lambda n: -scores[q, n].item())
        for col, k in enumerate(ks):
            assert hits[q, col].item() == any((gallery[n] == target[q]).all() for n in order[:k])
    ours = (hits.double().mean(0) * 100).tolist()
    theirs = metrics.manipulation_topk_accuracy(scores, target, gallery, ks)
    assert ours == pytest.approx([theirs[k] for k in ks])


def test_random_scores_give_adde_ndcg_below_the_gallery_normalised_one():
    g = torch.Generator().manual_seed(4)
    gallery = torch.randint(0, 3, (400, 4), generator=g)
    target = gallery[:50].clone()
    scores = torch.rand(50, 400, generator=g)
    assert manip.adde_ndcg(scores, target, gallery).mean() < manip.ndcg_gallery(scores, target, gallery).mean()


def test_similarity_is_one_matrix_product_of_the_right_kind():
    g = torch.Generator().manual_seed(5)
    q, x = torch.randn(4, 6, generator=g), torch.randn(7, 6, generator=g)
    assert torch.allclose(manip.similarity(q, x), -torch.cdist(q, x) ** 2, atol=1e-4)
    assert torch.allclose(manip.similarity(q, x, "dot"), q @ x.T)


class _LookupSearcher:
    """Codes = label vectors; a query's vector = its target; score = matching attributes."""

    similarity = "dot"

    def encode(self, split):
        return torch.nn.functional.one_hot(split.labels + 1, 5).flatten(1).float()

    def gallery_vectors(self, codes, attribute):
        return codes

    def query_vectors(self, codes, attribute, values):
        labels = codes.view(len(codes), -1, 5).argmax(-1) - 1
        labels[:, attribute] = values
        return torch.nn.functional.one_hot(labels + 1, 5).flatten(1).float()


def test_evaluate_matches_brute_force_on_a_searcher_with_known_scores():
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(-1, 3, (40, 3), generator=g)
    split = types.SimpleNamespace(labels=labels)
    queries = manip.manipulation_queries(labels, [3, 3, 3])
    result = manip.evaluate(_LookupSearcher(), split, queries, ks=(1, 5))
    # an oracle searcher ranks exact targets first (score = A), the query itself excluded:
    # Top-1 is 100% because every kept query has a gallery image with its target
    assert result["topk"][1] == 100.0
    codes = _LookupSearcher().encode(split)
    ndcgs = []
    for q, (img, a, v) in enumerate(queries.tolist()):  # brute force, one query at a time
        target = labels[img].clone()
        target[a] = v
        score = (codes @ _LookupSearcher().query_vectors(codes[img:img + 1], a, torch.tensor([v])).T)[:, 0]
        score[img] = -float("inf")
        order = sorted(range(len(labels)), key=lambda n: (-score[n].item(), n))[:30]
        rel = [(labels[n] == target).double().mean().item() for n in order]
        ndcgs.append(sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(rel))
                     / sum(1 / math.log2(i + 2) for i in range(30)))
        assert result["hits"][q, 1].item() == any(bool((labels[n] == target).all()) for n in order[:5])
    assert result["ndcg"] == pytest.approx(100 * sum(ndcgs) / len(ndcgs))


# ----------------------------------------------------------------------------- the models


@pytest.fixture(scope="module")
def tiny():
    cfg = config.load("quick", 0)
    torch.manual_seed(0)
    images = torch.randn(12, 3, 32, 32)
    # rows 0/1 and 2/3 differ in one attribute (manipulation pairs); every value has a partner
    labels = torch.tensor([[0, 1, 2], [1, 1, 2], [2, 0, -1], [2, 1, -1], [0, 1, 3], [1, 0, 3],
                           [0, 1, 2], [1, 1, 2], [2, 0, -1], [2, 1, -1], [0, 1, 3], [1, 0, 3]])
    return cfg, images, labels


@pytest.mark.parametrize("name", ["fashionsearchnet", "fashionsearchnet_wo_loc", "amnet_like"])
def test_models_train_one_step_and_the_loss_is_finite(tiny, name):
    cfg, images, labels = tiny
    model = build_model(name, META, cfg, width=8)
    loss, logs = model.loss({"images": images, "labels": labels})
    assert torch.isfinite(loss) and logs["pairs"] >= 1
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_wo_loc_pools_the_whole_map_and_fsn_its_boxes(tiny):
    cfg, images, _ = tiny
    model = build_model("fashionsearchnet", META, cfg, width=8).eval()
    feats = model.features(images)
    h, w = feats["map"].shape[-2:]
    boxes = feats["boxes"]
    assert boxes.shape == (12, 3, 4) and (boxes >= 0).all() and (boxes[..., 2] <= w).all() and (boxes[..., 3] <= h).all()
    # the box is the paper's rule on the upsampled map, rescaled to the feature grid
    pooled = feats["map"].mean(dim=(2, 3))
    head = model.classifier.heads[1]
    maps = cam.class_activation_maps(feats["map"], head.weight, head(pooled).argmax(1))
    expected = cam.fsn_boxes(cam.upsample_maps(maps, 32), rule="max") * (w / 32)
    assert torch.allclose(boxes[:, 1], expected)
    wo = build_model("fashionsearchnet_wo_loc", META, cfg, width=8).eval()
    assert torch.equal(wo.features(images)["boxes"], torch.tensor([0.0, 0.0, w, h]).expand(12, 3, 4))


def test_global_representation_is_eq6(tiny):
    cfg, images, _ = tiny
    model = build_model("fashionsearchnet", META, cfg, width=8, embed_dim=4, global_dim=5).eval()
    with torch.no_grad():
        model.lam.uniform_(0.5, 2.0)
        reps = torch.randn(2, 3, 4)
        out = model.global_representation(reps, 1)
        by_hand = torch.cat([reps[:, a] * model.lam[1, a] for a in range(3)], dim=1) @ model.project[1]
    assert torch.allclose(out, by_hand, atol=1e-5)


def test_stage2_starts_from_stage1_and_amnet_from_the_same_weights(tiny):
    cfg, _, _ = tiny
    s1 = build_model("fashionsearchnet", META, cfg, width=8, stage=1)
    s2 = build_model("fashionsearchnet", META, cfg, width=8, stage=2)
    s2.init_from_state(s1.state_dict())
    assert torch.equal(s2.classifier.heads[0].weight, s1.classifier.heads[0].weight)
    s2.init_from_state(s1.classifier.state_dict())  # a plain classifier checkpoint works too
    am = build_model("amnet_like", META, cfg, width=8)
    am.init_from_state(s1.state_dict())
    assert torch.equal(am.heads[2].weight, s1.classifier.heads[2].weight)
    with pytest.raises(ValueError, match="stage-1"):
        s2.init_from_state({"something.else": torch.zeros(1)})


def test_fsn_searcher_replaces_the_manipulated_representation(tiny):
    cfg, _, _ = tiny
    model = build_model("fashionsearchnet", META, cfg, width=8, embed_dim=4, global_dim=5).eval()
    protos = [torch.randn(n, 4) for n in META.num_values]
    searcher = fsn.FSNSearcher(model, protos, use_global=False)
    codes = torch.randn(2, 3, 4)
    q = searcher.query_vectors(codes, 2, torch.tensor([3, 0]))
    assert torch.equal(q.view(2, 3, 4)[:, :2], codes[:, :2])
    assert torch.equal(q.view(2, 3, 4)[:, 2], torch.stack([protos[2][3], protos[2][0]]))


def test_attribute_based_substitutes_the_wish_and_sums_log_probabilities():
    clf = types.SimpleNamespace(num_values=[2, 3])
    searcher = manip.AttributeBasedSearcher(clf)
    codes = torch.log(torch.tensor([[0.9, 0.1, 0.2, 0.7, 0.1], [0.3, 0.7, 0.1, 0.1, 0.8]]))
    q = searcher.query_vectors(codes[:1], 1, torch.tensor([2]))  # predicted (0, 1) -> wish (0, 2)
    assert q.tolist() == [[1, 0, 0, 0, 1]]
    score = manip.similarity(q, searcher.gallery_vectors(codes, 1), "dot")
    assert torch.allclose(score, torch.log(torch.tensor([[0.9 * 0.1, 0.3 * 0.8]])))


# ----------------------------------------------------------------------------- interactive


def test_search_callback_frames_the_correct_results():
    labels = torch.tensor([[0, 1, 2], [1, 1, 2], [0, 0, 2], [1, 1, 3], [1, 1, 2]])
    split = types.SimpleNamespace(labels=labels)
    searcher = _LookupSearcher()
    codes = searcher.encode(split)
    out = manip.search(searcher, codes, split, META, 0, "a=y", k=3)
    assert out["target"].tolist() == [1, 1, 2]
    assert out["indices"][:2].tolist() == [1, 4] and out["correct"].tolist()[:2] == [True, True]
    assert 0 not in out["indices"].tolist()
    similar = manip.search(searcher, codes, split, META, 0, "b", k=2)  # similar by attribute: no change
    assert similar["value"] == 1 and similar["target"].tolist() == [0, 1, 2]
    with pytest.raises(KeyError, match="unknown value"):
        manip.parse_wish(META, "a=w")


def test_random_topk_floor_matches_enumerating_every_ranking():
    import itertools

    labels = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    queries = manip.manipulation_queries(labels, META.num_values)
    exact = manip.random_topk(queries, labels, ks=(1, 2, 3))
    for col, k in enumerate((1, 2, 3)):
        total = 0.0
        for img, a, v in queries.tolist():
            t = labels[img].clone()
            t[a] = v
            others = [n for n in range(6) if n != img]
            perms = list(itertools.permutations(others))
            total += sum(any((labels[n] == t).all() for n in p[:k]) for p in perms) / len(perms)
        assert exact[k] == pytest.approx(100 * total / len(queries))


def test_run_search_callback_without_a_browser():
    from fgfs_lib.viz import manipulation as viz_manip

    labels = torch.tensor([[0, 1, 2], [1, 1, 2], [0, 0, 2], [1, 1, 3], [1, 1, 2]])
    images = torch.rand(5, 3, 8, 8)
    split = types.SimpleNamespace(labels=labels, batch=lambda idx: images[idx], denormalize=lambda x: x)
    searchers = {"lookup": _LookupSearcher()}
    codes = {"lookup": searchers["lookup"].encode(split)}
    result, fig = viz_manip.run_search(searchers, codes, split, META, method="lookup", query=0, mode="manipulate",
                                       attribute="a", value="y", k=3)
    assert result["indices"][:2].tolist() == [1, 4] and len(fig.axes) == 4
    with pytest.raises(ValueError, match="mode"):
        viz_manip.run_search(searchers, codes, split, META, method="lookup", query=0, mode="swap", attribute="a")
