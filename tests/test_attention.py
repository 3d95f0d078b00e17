"""ASA and ACA (fgfs_lib.models.attention): invariants and hand computations on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from fgfs_lib.models.attention import (
    AttributeChannelAttention,
    AttributeSpatialAttention,
    GlobalAveragePooling,
    softmax_over_positions,
    weighted_sum_pooling,
)

C, A, D = 6, 4, 5


def _asa(form: str, seed: int = 0) -> AttributeSpatialAttention:
    torch.manual_seed(seed)
    return AttributeSpatialAttention(C, A, hidden=D, form=form)


@pytest.mark.parametrize("form", ["v1", "v2"])
@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (7, 7), (2, 9)])
def test_asa_weights_sum_to_one_for_any_spatial_size(form, hw):
    asa = _asa(form)
    feats = torch.randn(3, C, *hw)
    attributes = torch.tensor([0, 3, 1])
    pooled, attention = asa(feats, attributes)
    assert pooled.shape == (3, C)
    assert attention.shape == (3, *hw)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(dim=(1, 2)), torch.ones(3))
    pooled_all, attention_all = asa.forward_all(feats)
    assert pooled_all.shape == (A, 3, C) and attention_all.shape == (A, 3, *hw)
    torch.testing.assert_close(attention_all.sum(dim=(2, 3)), torch.ones(A, 3))


def _asa_by_hand(asa: AttributeSpatialAttention, feats: torch.Tensor, attributes: torch.Tensor):
    """Eqs. (1)-(4) written out position by position with plain loops."""
    b, c, h, w = feats.shape
    pooled = torch.zeros(b, c)
    attention = torch.zeros(b, h, w)
    for i in range(b):
        q = torch.tanh(asa.attribute_embedding.weight[attributes[i]])  # eq. (1)
        scores = torch.zeros(h, w)
        for y in range(h):
            for x in range(w):
                p = torch.tanh(asa.feature_proj.weight[:, :, 0, 0] @ feats[i, :, y, x] + asa.feature_proj.bias)
                if asa.form == "v1":  # eq. (2) v1: 1x1 conv of P ⊙ q
                    scores[y, x] = asa.score.weight[0, :, 0, 0] @ (p * q) + asa.score.bias[0]
                else:  # eq. (2) v2: scaled dot product
                    scores[y, x] = (p @ q) / math.sqrt(asa.hidden)
                if asa.bounded:  # the released ASENet's tanh on the score
                    scores[y, x] = torch.tanh(scores[y, x])
        alpha = torch.exp(scores - scores.max())
        alpha = alpha / alpha.sum()  # eq. (3)
        attention[i] = alpha
        pooled[i] = (feats[i] * alpha).sum(dim=(1, 2))  # eq. (4)
    return pooled, attention


@pytest.mark.parametrize("form,bounded", [("v1", None), ("v1", False), ("v2", None), ("v2", True)])
def test_asa_matches_hand_computation_and_all_attribute_path(form, bounded):
    torch.manual_seed(1)
    asa = AttributeSpatialAttention(C, A, hidden=D, form=form, bounded=bounded)
    assert asa.bounded == (form == "v1" if bounded is None else bounded)
    feats = torch.randn(2, C, 3, 4)
    attributes = torch.tensor([2, 0])
    with torch.no_grad():
        pooled, attention = asa(feats, attributes)
        hand_pooled, hand_attention = _asa_by_hand(asa, feats, attributes)
        torch.testing.assert_close(attention, hand_attention, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pooled, hand_pooled, atol=1e-5, rtol=1e-4)
        pooled_all, attention_all = asa.forward_all(feats)
        for a in range(A):
            p_a, m_a = asa(feats, torch.full((2,), a))
            torch.testing.assert_close(pooled_all[a], p_a, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(attention_all[a], m_a, atol=1e-6, rtol=1e-5)


def test_asa_with_constant_scores_pools_the_spatial_mean():
    asa = _asa("v1")
    with torch.no_grad():
        asa.score.weight.zero_()  # every position scores the bias alone -> uniform attention
    feats = torch.randn(2, C, 5, 3)
    pooled, attention = asa(feats, torch.tensor([1, 2]))
    torch.testing.assert_close(attention, torch.full((2, 5, 3), 1 / 15))
    torch.testing.assert_close(pooled, feats.mean(dim=(2, 3)))


def test_asa_attends_to_the_position_that_matches_the_attribute():
    # One-channel "image" space: position (1, 2) carries a feature aligned with q, the rest
    # anti-aligned; v2's dot-product must put the largest weight there.
    asa = AttributeSpatialAttention(1, 1, hidden=1, form="v2")
    with torch.no_grad():
        asa.feature_proj.weight.fill_(5.0)
        asa.feature_proj.bias.zero_()
        asa.attribute_embedding.weight.fill_(5.0)
    feats = -torch.ones(1, 1, 3, 4)
    feats[0, 0, 1, 2] = 1.0
    _, attention = asa(feats, torch.tensor([0]))
    assert attention[0].argmax().item() == 1 * 4 + 2


def test_softmax_and_pooling_helpers():
    scores = torch.tensor([[[0.0, math.log(3.0)]]])  # [1, 1, 2]
    alpha = softmax_over_positions(scores)
    torch.testing.assert_close(alpha, torch.tensor([[[0.25, 0.75]]]))
    feats = torch.tensor([[[[2.0, 6.0]], [[1.0, -1.0]]]])  # [1, 2, 1, 2]
    torch.testing.assert_close(weighted_sum_pooling(feats, alpha), torch.tensor([[5.0, -0.5]]))


def test_global_average_pooling_is_the_spatial_mean():
    gap = GlobalAveragePooling(A)
    feats = torch.randn(3, C, 4, 2)
    pooled, attention = gap(feats, torch.tensor([0, 1, 3]))
    torch.testing.assert_close(pooled, feats.mean(dim=(2, 3)))
    torch.testing.assert_close(attention.sum(dim=(1, 2)), torch.ones(3))
    pooled_all, _ = gap.forward_all(feats)
    assert pooled_all.shape == (A, 3, C)
    torch.testing.assert_close(pooled_all[2], feats.mean(dim=(2, 3)))


def test_aca_gate_in_open_unit_interval_and_hand_computed():
    torch.manual_seed(2)
    aca = AttributeChannelAttention(C, A, attribute_dim=3, hidden=7)
    pooled = torch.randn(5, C) * 3
    attributes = torch.tensor([0, 1, 2, 3, 1])
    with torch.no_grad():
        gated, beta = aca(pooled, attributes)
        assert ((beta > 0) & (beta < 1)).all()
        # eq. (5) by hand for image 4
        v = torch.relu(aca.attribute_embedding.weight[1])
        hidden = torch.relu(aca.fc1.weight @ torch.cat([pooled[4], v]) + aca.fc1.bias)
        b4 = torch.sigmoid(aca.fc2.weight @ hidden + aca.fc2.bias)
        torch.testing.assert_close(beta[4], b4)
        torch.testing.assert_close(gated, pooled * beta)  # eq. (6)
        gated_all, beta_all = aca.forward_all(pooled)
        assert gated_all.shape == beta_all.shape == (A, 5, C)
        for a in range(A):
            g_a, _ = aca(pooled, torch.full((5,), a))
            torch.testing.assert_close(gated_all[a], g_a)


def test_attention_rejects_bad_input_with_clear_messages():
    asa = _asa("v1")
    with pytest.raises(ValueError, match="feature map"):
        asa(torch.randn(2, C + 1, 3, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"attribute ids must lie in \[0, 4\)"):
        asa(torch.randn(2, C, 3, 3), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="form"):
        AttributeSpatialAttention(C, A, form="v3")


@pytest.mark.parametrize("bounded", [True, False])
def test_gradients_reach_every_parameter(bounded):
    torch.manual_seed(0)
    asa = AttributeSpatialAttention(C, A, hidden=D, form="v1", bounded=bounded)
    aca = AttributeChannelAttention(C, A, attribute_dim=3, hidden=4)
    feats = torch.randn(4, C, 3, 3, requires_grad=True)
    pooled, _ = asa(feats, torch.tensor([0, 1, 2, 3]))
    gated, _ = aca(pooled, torch.tensor([0, 1, 2, 3]))
    gated.square().sum().backward()
    for name, param in list(asa.named_parameters()) + list(aca.named_parameters()):
        if name == "score.bias" and not bounded:
            # softmax is shift-invariant: the unbounded score's bias cannot change alpha, its
            # gradient is 0 (under tanh the bias moves the scores along the curve, and counts)
            torch.testing.assert_close(param.grad, torch.zeros_like(param))
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bounded_score_caps_the_attention_ratio_at_e_squared():
    """With tanh on the score, max/min attention <= e^2 however large the raw scores are."""
    torch.manual_seed(0)
    asa = AttributeSpatialAttention(C, A, hidden=D, form="v1")
    with torch.no_grad():
        asa.score.weight.mul_(1000.0)  # raw scores far outside [-1, 1]
        _, attention = asa(torch.randn(4, C, 5, 5), torch.tensor([0, 1, 2, 3]))
    ratio = attention.flatten(1).max(1).values / attention.flatten(1).min(1).values
    assert (ratio <= math.e ** 2 * (1 + 1e-5)).all()
    assert (ratio > 7.0).all()  # saturated scores reach the cap
