"""Load the authors' released checkpoints into our models.

Not introduced in a notebook: a tool for users who hold a checkpoint trained with the
authors' code (github.com/Maryeon/asen) and want to evaluate it, or search their own images
with it, through this library. From Python::

    model = fgfs_lib.models.load_released("asen_fashionai.pth.tar", "asen", num_attributes=8)
    model.embed(images, attributes)   # the released network's L2-normalised output

or from the command line (writes an fgfs checkpoint that ``evaluate`` and
:func:`fgfs_lib.search.search` read)::

    python -m fgfs_lib import-checkpoint --source asen PATH --data fashionai --root DIR --out DIR

**The released layouts** (read from the authors' code; the checkpoint is a dict
``{"epoch", "state_dict", "prec"}`` whose state dict belongs to a wrapper with one child
``embeddingnet``, so every key starts with ``embeddingnet.``):

* backbone ``backbonenet.*``: a ResNet-50 with torchvision's names (``conv1``, ``bn1``,
  ``layer1``..``layer3``; ``layer4`` is never built, an unused ``fc`` is saved), cut after
  ``layer3`` (1024 channels). It maps to our ``backbone.stages.{stem.0, stem.1, layerN}``.
* ``asen`` (class ``ASENet``) -> :class:`fgfs_lib.models.asen.ASEN`: ``mask_fc1`` and
  ``mask_fc2`` are bias-free ``Linear(A, n)`` on a one-hot attribute, i.e. embedding tables
  stored transposed (our ``spatial.attribute_embedding`` and ``channel.attribute_embedding``);
  ``conv1`` / ``conv2`` are ASA's 1x1 convolutions (``spatial.feature_proj`` /
  ``spatial.score``); ``fc1`` / ``fc2`` ACA's gate; ``feature_fc`` the projection. The score
  is tanh-bounded (``bounded=True``).
* ``asen_v2`` (class ``ASENet_V2``) -> :class:`fgfs_lib.models.asen.ASENv2`, whose parameter
  names are the released ones. (An early revision of ASENet_V2 had a ``feature_fc``
  projection; the final one has none, and only that one is read.)

**Adding a source** (the hook, e.g. ASEN++'s ``asenpp``): in the model's own module write a
converter ``(state_dict, num_attributes, **options) -> model`` and decorate it with
``@register_released("asenpp")``. :func:`load_released` imports every built-in model module
first (:func:`fgfs_lib.models.registry.load_builtin_models`), so nothing here changes. The
state dict a converter receives has the checkpoint's wrapper prefixes (``module.``,
``embeddingnet.``) removed; the converter builds the model with
:func:`fgfs_lib.models.registry.build_model` (so an imported checkpoint can be rebuilt by
name) and loads the weights with :func:`load_converted`.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Callable

import torch

from .registry import build_model, load_builtin_models

__all__ = ["RELEASED_FORMATS", "register_released", "load_released", "read_released", "load_converted",
           "cli_import_checkpoint"]

Converter = Callable[..., torch.nn.Module]
RELEASED_FORMATS: dict[str, Converter] = {}
WRAPPER_PREFIXES = ("module.", "embeddingnet.")


def register_released(source: str) -> Callable[[Converter], Converter]:
    """Decorator: ``converter(state_dict, num_attributes, **options) -> model`` reads ``source``."""

    def decorate(converter: Converter) -> Converter:
        RELEASED_FORMATS[source] = converter
        return converter

    return decorate


def read_released(path: str | Path, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict without wrapper prefixes, the checkpoint's other entries)`` of a released
    file. Loaded with ``weights_only=True`` unless ``allow_pickle`` (only for files you trust)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as error:  # noqa: BLE001 - any unpickling error means an unreadable file
        hint = "" if allow_pickle else " (if you trust the file and it holds other Python objects, allow pickle)"
        raise ValueError(f"{path}: not a readable PyTorch checkpoint: {type(error).__name__}: {error}{hint}") from error
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model"):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: no state dict found (expected a dict of tensors, or one under 'state_dict' or 'model')")
    clean = {}
    for key, value in state.items():
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        clean[key] = value
    extras = {k: v for k, v in ckpt.items() if k not in ("state_dict", "model")} if isinstance(ckpt, dict) and state is not ckpt else {}
    return clean, extras


def load_converted(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    """Load ``state`` (already in our names) into ``model`` strictly; a ValueError lists what differs."""
    from ..train import state_differences

    lines = state_differences(state, model)
    if lines:
        raise ValueError(f"a {source!r} checkpoint does not fit {type(model).__name__}:\n  " + "\n  ".join(lines[:12]))
    model.load_state_dict(state)
    return model.eval()


def load_released(path: str | Path, source: str, num_attributes: int, *, allow_pickle: bool = False,
                  **options: Any) -> torch.nn.Module:
    """Our model holding the weights of the authors' checkpoint ``path``, in eval mode on the CPU.

    ``source``: a key of :data:`RELEASED_FORMATS` (``asen``, ``asen_v2``, and whatever other
    model modules register). ``num_attributes`` is checked against the checkpoint.
    ``options`` go to the converter.
    """
    load_builtin_models()  # model modules register their converters on import
    if source not in RELEASED_FORMATS:
        raise ValueError(f"unknown checkpoint source {source!r}; known: {', '.join(sorted(RELEASED_FORMATS))}")
    state, _ = read_released(path, allow_pickle)
    try:
        return RELEASED_FORMATS[source](state, int(num_attributes), **options)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


# ------------------------------------------------------------------------------ ASEN, ASEN v2


def _backbone(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """The released ``backbonenet.*`` in our names (``layer4`` and ``fc`` dropped)."""
    renames = {"conv1.": "stem.0.", "bn1.": "stem.1.", "layer1.": "layer1.", "layer2.": "layer2.",
               "layer3.": "layer3."}
    ours = {}
    for key, value in state.items():
        if not key.startswith("backbonenet."):
            continue
        name = key[len("backbonenet."):]
        for old, new in renames.items():
            if name.startswith(old):
                ours["backbone.stages." + new + name[len(old):]] = value
    if "backbone.stages.stem.0.weight" not in ours:
        raise KeyError("no 'embeddingnet.backbonenet.conv1.weight' in the checkpoint: not a released ASEN layout")
    channels = ours["backbone.stages.layer3.0.conv3.weight"].shape[0] if "backbone.stages.layer3.0.conv3.weight" in ours else None
    if channels != 1024:
        raise ValueError("the released ASEN backbone is a ResNet-50 cut after layer3 (1024 channels); "
                         f"this checkpoint's layer3 gives {channels}")
    return "resnet50", ours


def _check_attributes(table: torch.Tensor, num_attributes: int, name: str) -> None:
    if table.shape[0] != num_attributes:
        raise ValueError(f"the checkpoint embeds {table.shape[0]} attributes ({name}), not {num_attributes}")


def _meta(num_attributes: int) -> Any:
    return types.SimpleNamespace(num_attributes=num_attributes)


@register_released("asen")
def convert_asen(state: dict[str, torch.Tensor], num_attributes: int, bounded: bool = True) -> torch.nn.Module:
    """The released ASENet -> ``build_model("asen", ...)`` with the checkpoint's sizes."""
    backbone, ours = _backbone(state)
    spatial_table, channel_table = state["mask_fc1.weight"].t(), state["mask_fc2.weight"].t()
    _check_attributes(spatial_table, num_attributes, "mask_fc1")
    ours.update({
        "spatial.attribute_embedding.weight": spatial_table, "channel.attribute_embedding.weight": channel_table,
        "spatial.feature_proj.weight": state["conv1.weight"], "spatial.feature_proj.bias": state["conv1.bias"],
        "spatial.score.weight": state["conv2.weight"], "spatial.score.bias": state["conv2.bias"],
        "channel.fc1.weight": state["fc1.weight"], "channel.fc1.bias": state["fc1.bias"],
        "channel.fc2.weight": state["fc2.weight"], "channel.fc2.bias": state["fc2.bias"],
        "projection.weight": state["feature_fc.weight"], "projection.bias": state["feature_fc.bias"],
    })
    model = build_model("asen", _meta(num_attributes), backbone=backbone, weights=None,
                        hidden=int(state["conv1.weight"].shape[0]), embed_dim=int(state["feature_fc.weight"].shape[0]),
                        attribute_dim=int(channel_table.shape[1]), gate_hidden=int(state["fc1.weight"].shape[0]),
                        bounded=bool(bounded))
    return load_converted(model, {k: v.contiguous() for k, v in ours.items()}, "asen")


@register_released("asen_v2")
def convert_asen_v2(state: dict[str, torch.Tensor], num_attributes: int) -> torch.nn.Module:
    """The released ASENet_V2 (final revision, no projection) -> ``build_model("asen_v2", ...)``."""
    if "feature_fc.weight" in state:
        raise ValueError("this ASENet_V2 checkpoint has a 'feature_fc' projection (an early revision of the "
                         "release); only the final revision, without projection, is supported")
    backbone, ours = _backbone(state)
    _check_attributes(state["attr_embedding.weight"], num_attributes, "attr_embedding")
    ours.update({k: v for k, v in state.items() if not k.startswith("backbonenet.")})
    model = build_model("asen_v2", _meta(num_attributes), backbone=backbone, weights=None,
                        hidden=int(state["conv1.weight"].shape[0]), gate_hidden=int(state["fc1.weight"].shape[0]))
    return load_converted(model, ours, "asen_v2")


# ------------------------------------------------------------------------------ command line


def cli_import_checkpoint(argv: list[str]) -> int:
    """``python -m fgfs_lib import-checkpoint --source asen PATH --data NAME [--root DIR] --out DIR``:
    an fgfs checkpoint (``DIR/best.pt``) of a released model, for ``evaluate`` and search.
    Mistakes in the input raise; :func:`fgfs_lib.cli.main` reports them (``error:``, exit 2)."""
    import argparse

    from .. import config as config_module
    from .. import data as data_module
    from .. import train, utils

    load_builtin_models()
    parser = argparse.ArgumentParser(prog="python -m fgfs_lib import-checkpoint",
                                     description="Convert an authors' checkpoint into an fgfs checkpoint.")
    parser.add_argument("path", help="the released checkpoint file")
    parser.add_argument("--source", required=True, choices=sorted(RELEASED_FORMATS), help="which release wrote it")
    parser.add_argument("--data", required=True, help="the dataset it was trained on (fixes the attributes)")
    parser.add_argument("--root", default=None, help="dataset folder (real datasets)")
    parser.add_argument("--profile", choices=config_module.PROFILES, default=None)
    parser.add_argument("--out", required=True, help="folder for best.pt (new, empty, or an earlier import)")
    parser.add_argument("--overwrite", action="store_true", help="add best.pt to a folder another command wrote")
    parser.add_argument("--allow-pickle", action="store_true", help="load a trusted file that holds Python objects")
    args = parser.parse_args(argv)
    utils.check_output_dir(args.out, "import-checkpoint", args.overwrite)  # refuse before the work
    cfg = config_module.load(args.profile)
    data = data_module.load(args.data, root=args.root, cfg=cfg)
    model = load_released(args.path, args.source, data.meta.num_attributes, allow_pickle=args.allow_pickle)
    _, extras = read_released(args.path, args.allow_pickle)
    if not getattr(model, "model_config", {}).get("name"):
        raise ValueError(f"a {args.source!r} model loads (fgfs_lib.models.load_released) but its converter does "
                         f"not record a registry name, so no fgfs checkpoint can rebuild it")
    rc = train.run_config(model, data, cfg, train.default_settings(cfg))
    rc["imported"] = {"source": args.source, "path": str(Path(args.path).resolve())}
    epoch = extras.get("epoch")
    with utils.atomic_path(args.out, directory=True, command="import-checkpoint", overwrite=args.overwrite) as tmp:
        train.write_weights_checkpoint(tmp / "best.pt", model, rc, epoch=int(epoch) if isinstance(epoch, int) else 0)
    out = Path(args.out) / "best.pt"
    print(f"{args.source} checkpoint {args.path} -> {out} ({data.meta.num_attributes} attributes of {args.data}); "
          f"evaluate it with: python -m fgfs_lib evaluate --checkpoint {out}")
    return 0
