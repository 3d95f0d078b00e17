"""AG-MAN: multi-level features, an attribute-type classifier and the AGA attention head.

Introduced in ``notebooks/08_agman.py``.

Paper: L. Xiao and T. Yamasaki, *Attribute-Guided Multi-Level Attention Network for
Fine-Grained Fashion Retrieval* (AG-MAN). Written from the paper; the authors' release
(github.com/Dr-LingXiao/AG-MAN) does not run as published, and we only take facts about its
head from it (below). Equation numbers are the paper's.

The network, for an image ``I`` and an attribute ``a`` (one-hot over the ``n`` attributes):

* **Multi-level features** (section 2.2). ``F2``, ``F3``: the backbone's ``layer2`` and
  ``layer3`` maps. ``F23 = F3 + Conv_1x1(MaxPool(F2))``, the pool bringing ``F2`` to
  ``F3``'s grid (whatever it is: 28 -> 14 at 224 px on ResNet-50), the 1x1 conv to ``F3``'s
  channels. The image feature is ``f(I) = [F3, F23]`` (channel concatenation, ``2 c3``
  channels). For the quick profile's small CNN, "layer2" / "layer3" / "layer4" are its
  second / third / fourth conv stages (stride 4 / 8 / 16, 64 / 128 / 256 channels at
  width 32): the same places relative to the map ASEN uses (layer3) as on a ResNet.
* **Classification branch** (section 2.2, eq. 7). ``layer4(F23)``, global average pooling
  and an FC with one logit per attribute *type*: the target of image ``i`` for attribute
  ``a`` is 1 when the image is annotated with ``a`` (whatever the value), 0 when not
  (label ``-1``). Binary cross-entropy; the branch is used in training only.
* **AGA** (section 2.3), on ``f(I)``:

  - ASA, eqs. (1)-(3): ``p(I) = tanh(Conv_{c'}(f(I)))``; ``p(a) = σ(W_a a) * W_a a`` (the
    gated attribute vector, ``W_a`` = an embedding and an FC layer);
    ``α = softmax_j(<p(I)_j, p(a)> / sqrt(c'))`` over the ``h x w`` positions;
    ``f_s = α ⊙ W_1 f(I)`` with ``W_1`` a 1x1 conv (the reference release's "1x1 conv to
    512" before the attention).
  - SA, eq. (4): ``W_SA = σ(Conv_1([Avg_c(f_s), Max_c(f_s)]))`` (a one-filter conv, 1x1 as
    the paper writes; CBAM uses 7x7: ``sa_kernel``), ``f_s' = f_s ⊙ W_SA``, then sum
    pooling over the positions. (SA reads ``h w · f_s`` so that its input does not shrink
    with the grid: ``α`` sums to 1.)
  - ACA, eqs. (5)-(6): ``q(a) = σ(W_a' a) * W_a' a``; ``W_ACA = σ(W_c2 r(W_c1 [q(a), f_s']))``;
    ``f_c = W_2 f_s' ⊙ W_ACA``. (The text says "element-wise addition", the equation a
    concatenation; we follow the equation, as ASEN's ACA does.)
  - CA (Figure 3d): squeeze-excite on the vector, ``f_c' = f_c ⊙ σ(W_up r(W_down f_c))``,
    reduction ``ca_reduction``.
  - ``f(I, a) = normalise(W f_c' + b)``: an FC to the embedding size (1024 in the paper)
    and L2 normalisation; the triplet loss is the cosine one of eq. (8), ``m = 0.2``.

  ``head="release"`` is the released head instead: no CA, ``f(I, a) = normalise(f_c ⊙
  ReLU(m_a))`` with a learned CSN-style mask ``m_a`` per attribute and the embedding size
  of ``W_1``'s output (512 in the release). **The course's numbers use ``head="paper"``.**

* **Loss weighting** (section 2.4, eq. 9), :func:`weighted_total`:

  - ``"eq9"``, as printed: ``L = 0.5 e^{w0} L_c + w0 + 0.5 e^{w1} L_t + w1``. Its gradient
    ``dL/dw = 0.5 e^w L + 1`` is positive for every ``L >= 0``: descent lowers ``w`` at
    every step, without a stationary point, ``L -> -inf`` and both task weights go to 0.
    (The release never gives ``w`` to its optimiser, so it trains with fixed 0.5, 0.5.)
  - ``"uncertainty"`` (the default), the homoscedastic-uncertainty form (Kendall et al.
    2018) that eq. 9 garbles: ``L = Σ_k 0.5 e^{-s_k} L_k + 0.5 s_k``. ``dL/ds = 0.5 (1 -
    e^{-s} L)`` vanishes at ``s = log L``: a task with a large loss gets a small weight.
  - ``"equal"``: ``0.5 L_c + 0.5 L_t``, eq. 9 at its initial point, what the release trains.

  The weights ``s`` are parameters of the model and go to the optimiser through
  :meth:`AGMAN.configure_optimizers`, at ``weight_lr`` (default 10) times the network's
  learning rate: Adam moves a parameter by about ``lr`` per step, so at the network's rate
  ``s`` would move by less than 0.1 in the quick profile's short runs and the weighting would
  stay at its starting point (0.5, 0.5). The paper gives no rate for ``w``.

Registered models (all take every :class:`AGMAN` option):

=====================  ==================================================================
``agman``              everything (multi-level, classification branch, ASA+SA+ACA+CA)
``agman_wo_ml``        f(I) = F3 only (Tables 5-6)
``agman_wo_cls``       no classification branch, triplet loss only (Tables 5-6)
``agman_aga_only``     neither: backbone layer3 + AGA (Tables 5-6 row 1, Tables 9-10)
``agman_wo_asa``       uniform α (mean pooling) instead of ASA (Tables 7-8)
``agman_wo_sa``        / ``agman_wo_aca`` / ``agman_wo_ca``: one AGA part off (Tables 7-8)
``agman_release``      the released head (CSN-style mask, no CA)
=====================  ==================================================================

The baseline of Tables 9-10, ASENet_V2's attention, is ``asen_v2`` (:mod:`.asen`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import default_backbone, default_weights, make_backbone
from .base import ConditionalEmbedder
from .registry import register

__all__ = ["AGMAN", "GatedAttributeVector", "AttributeGuidedSpatial", "ChannelPoolSpatial",
           "AttributeGuidedChannel", "SqueezeExcite", "fuse_levels", "attribute_type_targets",
           "weighted_total", "WEIGHTINGS", "default_options", "run_settings", "ablation_runs", "PAPER_FASHIONAI",
           "CLAIMS", "claim_verdict"]

WEIGHTINGS = ("uncertainty", "equal", "eq9")
HEADS = ("paper", "release")

# The paper's FashionAI MAP (x100), overall column of Tables 5, 7 and 9 (and the main table).
PAPER_FASHIONAI = {
    "AG-MAN": 62.88, "ASENet_V2": 60.76, "CSN": 50.80, "AttnFashion": 55.36,
    "AGA only": 61.97, "AGA + multi-level": 62.48, "AGA + classification": 62.30,
    "w/o ASA": 50.80, "w/o SA": 61.67, "w/o ACA": 61.50, "w/o CA": 61.41,
}


# The paper's claims as (better, worse) pairs of ablation_runs labels: Tables 5-10 and the main table.
CLAIMS = [
    ("AG-MAN", "ASENet_V2"),
    ("AGA only", "ASENet_V2"),  # Tables 9-10: AGA beats ASENet_V2's attention
    ("AGA + multi-level", "AGA only"),  # Tables 5-6
    ("AGA + classification", "AGA only"),
    ("AG-MAN", "AGA + multi-level"),
    ("AG-MAN", "AGA + classification"),
    ("AG-MAN", "w/o ASA"),  # Tables 7-8
    ("AG-MAN", "w/o SA"),
    ("AG-MAN", "w/o ACA"),
    ("AG-MAN", "w/o CA"),
    ("AG-MAN", "AG-MAN (equal weights)"),  # the dynamic weighting (section 2.4)
]


def claim_verdict(claim: dict[str, Any] | None, live_gap: float) -> str:
    """Plain words for a claim: over seeds (``claim`` = ``{"seeds_holding", "seeds"}``) when two
    or more hold it, all agree -> "reproduced", none -> "NOT reproduced"; else the live seed."""
    if claim and claim["seeds"] >= 2:
        if claim["seeds_holding"] == claim["seeds"]:
            return "reproduced"
        return "NOT reproduced" if claim["seeds_holding"] == 0 else "mixed: depends on the seed"
    return ("holds" if live_gap > 0 else "does NOT hold") + " on this seed only"


# ------------------------------------------------------------------ multi-level features


def fuse_levels(f2: Tensor, f3: Tensor, lateral: nn.Module) -> Tensor:
    """``F23 = F3 + lateral(MaxPool(F2))``, the pool to ``F3``'s grid whatever both grids are."""
    return f3 + lateral(F.adaptive_max_pool2d(f2, f3.shape[-2:]))


def attribute_type_targets(labels: Tensor) -> Tensor:
    """Eq. (7)'s targets ``[B, A]``: 1 where the image is annotated with the attribute (any
    value), 0 where the label is -1 (not applicable)."""
    return (labels >= 0).float()


# ------------------------------------------------------------------ the AGA parts


class GatedAttributeVector(nn.Module):
    """Eqs. (2) and (5): ``σ(W a) * W a`` with ``W`` = an embedding and an FC layer.
    ``forward(attributes [..]) -> [.., dim]``; ``forward()`` gives all ``[A, dim]``."""

    def __init__(self, num_attributes: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_attributes, dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, attributes: Tensor | None = None) -> Tensor:
        e = self.embedding.weight if attributes is None else self.embedding(attributes)
        wa = self.fc(e)
        return torch.sigmoid(wa) * wa


class AttributeGuidedSpatial(nn.Module):
    """ASA, eqs. (1)-(3): ``α = softmax_j(<tanh(Conv(f))_j, p(a)> / sqrt(c'))``, ``f_s = α ⊙ W_1 f``.

    ``forward(feats [B,C,h,w], vectors [K,B|1,c']) -> (f_s [K,B,cv,h,w], α [K,B,h,w])``, the
    map as the paper writes it (:meth:`AGMAN.head` pools without building it).
    ``enabled=False`` (the "w/o ASA" ablation): ``α = 1/(h w)``, the mean.
    """

    def __init__(self, in_channels: int, attention_dim: int, value_dim: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled, self.attention_dim = enabled, attention_dim
        self.key = nn.Conv2d(in_channels, attention_dim, 1) if enabled else None  # Conv_{c'} of eq. (1)
        self.value = nn.Conv2d(in_channels, value_dim, 1)  # W_1 of eq. (3)

    def attention(self, feats: Tensor, vectors: Tensor) -> Tensor:
        b, _, h, w = feats.shape
        if not self.enabled:
            return feats.new_full((vectors.shape[0], b, h, w), 1.0 / (h * w))
        p = torch.tanh(self.key(feats))  # eq. (1)
        scores = torch.einsum("bdhw,kbd->kbhw", p, vectors.expand(-1, b, -1)) / math.sqrt(self.attention_dim)
        return torch.softmax(scores.flatten(-2), dim=-1).view_as(scores)  # eq. (3)'s s(.)

    def forward(self, feats: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor]:
        alpha = self.attention(feats, vectors)
        return alpha.unsqueeze(2) * self.value(feats).unsqueeze(0), alpha


class ChannelPoolSpatial(nn.Module):
    """SA, eq. (4): ``W_SA = σ(Conv([mean_c, max_c](x)))``; returns ``(x ⊙ W_SA, W_SA)``.

    ``x`` [..., C, h, w]; ``W_SA`` [..., h, w]. ``scale`` multiplies the conv's input only.

    The conv starts at zero, so the gate starts at 0.5 everywhere: SA begins as a constant
    (a no-op up to scale) and learns where to gate. The paper gives no initialisation. With
    PyTorch's default one, the gate of the pretrained quick backbone saturates at the very
    positions ASA attends to, and "AGA only" reached 26.1 test MAP in notebook 08's budget
    (seed 0; the notebook's live run at commit 6bebcf0) against 57.9 from the zero start
    (``results/08_agman_seeds.json``, seed 0).
    """

    def __init__(self, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def gate(self, mean: Tensor, maximum: Tensor) -> Tensor:
        """``σ(Conv([mean, max]))`` from the channel statistics ``[..., h, w]`` -> ``[..., h, w]``."""
        lead, (h, w) = mean.shape[:-2], mean.shape[-2:]
        pooled = torch.stack([mean.reshape(-1, h, w), maximum.reshape(-1, h, w)], dim=1)  # [N, 2, h, w]
        return torch.sigmoid(self.conv(pooled)).view(*lead, h, w)

    def forward(self, x: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        gate = self.gate(x.mean(-3) * scale, x.amax(-3) * scale)
        return x * gate.unsqueeze(-3), gate


class AttributeGuidedChannel(nn.Module):
    """ACA, eqs. (5)-(6): ``f_c = W_2 x ⊙ σ(W_c2 r(W_c1 [q(a), x]))``.

    ``forward(x [K,B,c], q [K,B|1,c]) -> (f_c [K,B,c], W_ACA [K,B,c])``.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, hidden)  # W_c1
        self.fc2 = nn.Linear(hidden, channels)  # W_c2
        self.mix = nn.Linear(channels, channels)  # W_2 of eq. (6b)

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(torch.cat([q.expand_as(x), x], dim=-1)))))
        return self.mix(x) * gate, gate


class SqueezeExcite(nn.Module):
    """CA (Figure 3d): ``x ⊙ σ(W_up r(W_down x))`` on a pooled vector ``[..., c]``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.down, self.up = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        gate = torch.sigmoid(self.up(torch.relu(self.down(x))))
        return x * gate, gate


# ------------------------------------------------------------------ loss weighting


def weighted_total(losses: list[Tensor], weights: Tensor | None, rule: str) -> Tensor:
    """Combine task losses ``[L_c, L_t]`` with learned ``weights`` (``s`` or ``w``) by ``rule``.

    ``"uncertainty"``: ``Σ 0.5 e^{-s_k} L_k + 0.5 s_k``; ``"eq9"``: ``Σ 0.5 e^{w_k} L_k + w_k``
    (the paper as printed); ``"equal"``: ``Σ 0.5 L_k`` (``weights`` unused).
    """
    stacked = torch.stack(list(losses))
    if rule == "equal":
        return 0.5 * stacked.sum()
    if rule == "uncertainty":
        return (0.5 * torch.exp(-weights) * stacked + 0.5 * weights).sum()
    if rule == "eq9":
        return (0.5 * torch.exp(weights) * stacked + weights).sum()
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {rule!r}")


# ------------------------------------------------------------------ the model


class AGMAN(ConditionalEmbedder):
    """Backbone (layer2 + layer3 fused), AGA head, optional attribute-type classifier.

    ``features(images) -> {"map": f(I), "fused": F23 or F3}``; ``head(feats, attributes)``
    returns every intermediate; ``loss(batch)`` adds the classification loss by ``weighting``.
    """

    distance = "cosine"
    margin = 0.2
    version = 2  # 2: SA's conv starts at zero

    def __init__(
        self,
        num_attributes: int,
        *,
        backbone: str = "small_cnn",
        weights: str | None = None,
        width: int = 32,
        embed_dim: int = 64,
        value_dim: int = 128,
        attention_dim: int = 128,
        aca_hidden: int = 128,
        ca_reduction: int = 16,
        sa_kernel: int = 1,
        multilevel: bool = True,
        classify: bool = True,
        use_asa: bool = True,
        use_sa: bool = True,
        use_aca: bool = True,
        use_ca: bool = True,
        head: str = "paper",
        weighting: str = "uncertainty",
        weight_lr: float = 10.0,
    ) -> None:
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        super().__init__(num_attributes, value_dim if head == "release" else embed_dim)
        self.multilevel, self.classify, self.head_kind, self.weighting = multilevel, classify, head, weighting
        self.use_sa, self.use_aca, self.weight_lr = use_sa, use_aca, weight_lr
        self.use_ca = use_ca and head == "paper"  # the release leaves CA out
        if not (use_asa or use_aca):
            raise ValueError("AG-MAN without ASA and ACA ignores the attribute: use build_model('triplet', ...)")
        self.backbone = make_backbone(backbone, stage="layer4" if classify else "layer3", weights=weights,
                                      width=width, outputs=("layer2", "layer3"))
        c2, c3 = self.backbone.channels["layer2"], self.backbone.channels["layer3"]
        self.lateral = nn.Conv2d(c2, c3, 1) if multilevel else None
        in_channels = 2 * c3 if multilevel else c3
        if classify:
            self.classifier = nn.Linear(self.backbone.channels["layer4"], num_attributes)
            self.loss_weights = nn.Parameter(torch.zeros(2))  # (s_c, s_t) or eq. 9's (w0, w1), start 0
        self.attribute_p = GatedAttributeVector(num_attributes, attention_dim) if use_asa else None  # p(a), eq. (2)
        self.asa = AttributeGuidedSpatial(in_channels, attention_dim, value_dim, enabled=use_asa)
        self.sa = ChannelPoolSpatial(sa_kernel) if use_sa else None
        self.attribute_q = GatedAttributeVector(num_attributes, value_dim) if use_aca else None  # q(a), eq. (5)
        self.aca = AttributeGuidedChannel(value_dim, aca_hidden) if use_aca else None
        self.ca = SqueezeExcite(value_dim, ca_reduction) if self.use_ca else None
        if head == "paper":
            self.projection = nn.Linear(value_dim, embed_dim)
        else:
            self.masks = nn.Parameter(torch.randn(num_attributes, value_dim) * 0.7 + 0.9)  # CSN's init

    # -- backbone ---------------------------------------------------------------------------
    def features(self, images: Tensor) -> dict[str, Tensor]:
        """``{"map": f(I) [B,C,h,w], "fused": F23 (or F3) for the classification branch}``."""
        x = images
        for key in ("stem", "layer1", "layer2", "layer3"):
            if key in self.backbone.stages:
                x = self.backbone.stages[key](x)
            if key == "layer2":
                f2 = x
        f3 = x
        if self.lateral is None:
            return {"map": f3, "fused": f3}
        f23 = fuse_levels(f2, f3, self.lateral)
        return {"map": torch.cat([f3, f23], dim=1), "fused": f23}

    def class_logits(self, feats: dict[str, Tensor]) -> Tensor:
        """The classification branch: ``FC(GAP(layer4(F23)))`` -> ``[B, A]`` logits."""
        return self.classifier(self.backbone.stages["layer4"](feats["fused"]).mean(dim=(2, 3)))

    # -- AGA --------------------------------------------------------------------------------
    def head(self, feats: dict[str, Tensor], attributes: Tensor | None = None) -> dict[str, Tensor]:
        """Every step of AGA. ``attributes`` [B] (each image its own) or ``None`` (all
        attributes). Tensors carry a leading ``K`` (1, or ``A``): ``alpha`` [K,B,h,w],
        ``sa`` [K,B,h,w], ``pooled`` [K,B,c], ``aca`` / ``ca`` gates [K,B,c], ``embedding`` [K,B,D]."""
        fmap = feats["map"]
        ids = None if attributes is None else attributes[None]  # [1, B]
        p = self._vectors(self.attribute_p, ids, fmap)  # p(a): [K, B|1, c']
        alpha = self.asa.attention(fmap, p)  # [K, B, h, w], eq. (3)
        values = self.asa.value(fmap)  # W_1 f(I): [B, c, h, w]
        out = {"alpha": alpha}
        weights = alpha
        if self.sa is not None:
            # f_s = α ⊙ W_1 f(I) is never built as [K, B, c, h, w]: α_j > 0 scales every channel
            # of position j alike, so mean_c(f_s) = α mean_c(W_1 f) and max_c(f_s) = α max_c(W_1 f)
            scale = alpha * float(alpha.shape[-1] * alpha.shape[-2])
            out["sa"] = self.sa.gate(scale * values.mean(1), scale * values.amax(1))  # eq. (4a)
            weights = alpha * out["sa"]  # eq. (4b), folded into the pooling weights
        x = torch.einsum("kbhw,bchw->kbc", weights, values)  # sum pooling of f_s': [K, B, c]
        out["pooled"] = x
        if self.aca is not None:
            q = self._vectors(self.attribute_q, ids, fmap)
            x, out["aca"] = self.aca(x, q)
        if self.ca is not None:
            x, out["ca"] = self.ca(x)
        if self.head_kind == "paper":
            x = self.projection(x)
        else:
            masks = torch.relu(self.masks)
            x = x * (masks[attributes][None] if attributes is not None else masks[:, None])
        out["embedding"] = F.normalize(x, dim=-1)
        return out

    def _vectors(self, module: nn.Module | None, ids: Tensor | None, fmap: Tensor) -> Tensor:
        """The gated attribute vectors ``[1, B, d]`` for ``ids`` [1, B], ``[A, 1, d]`` for all;
        a placeholder ``[K, 1, 1]`` when the module is ablated (only ``K`` is read)."""
        if module is None:
            return fmap.new_zeros(1 if ids is not None else self.num_attributes, 1, 1)
        return module(ids) if ids is not None else module()[:, None]

    def embed_from_features(self, feats: dict[str, Tensor], attributes: Tensor) -> Tensor:
        return self.head(feats, attributes)["embedding"][0]

    def embed_all_attributes(self, feats: dict[str, Tensor]) -> Tensor:
        return self.head(feats)["embedding"]

    def attention_maps(self, images: Tensor, attributes: Tensor | int) -> Tensor:
        """ASA's ``α`` [B, h, w] (sums to 1 per image), for inspection."""
        feats = self.features(images)
        if isinstance(attributes, int):
            attributes = torch.full((images.shape[0],), attributes, dtype=torch.long, device=images.device)
        return self.head(feats, attributes)["alpha"][0]

    # -- training ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Triplet loss (eq. 8), plus eq. (7)'s BCE over attribute types combined by ``weighting``."""
        triplet, logs, feats = self.triplet_loss(batch)
        logs = {"triplet": float(triplet.detach()), **logs}
        if not self.classify:
            return triplet, logs
        logits = self.class_logits(feats)
        classification = F.binary_cross_entropy_with_logits(logits.float(), attribute_type_targets(batch["labels"]))
        total = weighted_total([classification, triplet], self.loss_weights.float(), self.weighting)
        logs.update(classification=float(classification.detach()),
                    weight_c=float(self.loss_weights[0].detach()), weight_t=float(self.loss_weights[1].detach()))
        return total, logs

    def configure_optimizers(self, settings: Any) -> tuple[torch.optim.Optimizer, Any]:
        """Adam: the network at ``lr``; the learned loss weights (``"eq9"``, ``"uncertainty"``)
        in their own group at ``weight_lr x lr``, without weight decay."""
        from ..optim import adam_with_schedule

        weights = [self.loss_weights] if self.classify and self.weighting != "equal" else []
        rest = [p for n, p in self.named_parameters() if p.requires_grad and n != "loss_weights"]
        groups = [{"params": rest}]
        if weights:
            groups.append({"params": weights, "lr": settings.lr * self.weight_lr, "weight_decay": 0.0})
        return adam_with_schedule(groups, settings)


# ------------------------------------------------------------------ factories and runs


def default_options(cfg: Any = None) -> dict[str, Any]:
    """Profile sizes. Full: ResNet-50 (ImageNet weights when a local file exists), W_1 to
    512, embedding 1024 (the paper). Quick: the small CNN, 128-d attention, 64-d embedding."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return {
        "backbone": default_backbone(cfg),
        "weights": default_weights(cfg),
        "embed_dim": cfg.pick(quick=64, full=1024),
        "value_dim": cfg.pick(quick=128, full=512),
        "attention_dim": cfg.pick(quick=128, full=512),
        "aca_hidden": cfg.pick(quick=128, full=512),
        "ca_reduction": cfg.pick(quick=8, full=16),
    }


VARIANTS = {
    "agman": {},
    "agman_wo_ml": {"multilevel": False},
    "agman_wo_cls": {"classify": False},
    "agman_aga_only": {"multilevel": False, "classify": False},
    "agman_wo_asa": {"use_asa": False},
    "agman_wo_sa": {"use_sa": False},
    "agman_wo_aca": {"use_aca": False},
    "agman_wo_ca": {"use_ca": False},
    "agman_release": {"head": "release"},
}


def _factory(fixed: dict[str, Any]):
    def build(meta: Any, cfg: Any = None, **options: Any) -> AGMAN:
        return AGMAN(meta.num_attributes, **{**default_options(cfg), **options, **fixed})
    return build


for _name, _fixed in VARIANTS.items():
    register(_name)(_factory(_fixed))


BUDGETS = ("notebook", "long")


def run_settings(cfg: Any = None, budget: str = "notebook") -> dict[str, Any]:
    """The training settings of notebook 08's runs (overrides of the profile's defaults).

    Quick, ``budget="notebook"``: 2 epochs of 40 in-batch steps of 32 images and no
    validation pass after each epoch (the last weights are the run's result; the validation
    MAP costs more than the training here), so that the notebook's runs fit its budget on a
    2-core CPU. ``budget="long"``: 7.5x more images, the budget of notebook 06's ASEN (4
    epochs of 75 steps of 64), for the question whether a gap closes with training. Full:
    the profile's defaults (the paper's setting, validated every epoch) for either budget.
    """
    from ..config import load

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    cfg = cfg if cfg is not None else load()
    quick = {"epochs": 2, "steps_per_epoch": 40, "batch_size": 32, "validate": False}
    if budget == "long":
        quick = {**quick, "epochs": 4, "steps_per_epoch": 75, "batch_size": 64}
    return cfg.pick(quick=quick, full={})


def ablation_runs(group: str = "all", cfg: Any = None, budget: str = "notebook") -> dict[str, dict[str, Any]]:
    """Label -> ``train_or_load`` keyword arguments for notebook 08 and the seeds script.

    ``"main"``: ASENet_V2 against AG-MAN, AG-MAN with fixed equal loss weights, and the
    Tables 5-6 grid; ``"aga"``: Tables 7-8's one-part-off runs; ``"all"``: both. Every run
    uses :func:`run_settings` at ``budget``.
    """
    settings = run_settings(cfg, budget)
    main = {
        "ASENet_V2": {"model_name": "asen_v2"},
        "AGA only": {"model_name": "agman_aga_only"},
        "AGA + multi-level": {"model_name": "agman_wo_cls"},
        "AGA + classification": {"model_name": "agman_wo_ml"},
        "AG-MAN": {"model_name": "agman"},
        "AG-MAN (equal weights)": {"model_name": "agman", "model_options": {"weighting": "equal"}},
    }
    aga = {f"w/o {part}": {"model_name": f"agman_wo_{part.lower()}"} for part in ("ASA", "SA", "ACA", "CA")}
    runs = {"main": main, "aga": aga, "all": {**main, **aga}}[group]
    return {label: {**spec, **settings} for label, spec in runs.items()}
