"""Evaluation: embed (image, attribute) pairs and compute the ASFR MAP of a model.

Introduced in ``notebooks/05_baselines.py``.

* :func:`embed_pairs` embeds rows ``(image index, attribute, value)`` of a split, running the
  backbone once per distinct image and the conditioned head once per pair. On a CPU it runs an
  inference copy of the model (:func:`inference_copy`: BatchNorm folded into the convolution
  before it, channels-last memory), about twice as fast, equal up to float rounding.
* :func:`retrieval_map` is ASEN's evaluation protocol:
  each query and candidate embedded for its own attribute, candidates ranked per attribute,
  AP over the full ranking, MAP x100 per attribute and query-weighted overall
  (:func:`fgfs_lib.metrics.mean_average_precision`). Cosine models are ranked by cosine
  similarity; models with ``distance = "euclidean"`` (CSN) by negative Euclidean distance,
  as they were trained.
* :func:`triplet_relation` is the triplet-relation accuracy (Zappos50k's task, AG-MAN's
  Table 4) on rows ``(anchor, closer, farther, condition)``, e.g. FashionSynth's
  (:func:`fgfs_lib.data.synth.relation_triplets`).
* ``python -m fgfs_lib evaluate --checkpoint FILE [--out FILE]`` writes the metrics as JSON
  with the run's config, seed, git commit and device.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import distributed, utils
from .cli import command


def select_features(feats: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of features that may be a tensor or a dict/tuple of tensors."""
    if isinstance(feats, torch.Tensor):
        return feats[index]
    if isinstance(feats, dict):
        return {k: select_features(v, index) for k, v in feats.items()}
    if isinstance(feats, (tuple, list)):
        return type(feats)(select_features(v, index) for v in feats)
    raise TypeError(f"cannot index features of type {type(feats).__name__}")


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` inside an
    ``nn.Sequential`` into that convolution, in place: ``y = g (W x + b - m) / s + beta`` is one
    convolution with weights ``g W / s`` and bias ``g (b - m) / s + beta``. The BatchNorm's slot
    becomes ``nn.Identity``, so indices (and any code reading a later layer) are unchanged."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if (isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)
                    and not bn.training and bn.track_running_stats and bn.running_mean is not None):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), torch.nn.Identity()
    return module


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` for fast CPU inference: BatchNorm folded
    (:func:`fold_batchnorm`) and 4-D weights in channels-last memory, which oneDNN's CPU
    kernels run about 1.5x faster (benchmarks/RESULTS.md). ``model`` itself is untouched (a
    training run validating mid-epoch goes on exactly as before); outputs equal the original's
    up to float rounding (about 1e-5 on features)."""
    import copy

    clone = copy.deepcopy(model).eval()
    return fold_batchnorm(clone).to(memory_format=torch.channels_last)


def inference_net(model: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module, torch.memory_format]:
    """What an evaluation on ``device`` runs, and the memory format to give it images in: on a
    CPU, for a convolutional model, :func:`inference_copy` and channels-last; else ``model``
    itself (eval mode is the caller's business) and contiguous images."""
    if device.type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return inference_copy(model), torch.channels_last
    return model, torch.contiguous_format


class NonFiniteEmbeddings(ValueError):
    """The model produced NaN or infinite embeddings; a MAP of them would rank by index."""


@torch.no_grad()
def embed_pairs(model: Any, split: Any, pairs: torch.Tensor, batch_size: int = 256,
                device: torch.device | None = None) -> torch.Tensor:
    """``[P, D]`` embeddings (float32, CPU) of ``pairs`` rows ``(image index, attribute, ...)``
    of ``split``; one backbone pass per distinct image. The model is put in eval mode and
    restored to its previous mode afterwards."""
    pairs = torch.as_tensor(pairs).long()
    if pairs.dim() != 2 or pairs.shape[1] < 2:
        raise ValueError(f"pairs must be [P, >=2] rows (image index, attribute[, value]), got {tuple(pairs.shape)}")
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    net, memory = inference_net(model, dev)
    images, inverse = torch.unique(pairs[:, 0], return_inverse=True)  # sorted distinct images
    order = torch.argsort(inverse, stable=True)  # pairs grouped by image, in image order
    out: torch.Tensor | None = None
    position = 0  # next pair (in `order`) to embed
    counts = torch.bincount(inverse, minlength=len(images))
    ends = torch.cumsum(counts, 0)
    share, ranks = distributed.rank(), distributed.world_size()  # under torchrun, chunks are shared out
    if ranks > 1:
        out = torch.zeros(len(pairs), model.embed_dim, dtype=torch.float32)
    try:
        for number, start in enumerate(range(0, len(images), batch_size)):
            chunk = images[start:start + batch_size]
            stop = int(ends[start + len(chunk) - 1])
            if number % ranks != share:
                position = stop
                continue
            feats = net.features(split.batch_on(chunk, dev).contiguous(memory_format=memory))
            rows = order[position:stop]
            local = inverse[rows] - start
            emb = net.embed_from_features(select_features(feats, local.to(dev)), pairs[rows, 1].to(dev))
            if out is None:
                out = torch.empty(len(pairs), emb.shape[1], dtype=torch.float32)
            out[rows] = emb.float().cpu()
            position = stop
    finally:
        model.train(was_training)
    if ranks > 1:  # every pair was embedded by exactly one rank; the others hold zeros there
        out = distributed.all_reduce_sum(out.to(dev)).cpu()
    if out is None:
        return torch.empty(0, getattr(model, "embed_dim", 0))
    return out


def require_finite(emb: torch.Tensor, where: str, metric: str) -> None:
    """Refuse NaN or infinite embeddings: NaN scores tie, and a tie-based metric would be meaningless."""
    bad = int((~torch.isfinite(emb).all(dim=1)).sum()) if emb.numel() else 0
    if bad:
        raise NonFiniteEmbeddings(f"{bad} of {len(emb)} embeddings on {where} are not finite (NaN or inf): "
                                  f"the model's weights or activations overflowed, so no {metric} can be computed")


def model_device(model: Any) -> torch.device:
    """Where the model's parameters are; :func:`fgfs_lib.utils.device` for a model without any."""
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return param.device if param is not None else utils.device()


def triplet_relation(model: Any, images: Any, triplets: torch.Tensor, batch_size: int = 256) -> float:
    """Triplet-relation accuracy (percent) of ``model`` on rows ``(anchor, closer, farther,
    condition)`` indexing the ImageSplit ``images`` (Zappos50k's task, AG-MAN's Table 4).

    Each distinct (image, condition) pair is embedded once for its condition
    (:func:`embed_pairs`); a row is right when the anchor is strictly closer to the closer
    image than to the farther one under the model's ``distance`` (cosine or Euclidean), a
    tie is wrong (:func:`fgfs_lib.metrics.triplet_relation_accuracy`).
    """
    from . import metrics

    triplets = torch.as_tensor(triplets).long()
    if triplets.dim() != 2 or triplets.shape[1] != 4 or len(triplets) == 0:
        raise ValueError(f"triplets must be [T, 4] rows (anchor, closer, farther, condition) with T >= 1, "
                         f"got shape {tuple(triplets.shape)}")
    condition = triplets[:, 3:]
    wanted = torch.cat([torch.cat([triplets[:, k:k + 1], condition], 1) for k in range(3)])
    pairs, inverse = torch.unique(wanted, dim=0, return_inverse=True)
    emb = embed_pairs(model, images, pairs, batch_size=batch_size, device=model_device(model))
    require_finite(emb, f"the {getattr(images, 'name', '') or 'given'} split", "triplet-relation accuracy")
    anchor, closer, farther = emb[inverse].view(3, len(triplets), -1)
    return metrics.triplet_relation_accuracy(anchor, farther, closer, distance=getattr(model, "distance", "cosine"))


def retrieval_map(model: Any, data: Any, split: str = "valid", batch_size: int = 256) -> dict[str, Any]:
    """MAP (x100) of ``model`` on ``data``'s ``split`` ("valid" or "test") queries and candidates:
    ``{"overall", "per_attribute": {attr_id: map}, "per_attribute_name": {name: map},
    "num_queries", "num_candidates"}``."""
    from . import metrics

    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    images = getattr(data, split)
    queries = getattr(data, f"{split}_queries")
    candidates = getattr(data, f"{split}_candidates")
    emb = embed_pairs(model, images, torch.cat([queries, candidates]), batch_size=batch_size)
    require_finite(emb, f"the {split} split", "MAP")
    q_emb, c_emb = emb[: len(queries)], emb[len(queries):]
    args = (q_emb, queries[:, 1], queries[:, 2], c_emb, candidates[:, 1], candidates[:, 2])
    result = metrics.mean_average_precision(*args, distance=getattr(model, "distance", "cosine"))
    names = list(getattr(data.meta, "attribute_names", []))
    result["per_attribute_name"] = {(names[a] if a < len(names) else str(a)): v
                                    for a, v in result["per_attribute"].items()}
    result["num_queries"] = int(len(queries))
    result["num_candidates"] = int(len(candidates))
    return result


def random_map(data: Any, split: str = "test") -> dict[str, Any]:
    """Expected MAP of a random ranking on ``split`` (analytic, from :mod:`fgfs_lib.metrics`)."""
    from . import metrics

    queries = getattr(data, f"{split}_queries")
    candidates = getattr(data, f"{split}_candidates")
    return metrics.expected_random_map(queries[:, 1], queries[:, 2], candidates[:, 1], candidates[:, 2])


@command
def cli_evaluate(argv: list[str]) -> int:
    """``python -m fgfs_lib evaluate --checkpoint FILE [--out FILE] [--split test|valid] [--root DIR]``."""
    from . import config as config_module
    from .train import load_model

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib evaluate",
                                     description="MAP of a checkpoint on a dataset split, written as JSON.")
    parser.add_argument("--checkpoint", required=True, help="a last.pt or best.pt written by training")
    parser.add_argument("--out", default=None, help="metrics JSON (default: beside the checkpoint)")
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument("--root", default=None, help="dataset folder, if not where it was at training")
    args = parser.parse_args(argv)
    checkpoint = Path(args.checkpoint)
    model, ckpt = load_model(checkpoint)
    refuse_stopped(ckpt, checkpoint)
    rc = ckpt["run_config"]
    cfg = config_module.load(rc["profile"], rc["seed"])
    data = training_data(rc, args.root, cfg, checkpoint)
    refuse_empty(data, args.split)
    t0 = time.perf_counter()
    try:
        result = retrieval_map(model, data, split=args.split)
    except NonFiniteEmbeddings as error:
        raise utils.InputError(str(error), checkpoint, "retrain the model (a lower --lr, or --no-amp on a GPU); "
                                                       "evaluate a checkpoint written before the problem") from None
    names = result["per_attribute_name"]
    report = {
        "split": args.split,
        "map": result["overall"],
        "per_attribute": names,
        "random_map": random_map(data, args.split)["overall"],
        "num_queries": result["num_queries"],
        "num_candidates": result["num_candidates"],
        "checkpoint": str(checkpoint.resolve()),
        "epoch": ckpt["epoch"],
        "best_valid_map": ckpt["best_map"],
        "config": rc,
        "seed": rc["seed"],
        "git_commit": utils.git_commit(),
        "device": str(utils.device()),
        "device_name": utils.env_report(cfg)["device_name"],
        "seconds": time.perf_counter() - t0,
    }
    out = Path(args.out) if args.out else checkpoint.with_name(f"metrics_{checkpoint.stem}_{args.split}.json")
    utils.atomic_write_json(out, report)
    per = "  ".join(f"{k} {v:.1f}" for k, v in names.items())
    print(f"{rc['model']['name']}: {args.split} MAP {result['overall']:.2f} (random {report['random_map']:.2f})\n  {per}\n"
          f"-> {out}")
    return 0


def utils_plain(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def refuse_stopped(ckpt: dict[str, Any], path: Path) -> None:
    """A checkpoint of a run stopped for a non-finite loss holds the state before the failure,
    not a trained model: its embeddings are often NaN, and its MAP would be meaningless."""
    if ckpt.get("stopped"):
        best = path.with_name("best.pt")
        hint = f"evaluate {best} (written before the stop) or " if best.is_file() and best != path else ""
        raise utils.InputError(f"this checkpoint comes from a run that stopped ({ckpt['stopped']}); "
                               "its weights are not a trained model", path,
                               f"{hint}train again into a new --out (e.g. with a lower --lr)")


def refuse_empty(data: Any, split: str) -> None:
    """No MAP without queries and candidates: name the empty file instead of a torch error."""
    from .data.asen_format import pair_file_names

    files = pair_file_names(split, getattr(data, "protocol", "fashionai"))
    for kind, fname in zip(("queries", "candidates"), files):
        if len(getattr(data, f"{split}_{kind}")) == 0:
            where = f"{Path(data.root) / fname}:1" if getattr(data, "root", None) else fname
            raise utils.InputError(f"the {split} split has no {kind}", where,
                                   "restore the file from the dataset's original files, then check the folder "
                                   "with python -m fgfs_lib verify-data")


# what identifies a generated dataset (config.json adds these two, derived from the rest)
DERIVED_KEYS = ("config_hash", "split_sizes", "root")


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in utils_plain(config).items() if k not in DERIVED_KEYS}


def training_data(rc: dict[str, Any], root: str | None, cfg: Any, checkpoint: Path) -> Any:
    """The dataset the checkpoint was trained on: from ``root`` (or where it was at training),
    else regenerated from the FashionSynth config the checkpoint recorded. Refuses a dataset
    whose recorded config differs from the checkpoint's."""
    from . import data as data_module
    from .data import verify

    name, saved = rc["data"]["name"], rc["data"].get("config") or {}
    root = root or rc["data"]["root"] or None
    if name == "fashionsynth" and (root is None or not Path(root).is_dir()):
        root = _regenerate_fashionsynth(saved, checkpoint)
    if root is not None and name in verify.ASEN_DATASETS:
        for problem in verify.empty_files(Path(root)):
            raise utils.InputError(problem.reason.split(";")[0], f"{problem.path}:{problem.line}",
                                   f"restore it, then check the folder: python -m fgfs_lib verify-data "
                                   f"--dataset {name} --root {root}")
    data = data_module.load(name, root=root, cfg=cfg)
    loaded = getattr(data, "config", None) or {}
    if saved and _identity(loaded) != _identity(saved):
        lines = [f"{k}: {_identity(saved).get(k)!r} (training) vs {_identity(loaded).get(k)!r} ({root})"
                 for k in sorted(set(_identity(saved)) | set(_identity(loaded)))
                 if _identity(saved).get(k) != _identity(loaded).get(k)]
        raise utils.InputError("the dataset is not the one the model was trained on: " + "; ".join(lines[:6]),
                               root, "pass --root the folder the model was trained on")
    return data


def _regenerate_fashionsynth(saved: dict[str, Any], checkpoint: Path) -> Path:
    """Rebuild exactly the FashionSynth the checkpoint recorded (or refuse); returns its folder."""
    from . import config as config_module
    from .data import synth

    fix = "pass --root the FashionSynth folder the model was trained on"
    if not saved.get("profile") or "seed" not in saved:
        raise utils.InputError("the training dataset folder is gone and the checkpoint records no "
                               "FashionSynth config to rebuild it from", checkpoint, fix)
    options = {k: v for k, v in saved.items() if k not in ("dataset", "version", "profile", "seed", *DERIVED_KEYS)}
    try:
        expected = synth.synth_config(saved["profile"], saved["seed"], **options)
    except (TypeError, ValueError) as error:
        raise utils.InputError(f"cannot rebuild the training dataset: {error}", checkpoint, fix) from None
    differ = sorted(k for k in set(_identity(expected)) | set(_identity(saved))
                    if _identity(expected).get(k) != _identity(saved).get(k))
    if differ:
        raise utils.InputError(f"cannot rebuild the training dataset: this FashionSynth generator (version "
                               f"{expected['version']}) differs from the recorded one (version {saved.get('version')}) "
                               f"in {', '.join(differ)}", checkpoint, fix)
    print(f"note: the training dataset folder is gone; rebuilding FashionSynth ({saved['profile']}, seed "
          f"{saved['seed']}) from the config the checkpoint recorded", file=sys.stderr)
    return synth.ensure_fashionsynth(config_module.load(saved["profile"]), seed=saved["seed"], verbose=False,
                                     **options)
