"""fgfs_lib.index: each codec against a hand re-statement of what it stores, search against
brute force, persistence, and search.py over an index."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgfs_lib import index as index_module
from fgfs_lib.index import AttributeIndex, SharedVectorIndex, pq_bits_for


def _unit(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def test_int8_codes_are_the_per_dimension_rule():
    x = _unit(500, 16)
    idx = AttributeIndex("int8")
    idx.add(0, x)
    lo, hi = x.min(0).values, x.max(0).values
    codes = torch.clamp(torch.floor((x - lo) / (hi - lo) * 255), 0, 255)
    by_hand = lo + (codes + 0.5) * (hi - lo) / 255
    assert torch.allclose(idx.decode(0), by_hand, atol=1e-6)
    assert idx.bytes_per_vector(0) == 16
    assert (idx.decode(0) - x).abs().max() <= (hi - lo).max() / 255 + 1e-6  # half a step, at most


def test_float16_keeps_half_precision():
    x = _unit(300, 32, seed=1)
    idx = AttributeIndex("float16")
    idx.add(3, x)
    assert torch.equal(idx.decode(3), x.half().float())
    assert idx.bytes_per_vector(3) == 64


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_float32_search_equals_brute_force(metric):
    gallery, queries = _unit(400, 8, seed=2), _unit(5, 8, seed=3)
    ids = torch.arange(400) * 3 + 7
    idx = AttributeIndex("float32", metric)
    idx.add(1, gallery, ids)
    scores, found = idx.search(queries, 1, k=10)
    if metric == "cosine":
        brute = queries @ gallery.T
    else:
        brute = -torch.cdist(queries, gallery).square()
    top = brute.topk(10, dim=1)
    assert torch.allclose(scores, top.values, atol=1e-5)
    assert torch.equal(found, ids[top.indices])


def test_pq_scores_are_inner_products_with_decoded_vectors():
    gallery, queries = _unit(2000, 16, seed=4), _unit(4, 16, seed=5)
    idx = AttributeIndex("pq", pq_pieces=4, pq_bits=5)
    idx.add(0, gallery)
    assert idx.bytes_per_vector(0) == 3  # 4 pieces x 5 bits = 20 bits, rounded up to bytes
    decoded = idx.decode(0)
    scores, rows = idx.search_rows(queries, 0, k=5)
    assert torch.allclose(scores, (queries @ decoded.T).gather(1, rows), atol=1e-5)
    assert torch.allclose(scores, (queries @ decoded.T).topk(5, dim=1).values, atol=1e-5)


def test_pq_bits_follow_the_training_set_size():
    assert pq_bits_for(39 * 256) == 8
    assert pq_bits_for(39 * 255) == 7
    assert pq_bits_for(3000) == 6  # 3000 / 39 = 76.9 -> 64 centroids
    assert pq_bits_for(10) == 1


def test_save_and_load_give_the_same_answers(tmp_path):
    gallery, queries = _unit(600, 16, seed=6), _unit(3, 16, seed=7)
    for codec in index_module.CODECS:
        idx = AttributeIndex(codec, pq_pieces=4, pq_bits=4)
        idx.add(2, gallery, torch.arange(600) + 100, torch.arange(600) % 5)
        path = idx.save(tmp_path / f"{codec}.pt")
        again = AttributeIndex.load(path)
        assert torch.equal(again.decode(2), idx.decode(2))
        assert torch.equal(again.search(queries, 2)[1], idx.search(queries, 2)[1])
        assert torch.equal(again.values(2), torch.arange(600) % 5)
        assert again.nbytes() == idx.nbytes() == 600 * idx.bytes_per_vector(2)


def test_unknown_attribute_and_codec_are_refused():
    with pytest.raises(ValueError, match="unknown codec"):
        AttributeIndex("int4")
    idx = AttributeIndex()
    idx.add(0, _unit(10, 4))
    with pytest.raises(KeyError, match="holds \\[0\\]"):
        idx.search(_unit(1, 4), 1)


def test_shared_vector_index_is_the_masked_euclidean_distance():
    g = torch.Generator().manual_seed(8)
    masks = torch.rand(4, 12, generator=g)
    gallery, queries = torch.randn(200, 12, generator=g), torch.randn(6, 12, generator=g)
    shared = SharedVectorIndex(masks, gallery)
    for a in range(4):
        brute = -((queries[:, None] - gallery[None]) * masks[a]).square().sum(-1)
        assert torch.allclose(shared.scores(queries, a), brute, atol=1e-4)
        top = brute.topk(7, dim=1)
        assert torch.equal(shared.search(queries, a, k=7)[1], top.indices)
    assert shared.bytes_per_vector() == 48 and shared.nbytes() == 200 * 48


def test_search_over_an_index_matches_search_over_a_gallery():
    from test_search import META, TinySplit

    from fgfs_lib import search
    from fgfs_lib.models.asen import ASEN

    torch.manual_seed(0)
    model = ASEN(2, backbone="small_cnn", width=4, embed_dim=8, hidden=6).eval()
    split = TinySplit()
    for a in (0, 1):
        gallery = search.embed_gallery(model, split, a, META)
        idx = AttributeIndex("float32", model.distance)
        idx.add(a, gallery.embeddings, gallery.indices, gallery.values)
        plain = search.search(model, split.images[4], a, gallery, META, k=5, exclude=4, split=split)
        via_index = search.search(model, split.images[4], a, idx, META, k=5, exclude=4, split=split)
        assert torch.equal(plain.indices, via_index.indices) and 4 not in via_index.indices.tolist()
        assert plain.values == via_index.values and plain.value_names == via_index.value_names
        assert np.allclose(plain.scores.numpy(), via_index.scores.numpy(), atol=1e-5)


def test_codec_trained_on_other_vectors_uses_their_range():
    train, gallery = _unit(400, 8, seed=9) * 2, _unit(50, 8, seed=10)
    idx = AttributeIndex("int8")
    idx.add(0, gallery, train_vectors=train)
    lo, hi = train.min(0).values, train.max(0).values
    codes = torch.clamp(torch.floor((gallery - lo) / (hi - lo) * 255), 0, 255)
    assert torch.allclose(idx.decode(0), lo + (codes + 0.5) * (hi - lo) / 255, atol=1e-6)
    assert idx.decode(0).shape == (50, 8)
