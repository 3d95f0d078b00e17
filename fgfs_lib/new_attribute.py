"""A new attribute without retraining: learn only its rows of the attribute-conditioned parameters.

Introduced in ``notebooks/10_results.py``.

Attribute-specific models condition on the attribute through lookups: ASEN's spatial attention
scores ``tanh(W_v V) * (W_a a)`` and its channel gate reads ``W a`` (paper eqs. 1-5); with a
one-hot ``a`` each ``W a`` is one row of an ``nn.Embedding``. Everything else (the backbone,
the feature transforms, the gate's MLP, the projection) is shared by every attribute. The
ASEN++ summary and AG-MAN's section 4 both name a limit of the approach: adding an attribute
"requires retraining the model". This module tests the obvious way around it:

1. train the model with one attribute held out (its labels hidden: :func:`hold_out`);
2. afterwards, train only that attribute's rows of the conditioned parameters
   (:func:`attribute_parameters`) on that attribute's triplets (:func:`only_attribute`), with
   the backbone, the shared layers and the other attributes' rows frozen
   (:func:`add_attribute`).

Because nothing the other attributes use changes (BatchNorm layers are kept in eval mode, so
their running statistics stay put), their embeddings, and therefore their MAP, are exactly
the same before and after. ``python -m fgfs_lib add-attribute --checkpoint FILE --attribute
NAME --out DIR`` does step 2 on a trained checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["attribute_parameters", "hold_out", "only_attribute", "freeze_all_but_attribute", "add_attribute",
           "cli_add_attribute"]


def attribute_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters with one row per attribute: every ``nn.Embedding`` with ``num_attributes``
    rows, plus the parameters a model names in its class attribute ``attribute_rows``."""
    count = model.num_attributes
    names = {f"{name}.weight" for name, module in model.named_modules()
             if isinstance(module, nn.Embedding) and module.num_embeddings == count}
    names |= set(getattr(model, "attribute_rows", ()))
    found = {name: p for name, p in model.named_parameters() if name in names}
    bad = [name for name, p in found.items() if p.shape[0] != count]
    if bad or not found:
        raise ValueError(f"{type(model).__name__} has no per-attribute parameter rows to train"
                         if not found else f"parameters {bad} do not have one row per attribute")
    return found


def _relabel(split: Any, keep: torch.Tensor) -> Any:
    """A shallow copy of ``split`` whose labels of the attributes not in ``keep`` are -1."""
    out = copy.copy(split)
    labels = split.labels.clone()
    labels[:, ~keep] = -1
    out.labels = labels
    return out


def _restrict(data: Any, keep: torch.Tensor, note: dict[str, Any]) -> Any:
    rows = {f"{s}_{kind}": getattr(data, f"{s}_{kind}") for s in ("valid", "test") for kind in ("queries", "candidates")}
    # the test rows stay whole: every attribute is measured on the same protocol
    rows.update({k: v[keep[v[:, 1]]] for k, v in rows.items() if k.startswith("valid")})
    return dataclasses.replace(data, train=_relabel(data.train, keep), valid=_relabel(data.valid, keep),
                               config={**(data.config or {}), **note}, **rows)


def hold_out(data: Any, attribute: int) -> Any:
    """``data`` with ``attribute``'s train and valid labels hidden (its valid rows dropped)."""
    keep = torch.ones(data.meta.num_attributes, dtype=torch.bool)
    keep[attribute] = False
    return _restrict(data, keep, {"held_out_attribute": int(attribute)})


def only_attribute(data: Any, attribute: int) -> Any:
    """``data`` with every train and valid label hidden except ``attribute``'s."""
    keep = torch.zeros(data.meta.num_attributes, dtype=torch.bool)
    keep[attribute] = True
    return _restrict(data, keep, {"only_attribute": int(attribute)})


def _row_mask_hook(attribute: int):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(grad)
        mask[attribute] = 1
        return grad * mask

    return hook


def _keep_eval(module: nn.Module, _inputs: Any) -> None:
    module.eval()  # frozen statistics: a train-mode forward would move the running means


def freeze_all_but_attribute(model: nn.Module, attribute: int) -> list[str]:
    """Freeze ``model`` except ``attribute``'s rows of :func:`attribute_parameters`; keep
    normalisation layers in eval mode. Returns the trained parameter names.

    The other rows receive zero gradients; with Adam and no weight decay their update is
    exactly zero.
    """
    rows = attribute_parameters(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name in rows)
    for p in rows.values():
        p.register_hook(_row_mask_hook(attribute))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            module.register_forward_pre_hook(_keep_eval)
    return sorted(rows)


def add_attribute(model: nn.Module, data: Any, attribute: int, cfg: Any = None, *, out_dir: str | Path,
                  verbose: bool = True, **settings: Any):
    """Train ``attribute``'s rows of a trained ``model`` on ``data`` (only that attribute's
    triplets), everything else frozen; returns the :class:`fgfs_lib.train.TrainResult`.
    ``settings`` override :func:`fgfs_lib.train.default_settings` (weight decay is 0)."""
    from .train import fit

    freeze_all_but_attribute(model, attribute)
    return fit(model, only_attribute(data, attribute), cfg, out_dir=out_dir, verbose=verbose,
               **{"weight_decay": 0.0, **settings})


def cli_add_attribute(argv: list[str]) -> int:
    """``python -m fgfs_lib add-attribute --checkpoint FILE --attribute NAME --out DIR [--epochs N]``."""
    from . import config as config_module
    from . import data as data_module
    from . import evaluate, utils
    from .search import resolve_attribute
    from .train import load_model

    parser = argparse.ArgumentParser(prog="python -m fgfs_lib add-attribute", description=(
        "Learn one attribute's rows of a trained model's attribute-conditioned parameters, "
        "everything else frozen (the other attributes' results do not change)."))
    parser.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a trained model")
    parser.add_argument("--attribute", required=True, help="the attribute's name (or id) in the dataset")
    parser.add_argument("--out", required=True, help="folder for the new checkpoints")
    parser.add_argument("--root", default=None, help="dataset folder, if not where it was at training")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        model, ckpt = load_model(args.checkpoint)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rc = ckpt["run_config"]
    try:
        attribute = resolve_attribute(types.SimpleNamespace(**rc["meta"]), args.attribute)
    except ValueError as error:
        print(f"error: {error} (--attribute {args.attribute})", file=sys.stderr)
        return 2
    cfg = config_module.load(rc["profile"], rc["seed"])
    data = data_module.load(rc["data"]["name"], root=args.root or rc["data"]["root"] or None, cfg=cfg)
    overrides = {k: v for k, v in {"epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                                   "lr": args.lr}.items() if v is not None}
    utils.seed_everything(cfg.seed)
    result = add_attribute(model, data, attribute, cfg, out_dir=args.out, **overrides)
    if result.stopped:
        print(f"training stopped: {result.stopped}", file=sys.stderr)
        return 1
    test = evaluate.retrieval_map(model, data, split="test")
    name = data.meta.attribute_names[attribute]
    print(f"added {name!r}: test MAP {test['per_attribute'][attribute]:.2f} "
          f"(overall {test['overall']:.2f}); checkpoints in {result.checkpoint_dir}")
    return 0
