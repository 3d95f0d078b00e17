"""Batch kinds and the data path of the training loop: which images a step needs, and how
they reach the device.

Introduced in ``notebooks/05_baselines.py``; every later notebook trains through it.

A **batch kind** (:class:`BatchKind`) says three things, and nothing else in the loop
depends on it:

* ``plan(labels, settings, generator) -> rows [S, B, ...]``: the epoch's steps, drawn from
  the run's generator (so a resumed run sees exactly the batches an uninterrupted one would);
* ``image_indices(rows [B, ...]) -> [k*B]``: the images one step loads, in order;
* ``assemble(images [k*B,3,H,W], rows, labels) -> dict``: the batch the model's ``loss``
  receives.

Built in:

============  ===========================================  ===================================
kind          batch                                         used by
============  ===========================================  ===================================
``in_batch``  ``images`` [B,3,H,W], ``labels`` [B,A]        every triplet within the batch
                                                            (notebook 05)
``classific-  ``images`` [B,3,H,W], ``labels`` [B,A]        classifiers (notebook 03), any
ation``       (the same batches; any batch size)            loss on each image's label row
``triplets``  ``anchor``/``positive``/``negative``           the papers' 3-image triplets
              [B,3,H,W], ``attribute`` [B], ``labels``
              [3B,A] (rows of anchor, positive, negative)
============  ===========================================  ===================================

A new method registers its own kind (``register_batch_kind(BatchKind(...))``) from its
module; the trainer takes it by name through ``TrainSettings.sampling``.

**The data path.** Images travel as uint8 (4x fewer bytes than float): from memory or a
memory-mapped array for FashionSynth (a background thread gathers the next batches while
the device computes), from image files through a ``DataLoader`` with workers otherwise; into
pinned memory on CUDA; then flip and ImageNet normalisation run on the device. Under
``torchrun`` each rank loads only its shard of every batch (:func:`fgfs_lib.distributed.shard`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
from typing import Any, Callable, Iterator

import torch

from . import distributed

Batch = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class BatchKind:
    name: str
    images_per_item: int
    plan: Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]
    image_indices: Callable[[torch.Tensor], torch.Tensor]
    assemble: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Batch]


BATCH_KINDS: dict[str, BatchKind] = {}


def register_batch_kind(kind: BatchKind) -> BatchKind:
    BATCH_KINDS[kind.name] = kind
    return kind


def batch_kind(name: str) -> BatchKind:
    if name not in BATCH_KINDS:
        raise ValueError(f"unknown batch kind (sampling) {name!r}; registered: {', '.join(sorted(BATCH_KINDS))}")
    return BATCH_KINDS[name]


# ------------------------------------------------------------------------------ in-batch


def _plan_in_batch(labels: torch.Tensor, settings: Any, generator: torch.Generator) -> torch.Tensor:
    """[S, B] image indices: consecutive slices of random permutations (no image twice in a batch)."""
    steps, size, n = settings.steps_per_epoch, settings.batch_size, len(labels)
    if n < size:
        raise ValueError(f"batch_size {size} is larger than the training split ({n} images)")
    per_perm = n // size
    perms = [torch.randperm(n, generator=generator)[: per_perm * size].view(per_perm, size)
             for _ in range(math.ceil(steps / per_perm))]
    return torch.cat(perms)[:steps]


def _images_and_labels(images: torch.Tensor, rows: torch.Tensor, labels: torch.Tensor) -> Batch:
    return {"images": images, "labels": labels[rows.cpu()].to(images.device)}


register_batch_kind(BatchKind("in_batch", 1, _plan_in_batch, image_indices=lambda rows: rows,
                              assemble=_images_and_labels))
# the same draw for models that read each image's label row (a classification loss); unlike
# in-batch triplets it has no minimum batch size
register_batch_kind(BatchKind("classification", 1, _plan_in_batch, image_indices=lambda rows: rows,
                              assemble=_images_and_labels))


# ------------------------------------------------------------------------------ 3-image triplets


def _plan_triplets(labels: torch.Tensor, settings: Any, generator: torch.Generator) -> torch.Tensor:
    """[S, B, 4] rows (anchor, positive, negative, attribute) from :func:`fgfs_lib.sampling.sample_triplets`."""
    from . import sampling

    steps, size = settings.steps_per_epoch, settings.batch_size
    rows = sampling.sample_triplets(labels, steps * size, generator, style=settings.triplet_style)
    return rows.view(steps, size, 4)


def _assemble_triplets(images: torch.Tensor, rows: torch.Tensor, labels: torch.Tensor) -> Batch:
    a, p, n = images.chunk(3)
    three = rows[:, :3].t().reshape(-1).cpu()
    return {"anchor": a, "positive": p, "negative": n, "attribute": rows[:, 3].to(images.device),
            "labels": labels[three].to(images.device)}


register_batch_kind(BatchKind(
    "triplets", 3, _plan_triplets,
    image_indices=lambda rows: rows[:, :3].t().reshape(-1),  # anchors, then positives, then negatives
    assemble=_assemble_triplets,
))


# ------------------------------------------------------------------------------ the epoch plan


def epoch_plan(labels: torch.Tensor, settings: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The epoch's global batches: ``rows`` (the kind's plan) and ``flips`` [S, k*B] (random
    horizontal flips of the k*B images of each step, all False without ``settings.augment``).
    The same on every rank."""
    kind = batch_kind(settings.sampling)
    rows = kind.plan(labels, settings, generator)
    flips = torch.rand(settings.steps_per_epoch, kind.images_per_item * settings.batch_size,
                       generator=generator) < 0.5
    if not settings.augment:
        flips.zero_()
    return {"rows": rows, "flips": flips}


def local_step(plan: dict[str, torch.Tensor], step: int, kind: BatchKind) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of step ``step`` and the flips of the images it loads."""
    rows = plan["rows"][step]
    flips = plan["flips"][step].view(kind.images_per_item, -1)  # [k, B]: flips of image j of each item
    local_rows = distributed.shard(rows)
    local_flips = distributed.shard(flips.t()).t().reshape(-1)
    return local_rows, local_flips


# ------------------------------------------------------------------------------ loading


def loader_workers(requested: int, in_memory: bool) -> int:
    """DataLoader workers: ``requested`` if >= 0, else the CPUs this process may use divided by
    the processes on this machine (0 for in-memory data, which a thread serves)."""
    if requested >= 0:
        return requested
    if in_memory:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(16, cpus // max(local, 1) - 1))


class _RawImages(torch.utils.data.Dataset):
    """uint8 images of a file-based split, for DataLoader workers."""

    def __init__(self, split: Any):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.split.raw([int(i)])[0]


def _prefetch(produce: Callable[[int], Any], count: int, depth: int) -> Iterator[Any]:
    """``produce(0..count-1)`` run ``depth`` items ahead in a background thread (torch's
    indexing and copies release the GIL, so it overlaps with the device's work)."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for i in range(count):
                if stop.is_set():
                    return
                out.put((i, produce(i)))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            out.put((-1, error))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        for _ in range(count):
            i, item = out.get()
            if i < 0:
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass


class BatchSource:
    """Turns an epoch plan into device batches for one split and one batch kind."""

    def __init__(self, split: Any, kind: BatchKind, device: torch.device, *, workers: int = -1,
                 seed: int = 0, prefetch: int = 4, channels_last: bool = False):
        self.split, self.kind, self.device = split, kind, device
        self.in_memory = bool(getattr(split, "in_memory", True))
        self.workers = loader_workers(workers, self.in_memory)
        self.seed, self.prefetch, self.channels_last = seed, prefetch, channels_last
        self.pin = device.type == "cuda"

    def _uint8_batches(self, index_batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        if self.workers == 0:
            def produce(i: int) -> torch.Tensor:
                x = self.split.raw(index_batches[i])
                return x.pin_memory() if self.pin else x
            yield from _prefetch(produce, len(index_batches), self.prefetch)
            return
        loader = torch.utils.data.DataLoader(
            _RawImages(self.split), batch_sampler=[idx.tolist() for idx in index_batches],
            num_workers=self.workers, pin_memory=self.pin, prefetch_factor=self.prefetch,
            generator=torch.Generator().manual_seed(self.seed))  # keeps the global RNG untouched
        yield from loader

    def to_device(self, raw: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """uint8 [n,3,H,W] -> normalised float on the device, flipped where ``flips``."""
        x = raw.to(self.device, non_blocking=True)
        flips = flips.to(self.device, non_blocking=True)
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        x = self.split.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batches(self, plan: dict[str, torch.Tensor], start: int = 0) -> Iterator[tuple[int, Batch]]:
        """``(step, batch)`` for steps ``start..S-1`` of ``plan`` (this rank's shard of each)."""
        steps = range(start, plan["rows"].shape[0])
        local = [local_step(plan, s, self.kind) for s in steps]
        index_batches = [self.kind.image_indices(rows) for rows, _ in local]
        labels = self.split.labels
        for step, raw, (rows, flips) in zip(steps, self._uint8_batches(index_batches), local):
            images = self.to_device(raw, flips)
            yield step, self.kind.assemble(images, rows, labels)
