"""Multi-process training with PyTorch's own engine: DistributedDataParallel under ``torchrun``.

Introduced in ``notebooks/05_baselines.py`` (the training loop); used by :mod:`fgfs_lib.train`.

Nothing here is needed on one device: every function is the identity (or a no-op) when the
process was not started by ``torchrun``. Under ``torchrun --nproc_per_node N python -m
fgfs_lib train ...`` the same command trains on N processes:

* :func:`setup` reads torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, joins the
  process group (NCCL on CUDA, gloo on the CPU, or ``$FGFS_DIST_BACKEND``) and pins each
  process to its GPU, so
  :func:`fgfs_lib.utils.device` (``cuda`` = the current GPU) needs no change.
* :func:`shard` gives each rank its slice of the *global* batch. Every rank draws the same
  epoch plan from the same seeded generator, so the sampled images and triplets are the
  same whatever N is; only who computes which part changes.
* :func:`gather` concatenates a tensor over the ranks. Its backward sums the gradient over
  the ranks and keeps the local slice, so a loss computed on the gathered batch (in-batch
  triplets pair images held by different ranks) gets exactly the gradient of the
  single-process loss once DistributedDataParallel has averaged the parameter gradients:
  every rank computes the same loss ``L``; the gradient reaching rank r's embeddings is
  ``N * dL/de_r``; DDP divides by N.
* :func:`wrap` puts a model's ``loss(batch)`` behind ``DistributedDataParallel`` (which
  synchronises gradients only through ``forward``), with SyncBatchNorm on CUDA so that
  BatchNorm statistics are those of the global batch (gloo has no SyncBatchNorm: on the CPU
  each rank normalises its own shard).
* :func:`all_finite` lets the NaN guard stop every rank together.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
from torch import nn

__all__ = ["setup", "is_distributed", "rank", "world_size", "is_main", "barrier", "shard", "gather",
           "all_finite", "all_reduce_sum", "wrap", "LossModule"]


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and world_size() > 1


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that prints and writes checkpoints."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup() -> bool:
    """Join the process group when started by ``torchrun``; return whether distributed.

    Idempotent. CUDA processes use NCCL and are pinned to ``cuda:LOCAL_RANK``; CPU ones use
    gloo. Several processes may share one GPU (useful for testing, not for speed).
    """
    if not launched_by_torchrun():
        return False
    if torch.distributed.is_initialized():
        return True
    from . import utils

    dev = utils.device()
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
    # NCCL refuses two processes on one GPU ("Duplicate GPU detected"); FGFS_DIST_BACKEND=gloo
    # runs such a check over CUDA tensors anyway
    backend = os.environ.get("FGFS_DIST_BACKEND") or ("nccl" if dev.type == "cuda" else "gloo")
    torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return True


def barrier() -> None:
    if is_distributed():
        torch.distributed.barrier()


def shard(batch_rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch ``[B, ...]`` (B divisible by N)."""
    n = world_size()
    if n == 1:
        return batch_rows
    size = batch_rows.shape[0]
    if size % n:
        raise ValueError(f"the global batch of {size} does not split over {n} processes; "
                         f"use a batch size divisible by {n}")
    per = size // n
    return batch_rows[rank() * per:(rank() + 1) * per]


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.dim, ctx.size = dim, tensor.shape[dim]
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)  # sum of every rank's gradient of its (identical) loss
        return grad.narrow(ctx.dim, rank() * ctx.size, ctx.size), None


def gather(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenate ``tensor`` over the ranks along ``dim`` (rank order); differentiable.

    The identity on one process. All ranks must pass the same shape.
    """
    if not is_distributed():
        return tensor
    if not tensor.requires_grad:
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)
    return _Gather.apply(tensor, dim)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (identity on one process)."""
    if is_distributed():
        torch.distributed.all_reduce(tensor)
    return tensor


def all_finite(value: torch.Tensor) -> bool:
    """True when ``value`` is finite on every rank (one all-reduce; no-op on one process)."""
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if is_distributed():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


class LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``: what DistributedDataParallel wraps, since DDP
    synchronises gradients only for computations that go through its ``forward``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        return self.model.loss(batch)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The callable the loop trains through: ``model.loss`` on one process, a DDP-wrapped
    :class:`LossModule` under ``torchrun``. On CUDA, BatchNorm becomes SyncBatchNorm (in
    place: the state dict keys do not change)."""
    if not is_distributed():
        return LossModule(model)
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the BatchNorm children in place
        return nn.parallel.DistributedDataParallel(LossModule(model),
                                                   device_ids=[torch.cuda.current_device()])
    return nn.parallel.DistributedDataParallel(LossModule(model))
