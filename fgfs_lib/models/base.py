"""The interface every attribute-conditioned retrieval model implements.

Introduced in ``notebooks/05_baselines.py``.

A model embeds an image *with respect to an attribute* ``a``: ``embed(images, a) -> [B, D]``.
The pass is split in two so that one backbone pass serves every attribute:

* ``features(images)``: the attribute-independent part (usually the backbone's map);
* ``embed_from_features(feats, attributes)``: the conditioned head;
* ``embed_all_attributes(feats) -> [A, B, D]``: every image under every attribute, what
  in-batch triplets need (default: loop over the attributes).

The training loop (:mod:`fgfs_lib.train`) only calls ``model.loss(batch)``, which has a
default for both kinds of batch:

in-batch   ``{"images": [B,3,H,W], "labels": [B,A]}``: one backbone pass, embeddings for all
           attributes, every valid triplet inside the batch
           (:func:`fgfs_lib.losses.batch_all_triplet_loss`, averaged over all valid
           triplets by default);
triplets   ``{"anchor", "positive", "negative": [B,3,H,W], "attribute": [B]}``: the papers'
           sampling, ``max(0, m - s(a,p) + s(a,n))`` with ``s`` the cosine similarity, or
           ``max(0, m + d(a,p) - d(a,n))`` with Euclidean ``d`` for ``distance="euclidean"``.

Subclasses add regularisers through :meth:`ConditionalEmbedder.extra_loss` (CSN) or
replace :meth:`ConditionalEmbedder.loss` altogether (multi-task models).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


def describe_argument(value: Any) -> Any:
    """A constructor argument as plain, deterministic JSON: numbers, strings and containers
    as they are, a module by its class and the hash of its printout (layer sizes, strides),
    anything else by its type's name."""
    from ..config import stable_hash

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [describe_argument(v) for v in value]
    if isinstance(value, dict):
        return {str(k): describe_argument(v) for k, v in value.items()}
    if isinstance(value, nn.Module):
        return f"{type(value).__name__}:{stable_hash(repr(value))}"
    return type(value).__name__


class ConditionalEmbedder(nn.Module):
    """Base class: attribute-conditioned embeddings and a default triplet loss.

    Subclasses set ``num_attributes``, ``embed_dim`` and implement :meth:`features` and
    :meth:`embed_from_features`. Class attributes choose the loss: ``distance`` (``"cosine"``
    for L2-normalised embeddings, ``"euclidean"`` for CSN), ``margin`` and
    ``triplet_average`` (in-batch only: ``"attribute"``, the default, averages each attribute's
    mean hinge so that attributes on every image (colour, pattern) do not outweigh the rest;
    ``"all"`` valid triplets; only ``"active"`` ones).
    """

    distance: str = "cosine"
    margin: float = 0.2
    triplet_average: str = "attribute"
    version: int = 1  # bump when a subclass computes something new: it keys the checkpoint cache

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass records the arguments it was built with, defaults filled in, as
        ``constructor_args``: part of a run's cache key (:func:`fgfs_lib.train.run_config`),
        so a changed default retrains instead of reloading weights of another model."""
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init, signature = cls.__init__, inspect.signature(cls.__init__)

        @functools.wraps(init)
        def recording_init(self: "ConditionalEmbedder", *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            if type(self).__init__ is recording_init:  # the class being built, not a parent's call
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                self.constructor_args = {k: describe_argument(v) for k, v in bound.arguments.items() if k != "self"}

        cls.__init__ = recording_init

    def __init__(self, num_attributes: int, embed_dim: int):
        super().__init__()
        self.num_attributes = int(num_attributes)
        self.embed_dim = int(embed_dim)
        # set by fgfs_lib.models.registry.build_model: {"name": ..., "options": {...}}
        self.model_config: dict[str, Any] = {}

    # -- the interface --------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> Any:
        """The attribute-independent pass (a feature map, or a dict of maps)."""
        raise NotImplementedError

    def embed_from_features(self, feats: Any, attributes: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` embeddings of the images behind ``feats``, each for its attribute."""
        raise NotImplementedError

    def embed(self, images: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.embed_from_features(self.features(images), attributes)

    def embed_all_attributes(self, feats: Any) -> torch.Tensor:
        """``[A, B, D]``: every image embedded under every attribute."""
        batch = _batch_size(feats)
        device = _device_of(feats)
        return torch.stack([
            self.embed_from_features(feats, torch.full((batch,), a, dtype=torch.long, device=device))
            for a in range(self.num_attributes)
        ])

    def forward(self, images: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.embed(images, attributes)

    # -- what the training loop calls -----------------------------------------------------
    def configure_optimizers(self, settings: Any) -> tuple[torch.optim.Optimizer, Any]:
        """Optimiser and scheduler for a :class:`fgfs_lib.train.TrainSettings`: Adam over the
        trainable parameters with the settings' schedule. Override for parameter groups
        (different learning rates, frozen parts)."""
        from ..optim import adam_with_schedule

        return adam_with_schedule(self.parameters(), settings)

    def validate(self, data: Any, split: str = "valid", batch_size: int = 256) -> dict[str, Any]:
        """The score the loop tracks after each epoch: retrieval MAP (x100) on ``split``."""
        from ..evaluate import retrieval_map

        return retrieval_map(self, data, split=split, batch_size=batch_size)

    # -- the loss -------------------------------------------------------------------------
    def extra_loss(self, feats: Any) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Regularisers added to the triplet loss (``None`` = nothing); ``feats`` are the
        features of every image in the batch."""
        return None, {}

    def triplet_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float], Any]:
        """The ranking term alone: (loss, logs, features of all images of the batch)."""
        from .. import distributed, losses

        if "images" in batch:
            feats = self.features(batch["images"])
            # under torchrun, the triplets of the whole global batch (a no-op on one process)
            embeddings = distributed.gather(self.embed_all_attributes(feats), dim=1)
            loss, stats = losses.batch_all_triplet_loss(
                embeddings, distributed.gather(batch["labels"], dim=0), margin=self.margin,
                average=self.triplet_average, distance=self.distance)
            logs = {k: float(v) for k, v in stats.items() if _is_number(v)}
            return loss, logs, feats
        if "anchor" in batch:
            n = batch["anchor"].shape[0]
            images = torch.cat([batch["anchor"], batch["positive"], batch["negative"]])
            feats = self.features(images)
            attributes = batch["attribute"].repeat(3)
            emb = self.embed_from_features(feats, attributes)
            a, p, q = emb[:n], emb[n:2 * n], emb[2 * n:]
            if self.distance == "cosine":
                loss = losses.cosine_triplet_loss(a, p, q, margin=self.margin)
                with torch.no_grad():
                    active = ((a * p).sum(-1) - (a * q).sum(-1) < self.margin).float().mean()
            else:
                loss = losses.euclidean_triplet_loss(a, p, q, margin=self.margin)
                with torch.no_grad():
                    active = ((a - p).norm(dim=-1) + self.margin > (a - q).norm(dim=-1)).float().mean()
            return loss, {"active_fraction": float(active)}, feats
        raise KeyError(f"batch must hold 'images' and 'labels' (in-batch) or 'anchor', 'positive', "
                       f"'negative', 'attribute' (triplets); got keys {sorted(batch)}")

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Triplet loss plus :meth:`extra_loss`; returns (loss, logs of floats)."""
        loss, logs, feats = self.triplet_loss(batch)
        logs = {"triplet": float(loss.detach()), **logs}
        extra, extra_logs = self.extra_loss(feats)
        if extra is not None:
            loss = loss + extra
            logs.update(extra_logs)
        return loss, logs


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float))


def _first_tensor(feats: Any) -> torch.Tensor:
    if isinstance(feats, torch.Tensor):
        return feats
    if isinstance(feats, dict):
        return _first_tensor(next(iter(feats.values())))
    if isinstance(feats, (tuple, list)):
        return _first_tensor(feats[0])
    raise TypeError(f"cannot find a tensor in features of type {type(feats).__name__}")


def _batch_size(feats: Any) -> int:
    return _first_tensor(feats).shape[0]


def _device_of(feats: Any) -> torch.device:
    return _first_tensor(feats).device


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """Average over all spatial positions: ``[B, C, h, w] -> [B, C]`` for any ``h, w``."""
    return feature_map.mean(dim=(2, 3))
