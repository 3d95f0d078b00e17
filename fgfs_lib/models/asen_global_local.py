"""ASEN++: a global branch that finds the attribute, a local branch that zooms into it.

Introduced in ``notebooks/07_asen_global_local.py``; three seeds by
``scripts/run_asenpp_seeds.py`` (``results/07_asenpp_seeds.*``).

Paper: J. Dong, Z. Ma, X. Mao, X. Yang, Y. He, R. Hong, S. Ji, *Fine-Grained Fashion
Similarity Prediction by Attribute-Specific Embedding Learning*, IEEE TIP 2021 (the journal
version of ASEN). Written from the paper and from a reading of the authors' released
forward pass; no code of theirs is copied.

Notation: ``V_g`` the global backbone's map of the whole image, ``a`` the attribute, ``e_a``
its embedding (one ``nn.Embedding`` shared by both branches, as released).

Each branch (:class:`BranchHead`, the released ``attnnet``), on a backbone map ``V`` with
``c`` channels and a common size ``d`` (global 512 / local 256 in the full profile):

* (1) ``P = tanh(Conv_1x1(V))`` in R^{d x h x w},  ``q = tanh(T_1 e_a)`` in R^d;
* (2) ``s_j = <P_j, q> / sqrt(d)``, ``alpha = softmax_j(s)`` (no tanh on the score);
* (3) ``f = sum_j alpha_j V_j`` (sum pooling of the backbone map);
* (4) ``beta = sigmoid(W_2 ReLU(W_1 [f, ReLU(T_2 e_a)]))``, ``W_1``: c + |e| -> c/2,
  ``W_2``: c/2 -> c (a reduction of 2); ``f <- f * beta``;
* (5) ``x = FC(f)`` in R^D, L2-normalised.

The region of interest (:func:`roi_boxes`, the released per-image OpenCV procedure done on
tensors for a whole batch): upsample ``alpha`` of the global branch to the image,
min-max normalise, threshold (0.4 by default; the released FashionAI stage-2 configuration
uses 0.1), bounding box of *all* foreground pixels, squared on its centre (side = the longer
edge) and shifted inside the frame (:func:`fgfs_lib.cam.asen_boxes`). The local branch
embeds that square cropped from the image and resized to ``crop_size`` (ResNet-34 to layer3
on 112 px crops in the full profile) with ``torchvision.ops.roi_align``: one call crops
every (image, attribute) pair of a batch.

Training (two stages, both through :mod:`fgfs_lib.train`):

* stage 1 (``stage="global"``): the global branch alone, the triplet loss on ``x_g``;
* stage 2 (``stage="both"``, ``init_from`` = the stage-1 checkpoint): both branches, the
  global one at a tenth of the learning rate (``configure_optimizers``);
  ``L = L_trip(x_g) + 0.1 L_trip(x_l) + 0.1 L_align``, ``L_align`` = mean over the embedded
  (image, attribute) pairs of ``max(0, 1 - cos(x_g, x_l))``. (The release sums that mean
  over the anchor, positive and negative images of a triplet: three times our in-batch
  value for the same pairs.)

Test score: ``0.6 cos(x_g, x_g') + 0.4 cos(x_l, x_l')``, computed as the dot product of the
concatenations ``[sqrt(0.6) x_g, sqrt(0.4) x_l]`` (``score="fused"``; ``"global"`` and
``"local"`` for the ablations; ``fusion`` sets the 0.6).

In-batch triplets need a crop per (image, attribute): only pairs whose attribute is
annotated can enter a triplet, so only those are cropped and embedded by the local branch
(about half of the A pairs of a FashionSynth image); the others get zeros, which no valid
triplet uses.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import cam
from ..utils import take_rows
from .backbones import default_backbone, default_weights, make_backbone
from .base import ConditionalEmbedder
from .registry import register
from .released import register_released
from .released import register_released

__all__ = ["BranchHead", "ASENGlobalLocal", "roi_boxes", "crop_pairs", "default_options", "variant", "stage_runs",
           "train_stages", "attribute_groups", "asenpp_from_released"]

STAGES = ("global", "both")
SCORES = ("fused", "global", "local")


class BranchHead(nn.Module):
    """One branch's attention and projection, eqs. (1)-(5), for any grid size.

    ``forward(V [B,c,h,w], e [B,|e|]) -> (x [B,D] unit vectors, alpha [B,h,w])``.
    """

    def __init__(self, channels: int, attribute_dim: int, common: int, embed_dim: int):
        super().__init__()
        self.common = common
        self.conv = nn.Conv2d(channels, common, kernel_size=1)            # eq. (1), image side
        self.attr_transform1 = nn.Linear(attribute_dim, common)           # eq. (1), attribute side
        self.attr_transform2 = nn.Linear(attribute_dim, attribute_dim)    # eq. (4), attribute side
        self.fc1 = nn.Linear(channels + attribute_dim, channels // 2)      # eq. (4), W_1
        self.fc2 = nn.Linear(channels // 2, channels)                      # eq. (4), W_2
        self.feature_fc = nn.Linear(channels, embed_dim)                   # eq. (5)

    def attention(self, feats: Tensor, e: Tensor) -> Tensor:
        """Eqs. (1)-(2): alpha [B, h, w], summing to 1 per image."""
        p = torch.tanh(self.conv(feats))                                   # [B, d, h, w]
        q = torch.tanh(self.attr_transform1(e))                            # [B, d]
        scores = torch.einsum("bdhw,bd->bhw", p, q) / math.sqrt(self.common)
        return torch.softmax(scores.flatten(1), dim=1).view_as(scores)

    def forward(self, feats: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        alpha = self.attention(feats, e)
        pooled = torch.einsum("bchw,bhw->bc", feats, alpha)                # eq. (3)
        joint = torch.cat([pooled, torch.relu(self.attr_transform2(e))], dim=1)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(joint))))         # eq. (4)
        return F.normalize(self.feature_fc(pooled * gate), dim=-1), alpha  # eq. (5)


def roi_boxes(attention: Tensor, image_size: tuple[int, int], threshold: float) -> Tensor:
    """The released ROI on tensors: [N, h, w] attention maps -> [N, 4] square boxes
    (x0, y0, x1, y1) in image pixels (see the module docstring)."""
    return cam.asen_boxes(cam.upsample_maps(attention.detach(), image_size), threshold=threshold)


def crop_pairs(images: Tensor, image_index: Tensor, boxes: Tensor, crop_size: int) -> Tensor:
    """Crops [N, 3, s, s] of ``images[image_index[n]]`` inside ``boxes[n]``, resized to
    ``crop_size``: one ``roi_align`` for the whole batch (bilinear samples, 2 per output
    pixel and axis), no copy of the images."""
    from torchvision.ops import roi_align

    rois = torch.cat([image_index.to(images.dtype).unsqueeze(1), boxes.to(images.dtype)], dim=1)
    return roi_align(images, rois, output_size=(crop_size, crop_size), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


class ASENGlobalLocal(ConditionalEmbedder):
    """ASEN++ (see the module docstring). ``stage`` picks the training stage, ``score`` the
    embedding that evaluation ranks with."""

    distance = "cosine"
    margin = 0.2
    version = 2  # 2: the local branch starts from the profile's weights at width 32

    def __init__(self, num_attributes: int, *, backbone: str = "small_cnn", local_backbone: str = "small_cnn",
                 weights: Any = None, local_weights: Any = None, width: int = 32, local_width: int = 32,
                 attribute_dim: int = 128,
                 global_common: int = 128, local_common: int = 64, embed_dim: int = 64, crop_size: int = 32,
                 threshold: float = 0.4, stage: str = "both", score: str = "fused", fusion: float = 0.6,
                 local_weight: float = 0.1, align_weight: float = 0.1, global_lr_scale: float = 0.1):
        if stage not in STAGES or score not in SCORES:
            raise ValueError(f"stage must be one of {STAGES} and score one of {SCORES}; got {stage!r}, {score!r}")
        if stage == "global" and score != "global":
            score = "global"  # stage 1 has no trained local branch to score with
        embedded = 2 * embed_dim if score == "fused" else embed_dim
        super().__init__(num_attributes, embedded)
        self.stage, self.score, self.fusion, self.threshold = stage, score, float(fusion), float(threshold)
        self.crop_size, self.local_weight, self.align_weight = int(crop_size), local_weight, align_weight
        self.global_lr_scale = global_lr_scale
        self.attribute_embedding = nn.Embedding(num_attributes, attribute_dim)  # shared by both branches
        self.global_backbone = make_backbone(backbone, stage="layer3", weights=weights, width=width)
        self.local_backbone = make_backbone(local_backbone, stage="layer3", weights=local_weights, width=local_width)
        self.global_head = BranchHead(self.global_backbone.out_channels, attribute_dim, global_common, embed_dim)
        self.local_head = BranchHead(self.local_backbone.out_channels, attribute_dim, local_common, embed_dim)
        if stage == "global":  # stage 1 trains no local parameter (and DDP must not wait for their gradients)
            self.local_backbone.requires_grad_(False)
            self.local_head.requires_grad_(False)

    # -- the two branches -----------------------------------------------------------------
    def features(self, images: Tensor) -> dict[str, Tensor]:
        """The attribute-free part: the global map and the images (the local branch crops them)."""
        return {"global": self.global_backbone(images), "images": images}

    def _global(self, feats: dict[str, Tensor], index: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        return self.global_head(take_rows(feats["global"], index), self.attribute_embedding(attributes))

    def _local(self, feats: dict[str, Tensor], index: Tensor, attributes: Tensor, alpha: Tensor
               ) -> tuple[Tensor, Tensor]:
        images = feats["images"]
        boxes = roi_boxes(alpha, tuple(images.shape[-2:]), self.threshold)
        crops = crop_pairs(images, index, boxes, self.crop_size)
        x, _ = self.local_head(self.local_backbone(crops), self.attribute_embedding(attributes))
        return x, boxes

    def branches(self, feats: dict[str, Tensor], index: Tensor, attributes: Tensor) -> dict[str, Tensor]:
        """Both branches for the pairs (image ``index[n]``, attribute ``attributes[n]``):
        ``global`` / ``local`` [N, D] unit vectors, ``attention`` [N, h, w], ``boxes`` [N, 4]."""
        x_g, alpha = self._global(feats, index, attributes)
        out = {"global": x_g, "attention": alpha}
        if self.stage == "both" or self.score == "local":
            out["local"], out["boxes"] = self._local(feats, index, attributes, alpha)
        return out

    def _scored(self, parts: dict[str, Tensor]) -> Tensor:
        if self.score == "global":
            return parts["global"]
        if self.score == "local":
            return parts["local"]
        return torch.cat([math.sqrt(self.fusion) * parts["global"],
                          math.sqrt(1.0 - self.fusion) * parts["local"]], dim=1)

    def embed_from_features(self, feats: dict[str, Tensor], attributes: Tensor) -> Tensor:
        index = torch.arange(len(attributes), device=attributes.device)
        return self._scored(self.branches(feats, index, attributes))

    def embed_all_attributes(self, feats: dict[str, Tensor]) -> Tensor:
        """[A, B, D]: every image under every attribute (crops for all A x B pairs)."""
        batch = feats["global"].shape[0]
        device = feats["global"].device
        index = torch.arange(batch, device=device).repeat(self.num_attributes)
        attributes = torch.arange(self.num_attributes, device=device).repeat_interleave(batch)
        return self._scored(self.branches(feats, index, attributes)).view(self.num_attributes, batch, -1)

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Stage 1: the global triplet loss. Stage 2: global + 0.1 local + 0.1 alignment."""
        from .. import distributed, losses

        if "images" not in batch:
            raise KeyError("ASEN++ trains on in-batch triplets (sampling='in_batch')")
        feats = self.features(batch["images"])
        labels = batch["labels"]
        known = labels.t() >= 0                                    # [A, B]: pairs that can enter a triplet
        attributes, index = known.nonzero(as_tuple=True)
        parts = self.branches(feats, index, attributes)
        total, logs = 0.0, {}
        for name, weight in (("global", 1.0), ("local", self.local_weight)):
            if name not in parts or (name == "local" and self.stage != "both"):
                continue
            every = parts[name].new_zeros(self.num_attributes, labels.shape[0], parts[name].shape[1])
            every[attributes, index] = parts[name]
            term, _ = losses.batch_all_triplet_loss(distributed.gather(every, dim=1), distributed.gather(labels),
                                                    margin=self.margin, average=self.triplet_average)
            total = total + weight * term
            logs[f"triplet_{name}"] = float(term.detach())
        if self.stage == "both":
            align = (1.0 - (parts["global"] * parts["local"]).sum(-1)).clamp_min(0).mean()
            total = total + self.align_weight * align
            logs["align"] = float(align.detach())
            logs["crops"] = float(len(index))
        return total, logs

    def configure_optimizers(self, settings: Any):
        """Stage 2: the global branch (and the shared attribute embedding) at
        ``global_lr_scale`` x lr, the local branch at lr. Stage 1: the global branch at lr."""
        from ..optim import adam_with_schedule

        local = list(self.local_backbone.parameters()) + list(self.local_head.parameters())
        local_ids = {id(p) for p in local}
        global_ = [p for p in self.parameters() if id(p) not in local_ids]
        if self.stage == "global":
            return adam_with_schedule(global_, settings)
        return adam_with_schedule([{"params": global_, "lr": settings.lr * self.global_lr_scale},
                                   {"params": local, "lr": settings.lr}], settings)


def default_options(cfg: Any = None) -> dict[str, Any]:
    """Quick: the pretrained small CNN in both branches (global on the 64 px image, local on
    32 px crops), small heads.
    Full: ResNet-50 to layer3 (global, 224 px) and ResNet-34 to layer3 (local, 112 px crops),
    common sizes 512 / 256, attribute embedding 512, embedding 1024, threshold 0.1 (the
    released FashionAI stage-2 setting)."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return {
        "backbone": default_backbone(cfg),
        "local_backbone": cfg.pick(quick="small_cnn", full="resnet34"),
        "weights": default_weights(cfg),
        # both branches start from the profile's weights, as the paper's two ImageNet ResNets;
        # quick, seed 0 (notebook 07): local only 74.0 test MAP from the pretrained small CNN,
        # 39.6 from a random one of half the width (commit 6bebcf0; fused 87.8 vs 85.6)
        "local_weights": default_weights(cfg),
        "attribute_dim": cfg.pick(quick=128, full=512),
        "global_common": cfg.pick(quick=128, full=512),
        "local_common": cfg.pick(quick=64, full=256),
        "embed_dim": cfg.pick(quick=64, full=1024),
        "crop_size": cfg.pick(quick=32, full=112),
        "threshold": cfg.pick(quick=0.4, full=0.1),
    }


def build(meta: Any, cfg: Any = None, **options: Any) -> ASENGlobalLocal:
    return ASENGlobalLocal(meta.num_attributes, **{**default_options(cfg), **options})


@register("asenpp")
def _build_asenpp(meta: Any, cfg: Any = None, **options: Any) -> ASENGlobalLocal:
    """Stage 2 by default; ``--option stage=global`` for stage 1."""
    return build(meta, cfg, **options)


@register("asenpp_global")
def _build_asenpp_global(meta: Any, cfg: Any = None, **options: Any) -> ASENGlobalLocal:
    """Stage 1: the global branch alone."""
    return build(meta, cfg, **{**options, "stage": "global"})


# ------------------------------------------------------------------------------------------
# The runs of notebook 07 and scripts/run_asenpp_seeds.py: one definition, so that the notebook,
# the multi-seed script and train_or_load's checkpoint cache agree.
# ------------------------------------------------------------------------------------------


def variant(model: ASENGlobalLocal, *, score: str | None = None, fusion: float | None = None,
            threshold: float | None = None) -> ASENGlobalLocal:
    """A copy of a trained stage-2 ``model`` that ranks with another score (``"global"``,
    ``"local"``, ``"fused"``), fusion weight or ROI threshold: the test-time ablations, no
    retraining."""
    out = copy.deepcopy(model)
    if score is not None:
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        out.score = score
    out.fusion = out.fusion if fusion is None else float(fusion)
    out.threshold = out.threshold if threshold is None else float(threshold)
    single = model.global_head.feature_fc.out_features
    out.embed_dim = 2 * single if out.score == "fused" else single
    return out


def stage_runs(cfg: Any = None) -> dict[str, dict[str, Any]]:
    """Label -> :func:`fgfs_lib.train.train_or_load` arguments. Stage-2 runs get ``init_from``
    (the stage-1 checkpoint) from :func:`train_stages`.

    Quick: stage 1 for 2 epochs of the profile's default steps (half the budget of notebook
    06's ASEN: what a shared CPU trained before the deadline of the run that introduced it);
    stage 2 for one epoch of 75 in-batch steps at lr 1e-3 (local) / 1e-4 (global). Full: stage 1 the
    papers' ASEN schedule; stage 2 as released for FashionAI: 20 epochs, StepLR(1, 0.9),
    lr 1e-4 (local) / 1e-5 (global)."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    stage2 = cfg.pick(quick=dict(epochs=1), full=dict(epochs=20, lr=1e-4, lr_step=1, lr_gamma=0.9))
    return {
        "stage 1 (global only)": {"model_name": "asenpp_global", **cfg.pick(quick=dict(epochs=2), full={})},
        "stage 2": {"model_name": "asenpp", **stage2},
        "stage 2 w/o alignment": {"model_name": "asenpp", "model_options": {"align_weight": 0.0}, **stage2},
    }


def train_stages(data: Any, cfg: Any = None, labels: list[str] | None = None, verbose: bool = True
                 ) -> dict[str, Any]:
    """Train (or load, through ``train_or_load``) stage 1, then each stage-2 run of
    :func:`stage_runs` started from stage 1's best checkpoint. Returns label -> TrainResult."""
    from ..config import load
    from ..train import train_or_load

    cfg = cfg if cfg is not None else load()
    runs = stage_runs(cfg)
    labels = labels if labels is not None else list(runs)
    first = "stage 1 (global only)"
    spec = dict(runs[first])
    results = {first: train_or_load(spec.pop("model_name"), data, cfg, verbose=verbose, **spec)}
    init = str(Path(results[first].checkpoint_dir) / "best.pt")
    for label in labels:
        if label != first:
            spec = dict(runs[label])
            results[label] = train_or_load(spec.pop("model_name"), data, cfg, verbose=verbose, init_from=init, **spec)
    return results


def attribute_groups(attribute_names: list[str]) -> dict[str, list[int]]:
    """FashionSynth's (and FashionAI's) attributes by the size of their region: ``lengths``
    (``*_length``: a hem or a cuff), ``details`` (``*_design``: a small patch at the neck) and
    ``whole garment`` (the rest: colour, pattern)."""
    groups: dict[str, list[int]] = {"lengths": [], "details": [], "whole garment": []}
    for a, name in enumerate(attribute_names):
        key = "lengths" if name.endswith("length") else "details" if name.endswith("design") else "whole garment"
        groups[key].append(a)
    return groups


FUSIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # weight of the global cosine; 1.0 = global only, 0.0 = local only


def fusion_maps(model: ASENGlobalLocal, data: Any, split: str = "test", fusions: tuple[float, ...] = FUSIONS,
                threshold: float | None = None) -> dict[float, dict[str, Any]]:
    """Test MAP of a stage-2 ``model`` for each fusion weight ``b`` (score ``b cos_g + (1-b)
    cos_l``), from one embedding pass per branch: fusion -> the result of
    :func:`fgfs_lib.metrics.mean_average_precision` (with ``per_attribute_name``)."""
    from .. import evaluate, metrics

    queries, candidates = getattr(data, f"{split}_queries"), getattr(data, f"{split}_candidates")
    pairs = torch.cat([queries, candidates])
    # one pass: the fused embedding at fusion 0.5 is [g, l] / sqrt(2); both branches come out of it
    both = evaluate.embed_pairs(variant(model, score="fused", fusion=0.5, threshold=threshold), getattr(data, split),
                                pairs) * math.sqrt(2.0)
    parts = dict(zip(("global", "local"), both.chunk(2, dim=1)))
    names = list(data.meta.attribute_names)
    out = {}
    for b in fusions:
        emb = torch.cat([math.sqrt(b) * parts["global"], math.sqrt(1.0 - b) * parts["local"]], dim=1)
        q, c = emb[: len(queries)], emb[len(queries):]
        result = metrics.mean_average_precision(q, queries[:, 1], queries[:, 2], c, candidates[:, 1], candidates[:, 2])
        result["per_attribute_name"] = {names[a]: v for a, v in result["per_attribute"].items()}
        out[float(b)] = result
    return out


# ------------------------------------------------------------------------------------------
# The authors' released checkpoints (Maryeon/asenpp): {'model': state_dict, ...} with keys
#   choices.{global,local}.attrnet.attr_embedding.weight   (one module: the same tensor twice)
#   choices.{global,local}.basenet.{conv1,bn1,layer1..layer3}.*   (torchvision ResNet names)
#   choices.{global,local}.attnnet.{conv,attr_transform1,attr_transform2,fc1,fc2,feature_fc}.*
# Their forward returns the unnormalised feature_fc output; evaluation L2-normalises it, as
# BranchHead does, so the rankings are the same.
# ------------------------------------------------------------------------------------------

_RELEASED_BRANCHES = {"global": ("global_backbone", "global_head"), "local": ("local_backbone", "local_head")}


def _released_resnet(state: dict[str, Tensor], prefix: str) -> str:
    """Which torchvision ResNet a released ``basenet`` is (bottlenecks: resnet50; else by depth)."""
    if f"{prefix}layer1.0.conv3.weight" in state:
        return "resnet50"
    return "resnet34" if f"{prefix}layer1.2.conv1.weight" in state else "resnet18"


def _released_key(key: str) -> str | None:
    """Our name for a released key (None: a key with no counterpart, e.g. a ResNet ``fc``)."""
    parts = key.split(".")
    if len(parts) < 4 or parts[0] != "choices" or parts[1] not in _RELEASED_BRANCHES:
        return None
    backbone, head = _RELEASED_BRANCHES[parts[1]]
    module, rest = parts[2], ".".join(parts[3:])
    if module == "attrnet":
        return "attribute_embedding." + rest.removeprefix("attr_embedding.")
    if module == "attnnet":
        return f"{head}.{rest}"
    if module == "basenet":
        stem = {"conv1": "stages.stem.0", "bn1": "stages.stem.1"}
        first, _, tail = rest.partition(".")
        if first in stem:
            return f"{backbone}.{stem[first]}.{tail}"
        if first in ("layer1", "layer2", "layer3"):
            return f"{backbone}.stages.{rest}"
    return None


@register_released("asenpp")
def asenpp_from_released(state_dict: dict[str, Tensor], num_attributes: int, **options: Any) -> ASENGlobalLocal:
    """An :class:`ASENGlobalLocal` holding a released ASEN++ checkpoint's weights.

    ``state_dict``: the checkpoint's ``'model'`` entry (or the whole checkpoint; a DDP
    ``module.`` prefix is dropped). Backbones and layer sizes are read from the tensors;
    ``options`` set the rest (``crop_size``, ``threshold``, ``score``, ``fusion``). A
    checkpoint without ``choices.local`` gives a stage-1 model. Raises ``ValueError`` naming
    the keys that do not fit."""
    state = state_dict.get("model", state_dict) if isinstance(state_dict, dict) else state_dict
    state = {k.removeprefix("module."): v for k, v in state.items()}
    embedding = state.get("choices.global.attrnet.attr_embedding.weight")
    if embedding is None:
        raise ValueError("not an ASEN++ checkpoint: no 'choices.global.attrnet.attr_embedding.weight' "
                         "(expected the layout of Maryeon/asenpp: choices.global.* / choices.local.*)")
    if embedding.shape[0] != num_attributes:
        raise ValueError(f"the checkpoint embeds {embedding.shape[0]} attributes, not {num_attributes}")
    has_local = "choices.local.attnnet.feature_fc.weight" in state
    sizes = dict(
        backbone=_released_resnet(state, "choices.global.basenet."),
        local_backbone=_released_resnet(state, "choices.local.basenet.") if has_local else "resnet34",
        attribute_dim=embedding.shape[1],
        global_common=state["choices.global.attnnet.conv.weight"].shape[0],
        embed_dim=state["choices.global.attnnet.feature_fc.weight"].shape[0],
        stage="both" if has_local else "global",
        crop_size=112, threshold=0.1,
    )
    if has_local:
        sizes["local_common"] = state["choices.local.attnnet.conv.weight"].shape[0]
    model = ASENGlobalLocal(num_attributes, **{**sizes, **options})
    ours = {}
    for key, value in state.items():
        name = _released_key(key)
        if name is not None:
            ours[name] = value
    own = model.state_dict()
    expected = {k for k in own if has_local or not k.startswith("local_")}
    missing = sorted(expected - set(ours) - {k for k in own if k.endswith("num_batches_tracked")})
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in ours.items()
              if k in own and v.shape != own[k].shape]
    if missing or shapes or set(ours) - set(own):
        raise ValueError(f"released ASEN++ checkpoint does not fit: missing {missing[:5]}, "
                         f"shapes {shapes[:5]}, unknown {sorted(set(ours) - set(own))[:5]}")
    model.load_state_dict(ours, strict=False)
    return model.eval()


# fgfs_lib.models.load_released(path, "asenpp", num_attributes) reads the authors' checkpoints
register_released("asenpp")(asenpp_from_released)
