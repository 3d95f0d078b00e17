"""Samplers: invariants, determinism with a generator, style distributions, rare values."""

import warnings

import pytest
import torch

from fgfs_lib import sampling


def random_labels(n=200, a=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 5, (n, a), generator=g)


def check_rows(labels, t):
    anchor, positive, negative, attr = t.unbind(1)
    assert (anchor != positive).all()
    assert (labels[anchor, attr] == labels[positive, attr]).all()
    assert (labels[anchor, attr] >= 0).all() and (labels[negative, attr] >= 0).all()
    assert (labels[negative, attr] != labels[anchor, attr]).all()


@pytest.mark.parametrize("style", ["asen", "asen++"])
def test_sample_triplets_invariants_and_determinism(style):
    labels = random_labels()
    t1 = sampling.sample_triplets(labels, 3000, torch.Generator().manual_seed(5), style=style)
    t2 = sampling.sample_triplets(labels, 3000, torch.Generator().manual_seed(5), style=style)
    t3 = sampling.sample_triplets(labels, 3000, torch.Generator().manual_seed(6), style=style)
    assert t1.shape == (3000, 4) and t1.dtype == torch.long
    check_rows(labels, t1)
    assert torch.equal(t1, t2) and not torch.equal(t1, t3)
    # attribute uniform
    counts = torch.bincount(t1[:, 3], minlength=4).double() / 3000
    assert torch.all((counts - 0.25).abs() < 0.04)


def test_epochs_are_refreshed_but_reproducible():
    labels = random_labels()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    e1, e2 = sampling.sample_triplets(labels, 500, g1), sampling.sample_triplets(labels, 500, g1)
    assert not torch.equal(e1, e2)  # the generator moves on: each epoch draws fresh triplets
    assert torch.equal(e1, sampling.sample_triplets(labels, 500, g2))
    assert torch.equal(e2, sampling.sample_triplets(labels, 500, g2))


def skewed_labels():
    # one attribute: value 0 has 100 images, values 1 and 2 have 10 each
    return torch.tensor([0] * 100 + [1] * 10 + [2] * 10)[:, None]


def test_style_distributions():
    labels = skewed_labels()
    n = 30000
    for style, p_neg0 in [("asen", 2 / 3 * 100 / 110), ("asen++", 1 / 3)]:
        t = sampling.sample_triplets(labels, n, torch.Generator().manual_seed(0), style=style)
        anchor_values = torch.bincount(labels[t[:, 0], 0], minlength=3).double() / n
        negative_values = torch.bincount(labels[t[:, 2], 0], minlength=3).double() / n
        # anchor value uniform in both styles
        assert torch.all((anchor_values - 1 / 3).abs() < 0.015), (style, anchor_values)
        # v1: the negative's value follows the frequencies; ASEN++: uniform among the others
        assert abs(negative_values[0].item() - p_neg0) < 0.015, (style, negative_values)


def test_positive_uniform_within_value_and_distinct():
    labels = torch.tensor([0, 0, 0, 1])[:, None]
    with pytest.warns(UserWarning, match="single image"):
        t = sampling.sample_triplets(labels, 6000, torch.Generator().manual_seed(0))
    pairs = torch.bincount(t[:, 0] * 4 + t[:, 1], minlength=16).view(4, 4).double() / 6000
    # six ordered pairs of distinct images with value 0, each 1/6
    assert torch.all((pairs[:3, :3][~torch.eye(3, dtype=torch.bool)] - 1 / 6).abs() < 0.02)
    assert (t[:, 2] == 3).all()


def test_rare_values_are_skipped_with_a_warning():
    labels = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3]])  # attr 0: value 0 twice; attr 1: all single
    with pytest.warns(UserWarning, match="attribute 1 skipped"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single image")
        t = sampling.sample_triplets(labels, 200, torch.Generator().manual_seed(0))
    assert (t[:, 3] == 0).all()
    assert set(labels[t[:, 0], 0].tolist()) == {0}
    assert set(labels[t[:, 2], 0].tolist()) <= {1, 2}  # single-image values still serve as negatives


def test_nothing_usable_raises_clear_error():
    labels = torch.tensor([[0], [1], [-1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="at least 2 images"):
            sampling.sample_triplets(labels, 10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"\[N, A\]"):
        sampling.sample_triplets(torch.zeros(5, dtype=torch.long), 10, torch.Generator())


def test_in_batch_triplets_enumerates_every_valid_triplet():
    labels = torch.tensor([[0, 1], [0, -1], [1, 1], [1, 0], [-1, 0]])
    rows = sampling.in_batch_triplets(labels)
    got = {tuple(r) for r in rows.tolist()}
    want = set()
    for a in range(2):
        for i in range(5):
            for j in range(5):
                for k in range(5):
                    yi, yj, yk = labels[i, a], labels[j, a], labels[k, a]
                    if i != j and yi >= 0 and yi == yj and yk >= 0 and yk != yi:
                        want.add((i, j, k, a))
    # attribute 0 (values 0,0,1,1,-): 4 ordered pairs x 2 negatives; attribute 1 (1,-,1,0,0): the same
    assert got == want and len(rows) == len(want) == 16


def test_csn_rows_and_list_sampling():
    rows = torch.tensor([[0, 1, 2, 0], [3, 4, 5, 1], [6, 7, 8, 3]])
    # "i is closer to k than to j" -> anchor i, positive k, negative j
    assert sampling.csn_rows_to_triplets(rows).tolist() == [[0, 2, 1, 0], [3, 5, 4, 1], [6, 8, 7, 3]]
    t1 = sampling.sample_from_triplet_list(rows, 2, torch.Generator().manual_seed(0))
    t2 = sampling.sample_from_triplet_list(rows, 2, torch.Generator().manual_seed(0))
    assert torch.equal(t1, t2) and len(t1) == 2 and len({tuple(r) for r in t1.tolist()}) == 2
    assert len(sampling.sample_from_triplet_list(rows, 10, torch.Generator())) == 3


def test_relation_triplet_list_semantics():
    labels = random_labels()
    rows = sampling.relation_triplet_list(labels, 500, torch.Generator().manual_seed(0))
    i, j, k, c = rows.unbind(1)
    assert (labels[i, c] == labels[k, c]).all() and (labels[i, c] != labels[j, c]).all()


def test_manipulation_triplets_invariants():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 3, (300, 3), generator=g)
    t = sampling.manipulation_triplets(labels, 2000, torch.Generator().manual_seed(1))
    q, pos, neg, attr, value = t.unbind(1)
    target = labels[q].clone()
    target[torch.arange(len(t)), attr] = value
    assert (labels[pos] == target).all(-1).all()  # exact match, -1 entries included
    assert (labels[neg] != target).any(-1).all()
    assert (value != labels[q, attr]).all() and (value >= 0).all()
    again = sampling.manipulation_triplets(labels, 2000, torch.Generator().manual_seed(1))
    assert torch.equal(t, again)


def test_manipulation_triplets_without_any_target_raises():
    labels = torch.tensor([[0, 0], [1, 1]])  # differ in both attributes: no single change reaches the other
    with pytest.raises(ValueError, match="manipulation"):
        sampling.manipulation_triplets(labels, 5, torch.Generator())
