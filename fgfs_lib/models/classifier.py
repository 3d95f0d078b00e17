"""Multi-attribute classifier with global average pooling: FashionSearchNet's stage 1.

Introduced in ``notebooks/03_cam_localization.py`` (reused by the ASEN++ notebook).

Paper: Ak et al., "FashionSearchNet" / "Fashion search with attribute manipulation".
Before it learns any similarity, FashionSearchNet trains a classifier whose only pooling
is a global average (GAP), so that every attribute head is a linear map of the *average*
conv feature and its class activation map (eq. 2, :mod:`fgfs_lib.cam`) localises the
attribute. Its loss is the summed cross-entropy over images and attributes::

    L_C = - sum_I sum_a log p(g_Ia | x_I w_a)                                   (eq. 1)

with ``x_I`` the GAP feature of image ``I`` and ``w_a`` the head of attribute ``a``.
FashionSynth (like FashionAI) labels only the attributes that apply to a garment (no
sleeve length on trousers): those labels are ``-1`` and drop out of the sum. We divide
the sum by the batch size (eq. 1 per image), which only rescales the learning rate.

It ranks nothing, but it trains through the same loop as every retrieval model
(:class:`fgfs_lib.train.Trainer`): batches of the ``classification`` kind (images and their
label rows, :mod:`fgfs_lib.batches`), :meth:`AttributeClassifier.loss` (eq. 1),
:meth:`AttributeClassifier.validate` (mean per-attribute accuracy x100, the score the loop
tracks), and the loop's checkpoints and cache (``train_or_load("attribute_classifier", ...)``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register

__all__ = [
    "AttributeClassifier",
    "classification_loss",
    "build_classifier",
    "predict",
    "evaluate_classifier",
    "majority_accuracy",
]


class AttributeClassifier(nn.Module):
    """Backbone -> global average pooling -> one linear head per attribute.

    ``features(images) -> [B, C, h, w]`` is the map CAM weights (eq. 2);
    ``forward(images) -> list of A logit tensors [B, n_a]``.
    """

    version = 1  # bump when the computation changes: it keys the checkpoint cache

    def __init__(self, backbone: nn.Module, num_values: Sequence[int]):
        super().__init__()
        self.backbone = backbone
        self.num_values = [int(n) for n in num_values]
        channels = int(backbone.out_channels)
        self.heads = nn.ModuleList(nn.Linear(channels, n) for n in self.num_values)
        self.model_config: dict[str, Any] = {}  # set by fgfs_lib.models.registry.build_model

    @property
    def num_attributes(self) -> int:
        return len(self.heads)

    def features(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def logits_from_features(self, feats: Tensor) -> list[Tensor]:
        pooled = feats.mean(dim=(2, 3))  # x_I: global average pooling
        return [head(pooled) for head in self.heads]  # x_I w_a for every attribute

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.logits_from_features(self.features(images))

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Eq. 1 on a batch ``{"images": [B,3,H,W], "labels": [B,A]}``."""
        return classification_loss(self(batch["images"]), batch["labels"])

    def configure_optimizers(self, settings: Any) -> tuple[torch.optim.Optimizer, Any]:
        from ..optim import adam_with_schedule

        return adam_with_schedule(self.parameters(), settings)

    def validate(self, data: Any, split: str = "valid", batch_size: int = 256) -> dict[str, Any]:
        """The score the training loop tracks: mean per-attribute accuracy (x100) on ``split``."""
        accuracy = evaluate_classifier(self, getattr(data, split), batch_size=batch_size)["accuracy"]
        return {"overall": 100 * float(accuracy.mean()),
                "per_attribute": {a: 100 * float(v) for a, v in enumerate(accuracy)}}


def classification_loss(logits: Sequence[Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Eq. 1 per image: ``sum_a sum_{I: g_Ia >= 0} -log p(g_Ia | x_I w_a) / B``.

    ``logits``: A tensors [B, n_a]; ``labels``: [B, A] with -1 where the attribute does
    not apply (ignored). Returns (loss, logs) with the summed loss and the accuracy over
    the labelled entries of the batch.
    """
    if labels.dim() != 2 or labels.shape[1] != len(logits):
        raise ValueError(f"labels must be [B, A={len(logits)}], got {tuple(labels.shape)}")
    batch = labels.shape[0]
    total = logits[0].new_zeros(())
    correct, counted = 0, 0
    for a, attribute_logits in enumerate(logits):
        target = labels[:, a]
        # ignore_index drops "not applicable" from the sum (eq. 1 sums only ground truths)
        total = total + F.cross_entropy(attribute_logits, target, ignore_index=-1, reduction="sum")
        known = target >= 0
        correct += int((attribute_logits.argmax(1)[known] == target[known]).sum())
        counted += int(known.sum())
    loss = total / batch
    return loss, {"loss": float(loss.detach()), "accuracy": correct / max(counted, 1)}


def build_classifier(meta: Any, cfg: Any = None, *, backbone: str | None = None, stage: str = "layer3",
                     weights: str | None = None, width: int = 32) -> AttributeClassifier:
    """A classifier for dataset ``meta`` (uses ``meta.num_values``) on the profile's backbone
    (``small_cnn`` in quick, ``resnet50`` in full) cut after ``stage``."""
    from ..config import load
    from .backbones import default_backbone, make_backbone

    cfg = cfg if cfg is not None else load()
    name = backbone or default_backbone(cfg)
    return AttributeClassifier(make_backbone(name, stage=stage, weights=weights, width=width), meta.num_values)


@register("attribute_classifier")
def _build(meta: Any, cfg: Any = None, **options: Any) -> AttributeClassifier:
    return build_classifier(meta, cfg, **options)


@torch.no_grad()
def predict(model: AttributeClassifier, split: Any, batch_size: int = 256) -> Tensor:
    """Predicted value of every attribute for every image of ``split``: LongTensor [N, A]."""
    from ..utils import device

    dev = device()
    model.to(dev).eval()
    out = []
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        out.append(torch.stack([lg.argmax(1) for lg in model(split.batch(idx).to(dev))], dim=1).cpu())
    return torch.cat(out)


def evaluate_classifier(model: AttributeClassifier, split: Any, train_labels: Tensor | None = None,
                        batch_size: int = 256) -> dict[str, Tensor]:
    """Per-attribute accuracy over the images where the attribute applies, with chance.

    Returns tensors [A]: ``accuracy``, ``count`` (labelled test images), ``uniform``
    (1 / number of values) and, when ``train_labels`` is given, ``majority`` (accuracy of
    always answering the training set's most frequent value).
    """
    predicted = predict(model, split, batch_size)
    labels = split.labels
    A = labels.shape[1]
    known = labels >= 0
    result = {
        "accuracy": ((predicted == labels) & known).sum(0).float() / known.sum(0).clamp_min(1).float(),
        "count": known.sum(0),
        "uniform": torch.tensor([1.0 / n for n in model.num_values]),
    }
    if train_labels is not None:
        result["majority"] = majority_accuracy(labels, train_labels)
    return result


def majority_accuracy(labels: Tensor, train_labels: Tensor) -> Tensor:
    """[A]: accuracy on ``labels`` of always answering the training labels' most frequent
    value of each attribute (over the entries where it applies; 0 where none does)."""
    majority = torch.zeros(labels.shape[1])
    for a in range(labels.shape[1]):
        known = labels[:, a] >= 0
        train_known = train_labels[:, a][train_labels[:, a] >= 0]
        if len(train_known) and known.any():
            common = torch.bincount(train_known).argmax()
            majority[a] = (labels[known, a] == common).float().mean()
    return majority
