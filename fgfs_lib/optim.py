"""Optimisers and learning-rate schedules: what ``configure_optimizers`` returns by default.

Introduced in ``notebooks/05_baselines.py``.

The papers train with Adam and a step decay (ASEN: lr 1e-4, x0.9 every 3 epochs); the quick
profile can also use a cosine decay per step. :func:`adam_with_schedule` builds both from a
:class:`fgfs_lib.train.TrainSettings`. A model with several learning rates (ASEN++ stage 2: the
global branch at a tenth of the local one) passes parameter groups, each with its own ``lr``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def adam_with_schedule(params: Iterable[Any], settings: Any) -> tuple[torch.optim.Optimizer, Any]:
    """Adam over ``params`` (tensors or parameter groups) and the schedule ``settings.lr_schedule``.

    ``"step"``: StepLR(``lr_step`` epochs, ``lr_gamma``), stepped once per epoch.
    ``"cosine"``: ``lr * (1 + cos(pi * t / T)) / 2`` over the run's ``T = epochs *
    steps_per_epoch`` optimiser steps, stepped once per step. The scheduler's
    ``fgfs_interval`` attribute tells the training loop which.
    """
    params = list(params)
    if params and isinstance(params[0], torch.Tensor):
        params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.lr_schedule == "cosine":
        total = max(1, settings.epochs * settings.steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total)))
        scheduler.fgfs_interval = "step"
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_step, gamma=settings.lr_gamma)
        scheduler.fgfs_interval = "epoch"
    return optimizer, scheduler
