"""Conditional Similarity Network (CSN): one embedding, one mask per condition.

Introduced in ``notebooks/05_baselines.py``.

Paper: A. Veit, S. Belongie, T. Karaletsos, "Conditional Similarity Networks", CVPR 2017.
A general embedding f(x) in R^D (the paper: ResNet-18 to layer3, pooling, FC, D = 64) is
multiplied element-wise by the mask m_a of condition (attribute) a:

    f_a(x) = f(x) ⊙ m_a                                                      (eq. 1)

    fixed masks:   m_a = 1 on a disjoint block of dimensions (D / A each), 0 elsewhere
    learned masks: m_a = ReLU(β_a), β_a learned (initialised N(0.9, 0.7))

and trained with a margin ranking loss on Euclidean distances

    L_T = max(0, d(f_a(x), f_a(x+)) - d(f_a(x), f_a(x-)) + m),   m = 0.2    (eq. 2)

plus two regularisers, with the published weights,

    L = L_T + λ_1 · ||f(x)||_2 + λ_2 · ||m||_1,   λ_1 = 5e-3, λ_2 = 5e-4    (eq. 3)

Where the paper leaves room: ||f(x)||_2 is averaged over every image of the batch (the
released code adds the three norms of a triplet). ||m||_1 follows the released code: the
L1 norm of the masks the batch *selects* divided by the batch size, i.e. the mean of
||m_a||_1 over the batch's triplets (one attribute each), not the sum over all A masks,
which would be about A times stronger. With in-batch sampling a batch selects one mask per
labelled (image, attribute) pair, and the term is the mean over those pairs. Learned masks
only: fixed masks have nothing to regularise. With in-batch sampling the same Euclidean
loss runs over every valid triplet of the batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .backbones import default_backbone, default_weights, make_backbone
from .base import ConditionalEmbedder, global_pool
from .registry import register

MASK_KINDS = ("learned", "fixed")


def disjoint_masks(num_conditions: int, dim: int) -> torch.Tensor:
    """``[A, D]`` 0/1 masks with disjoint blocks covering all D dimensions (sizes differ by
    at most one)."""
    if dim < num_conditions:
        raise ValueError(f"embedding dim {dim} is smaller than the {num_conditions} conditions: "
                         f"fixed disjoint masks need at least one dimension each")
    masks = torch.zeros(num_conditions, dim)
    for a, block in enumerate(torch.arange(dim).tensor_split(num_conditions)):
        masks[a, block] = 1.0
    return masks


class CSN(ConditionalEmbedder):
    """f(x) ⊙ m_a with fixed or learned masks; Euclidean distances (no normalisation)."""

    distance = "euclidean"
    version = 2  # 2: the mask L1 term is the mean over the batch's selected masks (as released)

    def __init__(self, num_attributes: int, embed_dim: int = 64, mask: str = "learned",
                 backbone: str = "small_cnn", stage: str = "layer3", weights: Any = None,
                 margin: float = 0.2, embed_l2: float = 5e-3, mask_l1: float = 5e-4):
        super().__init__(num_attributes, embed_dim)
        if mask not in MASK_KINDS:
            raise ValueError(f"unknown CSN mask kind {mask!r}; choose from {', '.join(MASK_KINDS)}")
        self.mask_kind = mask
        self.margin = margin
        self.embed_l2 = embed_l2
        self.mask_l1 = mask_l1
        self.backbone = make_backbone(backbone, stage=stage, weights=weights)
        self.fc = nn.Linear(self.backbone.out_channels, embed_dim)
        if mask == "fixed":
            self.register_buffer("fixed_masks", disjoint_masks(num_attributes, embed_dim))
            self.mask_logits = None
        else:
            self.mask_logits = nn.Parameter(torch.randn(num_attributes, embed_dim) * 0.7 + 0.9)

    def masks(self) -> torch.Tensor:
        """``[A, D]`` the masks m_a (ReLU of the learned parameters, or the fixed blocks)."""
        if self.mask_logits is None:
            return self.fixed_masks
        return torch.relu(self.mask_logits)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def general_embedding(self, feats: torch.Tensor) -> torch.Tensor:
        """f(x), ``[B, D]`` (not normalised)."""
        return self.fc(global_pool(feats))

    def embed_from_features(self, feats: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.general_embedding(feats) * self.masks()[attributes]          # eq. 1

    def embed_all_attributes(self, feats: torch.Tensor) -> torch.Tensor:
        return self.general_embedding(feats).unsqueeze(0) * self.masks().unsqueeze(1)

    def extra_loss(self, feats: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        embed_norm = self.general_embedding(feats).norm(dim=-1).mean()           # ||f(x)||_2
        return self.embed_l2 * embed_norm, {"embed_norm": float(embed_norm.detach())}

    def selected_attributes(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The attribute of every mask the batch uses: one per triplet, or one per labelled
        (image, attribute) pair of an in-batch batch."""
        if "attribute" in batch:
            return batch["attribute"]
        return torch.nonzero(batch["labels"] >= 0)[:, 1]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3: the triplet loss, λ_1 ||f(x)||_2 and λ_2 ||m||_1 of the batch's selected masks."""
        loss, logs = super().loss(batch)
        if self.mask_logits is not None:
            selected = self.masks()[self.selected_attributes(batch)]
            mask_norm = selected.abs().sum() / max(len(selected), 1)              # ||m||_1 / batch size
            loss = loss + self.mask_l1 * mask_norm
            logs["mask_l1"] = float(mask_norm.detach())
        return loss, logs


@register("csn")
def build_csn(meta: Any, cfg: Any, **options: Any) -> CSN:
    """Options: ``mask`` ("learned" | "fixed"), ``embed_dim`` (quick 64, full 1024),
    ``backbone``, ``stage``, ``weights``, ``margin``, ``embed_l2``, ``mask_l1``."""
    options.setdefault("embed_dim", cfg.pick(quick=64, full=1024))
    options.setdefault("backbone", default_backbone(cfg))
    options.setdefault("weights", default_weights(cfg))
    return CSN(meta.num_attributes, **options)
