"""The one training loop: a model gives its loss from a batch, the loop does the rest.

Introduced in ``notebooks/05_baselines.py``; every later notebook trains through it.

The loop (:class:`Trainer`, called through :func:`fit`) knows nothing of the model beyond
``configure_optimizers``, ``loss(batch)`` and ``validate`` (minGPT's split of work; defaults
in :class:`fgfs_lib.models.base.ConditionalEmbedder`), and nothing of the batches beyond
their kind's name (:mod:`fgfs_lib.batches`). A new method plugs in by overriding those
methods and, if it needs other batches, registering a batch kind: no edit here.

* **Batches.** ``settings.sampling`` names the batch kind: ``"in_batch"`` (random images with
  their label rows; every valid triplet inside the batch) or ``"triplets"`` (the papers'
  three-image triplets). Each epoch's batches and flips are an *epoch plan* drawn from the
  run's generator, so a resumed run sees exactly the batches an uninterrupted one would.
* **Optimisation.** The model's ``configure_optimizers(settings)``: by default Adam with
  StepLR as in the papers (``lr_schedule="step"``) or a per-step cosine decay
  (``"cosine"``); optional gradient clipping; ``init_from`` starts from another run's weights
  (a model freezes parts or slows them through its own parameter groups).
* **Validation.** ``model.validate`` on the valid split after every epoch (retrieval MAP by
  default, :func:`fgfs_lib.evaluate.retrieval_map`).
* **Checkpoints.** ``last.pt`` (every ``checkpoint_every`` steps and every epoch) and
  ``best.pt`` (best valid MAP), holding only tensors and plain Python values (they load with
  ``torch.load(weights_only=True)``): weights, optimiser, scheduler, epoch/step, the run's
  config and seed, and every random state. A killed run resumes from ``last.pt``.
* **Safety.** A NaN or infinite loss (or gradient) stops the run before the update, saving
  the last good state. A checkpoint of another model or config is refused with the keys or
  shapes that differ.
* **Speed.** On CUDA: mixed precision (bf16 where supported, else fp16 with a gradient
  scaler) and channels_last, both switchable; uint8 images normalised on the device.
* **Several processes.** Under ``torchrun --nproc_per_node N`` the same code trains with
  DistributedDataParallel (:mod:`fgfs_lib.distributed`): each rank takes its shard of every
  global batch, rank 0 writes checkpoints, validation is computed across the ranks.

:func:`train_or_load` keys a checkpoint folder by a hash of the whole run config (the model's
name, options and ``version`` included; a start given by ``init_from`` by the digest of its
weights, :func:`weights_digest`, not by its path), so a later notebook asking for the same
model gets the trained one back instead of retraining, and a changed model retrains.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from . import distributed, utils
from .cli import command

CHECKPOINT_FORMAT = 1
# settings that change speed or bookkeeping, not the trained weights: left out of the hash
NON_SEMANTIC = ("num_workers", "checkpoint_every", "eval_batch_size", "validate")


@dataclasses.dataclass
class TrainSettings:
    """Everything that decides a training run besides the model and the data."""

    sampling: str = "in_batch"   # the batch kind (fgfs_lib.batches): in_batch, triplets, classification, ...
    epochs: int = 4
    steps_per_epoch: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "step"     # "step": StepLR every lr_step epochs; "cosine": per step, to 0
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
    init_from: str | None = None  # a checkpoint whose weights the run starts from (e.g. a stage 1)

    def __post_init__(self) -> None:
        from .batches import BATCH_KINDS

        if self.sampling not in BATCH_KINDS:
            raise ValueError(f"sampling must be one of {sorted(BATCH_KINDS)}, got {self.sampling!r}")
        if self.lr_schedule not in ("step", "cosine"):
            raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
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


def weights_digest(path: str | os.PathLike) -> str | None:
    """Short sha256 of a checkpoint's weights alone (names, shapes, values): the same weights
    saved at another path, or with another history, give the same digest. ``None`` when the
    file is missing or unreadable (the run will fail on it later, with its own message)."""
    import hashlib

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)["model_state"]
    except Exception:  # noqa: BLE001 - any unreadable file: no digest
        return None
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        flat = tensor.reshape(-1)  # 0-d tensors too (BatchNorm's counters)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()[:12]


def run_config(model: Any, data: Any, cfg: config_module.Config, settings: TrainSettings) -> dict[str, Any]:
    """What defines a run: model name and options, data identity, settings, profile, seed."""
    model_config = getattr(model, "model_config", None) or {"name": type(model).__name__, "options": {}}
    # the model class's ``version`` is bumped when its computation changes, so a changed model
    # gets a new cache key and retrains instead of reloading stale weights
    model_config = {**model_config, "version": getattr(model, "version", 1)}
    # the resolved constructor arguments (defaults included): a changed default retrains too
    if getattr(model, "constructor_args", None) is not None:
        model_config["constructor"] = model.constructor_args
    # pretrained backbone files by content: new weights under the same name retrain
    digests = sorted({m.weights_digest for m in model.modules() if getattr(m, "weights_digest", None)})
    if digests:
        model_config["backbone_weights"] = digests
    return _plain({
        "model": model_config,
        # the loss choices live on the model class; recorded so a change of default retrains
        "loss": {k: getattr(model, k, None) for k in ("triplet_average", "margin", "distance")},
        "data": {"name": getattr(data.meta, "name", None),
                 "root": str(getattr(data, "root", "") or ""),
                 "config": getattr(data, "config", {}) or {}},
        "meta": meta_dict(data.meta),
        "settings": dataclasses.asdict(settings),
        # the start's weights by content: the key does not depend on where the file lies,
        # and a stage 1 trained again differently retrains what starts from it
        "init_from_weights": weights_digest(settings.init_from) if settings.init_from else None,
        "profile": cfg.profile,
        "seed": cfg.seed,
    })


def _hash_view(rc: dict[str, Any]) -> dict[str, Any]:
    view = json.loads(json.dumps(rc))
    for key in NON_SEMANTIC:
        view["settings"].pop(key, None)
    view["data"].pop("root", None)  # the same data generated in another folder is the same data
    if view.get("init_from_weights"):  # the start is identified by its weights, not its path
        view["settings"].pop("init_from", None)
    return view


def config_hash(rc: dict[str, Any]) -> str:
    """Short hash of the parts of a run config that change the trained weights."""
    return config_module.stable_hash(_hash_view(rc))


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
        raise ValueError(f"{path}: not a readable fgfs checkpoint ({type(error).__name__}: the file is damaged, "
                         "truncated or not written by fgfs)") from error
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


def write_weights_checkpoint(path: str | os.PathLike, model: torch.nn.Module, rc: dict[str, Any],
                             epoch: int = 0) -> Path:
    """A finished-run checkpoint of ``model``'s weights alone (no optimiser, no history), as
    :func:`load_model` and ``evaluate`` read it: e.g. weights imported from elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, {"fgfs_checkpoint": CHECKPOINT_FORMAT, "run_config": _plain(rc),
                 "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "epoch": int(epoch), "step": 0, "global_step": 0, "history": [], "best_map": float("nan"),
                 "best_epoch": int(epoch), "finished": True, "stopped": None})
    return path


# ------------------------------------------------------------------------------ the loop


class _BufferSnapshot:
    """A copy of the model's buffers (BatchNorm statistics) taken before each step, so a step
    whose loss turns out non-finite can be undone. One fused copy per step into storage
    allocated once (not one allocation and one kernel per buffer)."""

    def __init__(self, model: torch.nn.Module):
        self.buffers = [b for b in model.buffers()]
        self.saved = [b.detach().clone() for b in self.buffers]

    @torch.no_grad()
    def take(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.saved, self.buffers)

    @torch.no_grad()
    def restore(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.buffers, self.saved)


def _fresh_progress() -> dict[str, float]:
    return {"loss_sum": 0.0, "loss_count": 0, "images_seen": 0, "seconds": 0.0}


@dataclasses.dataclass
class _Position:
    """Where a run is: what a checkpoint holds besides weights and optimiser state."""

    epoch: int = 0                      # finished epochs
    step: int = 0                       # next step within the current epoch
    global_step: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_map: float = -1.0
    best_epoch: int = -1
    plan_state: torch.Tensor | None = None  # the plan generator's state at the epoch's start
    progress: dict[str, float] = dataclasses.field(default_factory=_fresh_progress)  # running sums
    stopped: str | None = None


class Trainer:
    """One training run. It knows nothing of the model beyond four methods:

    * ``model.configure_optimizers(settings) -> (optimizer, scheduler)``;
    * ``model.loss(batch) -> (loss, logs)`` on batches of the kind ``settings.sampling``
      (:mod:`fgfs_lib.batches`);
    * ``model.validate(data, split, batch_size) -> {"overall": ..., "per_attribute": ...}``;
    * optionally ``model.init_from_state(state_dict)`` when ``settings.init_from`` names a
      checkpoint to start from (default: ``load_state_dict``).

    :func:`fit` is the function to call; this class keeps each part of the loop short.
    """

    def __init__(self, model: Any, data: Any, cfg: config_module.Config, settings: TrainSettings,
                 out_dir: Path, verbose: bool = True, on_step: Callable[[int, dict[str, float]], None] | None = None):
        from . import batches

        self.model, self.data, self.cfg, self.settings = model, data, cfg, settings
        self.out_dir, self.on_step = out_dir, on_step
        self.verbose = verbose and distributed.is_main()
        self.rc = run_config(model, data, cfg, settings)
        self.dev = utils.device()
        use_cuda = self.dev.type == "cuda"
        self.amp_dtype = None
        if use_cuda and settings.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        channels_last = use_cuda and settings.channels_last
        model.to(self.dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = distributed.wrap(model, self.dev)
        self.optimizer, self.scheduler = model.configure_optimizers(settings)
        self.per_step_schedule = getattr(self.scheduler, "fgfs_interval", "epoch") == "step"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.kind = batches.batch_kind(settings.sampling)
        self.source = batches.BatchSource(data.train, self.kind, self.dev, workers=settings.num_workers,
                                          seed=cfg.seed, channels_last=channels_last)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.snapshot = _BufferSnapshot(model)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.pos = _Position(plan_state=self.generator.get_state())
        self.last_path, self.best_path = out_dir / "last.pt", out_dir / "best.pt"

    # -- start ----------------------------------------------------------------------------
    def start(self, resume: bool) -> bool:
        """Resume from ``last.pt`` when asked and present, else start fresh (from
        ``settings.init_from`` if given). Returns True when the run had already finished."""
        if resume and self.last_path.is_file():
            ckpt = load_checkpoint(self.last_path, self.model, expect_config=self.rc)
            self.optimizer.load_state_dict(ckpt["optimizer_state"])
            self.scheduler.load_state_dict(ckpt["scheduler_state"])
            if self.scaler is not None and ckpt.get("scaler_state"):
                self.scaler.load_state_dict(ckpt["scaler_state"])
            self.pos = _Position(ckpt["epoch"], ckpt["step"], ckpt["global_step"], list(ckpt["history"]),
                                 ckpt["best_map"], ckpt["best_epoch"], ckpt["rng"]["plan_generator"],
                                 ckpt.get("epoch_progress") or _fresh_progress(), ckpt.get("stopped"))
            _restore_rng(ckpt["rng"])
            if ckpt["finished"]:
                self._say(f"{self.out_dir}: run already finished ({len(self.pos.history)} epochs, "
                          f"best valid MAP {self.pos.best_map:.2f})")
                return True
            self._say(f"resuming {self.out_dir} at epoch {self.pos.epoch + 1}, step {self.pos.step}")
        else:
            if resume and distributed.is_main() and ((self.out_dir / "config.json").is_file()
                                                     or any(self.out_dir.glob("*.pt"))):
                print(f"{self.out_dir}: an earlier run here stopped before its first checkpoint (no last.pt); "
                      "starting from scratch", file=sys.stderr)
            utils.seed_everything(self.cfg.seed)  # dropout and anything else on the global RNG
            if self.settings.init_from:
                self._initialise_from(Path(self.settings.init_from))
        if distributed.is_main():
            utils.atomic_write_json(self.out_dir / "config.json", self.rc)
        return False

    def _initialise_from(self, path: Path) -> None:
        state = load_checkpoint(path)["model_state"]
        loader = getattr(self.model, "init_from_state", None)
        if loader is not None:
            loader(state)
        else:
            lines = state_differences(state, self.model)
            if lines:
                raise _mismatch(path, "model (init_from)", lines)
            self.model.load_state_dict(state)
        self._say(f"initialised from {path}")

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        while self.pos.epoch < self.settings.epochs and self.pos.stopped is None:
            self._train_epoch()
            if self.pos.stopped is not None:
                break
            self._end_epoch()
        if distributed.is_main():
            utils.atomic_write_json(self.out_dir / "history.json", {
                "history": self.pos.history, "best_map": self.pos.best_map, "best_epoch": self.pos.best_epoch,
                "stopped": self.pos.stopped})
        distributed.barrier()

    def _train_epoch(self) -> None:
        from . import batches

        pos, s = self.pos, self.settings
        self.generator.set_state(pos.plan_state)
        plan = batches.epoch_plan(self.data.train.labels, s, self.generator)
        self.model.train()
        self.t_start = time.perf_counter()
        bar = utils.progress(self.source.batches(plan, pos.step), total=s.steps_per_epoch - pos.step,
                             desc=f"{self.rc['model']['name']} epoch {pos.epoch + 1}/{s.epochs}",
                             disable=not distributed.is_main())
        for step, batch in bar:
            if not self._step(batch, step):
                break
            pos.step = step + 1
            if pos.progress["loss_count"] % 5 == 0 or pos.step == s.steps_per_epoch:
                bar.set_postfix(loss=f"{pos.progress['loss_sum'] / pos.progress['loss_count']:.4f}",
                                img_s=f"{pos.progress['images_seen'] / max(self._seconds(), 1e-9):.0f}")
            if s.checkpoint_every and pos.step % s.checkpoint_every == 0 and pos.step < s.steps_per_epoch:
                self._save(self.last_path, finished=False)
        bar.close()
        if pos.stopped is not None:
            # the parameters were not updated from the bad step: they are the last good state
            self._save(self.last_path, finished=False)
            print(f"STOPPED: {pos.stopped}; last good state saved in {self.last_path}", file=sys.stderr)

    def _step(self, batch: dict[str, torch.Tensor], step: int) -> bool:
        """One optimiser step; False (and ``pos.stopped`` set) on a non-finite loss or gradient."""
        pos, where = self.pos, f"epoch {self.pos.epoch + 1}, step {step}"
        # the forward pass updates buffers (BatchNorm statistics): keep a copy to undo a bad step
        self.snapshot.take()
        with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, logs = self.forward(batch)
        if not distributed.all_finite(loss):
            pos.stopped = f"non-finite loss ({float(loss.detach()):.3g}) at {where}"
            self.snapshot.restore()
            return False
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip or float("inf"))
        if self.scaler is None and not distributed.all_finite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            pos.stopped = f"non-finite gradient at {where}"
            self.snapshot.restore()
            return False
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the lr of this step, before a per-step schedule moves it
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.per_step_schedule:
            self.scheduler.step()
        pos.global_step += 1
        value = float(loss.detach())
        pos.progress["loss_sum"] += value
        pos.progress["loss_count"] += 1
        pos.progress["images_seen"] += self.settings.batch_size * self.kind.images_per_item
        if self.on_step is not None:
            self.on_step(pos.global_step, {"loss": value, **logs})
        return True

    def _seconds(self) -> float:
        return time.perf_counter() - self.t_start + self.pos.progress["seconds"]

    def _end_epoch(self) -> None:
        pos, s = self.pos, self.settings
        if self.dev.type == "cuda":
            torch.cuda.synchronize()
        seconds, count = self._seconds(), pos.progress["loss_count"]
        lr = getattr(self, "last_lr", self.optimizer.param_groups[0]["lr"])  # in force at the epoch's last step
        if not self.per_step_schedule:
            self.scheduler.step()
        record: dict[str, Any] = {
            "epoch": pos.epoch + 1, "loss": pos.progress["loss_sum"] / max(count, 1), "lr": lr,
            "images_per_second": pos.progress["images_seen"] / max(seconds, 1e-9) if count else float("nan"),
            "train_seconds": seconds, "steps": count, "valid_map": float("nan"),
        }
        if s.validate:
            result = self.model.validate(self.data, split="valid", batch_size=s.eval_batch_size)
            record["valid_map"], record["valid_per_attribute"] = result["overall"], result["per_attribute"]
        pos.history.append(_plain(record))
        pos.epoch, pos.step, pos.progress = pos.epoch + 1, 0, _fresh_progress()
        pos.plan_state = self.generator.get_state()
        finished = pos.epoch == s.epochs
        best = record["valid_map"] > pos.best_map if s.validate else finished
        if best:
            pos.best_map, pos.best_epoch = (record["valid_map"] if s.validate else float("nan")), pos.epoch
        self._save(self.last_path, finished=finished)
        if best:
            self._save(self.best_path, finished=finished)
        self._say(f"{self.rc['model']['name']} epoch {pos.epoch}/{s.epochs}  loss {record['loss']:.4f}  "
                  f"valid MAP {record['valid_map']:.2f} (best {pos.best_map:.2f} @ {pos.best_epoch})  "
                  f"{record['images_per_second']:.0f} img/s  lr {lr:.1e}  {seconds:.1f} s")

    # -- checkpoints ----------------------------------------------------------------------
    def _save(self, path: Path, finished: bool) -> None:
        """Rank 0 writes (through a temporary file and a rename); every rank waits for it."""
        pos = self.pos
        if distributed.is_main():
            progress = dict(pos.progress, seconds=self._seconds()) if pos.step else None
            _save(path, {
                "fgfs_checkpoint": CHECKPOINT_FORMAT,
                "run_config": self.rc,
                "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer_state": self.optimizer.state_dict(),
                "scheduler_state": self.scheduler.state_dict(),
                "scaler_state": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": pos.epoch, "step": pos.step, "global_step": pos.global_step,
                "rng": _rng_states(pos.plan_state),
                "history": _plain(pos.history), "best_map": float(pos.best_map), "best_epoch": int(pos.best_epoch),
                "finished": finished, "stopped": pos.stopped,
                # running sums of the interrupted epoch, so its summary matches an uninterrupted run
                "epoch_progress": progress,
            })
        distributed.barrier()

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message)

    def result(self) -> "TrainResult":
        pos = self.pos
        return _result(self.model, pos.history, pos.best_map, pos.best_epoch, self.out_dir, self.rc,
                       stopped=pos.stopped)


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
    logs)`` is called after every optimiser step. Under ``torchrun`` the run is spread over
    the processes (:mod:`fgfs_lib.distributed`); rank 0 writes the checkpoints.
    """
    cfg = cfg if cfg is not None else config_module.load()
    if settings is None:
        settings = default_settings(cfg, **overrides)
    elif overrides:
        settings = dataclasses.replace(settings, **overrides)
    distributed.setup()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, data, cfg, settings, out_dir, verbose=verbose, on_step=on_step)
    if not trainer.start(resume):
        trainer.run()
    return trainer.result()


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


@command
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
    parser.add_argument("--lr-schedule", choices=("step", "cosine"), default=None,
                        help="StepLR per epoch or a per-step cosine to 0 (default: the profile's)")
    parser.add_argument("--sampling", default=None, help="batch kind: in_batch (default in quick) or triplets")
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
        "lr": args.lr, "sampling": args.sampling, "lr_schedule": args.lr_schedule}.items() if v is not None}
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
