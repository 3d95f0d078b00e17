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

This is not a :class:`~fgfs_lib.models.base.ConditionalEmbedder` (it ranks nothing), so
it has its own short training loop, :func:`train_classifier`, and a train-or-load cache,
:func:`train_or_load_classifier`, keyed by its configuration.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttributeClassifier",
    "classification_loss",
    "build_classifier",
    "train_classifier",
    "predict",
    "evaluate_classifier",
    "classifier_config",
    "train_or_load_classifier",
]


class AttributeClassifier(nn.Module):
    """Backbone -> global average pooling -> one linear head per attribute.

    ``features(images) -> [B, C, h, w]`` is the map CAM weights (eq. 2);
    ``forward(images) -> list of A logit tensors [B, n_a]``.
    """

    def __init__(self, backbone: nn.Module, num_values: Sequence[int]):
        super().__init__()
        self.backbone = backbone
        self.num_values = [int(n) for n in num_values]
        channels = int(backbone.out_channels)
        self.heads = nn.ModuleList(nn.Linear(channels, n) for n in self.num_values)
        self.config: dict[str, Any] = {}  # filled by build_classifier, saved with checkpoints

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
    model = AttributeClassifier(make_backbone(name, stage=stage, weights=weights, width=width), meta.num_values)
    model.config = {"backbone": name, "stage": stage, "weights": weights, "width": width,
                    "num_values": list(model.num_values)}
    return model


def _split_of(data: Any, split: str = "train") -> Any:
    return getattr(data, split) if hasattr(data, split) else data


def train_classifier(model: AttributeClassifier, data: Any, cfg: Any = None, *, steps: int, batch_size: int,
                     lr: float, generator: torch.Generator, augment: bool = True,
                     weight_decay: float = 1e-4, schedule: str = "cosine") -> dict[str, list[float]]:
    """Adam on eq. 1 for ``steps`` mini-batches drawn from ``data.train`` (or an
    ``ImageSplit``) without replacement within each pass; ``generator`` decides the order
    and the random flips (``augment``). ``schedule``: ``"cosine"`` anneals the learning
    rate from ``lr`` to 0 over the ``steps`` (what makes a short budget count), or
    ``"constant"``.

    Returns the history ``{"loss": [...], "accuracy": [...], "lr": [...]}`` (one entry per
    step; ``accuracy`` over the batch's labelled entries, ``lr`` the rate used).
    """
    from ..utils import device, progress

    split = _split_of(data, "train")
    dev = device()
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1)) if schedule == "cosine" else None
    labels = split.labels
    n = len(labels)
    order, cursor = torch.randperm(n, generator=generator), 0
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "lr": []}
    for _ in progress(range(steps), desc="classifier"):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        images = split.batch(idx, augment=augment, generator=generator).to(dev)
        loss, logs = classification_loss(model(images), labels[idx].to(dev))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        history["lr"].append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history["loss"].append(logs["loss"])
        history["accuracy"].append(logs["accuracy"])
    model.eval()
    return history


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
        majority = torch.zeros(A)
        for a in range(A):
            train_known = train_labels[:, a][train_labels[:, a] >= 0]
            if len(train_known) and known[:, a].any():
                common = torch.bincount(train_known, minlength=model.num_values[a]).argmax()
                majority[a] = (labels[known[:, a], a] == common).float().mean()
        result["majority"] = majority
    return result


def classifier_config(model: AttributeClassifier, data: Any, *, steps: int, batch_size: int, lr: float,
                      seed: int, augment: bool = True, schedule: str = "cosine") -> dict[str, Any]:
    """Everything that decides the trained weights: model, data, seed and optimisation."""
    return {
        "model": dict(model.config),
        "data": getattr(data, "config", None),
        "steps": int(steps), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
        "augment": bool(augment), "schedule": schedule, "optimizer": "adam", "weight_decay": 1e-4,
        "loss": "fashionsearchnet_eq1",
    }


def _config_key(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def train_or_load_classifier(data: Any, cfg: Any = None, *, steps: int, batch_size: int, lr: float,
                             seed: int | None = None, augment: bool = True, schedule: str = "cosine",
                             force: bool = False, **model_options: Any) -> tuple[AttributeClassifier, dict[str, Any]]:
    """Build a classifier for ``data.meta`` (``model_options`` go to :func:`build_classifier`),
    then train it (:func:`train_classifier`) or load the weights of an identical run.

    The seed is set before the weights are initialised, so the config (model, data
    config, steps, batch size, lr, seed) fixes the result. Checkpoints live in
    ``cfg.checkpoint_dir / classifier_<hash of the config>.pt`` (tensors only, loaded with
    ``weights_only=True``) next to a ``.json`` with the config and the loss history.
    Returns ``(model, record)``; ``record["loaded"]`` says whether it was reused.
    """
    from ..config import load
    from ..utils import atomic_path, atomic_write_json, device, seed_everything

    cfg = cfg if cfg is not None else load()
    seed = cfg.seed if seed is None else int(seed)
    generator = seed_everything(seed)
    model = build_classifier(data.meta, cfg, **model_options)
    config = classifier_config(model, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, augment=augment,
                               schedule=schedule)
    key = _config_key(config)
    weights_path = Path(cfg.checkpoint_dir) / f"classifier_{key}.pt"
    record_path = weights_path.with_suffix(".json")
    if not force and weights_path.is_file() and record_path.is_file():
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.to(device()).eval()
        record = json.loads(record_path.read_text())
        record.update(loaded=True, path=str(weights_path))
        return model, record
    start = time.perf_counter()
    history = train_classifier(model, data, cfg, steps=steps, batch_size=batch_size, lr=lr,
                               generator=generator, augment=augment, schedule=schedule)
    seconds = time.perf_counter() - start
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(weights_path) as tmp:
        torch.save(state, tmp)
    record = {"config": config, "key": key, "history": history, "train_seconds": seconds}
    atomic_write_json(record_path, record)
    record.update(loaded=False, path=str(weights_path))
    return model, record
