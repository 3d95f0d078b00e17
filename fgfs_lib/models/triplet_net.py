"""Triplet network: ONE general embedding for all attributes (the baseline of every table).

Introduced in ``notebooks/05_baselines.py``.

Paper: the "Triplet" row of ASEN (Ma et al., AAAI 2020, Table 2) and of AG-MAN: a
backbone, global average pooling and a linear layer, L2-normalised,

    f(x) = W · pool(backbone(x)) / ||W · pool(backbone(x))||_2            (one space)

trained with the cosine triplet ranking loss of ASEN's eq. (9),

    L = max(0, m - cos(f(a), f(p)) + cos(f(a), f(n))),   m = 0.2,

where (a, p, n) agree / disagree on *some* attribute. The attribute is ignored: the same
vector serves every attribute, so two images must be close when they share a neckline and
far when their colours differ, at the same time. The notebook shows how that fails.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import default_backbone, default_weights, make_backbone
from .base import ConditionalEmbedder, global_pool
from .registry import register


class TripletNet(ConditionalEmbedder):
    """Backbone -> global average pool -> linear -> L2 norm; ``attributes`` are ignored."""

    distance = "cosine"

    def __init__(self, num_attributes: int, embed_dim: int = 64, backbone: str = "small_cnn",
                 stage: str = "layer3", weights: Any = None, margin: float = 0.2):
        super().__init__(num_attributes, embed_dim)
        self.margin = margin
        self.backbone = make_backbone(backbone, stage=stage, weights=weights)
        self.fc = nn.Linear(self.backbone.out_channels, embed_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def general_embedding(self, feats: torch.Tensor) -> torch.Tensor:
        """f(x), ``[B, D]``, unit length."""
        return F.normalize(self.fc(global_pool(feats)), dim=-1)

    def embed_from_features(self, feats: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.general_embedding(feats)

    def embed_all_attributes(self, feats: torch.Tensor) -> torch.Tensor:
        emb = self.general_embedding(feats)
        return emb.unsqueeze(0).expand(self.num_attributes, -1, -1)


@register("triplet")
def build_triplet(meta: Any, cfg: Any, **options: Any) -> TripletNet:
    """Options: ``embed_dim`` (quick 64, full 1024), ``backbone``, ``stage``, ``weights``, ``margin``."""
    options.setdefault("embed_dim", cfg.pick(quick=64, full=1024))
    options.setdefault("backbone", default_backbone(cfg))
    options.setdefault("weights", default_weights(cfg))
    return TripletNet(meta.num_attributes, **options)
