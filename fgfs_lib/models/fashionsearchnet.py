"""FashionSearchNet: attribute activation maps, ROI-pooled attribute representations, and
search with attribute manipulation; with its Table 2 baselines "w/o Loc." and AMNet-like.

Introduced in ``notebooks/09_manipulation_search.py`` (stage 1 is notebook 03's classifier).

Paper: K. E. Ak, A. A. Kassim, J. H. Lim, J. Y. Tham, "Fashion search with attribute
manipulation" (FashionSearchNet). No public code exists; this is built from the paper's
equations.

* **Stage 1** (``stage=1``): the multi-attribute GAP classifier of
  :class:`~fgfs_lib.models.classifier.AttributeClassifier` (eq. 1), whose attribute
  activation maps (eq. 2, :mod:`fgfs_lib.cam`) localise each attribute. Box: the largest
  connected region above 20% of the map's maximum (``box_rule="max"``, the paper's words;
  ``"minmax"`` thresholds the min-max normalised map as notebook 03 does).
* **Stage 2** (``stage=2``): each attribute's box is ROI-pooled from the shared conv map
  (``roi_align``, ``roi_size`` x ``roi_size``) into attribute-specific FC layers, giving
  the attribute representation ``h_a(I)``. Trained with classification on ``h_a`` (plus
  eq. 1 on the GAP heads, so the maps stay meaningful) and the soft triplet ranking loss
  (eqs. 3-5, after Hoffer and Ailon)::

      d+ = exp(|h(I) - h(I+)|) / (exp(|h(I) - h(I+)|) + exp(|h(I) - h(I-)|))   (eqs. 3-4)
      L_T = sum_I sum_a d+(h_a(I), h_a(I+), h_a(I-))                              (eq. 5)

  with ``I, I+`` sharing the value of ``a`` and ``I-`` random (here: with another value),
  picked in the mini-batch as the paper does.
* **Prototypes and manipulation**: the mean ``h_a`` of the training images with each value
  (:func:`fgfs_lib.manipulation.value_prototypes`); a query "with ``a*`` = ``v``" replaces
  its ``h_{a*}`` by the prototype of ``v`` (:func:`fgfs_lib.manipulation.manipulate`).
  During training an exponential moving average of the batch means stands in for them.
* **Global representation** (eqs. 6-7): for a manipulated attribute ``a*``::

      F(I, a*) = [h_1(I) lambda_{1,a*}, ..., h_A(I) lambda_{A,a*}] w_{a*}        (eq. 6)
      L_G = sum_I sum_a* d+(F(I^, a*), F(I+, a*), F(I-, a*))                     (eq. 7)

  where ``I^`` is the manipulated query and ``I+`` has exactly its target labels (pairs
  of the mini-batch whose labels differ in one attribute), ``I-`` random. The paper learns
  it after the attribute representations; here it is trained at the same time on detached
  ``h``, which is the same thing for ``h`` (``L_G`` does not move it).

Baselines of the paper's Table 2 (the attribute-based one is
:class:`fgfs_lib.manipulation.AttributeBasedSearcher` on the stage-1 classifier):

* ``fashionsearchnet_wo_loc``: the same network with every box the whole frame, i.e. ROI
  pooling of the global feature map, without activation maps;
* ``amnet_like`` (:class:`AMNetLike`, after Zhao et al.'s AMNet): a global image feature
  fused with a learned memory of value prototypes addressed by the manipulation vector.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import cam
from .. import manipulation as manip
from ..utils import take_rows
from .base import ConditionalEmbedder
from .classifier import AttributeClassifier, classification_loss
from .registry import register

__all__ = [
    "FashionSearchNet",
    "AMNetLike",
    "soft_triplet_loss",
    "in_batch_triplets",
    "one_change_pairs",
    "build_fashionsearchnet",
    "FSNSearcher",
    "AMNetSearcher",
    "fsn_prototypes",
]


# ----------------------------------------------------------------------------- losses, mining


def soft_triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
    """Eqs. 3-5 averaged over the rows: ``d+ = softmax(|a - p|, |a - n|)[0]``."""
    d_pos = (anchor - positive).norm(dim=-1)
    d_neg = (anchor - negative).norm(dim=-1)
    return torch.softmax(torch.stack([d_pos, d_neg], dim=-1), dim=-1)[..., 0].mean()


def _random_pick(allowed: Tensor) -> tuple[Tensor, Tensor]:
    """For each row of bool ``allowed [R, B]``: a uniformly random allowed column, and
    whether the row has any (drawn from the global generator, which the trainer seeds)."""
    noise = torch.rand(allowed.shape, device=allowed.device)
    return torch.where(allowed, noise, -1.0).argmax(1), allowed.any(1)


def in_batch_triplets(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Triplets for one attribute inside a batch: ``values [B]`` (-1 = not applicable).

    Every labelled image is an anchor; its positive is a random *other* image with the same
    value, its negative a random image with another value. Returns (anchor, positive,
    negative) index tensors, only for anchors that have both.
    """
    B = len(values)
    known = values >= 0
    same = (values[:, None] == values[None, :]) & known[:, None] & ~torch.eye(B, dtype=torch.bool, device=values.device)
    other = (values[:, None] != values[None, :]) & known[:, None] & known[None, :]
    pos, has_pos = _random_pick(same)
    neg, has_neg = _random_pick(other)
    keep = (has_pos & has_neg).nonzero(as_tuple=True)[0]
    return keep, pos[keep], neg[keep]


def one_change_pairs(labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Manipulation pairs inside a batch: ``(i, j, a*, k)`` where ``labels[j]`` equals
    ``labels[i]`` with attribute ``a*`` changed (both labelled there; -1 elsewhere must
    match), so "``i`` with ``a*`` = ``labels[j, a*]``" has ``j`` as an answer; ``k`` is a random
    image whose labels differ from that target (the negative)."""
    differ = labels[:, None, :] != labels[None, :, :]  # [B, B, A]
    changed = differ.float().argmax(-1)
    one = differ.sum(-1) == 1
    i, j = one.nonzero(as_tuple=True)
    a = changed[i, j]
    keep = (labels[i, a] >= 0) & (labels[j, a] >= 0)
    i, j, a = i[keep], j[keep], a[keep]
    target_is = (labels[None, :, :] == labels[j][:, None, :]).all(-1)  # [P, B]
    k, has = _random_pick(~target_is)
    return i[has], j[has], a[has], k[has]


# ----------------------------------------------------------------------------- FashionSearchNet


class FashionSearchNet(ConditionalEmbedder):
    """Stage 1 (classifier + activation maps) and stage 2 (ROI attribute representations,
    prototypes, global representation) of FashionSearchNet; see the module notes.

    ``features(images) -> {"map": [B, C, h, w], "boxes": [B, A, 4]}`` (boxes on the feature
    grid); ``attribute_representations(feats) -> [B, A, D]``; ``embed_from_features``
    picks ``h_a`` for each image's attribute (so the course's retrieval MAP applies too).
    """

    distance = "euclidean"
    version = 1

    def __init__(self, backbone: nn.Module, num_values: Sequence[int], *, embed_dim: int = 64, global_dim: int = 128,
                 roi_size: int = 3, localize: bool = True, box_rule: str = "max", threshold: float = 0.2,
                 stage: int = 2, prototype_momentum: float = 0.9):
        super().__init__(len(num_values), embed_dim)
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 (classifier) or 2 (representations), got {stage}")
        self.classifier = AttributeClassifier(backbone, num_values)
        self.num_values = [int(n) for n in num_values]
        self.roi_size, self.localize, self.box_rule, self.threshold = int(roi_size), bool(localize), box_rule, threshold
        self.stage, self.momentum = int(stage), float(prototype_momentum)
        channels, A, D = int(backbone.out_channels), len(num_values), int(embed_dim)
        self.attribute_fc = nn.ModuleList(
            nn.Sequential(nn.Flatten(), nn.Linear(channels * roi_size * roi_size, D), nn.ReLU(), nn.Linear(D, D))
            for _ in range(A))
        self.attribute_heads = nn.ModuleList(nn.Linear(D, n) for n in self.num_values)
        self.lam = nn.Parameter(torch.ones(A, A))  # lam[a*, a]: weight of h_a when a* is manipulated
        self.project = nn.Parameter(torch.randn(A, A * D, global_dim) / (A * D) ** 0.5)  # w_{a*}
        offsets = torch.tensor([0, *torch.tensor(self.num_values).cumsum(0).tolist()])
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("running_prototypes", torch.zeros(int(offsets[-1]), D))
        self.register_buffer("prototype_seen", torch.zeros(int(offsets[-1]), dtype=torch.bool))

    # -- stage 1: maps and boxes -----------------------------------------------------------
    @torch.no_grad()
    def attribute_boxes(self, feature_map: Tensor, image_size: tuple[int, int]) -> Tensor:
        """[B, A, 4] boxes on the feature grid: the box rule on each attribute's activation
        map (predicted class, eq. 2) upsampled to the image; whole frame if not localising."""
        B, _, h, w = feature_map.shape
        A = self.num_attributes
        if not self.localize:
            return feature_map.new_tensor([0.0, 0.0, float(w), float(h)]).expand(B, A, 4).clone()
        pooled = feature_map.mean(dim=(2, 3))
        maps = torch.stack([cam.class_activation_maps(feature_map, head.weight, head(pooled).argmax(1))
                            for head in self.classifier.heads], dim=1)  # [B, A, h, w]
        boxes = cam.fsn_boxes(cam.upsample_maps(maps, image_size), self.threshold, rule=self.box_rule)
        scale = feature_map.new_tensor([w / image_size[1], h / image_size[0]] * 2)
        return boxes.to(feature_map.device) * scale

    def features(self, images: Tensor) -> dict[str, Tensor]:
        feature_map = self.classifier.features(images)
        return {"map": feature_map, "boxes": self.attribute_boxes(feature_map, tuple(images.shape[-2:]))}

    # -- stage 2: attribute and global representations -------------------------------------
    def attribute_representations(self, feats: dict[str, Tensor]) -> Tensor:
        """[B, A, D]: ROI pooling of every attribute's box, then its FC layers (h_a)."""
        from torchvision.ops import roi_align

        fmap, boxes = feats["map"], feats["boxes"]
        B, A = boxes.shape[:2]
        index = torch.arange(B, device=fmap.device, dtype=fmap.dtype).repeat_interleave(A)[:, None]
        rois = torch.cat([index, boxes.reshape(B * A, 4).to(fmap.dtype)], dim=1)
        pooled = roi_align(fmap, rois, output_size=self.roi_size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        pooled = pooled.view(B, A, *pooled.shape[1:])
        return torch.stack([fc(pooled[:, a]) for a, fc in enumerate(self.attribute_fc)], dim=1)

    def global_representation(self, reps: Tensor, manipulated: int) -> Tensor:
        """Eq. 6: ``[h_1 lam_{1,a*}, ..., h_A lam_{A,a*}] w_{a*}`` -> [B, global_dim]."""
        weighted = reps * self.lam[manipulated][None, :, None]
        return weighted.flatten(1) @ self.project[manipulated]

    def embed_from_features(self, feats: Any, attributes: Tensor) -> Tensor:
        reps = self.attribute_representations(feats)
        return reps[torch.arange(len(reps), device=reps.device), attributes]

    def embed_all_attributes(self, feats: Any) -> Tensor:
        return self.attribute_representations(feats).transpose(0, 1)

    # -- prototypes during training ---------------------------------------------------------
    @torch.no_grad()
    def _update_prototypes(self, reps: Tensor, labels: Tensor) -> None:
        for a in range(self.num_attributes):
            known = labels[:, a] >= 0
            if not known.any():
                continue
            rows = labels[known, a] + self.offsets[a]
            sums = torch.zeros_like(self.running_prototypes).index_add_(0, rows, reps[known, a].float())
            counts = torch.bincount(rows, minlength=len(sums)).float()
            present = counts > 0
            means = sums[present] / counts[present, None]
            old = self.running_prototypes[present]
            seen = self.prototype_seen[present, None]
            self.running_prototypes[present] = torch.where(seen, self.momentum * old + (1 - self.momentum) * means, means)
            self.prototype_seen[present] = True

    def training_prototypes(self) -> list[Tensor]:
        return [self.running_prototypes[self.offsets[a]:self.offsets[a + 1]] for a in range(self.num_attributes)]

    # -- the losses ------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Stage 1: eq. 1. Stage 2: eq. 1 + classification on h_a + L_T (eq. 5) + L_G (eq. 7)."""
        if "images" not in batch:
            raise KeyError(f"FashionSearchNet trains on in-batch batches (images, labels); got keys {sorted(batch)}")
        images, labels = batch["images"], batch["labels"]
        if self.stage == 1:
            return classification_loss(self.classifier(images), labels)
        feats = self.features(images)
        gap_loss, gap_logs = classification_loss(self.classifier.logits_from_features(feats["map"]), labels)
        reps = self.attribute_representations(feats)
        rep_loss, rep_logs = classification_loss([head(reps[:, a]) for a, head in enumerate(self.attribute_heads)],
                                                 labels)
        triplet_terms = []
        for a in range(self.num_attributes):
            anchor, pos, neg = in_batch_triplets(labels[:, a])
            if len(anchor):
                rep = reps[:, a]
                triplet_terms.append(soft_triplet_loss(take_rows(rep, anchor), take_rows(rep, pos), take_rows(rep, neg)))
        triplet = torch.stack(triplet_terms).mean() if triplet_terms else reps.sum() * 0
        self._update_prototypes(reps.detach(), labels)
        global_loss, pairs = self._global_loss(reps.detach(), labels)
        loss = gap_loss + rep_loss + triplet + global_loss
        return loss, {"loss": float(loss.detach()), "gap_accuracy": gap_logs["accuracy"],
                      "rep_accuracy": rep_logs["accuracy"], "soft_triplet": float(triplet.detach()),
                      "global": float(global_loss.detach()), "pairs": float(pairs)}

    def _global_loss(self, reps: Tensor, labels: Tensor) -> tuple[Tensor, int]:
        i, j, a, k = one_change_pairs(labels)
        if len(i) == 0:
            return self.lam.sum() * 0, 0
        anchor = manip.manipulate(reps[i], a, labels[j, a], self.training_prototypes())
        terms = []
        for m in torch.unique(a).tolist():
            rows = (a == m).nonzero(as_tuple=True)[0]
            terms.append(soft_triplet_loss(self.global_representation(anchor[rows], m),
                                           self.global_representation(reps[j[rows]], m),
                                           self.global_representation(reps[k[rows]], m)) * len(rows))
        return torch.stack(terms).sum() / len(i), len(i)

    # -- bookkeeping -----------------------------------------------------------------------
    def init_from_state(self, state: dict[str, Tensor]) -> None:
        """Start stage 2 from a stage-1 run: a FashionSearchNet checkpoint, or a plain
        :class:`AttributeClassifier` state (keys ``backbone.*``, ``heads.*``)."""
        if not any(key.startswith("classifier.") for key in state):
            state = {f"classifier.{key}": value for key, value in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(key.startswith("classifier.") for key in missing):
            raise ValueError(f"not a stage-1 state: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def validate(self, data: Any, split: str = "valid", batch_size: int = 256) -> dict[str, Any]:
        """Stage 1: mean attribute accuracy (x100). Stage 2: manipulation Top-30 (x100) on
        ``split`` with prototypes from the training split."""
        target = getattr(data, split)
        if self.stage == 1:
            from .classifier import evaluate_classifier

            acc = evaluate_classifier(self.classifier, target, batch_size=batch_size)["accuracy"] * 100
            return {"overall": float(acc.mean()), "per_attribute": acc.tolist()}
        searcher = FSNSearcher(self, fsn_prototypes(self, data.train, batch_size))
        queries = manip.manipulation_queries(target.labels, self.num_values)
        result = manip.evaluate(searcher, target, queries, ks=(30,))
        return {"overall": result["topk"][30],
                "per_attribute": [result["per_attribute"].get(a, {"topk": {30: float("nan")}})["topk"][30]
                                  for a in range(self.num_attributes)]}


# ----------------------------------------------------------------------------- searchers


@torch.no_grad()
def _encode(model: nn.Module, split: Any, fn: Any, batch_size: int = 256) -> Tensor:
    """``fn(net, images)`` over ``split`` in batches, ``net`` being the model as evaluations run
    it (:func:`fgfs_lib.evaluate.inference_net`); the model's mode is restored."""
    from ..evaluate import inference_net
    from ..utils import device

    dev = device()
    was_training = model.training
    model.to(dev).eval()
    net, memory = inference_net(model, dev)
    out = [fn(net, split.batch(torch.arange(s, min(s + batch_size, len(split)))).to(dev).contiguous(memory_format=memory))
           for s in range(0, len(split), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def fsn_prototypes(model: FashionSearchNet, train_split: Any, batch_size: int = 256) -> list[Tensor]:
    """The paper's prototypes: mean h_a over the training images with each value."""
    reps = _encode(model, train_split, lambda net, x: net.attribute_representations(net.features(x)), batch_size)
    return manip.value_prototypes(reps, train_split.labels.to(reps.device), model.num_values)


class FSNSearcher:
    """FashionSearchNet's search: codes are the attribute representations [N, A, D]; the
    query's ``h_{a*}`` is replaced by the prototype of the wanted value; images compare by
    Euclidean distance of the global representation F(., a*) (``use_global``) or of the
    concatenated ``h`` (``use_global=False``)."""

    similarity = "euclidean"

    def __init__(self, model: FashionSearchNet, prototypes: list[Tensor], use_global: bool = True, batch_size: int = 256):
        self.model, self.prototypes, self.use_global, self.batch_size = model, prototypes, use_global, batch_size

    def encode(self, split: Any) -> Tensor:
        return _encode(self.model, split, lambda net, x: net.attribute_representations(net.features(x)), self.batch_size)

    @torch.no_grad()
    def gallery_vectors(self, codes: Tensor, attribute: int) -> Tensor:
        return self.model.global_representation(codes, attribute) if self.use_global else codes.flatten(1)

    def query_vectors(self, codes: Tensor, attribute: int, values: Tensor) -> Tensor:
        attrs = torch.full_like(values, attribute)
        return self.gallery_vectors(manip.manipulate(codes, attrs, values, self.prototypes), attribute)


# ----------------------------------------------------------------------------- AMNet-like


class AMNetLike(ConditionalEmbedder):
    """AMNet-like baseline (Zhao et al., "Memory-augmented attribute manipulation networks"):
    a global feature ``f`` (backbone, GAP), a memory ``M [sum n_a, m]`` with one learned
    prototype per attribute value, and a fusion ``g(f, M^T e)`` (two FC layers) where the
    manipulation vector ``e`` is +1 on the wanted value and minus the predicted
    probabilities of the attribute's current values (0 for a gallery image). Trained with
    attribute classification on ``f`` and the soft triplet loss between manipulated
    queries and images with their target labels (pairs of the batch that differ in one
    attribute), plus the unmanipulated in-batch triplets of every attribute.
    """

    distance = "euclidean"
    version = 1

    def __init__(self, backbone: nn.Module, num_values: Sequence[int], *, embed_dim: int = 128, memory_dim: int = 64):
        super().__init__(len(num_values), embed_dim)
        self.backbone = backbone
        self.num_values = [int(n) for n in num_values]
        channels = int(backbone.out_channels)
        self.heads = nn.ModuleList(nn.Linear(channels, n) for n in self.num_values)
        offsets = torch.tensor([0, *torch.tensor(self.num_values).cumsum(0).tolist()])
        self.register_buffer("offsets", offsets, persistent=False)
        self.memory = nn.Parameter(torch.randn(int(offsets[-1]), memory_dim) * 0.1)
        self.fuse = nn.Sequential(nn.Linear(channels + memory_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))

    def features(self, images: Tensor) -> Tensor:
        return self.backbone(images).mean(dim=(2, 3))  # f: [B, C]

    def manipulation_vector(self, feats: Tensor, attribute: Tensor, values: Tensor) -> Tensor:
        """e [B, sum n_a]: +1 on the wanted value, minus the predicted distribution of the
        attribute's values (what is taken away)."""
        e = feats.new_zeros(len(feats), int(self.offsets[-1]))
        for a in torch.unique(attribute).tolist():
            rows = (attribute == a).nonzero(as_tuple=True)[0]
            lo, hi = int(self.offsets[a]), int(self.offsets[a + 1])
            e[rows, lo:hi] -= self.heads[a](feats[rows]).softmax(1).detach()
            e[rows, lo + values[rows]] += 1.0
        return e

    def fused(self, feats: Tensor, e: Tensor | None = None) -> Tensor:
        memory = feats.new_zeros(len(feats), self.memory.shape[1]) if e is None else e @ self.memory
        return self.fuse(torch.cat([feats, memory], dim=1))

    def embed_from_features(self, feats: Tensor, attributes: Tensor) -> Tensor:
        return self.fused(feats)

    def embed_all_attributes(self, feats: Tensor) -> Tensor:
        return self.fused(feats).expand(self.num_attributes, -1, -1)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        if "images" not in batch:
            raise KeyError(f"AMNetLike trains on in-batch batches (images, labels); got keys {sorted(batch)}")
        labels = batch["labels"]
        f = self.features(batch["images"])
        cls, cls_logs = classification_loss([head(f) for head in self.heads], labels)
        plain = self.fused(f)
        terms = []
        for a in range(self.num_attributes):
            anchor, pos, neg = in_batch_triplets(labels[:, a])
            if len(anchor):
                terms.append(soft_triplet_loss(take_rows(plain, anchor), take_rows(plain, pos), take_rows(plain, neg)))
        i, j, a, k = one_change_pairs(labels)
        if len(i):
            f_i = take_rows(f, i)
            query = self.fused(f_i, self.manipulation_vector(f_i, a, labels[j, a]))
            terms.append(soft_triplet_loss(query, take_rows(plain, j), take_rows(plain, k)))
        triplet = torch.stack(terms).mean() if terms else plain.sum() * 0
        loss = cls + triplet
        return loss, {"loss": float(loss.detach()), "accuracy": cls_logs["accuracy"],
                      "soft_triplet": float(triplet.detach()), "pairs": float(len(i))}

    def init_from_state(self, state: dict[str, Tensor]) -> None:
        """Start from FashionSearchNet's stage 1 (same backbone and GAP heads), so that the
        baseline begins where FashionSearchNet's stage 2 does."""
        prefix = "classifier."
        mapped = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        missing, unexpected = self.load_state_dict(mapped or state, strict=False)
        if unexpected or any(key.startswith(("backbone.", "heads.")) for key in missing):
            raise ValueError(f"not a stage-1 state: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def validate(self, data: Any, split: str = "valid", batch_size: int = 256) -> dict[str, Any]:
        """Manipulation Top-30 (x100) on ``split``."""
        target = getattr(data, split)
        queries = manip.manipulation_queries(target.labels, self.num_values)
        result = manip.evaluate(AMNetSearcher(self, batch_size), target, queries, ks=(30,))
        return {"overall": result["topk"][30],
                "per_attribute": [result["per_attribute"].get(a, {"topk": {30: float("nan")}})["topk"][30]
                                  for a in range(self.num_attributes)]}


class AMNetSearcher:
    """Codes are the global features f [N, C]; the gallery is ``g(f, 0)``, a query
    ``g(f, M^T e)``; Euclidean distance."""

    similarity = "euclidean"

    def __init__(self, model: AMNetLike, batch_size: int = 256):
        self.model, self.batch_size = model, batch_size

    def encode(self, split: Any) -> Tensor:
        return _encode(self.model, split, lambda net, x: net.features(x), self.batch_size)

    @torch.no_grad()
    def gallery_vectors(self, codes: Tensor, attribute: int) -> Tensor:
        return self.model.fused(codes)

    @torch.no_grad()
    def query_vectors(self, codes: Tensor, attribute: int, values: Tensor) -> Tensor:
        attrs = torch.full_like(values, attribute)
        return self.model.fused(codes, self.model.manipulation_vector(codes, attrs, values))


# ----------------------------------------------------------------------------- registry


PROFILE_WEIGHTS = "profile"  # the builders' default: the profile's start (backbones.default_weights)


def _backbone(cfg: Any, backbone: str | None, stage: str, weights: str | None, width: int) -> nn.Module:
    """The profile's backbone cut after ``stage``; ``weights="profile"`` is the profile's
    start (the pretrained small CNN in quick, ImageNet in full), ``None`` random weights."""
    from .backbones import default_backbone, default_weights, make_backbone

    weights = default_weights(cfg) if weights == PROFILE_WEIGHTS else weights
    return make_backbone(backbone or default_backbone(cfg), stage=stage, weights=weights, width=width)


def build_fashionsearchnet(meta: Any, cfg: Any = None, *, backbone: str | None = None, stage_name: str = "layer3",
                           weights: str | None = PROFILE_WEIGHTS, width: int = 32, roi_size: int | None = None,
                           **options: Any) -> FashionSearchNet:
    """FashionSearchNet on the profile's backbone (``small_cnn`` quick, ``resnet50`` full)
    cut after ``stage_name``; ``roi_size`` defaults to 3 (quick, 8x8 maps) / 7 (full, as
    the paper's ROI pooling). ``options`` go to :class:`FashionSearchNet` (``stage``,
    ``localize``, ``box_rule``, ``embed_dim``, ...)."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    roi_size = roi_size if roi_size is not None else cfg.pick(quick=3, full=7)
    return FashionSearchNet(_backbone(cfg, backbone, stage_name, weights, width), meta.num_values,
                            roi_size=roi_size, **options)


@register("fashionsearchnet")
def _build_fsn(meta: Any, cfg: Any = None, **options: Any) -> FashionSearchNet:
    return build_fashionsearchnet(meta, cfg, **options)


@register("fashionsearchnet_wo_loc")
def _build_fsn_wo_loc(meta: Any, cfg: Any = None, **options: Any) -> FashionSearchNet:
    return build_fashionsearchnet(meta, cfg, **{**options, "localize": False})


@register("amnet_like")
def _build_amnet(meta: Any, cfg: Any = None, *, backbone: str | None = None, stage_name: str = "layer3",
                 weights: str | None = PROFILE_WEIGHTS, width: int = 32, **options: Any) -> AMNetLike:
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return AMNetLike(_backbone(cfg, backbone, stage_name, weights, width), meta.num_values, **options)


# ----------------------------------------------------------------------------- Table 2 runs
# One definition for notebook 09 and scripts/run_fsn_seeds.py, so both share checkpoints.


# training images averaged into the prototypes: quick uses the first 2400 (encoding all
# 7200 triples the evaluation's cost on a CPU), full all of them, as the paper
PROTOTYPE_IMAGES = {"quick": 2400, "full": None}


def table2_settings(cfg: Any = None, scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """Training settings of the stage-1 classifier and of the stage-2 runs (quick: batches
    of 32, Adam 3e-3 cosine; full: the papers' batch 16, 1e-4). ``scale`` multiplies the
    step counts (a shorter run for a loaded machine; recorded in every config)."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    steps1, steps2 = cfg.pick(quick=(400, 150), full=(20_000, 20_000))
    common = dict(epochs=1, batch_size=cfg.pick(quick=32, full=16), lr=cfg.pick(quick=3e-3, full=1e-4),
                  lr_schedule="cosine", validate=False)
    return {"stage1": {**common, "steps_per_epoch": max(1, round(steps1 * scale))},
            "stage2": {**common, "steps_per_epoch": max(1, round(steps2 * scale)),
                       "lr": cfg.pick(quick=1e-3, full=1e-4)}}


def train_table2(data: Any, cfg: Any = None, scale: float = 1.0, verbose: bool = False) -> dict[str, Any]:
    """Train (or load, through :func:`fgfs_lib.train.train_or_load`) the stage-1 classifier
    and, all starting from it with the same stage-2 budget, FashionSearchNet, "w/o Loc."
    and AMNet-like. Returns label -> :class:`~fgfs_lib.train.TrainResult` (``"stage1"``,
    ``"FashionSearchNet"``, ``"w/o Loc."``, ``"AMNet-like"``)."""
    from ..train import train_or_load

    settings = table2_settings(cfg, scale)
    out = {"stage1": train_or_load("fashionsearchnet", data, cfg, model_options={"stage": 1}, use="last",
                                   verbose=verbose, **settings["stage1"])}
    start = str(out["stage1"].checkpoint_dir / "last.pt")
    for label, name in (("FashionSearchNet", "fashionsearchnet"), ("w/o Loc.", "fashionsearchnet_wo_loc"),
                        ("AMNet-like", "amnet_like")):
        options = {"stage": 2} if name != "amnet_like" else {}
        out[label] = train_or_load(name, data, cfg, model_options=options, use="last", init_from=start,
                                   verbose=verbose, **settings["stage2"])
    return out


def table2_searchers(runs: dict[str, Any], train_split: Any, prototype_images: int | None = None) -> dict[str, Any]:
    """Label -> searcher for the Top-K table: FashionSearchNet with its global
    representation and with the plain concatenation of ``h`` (no eqs. 6-7), "w/o Loc.",
    AMNet-like, and the attribute-based baseline on the stage-1 classifier. Prototypes come
    from the first ``prototype_images`` training images (all by default)."""
    proto_split = train_split
    if prototype_images is not None and prototype_images < len(train_split):
        proto_split = _Subset(train_split, torch.arange(prototype_images))
    fsn, wo_loc = runs["FashionSearchNet"].model, runs["w/o Loc."].model
    fsn_protos, wo_protos = fsn_prototypes(fsn, proto_split), fsn_prototypes(wo_loc, proto_split)
    return {
        "FashionSearchNet": FSNSearcher(fsn, fsn_protos),
        "FashionSearchNet (concat, no eqs. 6-7)": FSNSearcher(fsn, fsn_protos, use_global=False),
        "w/o Loc.": FSNSearcher(wo_loc, wo_protos),
        "AMNet-like": AMNetSearcher(runs["AMNet-like"].model),
        "attribute-based": manip.AttributeBasedSearcher(runs["stage1"].model.classifier),
    }


class _Subset:
    """The first images of a split, with the ``labels`` / ``batch`` / ``len`` a searcher uses."""

    def __init__(self, split: Any, idx: Tensor):
        self.split, self.idx, self.labels = split, idx, split.labels[idx]

    def __len__(self) -> int:
        return len(self.idx)

    def batch(self, i: Tensor) -> Tensor:
        return self.split.batch(self.idx[i])
