"""Attribute-aware attention: ASA (spatial) and ACA (channel), the two modules of ASEN.

Introduced in ``notebooks/04_attribute_attention.py``; used by :mod:`fgfs_lib.models.asen`
(``notebooks/06_asen.py``) and by the later global-local and AG-MAN models.

Paper: Z. Ma, J. Dong, Z. Long, Y. Zhang, Y. He, H. Xue, S. Ji, *Fine-Grained Fashion
Similarity Learning by Attribute-Specific Embedding Network*, AAAI 2020 (arXiv 2002.02814),
section "Attribute-Specific Embedding Network". The second form of the spatial attention
(``form="v2"``) is the one of the authors' later ASENet_V2 / ASEN++ (Dong et al., TIP 2021).
Written from the papers and a reading of the authors' released forward passes; no code
from their repository (github.com/Maryeon/asen) is copied.

Notation (the paper's, our tensor names in brackets). ``V`` [feats] is the backbone's
feature map with ``c`` channels on an ``h x w`` grid; nothing below assumes a grid size.
``a`` is the attribute as a one-hot vector; ``W a`` for a one-hot ``a`` is a row of ``W``,
so every ``W a`` is an ``nn.Embedding`` lookup.

Equations, numbered in the order the paper's method section presents them (the seed
folder holds the poster only, so check the numbers against the PDF if you cite them):

Attribute-aware spatial attention (ASA)

* (1)  ``P = tanh(Conv_1x1(V))`` in R^{d x h x w} and ``q = tanh(W_q a)`` in R^d,
  image and attribute mapped to one d-dimensional space.
* (2)  v1: ``s = Conv_1x1(P ⊙ q)`` (q broadcast over the positions) -> one score per
  position. v2 (ASENet_V2): ``s_j = <P_j, q> / sqrt(d)``, scaled dot-product.
  The authors' released ASENet (the code behind the paper's numbers) bounds the v1 score
  with ``tanh`` before the softmax (``bounded=True``, our default for v1): every score then
  lies in [-1, 1], so the most attended position weighs at most e^2 (about 7.4) times the
  least attended one. Their ASENet_V2 leaves the score unbounded (our default for v2).
* (3)  ``alpha = softmax(s)`` over the ``h*w`` positions (sums to 1 for each image).
* (4)  ``I_s = sum_j alpha_j V_j`` in R^c, attention-weighted sum pooling of the
  *backbone* feature (not of P).

Attribute-aware channel attention (ACA)

* (5)  ``beta = sigmoid(W_2 ReLU(W_1 [I_s, ReLU(W_c a)]))`` in (0, 1)^c.
* (6)  ``I_c = I_s ⊙ beta``.

ASEN then projects ``I_c`` with one FC layer and L2-normalises (eq. 7, in
:mod:`fgfs_lib.models.asen`).

Both modules come with a batched "all attributes" path (``forward_all``): the attribute
independent parts (``P``, the pooled features' input) are computed once, and the heads of
all ``A`` attributes run as one einsum. This is what makes in-batch triplet training (one
backbone pass, every attribute) cheap.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "AttributeSpatialAttention",
    "AttributeChannelAttention",
    "GlobalAveragePooling",
    "softmax_over_positions",
    "weighted_sum_pooling",
]

FORMS = ("v1", "v2")


def softmax_over_positions(scores: Tensor) -> Tensor:
    """Eq. (3): softmax over the last two (spatial) dimensions of ``[..., h, w]`` scores."""
    shape = scores.shape
    return torch.softmax(scores.flatten(-2), dim=-1).reshape(shape)


def weighted_sum_pooling(feats: Tensor, attention: Tensor) -> Tensor:
    """Eq. (4): ``I_s = sum_j alpha_j V_j``.

    ``feats`` [B, c, h, w] and ``attention`` [B, h, w] -> [B, c]; or ``attention``
    [A, B, h, w] (one map per attribute) -> [A, B, c].
    """
    if attention.dim() == 3:
        return torch.einsum("bchw,bhw->bc", feats, attention)
    return torch.einsum("bchw,abhw->abc", feats, attention)


def _check_feats(feats: Tensor, channels: int, who: str) -> None:
    if feats.dim() != 4 or feats.shape[1] != channels:
        raise ValueError(
            f"{who}: expected a feature map [B, {channels}, h, w], got shape {tuple(feats.shape)}; "
            f"build the module with in_channels=backbone.out_channels"
        )


def _check_attributes(attributes: Tensor, batch: int, num_attributes: int, who: str) -> None:
    if attributes.dim() != 1 or attributes.shape[0] != batch:
        raise ValueError(f"{who}: expected attributes as a LongTensor [{batch}], got shape {tuple(attributes.shape)}")
    # The range check reads values, which would synchronise a GPU: only on CPU tensors.
    if attributes.device.type == "cpu" and attributes.numel() and (int(attributes.min()) < 0 or int(attributes.max()) >= num_attributes):
        raise ValueError(
            f"{who}: attribute ids must lie in [0, {num_attributes}), got min {int(attributes.min())} "
            f"max {int(attributes.max())}"
        )


class AttributeSpatialAttention(nn.Module):
    """ASA: where to look for attribute ``a`` (eqs. 1-4).

    ``forward(feats [B,c,h,w], attributes [B]) -> (pooled [B,c], attention [B,h,w])``;
    ``forward_all(feats) -> (pooled [A,B,c], attention [A,B,h,w])`` for every attribute.
    ``form="v1"`` scores with a 1x1 convolution of ``P ⊙ q`` (AAAI 2020); ``form="v2"``
    with the scaled dot-product ``<P_j, q>/sqrt(d)`` (ASENet_V2). ``bounded`` applies
    ``tanh`` to the score before the softmax (default: ``True`` for v1, as the released
    ASENet does; ``False`` for v2).
    """

    def __init__(self, in_channels: int, num_attributes: int, hidden: int = 512, form: str = "v1",
                 bounded: bool | None = None) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"AttributeSpatialAttention: form must be one of {FORMS}, got {form!r}")
        self.in_channels, self.num_attributes, self.hidden, self.form = in_channels, num_attributes, hidden, form
        self.bounded = (form == "v1") if bounded is None else bool(bounded)
        self.feature_proj = nn.Conv2d(in_channels, hidden, kernel_size=1)  # Conv_1x1 of eq. (1)
        self.attribute_embedding = nn.Embedding(num_attributes, hidden)  # W_q of eq. (1)
        # v1's score layer, eq. (2): a 1x1 conv from d channels to 1. v2 has no parameters here.
        self.score = nn.Conv2d(hidden, 1, kernel_size=1) if form == "v1" else None

    def project(self, feats: Tensor) -> Tensor:
        """Eq. (1), image half: ``P = tanh(Conv_1x1(V))`` [B, d, h, w] (attribute independent)."""
        _check_feats(feats, self.in_channels, "AttributeSpatialAttention")
        return torch.tanh(self.feature_proj(feats))

    def attribute_vectors(self, attributes: Tensor | None = None) -> Tensor:
        """Eq. (1), attribute half: ``q = tanh(W_q a)``; [B, d], or [A, d] for all attributes."""
        weight = self.attribute_embedding.weight if attributes is None else self.attribute_embedding(attributes)
        return torch.tanh(weight)

    def _score_weights(self, q: Tensor) -> tuple[Tensor, Tensor | float]:
        # conv1x1(P ⊙ q) = sum_k w_k P_k q_k + b = <P, w ⊙ q> + b: fold the score layer into q
        # so one einsum serves both forms (and all attributes at once).
        if self.form == "v1":
            return q * self.score.weight.view(1, -1), self.score.bias
        return q / math.sqrt(self.hidden), 0.0

    def scores(self, feats: Tensor, attributes: Tensor) -> Tensor:
        """Eq. (2): unnormalised scores [B, h, w] for each image's own attribute."""
        _check_attributes(attributes, feats.shape[0], self.num_attributes, "AttributeSpatialAttention")
        p = self.project(feats)
        w, b = self._score_weights(self.attribute_vectors(attributes))
        return self._bound(torch.einsum("bdhw,bd->bhw", p, w) + b)

    def scores_all(self, feats: Tensor) -> Tensor:
        """Eq. (2) for every attribute: [A, B, h, w]."""
        p = self.project(feats)
        w, b = self._score_weights(self.attribute_vectors())
        return self._bound(torch.einsum("bdhw,ad->abhw", p, w) + b)

    def _bound(self, scores: Tensor) -> Tensor:
        return torch.tanh(scores) if self.bounded else scores

    def forward(self, feats: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        attention = softmax_over_positions(self.scores(feats, attributes))  # eq. (3)
        return weighted_sum_pooling(feats, attention), attention  # eq. (4)

    def forward_all(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        attention = softmax_over_positions(self.scores_all(feats))  # eq. (3), [A, B, h, w]
        return weighted_sum_pooling(feats, attention), attention  # eq. (4), [A, B, c]

    def extra_repr(self) -> str:
        return f"form={self.form}, bounded={self.bounded}"


class GlobalAveragePooling(nn.Module):
    """The "w/o ASA" ablation: the same interface as ASA, with uniform attention 1/(h*w).

    The pooled feature is the spatial mean of ``V``; it ignores the attribute (the ablated
    model is still attribute-conditioned, through ACA).
    """

    def __init__(self, num_attributes: int) -> None:
        super().__init__()
        self.num_attributes = num_attributes

    def forward(self, feats: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        _check_attributes(attributes, feats.shape[0], self.num_attributes, "GlobalAveragePooling")
        b, _, h, w = feats.shape
        attention = feats.new_full((b, h, w), 1.0 / (h * w))
        return feats.mean(dim=(2, 3)), attention

    def forward_all(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = feats.shape
        a = self.num_attributes
        attention = feats.new_full((a, b, h, w), 1.0 / (h * w))
        return feats.mean(dim=(2, 3)).unsqueeze(0).expand(a, b, c), attention


class AttributeChannelAttention(nn.Module):
    """ACA: which channels matter for attribute ``a`` (eqs. 5-6).

    ``forward(pooled [B,c], attributes [B]) -> (gated [B,c], beta [B,c])``;
    ``forward_all(pooled [A,B,c] or [B,c]) -> (gated [A,B,c], beta [A,B,c])``.
    """

    def __init__(self, channels: int, num_attributes: int, attribute_dim: int = 512, hidden: int = 512) -> None:
        super().__init__()
        self.channels, self.num_attributes = channels, num_attributes
        self.attribute_embedding = nn.Embedding(num_attributes, attribute_dim)  # W_c of eq. (5)
        self.fc1 = nn.Linear(channels + attribute_dim, hidden)  # W_1 of eq. (5)
        self.fc2 = nn.Linear(hidden, channels)  # W_2 of eq. (5)

    def _gate(self, pooled: Tensor, attribute_vectors: Tensor) -> Tensor:
        # eq. (5): beta = sigmoid(W_2 ReLU(W_1 [I_s, ReLU(W_c a)]))
        joint = torch.cat([pooled, torch.relu(attribute_vectors)], dim=-1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(joint))))

    def forward(self, pooled: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        if pooled.dim() != 2 or pooled.shape[1] != self.channels:
            raise ValueError(f"AttributeChannelAttention: expected pooled [B, {self.channels}], got {tuple(pooled.shape)}")
        _check_attributes(attributes, pooled.shape[0], self.num_attributes, "AttributeChannelAttention")
        beta = self._gate(pooled, self.attribute_embedding(attributes))
        return pooled * beta, beta  # eq. (6)

    def forward_all(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        a = self.num_attributes
        if pooled.dim() == 2:
            pooled = pooled.unsqueeze(0).expand(a, *pooled.shape)
        if pooled.dim() != 3 or pooled.shape[0] != a or pooled.shape[2] != self.channels:
            raise ValueError(
                f"AttributeChannelAttention: expected pooled [{a}, B, {self.channels}], got {tuple(pooled.shape)}"
            )
        vectors = self.attribute_embedding.weight.unsqueeze(1).expand(a, pooled.shape[1], -1)
        beta = self._gate(pooled, vectors)
        return pooled * beta, beta  # eq. (6)
