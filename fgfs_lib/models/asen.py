"""ASEN: the Attribute-Specific Embedding Network, and its two ablations.

Introduced in ``notebooks/06_asen.py`` (its attention modules in
``notebooks/04_attribute_attention.py``).

Paper: Z. Ma, J. Dong, Z. Long, Y. Zhang, Y. He, H. Xue, S. Ji, *Fine-Grained Fashion
Similarity Learning by Attribute-Specific Embedding Network*, AAAI 2020 (arXiv 2002.02814);
``asen_v2`` is the authors' later ASENet_V2 (Dong et al., TIP 2021). Written from the
papers and from a reading of the authors' released forward passes (ASENet and ASENet_V2 in
github.com/Maryeon/asen, the code behind the papers' numbers); none of their code is copied.
:func:`fgfs_lib.models.load_released` loads their checkpoints into these classes.

The network, for an image ``I`` and an attribute ``a`` (equation numbers as in
:mod:`fgfs_lib.models.attention`):

* ``V = CNN(I)``: a backbone cut after ``layer3`` (ResNet-50 in the paper, 1024 x 14 x 14 at
  224 px; the quick profile's small CNN gives 128 x 8 x 8 at 64 px);
* ASA, eqs. (1)-(4): ``I_s = sum_j alpha_j(a) V_j``;
* ACA, eqs. (5)-(6): ``I_c = I_s ⊙ beta(I_s, a)``;
* eq. (7): ``f(I, a) = W I_c + b``, then L2 normalisation, so the similarity of two images
  with respect to ``a`` is the cosine ``f(I, a) . f(I', a)``;
* eq. (8), the loss (from :class:`~fgfs_lib.models.base.ConditionalEmbedder`):
  ``max(0, m - s(I, I+ | a) + s(I, I- | a))``, ``m = 0.2``.

Registered models:

===============  ===============================================================
``asen``         the released ASENet: ASA (v1, tanh-bounded score) + ACA + FC + L2
                 norm (``--option bounded=false``: the paper's unbounded score)
``asen_v2``      the released ASENet_V2 (:class:`ASENv2`): BatchNorm in ASA, one
                 attribute embedding for both modules, no projection layer
``asen_wo_asa``  global average pooling instead of ASA (still attribute-conditioned,
                 through ACA): the clean test of the spatial attention
``asen_wo_aca``  ASA, no channel gate
===============  ===============================================================

**What the released ASENet computes** (for ``A`` attributes, ResNet-50 to layer3, c = 1024,
d = 512). The attribute enters as a one-hot vector through two bias-free linear maps, which
are embedding lookups: ``q = tanh(W_q a)`` (d) for ASA and ``ReLU(W_c a)`` (c = 1024, not d)
for ACA, so ACA's first FC reads ``[I_s, ReLU(W_c a)]`` of 2c = 2048 inputs, then 512, then
c. The ASA score is ``tanh(Conv_1x1(P ⊙ q))``: bounded to [-1, 1] before the softmax. The
projection ``W`` is c -> 1024. Our ``attribute_dim`` therefore defaults to the backbone's
channels, as released.

Every option of :class:`ASEN` can be passed to ``build_model`` (``backbone``, ``embed_dim``,
``hidden`` ...); the defaults follow the profile (``cfg.pick(quick=..., full=...)``).
"""

from __future__ import annotations

from typing import Any

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import (AttributeChannelAttention, AttributeSpatialAttention, GlobalAveragePooling,
                        softmax_over_positions, weighted_sum_pooling)
from .backbones import default_backbone, default_weights, make_backbone
from .base import ConditionalEmbedder
from .registry import register

__all__ = ["ASEN", "ASENv2", "build_asen", "default_options", "comparison_runs", "sampler_runs", "backbone_passes",
           "PAPER_MAP", "PAPER_ATTRIBUTES", "PAPER_KEYS"]

# The seed poster's tables (Ma et al., AAAI 2020 poster), MAP x100 per attribute, last = overall.
PAPER_ATTRIBUTES = {
    "FashionAI": ["skirt_length", "sleeve_length", "coat_length", "pant_length", "collar_design",
                  "lapel_design", "neckline_design", "neck_design"],
    "DARN": ["clothes_category", "clothes_button", "clothes_color", "clothes_length", "clothes_pattern",
             "clothes_shape", "collar_shape", "sleeve_length", "sleeve_shape"],
}
PAPER_MAP = {
    "FashionAI": {
        "random": [17.20, 12.50, 13.35, 17.45, 22.36, 21.63, 11.09, 21.19, 15.79],
        "triplet": [48.38, 28.14, 29.82, 54.56, 62.58, 38.31, 26.64, 40.02, 38.52],
        "csn": [61.97, 45.06, 47.30, 62.85, 69.83, 54.14, 46.56, 54.47, 53.52],
        "asen_wo_asa": [62.65, 49.98, 49.02, 63.48, 69.10, 61.65, 50.88, 57.10, 56.35],
        "asen_wo_aca": [58.12, 43.30, 42.30, 60.03, 65.98, 49.95, 46.86, 52.06, 50.87],
        "asen": [64.44, 54.63, 51.27, 63.53, 70.79, 65.36, 59.50, 58.67, 61.02],
    },
    "DARN": {
        "random": [8.49, 24.45, 12.54, 29.90, 43.26, 39.76, 15.22, 63.03, 55.54, 32.26],
        "triplet": [23.59, 38.07, 16.83, 39.77, 49.56, 47.00, 23.43, 68.49, 56.48, 40.14],
        "csn": [34.10, 44.32, 47.38, 53.68, 54.09, 56.32, 31.82, 78.05, 58.76, 50.86],
        "asen_wo_asa": [33.94, 45.37, 48.56, 54.36, 53.83, 57.33, 32.78, 77.77, 59.32, 51.39],
        "asen_wo_aca": [30.39, 42.37, 49.14, 50.18, 53.63, 48.84, 26.03, 75.28, 57.99, 48.02],
        "asen": [36.69, 46.96, 51.35, 56.47, 54.49, 60.02, 34.18, 80.11, 60.04, 53.31],
    },
}


class ASEN(ConditionalEmbedder):
    """Backbone + ASA + ACA + FC, L2-normalised; ``use_asa`` / ``use_aca`` switch the ablations.

    ``embed(images, attributes [B]) -> [B, D]`` unit vectors; ``embed_all_attributes(feats)
    -> [A, B, D]`` in one batched head pass; ``attention_maps(images, attributes) -> [B, h, w]``.
    """

    distance = "cosine"
    margin = 0.2
    version = 3  # 2: v1's score bounded by tanh; 3: ACA's attribute vector has c dims (as released)

    def __init__(
        self,
        num_attributes: int,
        *,
        backbone: str = "small_cnn",
        stage: str = "layer3",
        weights: str | None = None,
        width: int = 32,
        embed_dim: int = 64,
        hidden: int = 128,
        attribute_dim: int | None = None,  # ACA's attribute vector; default: the backbone's channels
        gate_hidden: int | None = None,
        form: str = "v1",
        bounded: bool | None = None,
        use_asa: bool = True,
        use_aca: bool = True,
    ) -> None:
        super().__init__(num_attributes, embed_dim)
        if not (use_asa or use_aca):
            raise ValueError(
                "ASEN without ASA and without ACA ignores the attribute: that is the triplet network, "
                "build it with build_model('triplet', ...)"
            )
        self.use_asa, self.use_aca, self.form = use_asa, use_aca, form
        self.backbone = make_backbone(backbone, stage=stage, weights=weights, width=width)
        channels = self.backbone.out_channels
        self.spatial: nn.Module = (
            AttributeSpatialAttention(channels, num_attributes, hidden=hidden, form=form, bounded=bounded)
            if use_asa else GlobalAveragePooling(num_attributes)
        )
        self.channel = (
            AttributeChannelAttention(channels, num_attributes, attribute_dim=attribute_dim or channels,
                                      hidden=gate_hidden or hidden)
            if use_aca else None
        )
        self.projection = nn.Linear(channels, embed_dim)  # eq. (7)

    # -- ConditionalEmbedder interface ----------------------------------------------------
    def features(self, images: Tensor) -> Tensor:
        """``V = CNN(I)``: [B, c, h, w], attribute independent."""
        return self.backbone(images)

    def head(self, feats: Tensor, attributes: Tensor) -> dict[str, Tensor]:
        """Every intermediate of the head for each image's own attribute.

        ``pooled`` [B,c] (eq. 4), ``attention`` [B,h,w] (eq. 3), ``gate`` [B,c] (eq. 5; ones
        without ACA), ``gated`` [B,c] (eq. 6), ``embedding`` [B,D] (eq. 7, L2-normalised).
        """
        pooled, attention = self.spatial(feats, attributes)
        if self.channel is not None:
            gated, gate = self.channel(pooled, attributes)
        else:
            gated, gate = pooled, torch.ones_like(pooled)
        embedding = F.normalize(self.projection(gated), dim=-1)
        return {"pooled": pooled, "attention": attention, "gate": gate, "gated": gated, "embedding": embedding}

    def embed_from_features(self, feats: Tensor, attributes: Tensor) -> Tensor:
        return self.head(feats, attributes)["embedding"]

    def embed_all_attributes(self, feats: Tensor) -> Tensor:
        """[A, B, D]: the heads of all attributes run batched on one feature map."""
        pooled, _ = self.spatial.forward_all(feats)  # [A, B, c]
        if self.channel is not None:
            pooled, _ = self.channel.forward_all(pooled)
        return F.normalize(self.projection(pooled), dim=-1)

    # -- inspection -----------------------------------------------------------------------
    def attention_maps(self, images: Tensor, attributes: Tensor | int) -> Tensor:
        """ASA's ``alpha`` [B, h, w] (feature-map resolution; sums to 1 per image).

        ``attributes``: [B] ids or one id for all images. Without ASA the map is uniform.
        """
        feats = self.features(images)
        if isinstance(attributes, int) or (isinstance(attributes, Tensor) and attributes.dim() == 0):
            attributes = torch.full((feats.shape[0],), int(attributes), dtype=torch.long, device=feats.device)
        return self.spatial(feats, attributes.to(feats.device))[1]

    def attention_maps_all(self, images: Tensor) -> Tensor:
        """[A, B, h, w]: every image's map under every attribute."""
        return self.spatial.forward_all(self.features(images))[1]


class ASENv2(ConditionalEmbedder):
    """The released ASENet_V2 (Dong et al., TIP 2021), for an image ``I`` and attribute ``a``.

    One attribute embedding ``e_a`` (d) serves both attention modules, each through its own
    linear transform ``T_1``, ``T_2`` (d -> d):

    * ASA: ``P = tanh(BN(Conv_1x1(V)))`` (d x h x w), ``q = tanh(T_1 e_a)``,
      ``s_j = <P_j, q> / sqrt(d)`` (unbounded; ``bounded=True`` adds a tanh),
      ``alpha = softmax_j(s)``, ``I_s = sum_j alpha_j V_j`` (c);
    * ACA: ``beta = sigmoid(W_2 ReLU(W_1 [I_s, ReLU(T_2 e_a)]))``, ``W_1``: c + d -> ``gate_hidden``;
    * no projection: the embedding is ``I_s ⊙ beta`` (c = 1024 in full), L2-normalised.

    Parameter names follow the release (``conv1``, ``img_bn1``, ``attr_embedding``,
    ``attr_transform1/2``, ``fc1``, ``fc2``) so that its checkpoints map one to one.
    """

    distance = "cosine"
    margin = 0.2
    version = 3  # 3: the released ASENet_V2 (before: ASEN with a scaled dot-product ASA)

    def __init__(self, num_attributes: int, *, backbone: str = "small_cnn", stage: str = "layer3",
                 weights: str | None = None, width: int = 32, hidden: int = 128, gate_hidden: int | None = None,
                 bounded: bool = False) -> None:
        self_backbone = make_backbone(backbone, stage=stage, weights=weights, width=width)
        channels = self_backbone.out_channels
        super().__init__(num_attributes, channels)  # no projection: D = c
        self.backbone, self.hidden, self.bounded = self_backbone, hidden, bool(bounded)
        self.attr_embedding = nn.Embedding(num_attributes, hidden)          # e_a, shared
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)             # ASA, image side
        self.img_bn1 = nn.BatchNorm2d(hidden)
        self.attr_transform1 = nn.Linear(hidden, hidden)                    # T_1
        self.attr_transform2 = nn.Linear(hidden, hidden)                    # T_2
        self.fc1 = nn.Linear(channels + hidden, gate_hidden or hidden)      # W_1
        self.fc2 = nn.Linear(gate_hidden or hidden, channels)               # W_2

    def features(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def _attend(self, feats: Tensor, e: Tensor, per_image: bool) -> tuple[Tensor, Tensor]:
        """ASA for attribute embeddings ``e``: [B, d] one per image (``per_image``) -> (pooled
        [B, c], alpha [B, h, w]); or [A, d] all attributes -> ([A, B, c], [A, B, h, w])."""
        p = torch.tanh(self.img_bn1(self.conv1(feats)))
        q = torch.tanh(self.attr_transform1(e))
        pattern = "bdhw,bd->bhw" if per_image else "bdhw,ad->abhw"
        scores = torch.einsum(pattern, p, q) / math.sqrt(self.hidden)
        alpha = softmax_over_positions(torch.tanh(scores) if self.bounded else scores)
        return weighted_sum_pooling(feats, alpha), alpha

    def _gate(self, pooled: Tensor, e: Tensor) -> Tensor:
        attribute = torch.relu(self.attr_transform2(e)).expand(*pooled.shape[:-1], -1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(torch.cat([pooled, attribute], dim=-1)))))

    def head(self, feats: Tensor, attributes: Tensor) -> dict[str, Tensor]:
        """Every intermediate for each image's own attribute (the keys of :meth:`ASEN.head`)."""
        e = self.attr_embedding(attributes)
        pooled, attention = self._attend(feats, e, per_image=True)
        gate = self._gate(pooled, e)
        gated = pooled * gate
        return {"pooled": pooled, "attention": attention, "gate": gate, "gated": gated,
                "embedding": F.normalize(gated, dim=-1)}

    def embed_from_features(self, feats: Tensor, attributes: Tensor) -> Tensor:
        return self.head(feats, attributes)["embedding"]

    def embed_all_attributes(self, feats: Tensor) -> Tensor:
        """[A, B, c]: every attribute's head on one backbone pass."""
        e = self.attr_embedding.weight
        pooled, _ = self._attend(feats, e, per_image=False)
        return F.normalize(pooled * self._gate(pooled, e.unsqueeze(1)), dim=-1)

    def attention_maps(self, images: Tensor, attributes: Tensor | int) -> Tensor:
        """ASA's ``alpha`` [B, h, w] for ``attributes`` ([B] ids or one id)."""
        feats = self.features(images)
        if isinstance(attributes, int) or attributes.dim() == 0:
            attributes = torch.full((feats.shape[0],), int(attributes), dtype=torch.long, device=feats.device)
        return self.head(feats, attributes.to(feats.device))["attention"]


def default_options(cfg: Any = None) -> dict[str, Any]:
    """The profile's ASEN sizes: the paper's (ResNet-50 layer3, d = 512, D = 1024) in full,
    a small CNN with d = 128 and D = 64 in quick."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return {
        "backbone": default_backbone(cfg),
        "embed_dim": cfg.pick(quick=64, full=1024),
        "hidden": cfg.pick(quick=128, full=512),
        # full: ImageNet weights from a local file when one is found (never downloaded, see
        # fgfs_lib.models.backbones), random weights with a one-line notice otherwise
        "weights": default_weights(cfg),
    }


def build_asen(meta: Any, cfg: Any = None, **options: Any) -> ASEN:
    """``ASEN(meta.num_attributes, **(default_options(cfg) | options))``."""
    return ASEN(meta.num_attributes, **{**default_options(cfg), **options})


@register("asen")
def _build_asen(meta: Any, cfg: Any = None, **options: Any) -> ASEN:
    return build_asen(meta, cfg, **options)


@register("asen_v2")
def _build_asen_v2(meta: Any, cfg: Any = None, **options: Any) -> ASENv2:
    """The released ASENet_V2 at the profile's sizes; no ``embed_dim`` (no projection layer)."""
    defaults = {k: v for k, v in default_options(cfg).items() if k != "embed_dim"}
    return ASENv2(meta.num_attributes, **{**defaults, **options})


@register("asen_wo_asa")
def _build_asen_wo_asa(meta: Any, cfg: Any = None, **options: Any) -> ASEN:
    return build_asen(meta, cfg, **{**options, "use_asa": False})


@register("asen_wo_aca")
def _build_asen_wo_aca(meta: Any, cfg: Any = None, **options: Any) -> ASEN:
    return build_asen(meta, cfg, **{**options, "use_aca": False})


# ------------------------------------------------------------------------------------------
# The runs of notebook 06 (and of scripts/compare_seeds.py): one definition, so that the
# notebooks, the multi-seed script and train_or_load's checkpoint cache agree.
# ------------------------------------------------------------------------------------------


def comparison_runs(cfg: Any = None) -> dict[str, dict[str, Any]]:
    """Label -> keyword arguments of :func:`fgfs_lib.train.train_or_load` for notebook 06's
    table: the two baselines exactly as notebook 05 trains them, ASEN and its ablations with
    the same (profile default) training settings."""
    return {
        "triplet network": {"model_name": "triplet"},
        "CSN": {"model_name": "csn", "model_options": {"mask": "learned"}},
        "ASEN w/o ASA": {"model_name": "asen_wo_asa"},
        "ASEN w/o ACA": {"model_name": "asen_wo_aca"},
        "ASEN": {"model_name": "asen"},
    }


PAPER_KEYS = {"triplet network": "triplet", "CSN": "csn", "ASEN w/o ASA": "asen_wo_asa",
              "ASEN w/o ACA": "asen_wo_aca", "ASEN": "asen"}


def sampler_runs(cfg: Any = None) -> dict[str, dict[str, Any]]:
    """ASEN trained with in-batch triplets and with the papers' 3-image triplets for the
    *same number of backbone passes* per epoch (the profile's default epochs).

    Quick: the default in-batch run (batches of 64 images) against triplets in batches of 16
    (the papers' batch size; 48 images per step), steps chosen so both see the same images
    per epoch. Full: the papers' run (100k triplets per epoch, batch 16) against in-batch
    batches of 64 with the same images per epoch.
    """
    from ..config import load
    from ..train import default_settings

    cfg = cfg if cfg is not None else load()
    base = default_settings(cfg)
    passes = base.steps_per_epoch * base.batch_size * (1 if base.sampling == "in_batch" else 3)
    triplet_batch = 16
    in_batch_size = 64
    return {
        "in-batch triplets": {"model_name": "asen", "sampling": "in_batch", **(
            {} if base.sampling == "in_batch" else
            {"batch_size": in_batch_size, "steps_per_epoch": max(1, passes // in_batch_size)})},
        "3-image triplets": {"model_name": "asen", "sampling": "triplets", **(
            {} if base.sampling == "triplets" else
            {"batch_size": triplet_batch, "steps_per_epoch": max(1, passes // (3 * triplet_batch))})},
    }


def backbone_passes(history: list[dict[str, Any]], settings: dict[str, Any]) -> list[int]:
    """Cumulative images through the backbone after each epoch of a run's ``history``
    (``settings``: the run config's ``settings``)."""
    per_step = settings["batch_size"] * (1 if settings["sampling"] == "in_batch" else 3)
    total, out = 0, []
    for record in history:
        total += int(record["steps"]) * per_step
        out.append(total)
    return out
