"""The one training loop: a model gives its loss from a batch, the loop does the rest.

Introduced in ``notebooks/05_baselines.py``; every later notebook trains through it.

What the loop does, for any :class:`fgfs_lib.models.base.ConditionalEmbedder`:

* **Batches.** ``sampling="in_batch"``: random batches of training images with their label
  rows; the model's loss uses every valid triplet inside the batch.
  ``sampling="triplets"``: the papers' three-image triplets from
  :func:`fgfs_lib.sampling.sample_triplets`, re-sampled every epoch. Both are drawn from an
  *epoch plan* made at the start of the epoch from the run's generator (indices and random
  horizontal flips), so a resumed run sees exactly the batches an uninterrupted one would.
* **Optimisation.** Adam and StepLR as in the papers (lr, step size in epochs and gamma
  configurable); optional gradient clipping.
* **Validation.** MAP on the valid split after every epoch (:func:`fgfs_lib.evaluate.retrieval_map`).
* **Checkpoints.** ``last.pt`` (every ``checkpoint_every`` steps and every epoch) and
  ``best.pt`` (best valid MAP), holding only tensors and plain Python values (they load with
  ``torch.load(weights_only=True)``): weights, optimiser, scheduler, epoch/step, the run's
  config and seed, and every random state. A killed run resumes from ``last.pt``.
* **Safety.** A NaN or infinite loss (or gradient) stops the run before the update, saving
  the last good state. A checkpoint of another model or config is refused with the keys or
  shapes that differ.
* **Speed.** On CUDA: mixed precision (bf16 where supported, else fp16 with a gradient
  scaler) and channels_last, both switchable; file-based data goes through a ``DataLoader``
  with workers and pinned memory; in-memory data uses the fast ``ImageSplit.batch(idx)``.
  Images per second are measured and recorded.

:func:`train_or_load` keys a checkpoint folder by a hash of the whole run config, so a
later notebook asking for the same model gets the trained one back instead of retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import config as config_module
from . import utils

CHECKPOINT_FORMAT = 1
SAMPLINGS = ("in_batch", "triplets")
# settings that change speed or bookkeeping, not the trained weights: left out of the hash
NON_SEMANTIC = ("num_workers", "checkpoint_every", "eval_batch_size", "validate")


@dataclasses.dataclass
class TrainSettings:
    """Everything that decides a training run besides the model and the data."""

    sampling: str = "in_batch"
    epochs: int = 4
    steps_per_epoch: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_step: int = 3              # StepLR step size, in epochs
    lr_gamma: float = 0.9         # StepLR factor
    triplet_style: str = "asen"   # sample_triplets style for sampling="triplets"
    augment: bool = True          # random horizontal flip
    grad_clip: float | None = None
    amp: bool = True              # mixed precision (CUDA only)
    channels_last: bool = True    # (CUDA only)
    validate: bool = True         # valid MAP after every epoch
    checkpoint_every: int = 50    # steps between mid-epoch saves of last.pt (0 = epoch ends only)
    num_workers: int = -1         # DataLoader workers for file-based data (-1 = auto)
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        for name in ("epochs", "steps_per_epoch", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sampling == "in_batch" and self.batch_size < 3:
            raise ValueError("in-batch triplets need batch_size >= 3")


def default_settings(cfg: config_module.Config | None = None, **overrides: Any) -> TrainSettings:
    """The profile's defaults: quick = in-batch triplets, batch 64, lr 1e-3, a few hundred
    steps; full = the papers' setting (100k triplets per epoch, batch 16, Adam 1e-4,
    StepLR(3, 0.9), 50 epochs)."""
    cfg = cfg if cfg is not None else config_module.load()
    base = cfg.pick(
        quick=dict(sampling="in_batch", epochs=4, steps_per_epoch=75, batch_size=64, lr=1e-3),
        full=dict(sampling="triplets", epochs=50, steps_per_epoch=100_000 // 16, batch_size=16, lr=1e-4,
                  lr_step=3, lr_gamma=0.9, checkpoint_every=500),
    )
    base.update(overrides)
    unknown = sorted(set(base) - {f.name for f in dataclasses.fields(TrainSettings)})
    if unknown:
        raise TypeError(f"unknown training setting(s) {unknown}; known: "
                        f"{[f.name for f in dataclasses.fields(TrainSettings)]}")
    return TrainSettings(**base)


@dataclasses.dataclass
class TrainResult:
    model: Any
    history: list[dict[str, Any]]
    best_map: float
    best_epoch: int
    checkpoint_dir: Path
    images_per_second: float
    run_config: dict[str, Any]
    reused: bool = False
    stopped: str | None = None

    @property
    def last_map(self) -> float:
        return self.history[-1]["valid_map"] if self.history else float("nan")


class CheckpointMismatch(ValueError):
    """A checkpoint that belongs to another model or another run configuration."""


# ------------------------------------------------------------------------------ run config


def _plain(obj: Any) -> Any:
    """JSON round trip: only plain Python types remain (what weights_only=True can load)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def meta_dict(meta: Any) -> dict[str, Any]:
    return _plain({k: getattr(meta, k, None) for k in
                   ("name", "attribute_names", "value_names", "num_values", "num_attributes")})


def run_config(model: Any, data: Any, cfg: config_module.Config, settings: TrainSettings) -> dict[str, Any]:
    """What defines a run: model name and options, data identity, settings, profile, seed."""
    model_config = getattr(model, "model_config", None) or {"name": type(model).__name__, "options": {}}
    # the model class's ``version`` is bumped when its computation changes, so a changed model
    # gets a new cache key and retrains instead of reloading stale weights
    model_config = {**model_config, "version": getattr(model, "version", 1)}
    return _plain({
        "model": model_config,
        # the loss choices live on the model class; recorded so a change of default retrains
        "loss": {k: getattr(model, k, None) for k in ("triplet_average", "margin", "distance")},
        "data": {"name": getattr(data.meta, "name", None),
                 "root": str(getattr(data, "root", "") or ""),
                 "config": getattr(data, "config", {}) or {}},
        "meta": meta_dict(data.meta),
        "settings": dataclasses.asdict(settings),
        "profile": cfg.profile,
        "seed": cfg.seed,
    })


def _hash_view(rc: dict[str, Any]) -> dict[str, Any]:
    view = json.loads(json.dumps(rc))
    for key in NON_SEMANTIC:
        view["settings"].pop(key, None)
    view["data"].pop("root", None)  # the same data generated in another folder is the same data
    return view


def config_hash(rc: dict[str, Any]) -> str:
    """Short hash of the parts of a run config that change the trained weights."""
    text = json.dumps(_hash_view(rc), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    a, b = _flatten(_hash_view(saved)), _flatten(_hash_view(current))
    return [f"{k}: {a.get(k, '<absent>')!r} (checkpoint) vs {b.get(k, '<absent>')!r} (this run)"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


def state_differences(saved: dict[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = sorted(k for k in set(own) & set(saved) if tuple(own[k].shape) != tuple(saved[k].shape))
    lines = [f"missing in checkpoint: {k}" for k in missing]
    lines += [f"not in model: {k}" for k in unexpected]
    lines += [f"shape of {k}: {tuple(saved[k].shape)} (checkpoint) vs {tuple(own[k].shape)} (model)" for k in shapes]
    return lines


def _mismatch(path: Path, what: str, lines: list[str]) -> CheckpointMismatch:
    shown = lines[:12] + ([f"... and {len(lines) - 12} more"] if len(lines) > 12 else [])
    return CheckpointMismatch(f"{path}: checkpoint of another {what}; refusing to load it. Differences:\n  "
                              + "\n  ".join(shown)
                              + "\nUse another output folder (or delete this one) to start a new run.")


# ------------------------------------------------------------------------------ checkpoints


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module | None = None,
                    expect_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; check it against ``model`` and
    ``expect_config`` (raising :class:`CheckpointMismatch` listing what differs); load the
    weights into ``model`` when given. Returns the checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (train first: python -m fgfs_lib train ... --out DIR)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling error means a bad file
        raise ValueError(f"{path}: not a readable fgfs checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or ckpt.get("fgfs_checkpoint") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an fgfs checkpoint (format {CHECKPOINT_FORMAT} expected)")
    if expect_config is not None:
        lines = config_differences(ckpt["run_config"], expect_config)
        if lines:
            raise _mismatch(path, "run configuration", lines)
    if model is not None:
        lines = state_differences(ckpt["model_state"], model)
        if lines:
            raise _mismatch(path, "model", lines)
        model.load_state_dict(ckpt["model_state"])
    return ckpt


def _rng_states(plan_state: torch.Tensor) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "plan_generator": plan_state.clone(),
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": random.getstate(),
    }


def _restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def _save(path: Path, payload: dict[str, Any]) -> None:
    with utils.atomic_path(path) as tmp:
        torch.save(payload, tmp)


# ------------------------------------------------------------------------------ batches


def epoch_plan(labels: torch.Tensor, settings: TrainSettings, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The epoch's batches, drawn from ``generator``: ``rows`` [S, B] image indices
    (in-batch) or [S, B, 4] triplet rows (anchor, positive, negative, attribute), and
    ``flips`` [S, k, B] random horizontal flips (k = 1 or 3 images per item)."""
    steps, size = settings.steps_per_epoch, settings.batch_size
    if settings.sampling == "in_batch":
        n = len(labels)
        if n < size:
            raise ValueError(f"batch_size {size} is larger than the training split ({n} images)")
        per_perm = n // size  # full batches from one permutation; no image twice in a batch
        perms = [torch.randperm(n, generator=generator)[: per_perm * size].view(per_perm, size)
                 for _ in range(math.ceil(steps / per_perm))]
        rows = torch.cat(perms)[:steps]
        k = 1
    else:
        from . import sampling

        rows = sampling.sample_triplets(labels, steps * size, generator, style=settings.triplet_style)
        rows = rows.view(steps, size, 4)
        k = 3
    flips = torch.rand(steps, k, size, generator=generator) < 0.5
    if not settings.augment:
        flips.zero_()
    return {"rows": rows, "flips": flips}


def _in_memory(split: Any) -> bool:
    return bool(getattr(split, "in_memory", True))


class _BatchSource:
    """Turns plan rows into image tensors on the device: ``split.batch`` for in-memory
    splits, a ``DataLoader`` (workers, pinned memory) for file-based ones."""

    def __init__(self, split: Any, settings: TrainSettings, dev: torch.device, loader_seed: int):
        self.split = split
        self.dev = dev
        self.workers = settings.num_workers
        if self.workers < 0:
            self.workers = 0 if _in_memory(split) else min(8, os.cpu_count() or 1)
        self.loader_seed = loader_seed

    def _images_of(self, index_batches: list[torch.Tensor]):
        if self.workers == 0:
            for idx in index_batches:
                yield self.split.batch(idx)
            return
        loader_gen = torch.Generator().manual_seed(self.loader_seed)  # keeps the global RNG untouched
        loader = torch.utils.data.DataLoader(
            self.split, batch_sampler=[idx.tolist() for idx in index_batches], num_workers=self.workers,
            pin_memory=self.dev.type == "cuda", generator=loader_gen, persistent_workers=False,
            prefetch_factor=4)
        for images, _ in loader:
            yield images

    def batches(self, plan: dict[str, torch.Tensor], start: int, sampling: str):
        rows = plan["rows"][start:]
        flips = plan["flips"][start:]
        if sampling == "in_batch":
            index_batches = list(rows)
        else:  # one load of the 3B images of a triplet batch: anchors, positives, negatives
            index_batches = [r[:, :3].t().reshape(-1) for r in rows]
        for step, (images, row, flip) in enumerate(zip(self._images_of(index_batches), rows, flips)):
            images = images.to(self.dev, non_blocking=True)
            flip = flip.reshape(-1).to(self.dev)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            if sampling == "in_batch":
                batch = {"images": images, "labels": self.split.labels[row].to(self.dev)}
            else:
                a, p, n = images.chunk(3)
                batch = {"anchor": a, "positive": p, "negative": n, "attribute": row[:, 3].to(self.dev)}
            yield start + step, batch


@torch.no_grad()
def _restore_buffers(model: torch.nn.Module, saved: list[torch.Tensor]) -> None:
    for buffer, value in zip(model.buffers(), saved):
        buffer.copy_(value)


def _to_channels_last(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}


# ------------------------------------------------------------------------------ the loop


def fit(
    model: Any,
    data: Any,
    cfg: config_module.Config | None = None,
    *,
    out_dir: str | os.PathLike,
    settings: TrainSettings | None = None,
    resume: bool = True,
    verbose: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``model`` on ``data.train``; checkpoints in ``out_dir``; returns a :class:`TrainResult`.

    ``settings`` (or keyword overrides of :func:`default_settings`, e.g. ``sampling=``,
    ``epochs=``, ``steps_per_epoch=``, ``batch_size=``, ``lr=``) choose the run. With
    ``resume`` an existing ``out_dir/last.pt`` of the same run continues where it stopped (a
    finished run returns at once); one of another run is refused. ``on_step(global_step,
    logs)`` is called after every optimiser step.
    """
    from . import evaluate

    cfg = cfg if cfg is not None else config_module.load()
    if settings is None:
        settings = default_settings(cfg, **overrides)
    elif overrides:
        settings = dataclasses.replace(settings, **overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rc = run_config(model, data, cfg, settings)
    dev = utils.device()
    use_cuda = dev.type == "cuda"
    amp_dtype = None
    if use_cuda and settings.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    channels_last = use_cuda and settings.channels_last
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=settings.lr,
                                 weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.lr_step, gamma=settings.lr_gamma)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    # ---- fresh start or resume
    generator = torch.Generator().manual_seed(cfg.seed)
    epoch, start_step, global_step = 0, 0, 0
    progress_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    best_map, best_epoch = -1.0, -1
    plan_state = generator.get_state()
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, model, expect_config=rc)
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        epoch, start_step, global_step = ckpt["epoch"], ckpt["step"], ckpt["global_step"]
        history, best_map, best_epoch = list(ckpt["history"]), ckpt["best_map"], ckpt["best_epoch"]
        plan_state = ckpt["rng"]["plan_generator"]
        progress_state = ckpt.get("epoch_progress")
        _restore_rng(ckpt["rng"])
        if ckpt["finished"]:
            if verbose:
                print(f"{out_dir}: run already finished ({len(history)} epochs, best valid MAP {best_map:.2f})")
            return _result(model, history, best_map, best_epoch, out_dir, rc, stopped=ckpt.get("stopped"))
        if verbose:
            print(f"resuming {out_dir} at epoch {epoch + 1}, step {start_step}")
    else:
        utils.seed_everything(cfg.seed)  # dropout and anything else on the global RNG
    utils.atomic_write_json(out_dir / "config.json", rc)

    def checkpoint(path: Path, ep: int, st: int, finished: bool, stopped: str | None = None) -> None:
        _save(path, {
            "fgfs_checkpoint": CHECKPOINT_FORMAT,
            "run_config": rc,
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict(),
            "scaler_state": scaler.state_dict() if scaler is not None else None,
            "epoch": ep, "step": st, "global_step": global_step,
            "rng": _rng_states(plan_state),
            "history": _plain(history), "best_map": float(best_map), "best_epoch": int(best_epoch),
            "finished": finished, "stopped": stopped,
            # running sums of the interrupted epoch, so its summary matches an uninterrupted run
            "epoch_progress": {"loss_sum": loss_sum, "loss_count": loss_count, "images_seen": images_seen,
                               "seconds": time.perf_counter() - t_start + seconds_before} if st else None,
        })

    source = _BatchSource(data.train, settings, dev, loader_seed=cfg.seed)
    labels = data.train.labels
    images_per_item = 1 if settings.sampling == "in_batch" else 3
    stopped: str | None = None
    params = [p for p in model.parameters() if p.requires_grad]
    while epoch < settings.epochs and stopped is None:
        generator.set_state(plan_state)
        plan = epoch_plan(labels, settings, generator)
        model.train()
        loss_sum, loss_count, images_seen, seconds_before = 0.0, 0, 0, 0.0
        if progress_state and start_step:
            loss_sum, loss_count = progress_state["loss_sum"], progress_state["loss_count"]
            images_seen, seconds_before = progress_state["images_seen"], progress_state["seconds"]
        progress_state = None
        t_start = time.perf_counter()
        bar = utils.progress(source.batches(plan, start_step, settings.sampling),
                             desc=f"{rc['model']['name']} epoch {epoch + 1}/{settings.epochs}",
                             total=settings.steps_per_epoch - start_step)
        step = start_step
        for step, batch in bar:
            if channels_last:
                batch = _to_channels_last(batch)
            # the forward pass updates buffers (BatchNorm statistics): keep a copy to undo a bad step
            buffers_before = [b.detach().clone() for b in model.buffers()]
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss, logs = model.loss(batch)
            if not torch.isfinite(loss.detach()):
                stopped = f"non-finite loss ({float(loss.detach()):.3g}) at epoch {epoch + 1}, step {step}"
                _restore_buffers(model, buffers_before)
                break
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip or float("inf"))
            if scaler is None and not torch.isfinite(norm):
                optimizer.zero_grad(set_to_none=True)
                stopped = f"non-finite gradient at epoch {epoch + 1}, step {step}"
                _restore_buffers(model, buffers_before)
                break
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            global_step += 1
            loss_sum += float(loss.detach())
            loss_count += 1
            images_seen += settings.batch_size * images_per_item
            if loss_count % 5 == 0 or step + 1 == settings.steps_per_epoch:
                rate = images_seen / max(time.perf_counter() - t_start + seconds_before, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}", img_s=f"{rate:.0f}")
            if settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0 \
                    and step + 1 < settings.steps_per_epoch:
                checkpoint(last_path, epoch, step + 1, finished=False)
            if on_step is not None:
                on_step(global_step, {"loss": float(loss.detach()), **logs})
        bar.close()
        if stopped is not None:
            # the parameters were not updated from the bad step: they are the last good state
            checkpoint(last_path, epoch, step, finished=False, stopped=stopped)
            print(f"STOPPED: {stopped}; last good state saved in {last_path}", file=sys.stderr)
            break
        if use_cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t_start + seconds_before
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        record: dict[str, Any] = {
            "epoch": epoch + 1, "loss": loss_sum / max(loss_count, 1), "lr": lr,
            "images_per_second": images_seen / max(seconds, 1e-9) if loss_count else float("nan"),
            "train_seconds": seconds, "steps": loss_count, "valid_map": float("nan"),
        }
        if settings.validate:
            result = evaluate.retrieval_map(model, data, split="valid", batch_size=settings.eval_batch_size)
            record["valid_map"] = result["overall"]
            record["valid_per_attribute"] = result["per_attribute"]
        history.append(_plain(record))
        epoch += 1
        start_step = 0
        plan_state = generator.get_state()
        improved = settings.validate and record["valid_map"] > best_map
        if improved or (not settings.validate and epoch == settings.epochs):
            best_map, best_epoch = (record["valid_map"] if settings.validate else float("nan")), epoch
        checkpoint(last_path, epoch, 0, finished=epoch == settings.epochs)
        if improved or (not settings.validate and epoch == settings.epochs):
            checkpoint(best_path, epoch, 0, finished=epoch == settings.epochs)
        if verbose:
            print(f"{rc['model']['name']} epoch {epoch}/{settings.epochs}  loss {record['loss']:.4f}  "
                  f"valid MAP {record['valid_map']:.2f} (best {best_map:.2f} @ {best_epoch})  "
                  f"{record['images_per_second']:.0f} img/s  lr {lr:.1e}  {seconds:.1f} s")
    utils.atomic_write_json(out_dir / "history.json", {"history": history, "best_map": best_map,
                                                        "best_epoch": best_epoch, "stopped": stopped})
    return _result(model, history, best_map, best_epoch, out_dir, rc, stopped=stopped)


def _result(model, history, best_map, best_epoch, out_dir, rc, stopped=None, reused=False) -> TrainResult:
    rates = [h["images_per_second"] for h in history if h.get("steps") and math.isfinite(h["images_per_second"])]
    return TrainResult(model=model, history=history, best_map=best_map, best_epoch=best_epoch,
                       checkpoint_dir=Path(out_dir), images_per_second=float(np.median(rates)) if rates else float("nan"),
                       run_config=rc, reused=reused, stopped=stopped)


# ------------------------------------------------------------------------------ reuse


def load_model(path: str | os.PathLike, cfg: config_module.Config | None = None, meta: Any = None):
    """Rebuild the model of a checkpoint (through the registry) and load its weights.
    Returns ``(model, checkpoint)``; the model is in eval mode on :func:`fgfs_lib.utils.device`."""
    import types

    from .models.registry import build_model

    path = Path(path)
    ckpt = load_checkpoint(path)
    rc = ckpt["run_config"]
    if meta is None:
        meta = types.SimpleNamespace(**rc["meta"])
    cfg = cfg if cfg is not None else config_module.load(rc["profile"], rc["seed"])
    model = build_model(rc["model"]["name"], meta, cfg, **rc["model"]["options"])
    lines = state_differences(ckpt["model_state"], model)
    if lines:
        raise _mismatch(path, "model (the registry builds it differently now)", lines)
    model.load_state_dict(ckpt["model_state"])
    return model.to(utils.device()).eval(), ckpt


def run_dir(model_name: str, rc: dict[str, Any], cfg: config_module.Config) -> Path:
    return cfg.checkpoint_dir / f"{model_name}-{config_hash(rc)}"


def train_or_load(
    model_name: str,
    data: Any,
    cfg: config_module.Config | None = None,
    *,
    model_options: dict[str, Any] | None = None,
    use: str = "best",
    out_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    **settings_overrides: Any,
) -> TrainResult:
    """Train ``model_name`` on ``data`` (seeded by ``cfg.seed``) or, when a finished run with an
    identical config exists under ``cfg.checkpoint_dir``, load it. ``use``: ``"best"``
    (best valid MAP, default) or ``"last"`` weights in the returned model."""
    from .models.registry import build_model

    if use not in ("best", "last"):
        raise ValueError(f"use must be 'best' or 'last', got {use!r}")
    cfg = cfg if cfg is not None else config_module.load()
    settings = default_settings(cfg, **settings_overrides)
    utils.seed_everything(cfg.seed)
    model = build_model(model_name, data.meta, cfg, **(model_options or {}))
    rc = run_config(model, data, cfg, settings)
    folder = Path(out_dir) if out_dir is not None else run_dir(model_name, rc, cfg)
    last = folder / "last.pt"
    if last.is_file():
        ckpt = load_checkpoint(last, expect_config=rc)
        if ckpt["finished"]:
            chosen = folder / "best.pt" if use == "best" and (folder / "best.pt").is_file() else last
            load_checkpoint(chosen, model)
            model.to(utils.device()).eval()
            if verbose:
                print(f"loaded {chosen} (trained earlier: best valid MAP {ckpt['best_map']:.2f} "
                      f"at epoch {ckpt['best_epoch']}; delete the folder to retrain)")
            return _result(model, list(ckpt["history"]), ckpt["best_map"], ckpt["best_epoch"], folder, rc,
                           stopped=ckpt.get("stopped"), reused=True)
    result = fit(model, data, cfg, out_dir=folder, settings=settings, resume=True, verbose=verbose)
    if use == "best" and result.stopped is None and (folder / "best.pt").is_file():
        load_checkpoint(folder / "best.pt", model)
    model.eval()
    return result


# ------------------------------------------------------------------------------ command line


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cli_train(argv: list[str]) -> int:
    """``python -m fgfs_lib train --model NAME --data NAME [--root DIR] --profile quick|full
    [--epochs N] [--seed S] --out DIR``."""
    from . import data as data_module
    from .models.registry import available_models, build_model

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib train", description="Train a retrieval model.")
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(available_models())}")
    parser.add_argument("--data", default="fashionsynth", help="fashionsynth or a real dataset name")
    parser.add_argument("--root", default=None, help="dataset folder (real datasets)")
    parser.add_argument("--profile", choices=config_module.PROFILES, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--sampling", choices=SAMPLINGS, default=None)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="model option, e.g. --option mask=fixed (repeatable; values parsed as JSON)")
    parser.add_argument("--out", required=True, help="folder for checkpoints (a killed run resumes here)")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        if "=" not in item:
            parser.error(f"--option {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        options[key] = _parse_value(value)
    cfg = config_module.load(args.profile, args.seed)
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
        "lr": args.lr, "sampling": args.sampling}.items() if v is not None}
    if args.no_amp:
        overrides["amp"] = False
    if args.no_channels_last:
        overrides["channels_last"] = False
    print(cfg.banner())
    data = data_module.load(args.data, root=args.root, cfg=cfg)
    utils.seed_everything(cfg.seed)
    model = build_model(args.model, data.meta, cfg, **options)
    result = fit(model, data, cfg, out_dir=args.out, **overrides)
    if result.stopped:
        print(f"training stopped: {result.stopped}", file=sys.stderr)
        return 1
    print(f"done: best valid MAP {result.best_map:.2f} at epoch {result.best_epoch}, "
          f"{result.images_per_second:.0f} img/s; checkpoints in {result.checkpoint_dir}")
    return 0
