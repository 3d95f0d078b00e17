"""Backbones: torchvision ResNets cut after a chosen stage, and a small CNN for CPU runs.

Introduced in ``notebooks/05_baselines.py`` (used by every model after it).

Every backbone maps images ``[B, 3, H, W]`` to a feature map ``[B, C, h, w]`` of whatever
spatial size the input gives (nothing here assumes 224 px or a 14x14 map). It has

* ``out_channels``: ``C`` of the map it returns;
* ``channels``: a dict stage name -> channels of every stage it runs;
* ``forward_stages(x)``: a dict stage name -> map for the stages named in ``outputs``
  (AG-MAN asks for ``("layer2", "layer3")``).

=============  ==========================================  ===================================
name           stages (output stride, channels)            use
=============  ==========================================  ===================================
``resnet50``   layer1 (4, 256) ... layer3 (16, 1024),      ASEN, AG-MAN, full profile
               layer4 (32, 2048)
``resnet34``   layer1 (4, 64) ... layer3 (16, 256),        ASEN++ local branch
               layer4 (32, 512)
``resnet18``   same widths as resnet34                      CSN (layer3, as published)
``small_cnn``  layer1 (2, 32), layer2 (4, 64),             quick profile: 64 px in, 8x8 map
               layer3 (8, 128), layer4 (16, 256)           out of layer3; pretrained start
=============  ==========================================  ===================================

Weights never download. ``weights=None`` means random initialisation; the models' builders
pass :func:`default_weights`: ``"imagenet"`` in the full profile, ``"fashionsynth"`` in the
quick one.

* ResNets, ``weights="imagenet"``: looks for ``$FGFS_WEIGHTS`` (a file, or a folder holding
  torchvision's file names such as ``resnet50-0676ba61.pth``), then torchvision's own cache
  (``torch.hub.get_dir()/checkpoints``); ``weights=<path>`` loads that file. When no file is
  found the backbone prints one line saying so and starts from random weights.
* ``small_cnn``, ``weights="fashionsynth"``: the file shipped in the repository,
  ``fgfs_lib/weights/small_cnn_fashionsynth.pt`` (layer1-layer3, width 32, about 1 MB), made once by
  ``scripts/pretrain_quick_backbone.py``: notebook 03's attribute classifier trained on
  FashionSynth images generated with another dataset seed than the course's, so none of
  them is a course image. It plays the part ImageNet plays for the papers: from random
  weights the small CNN learns none of the design details within a notebook's budget
  (``results/06_asen_cli_scratch_seed0.md``). A missing file is an error, not a silent random
  start. The file fits the default width (32) only: a small CNN of another width asked for
  ``"fashionsynth"`` starts from random weights (its ``weights_source`` is ``None``).

A loaded file's short sha256 (``weights_digest``) is part of a training run's cache key, so
new weights under the same name retrain instead of reusing old checkpoints.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

RESNET_NAMES = ("resnet50", "resnet34", "resnet18")
BACKBONE_NAMES = RESNET_NAMES + ("small_cnn",)
STAGES = ("layer1", "layer2", "layer3", "layer4")
WEIGHTS_ENV = "FGFS_WEIGHTS"
# The quick profile's start, made once by scripts/pretrain_quick_backbone.py (see that script).
SMALL_CNN_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "small_cnn_fashionsynth.pt"
SMALL_CNN_WIDTH = 32  # the width SMALL_CNN_WEIGHTS was made with


class Backbone(nn.Module):
    """Runs ``stages`` in order up to the last name in ``outputs``.

    ``forward(x)`` returns the map of the last output stage when ``outputs`` has one name,
    else a dict name -> map (same as :meth:`forward_stages`).
    """

    def __init__(self, name: str, stages: "OrderedDict[str, nn.Module]", channels: dict[str, int],
                 outputs: Sequence[str]):
        super().__init__()
        outputs = tuple(outputs)
        order = list(stages)
        unknown = [s for s in outputs if s not in order or s == "stem"]
        if unknown or not outputs:
            raise ValueError(f"backbone {name!r}: unknown stage(s) {unknown or outputs}; choose from {STAGES}")
        last = max(order.index(s) for s in outputs)
        self.name = name
        self.outputs = outputs
        self.stages = nn.ModuleDict(OrderedDict((k, stages[k]) for k in order[: last + 1]))
        self.channels = {k: channels[k] for k in self.stages if k in channels}
        self.out_channels = channels[order[last]]
        self.weights_source: str | None = None  # file the weights came from, None = random init
        self.weights_digest: str | None = None  # its short sha256: part of a run's cache key

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps: dict[str, torch.Tensor] = {}
        for key, stage in self.stages.items():
            x = stage(x)
            if key in self.outputs:
                maps[key] = x
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        maps = self.forward_stages(x)
        if len(self.outputs) == 1:
            return maps[self.outputs[0]]
        return maps


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_cnn_stages(width: int = 32) -> tuple["OrderedDict[str, nn.Module]", dict[str, int]]:
    """Four stages of 3x3 conv-BN-ReLU (1, 1, 2, 2 convs), each ending in a 2x2 max-pool.

    Output strides 2, 4, 8, 16 (so a 64 px image gives an 8x8 map after ``layer3``, the
    same place ASEN cuts a ResNet), channels ``width * (1, 2, 4, 8)``.
    """
    widths = [width, 2 * width, 4 * width, 8 * width]
    depths = [1, 1, 2, 2]  # full-resolution stages are the expensive ones on a CPU
    stages: "OrderedDict[str, nn.Module]" = OrderedDict()
    cin = 3
    for key, cout, depth in zip(STAGES, widths, depths):
        layers = _conv_bn_relu(cin, cout) + [m for _ in range(depth - 1) for m in _conv_bn_relu(cout, cout)]
        stages[key] = nn.Sequential(*layers, nn.MaxPool2d(2))
        cin = cout
    for m in stages.values():
        for layer in m.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    return stages, dict(zip(STAGES, widths))


def find_small_cnn_weights(weights: str | os.PathLike) -> Path:
    """The file behind ``weights`` for the small CNN: ``"fashionsynth"`` is the file shipped
    in the package (:data:`SMALL_CNN_WEIGHTS`), anything else a path. Raises
    ``FileNotFoundError`` naming the file when it is missing (the quick profile never falls
    back to random weights silently: its numbers depend on the start)."""
    path = SMALL_CNN_WEIGHTS if str(weights) == "fashionsynth" else Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no small_cnn weights at {path} (weights={str(weights)!r}); "
                                f"make them with scripts/pretrain_quick_backbone.py or pass weights=None")
    return path


def _load_small_cnn_weights(stages: "OrderedDict[str, nn.Module]", file: Path, width: int) -> None:
    """Load the stages the file has into ``stages`` (a file made at layer3 leaves layer4 at
    its random start); every tensor must match in shape."""
    payload = torch.load(file, map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload)
    for key, stage in stages.items():
        prefix = f"{key}."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not part:
            continue
        own = stage.state_dict()
        wrong = sorted(k for k in own if k not in part or tuple(part[k].shape) != tuple(own[k].shape))
        if wrong:
            raise ValueError(f"{file}: stage {key} does not fit a small_cnn of width {width} "
                             f"(missing or mis-shaped: {wrong[:4]}); pass the width the file was made with")
        stage.load_state_dict(part)


def file_digest(path: str | os.PathLike) -> str:
    """The first 12 hex digits of the file's sha256."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _torchvision_weights_enum(name: str):
    import torchvision.models as tvm

    return {"resnet50": tvm.ResNet50_Weights, "resnet34": tvm.ResNet34_Weights,
            "resnet18": tvm.ResNet18_Weights}[name].IMAGENET1K_V1


def find_imagenet_weights(name: str, path: str | os.PathLike | None = None) -> Path | None:
    """The local file with ImageNet weights for ``name``, or ``None``. Never downloads.

    Looks at ``path`` (file, or folder with torchvision's file name), then ``$FGFS_WEIGHTS``
    (same), then torchvision's cache folder.
    """
    if name not in RESNET_NAMES:
        return None
    filename = Path(_torchvision_weights_enum(name).url).name
    candidates: list[Path] = []
    for place in (path, os.environ.get(WEIGHTS_ENV)):
        if place:
            place = Path(place).expanduser()
            candidates.append(place / filename if place.is_dir() else place)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _load_resnet_weights(model: nn.Module, file: Path) -> None:
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            details.append("shape differs for " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:5]))
        raise ValueError(f"{file}: not a torchvision {type(model).__name__} state dict for this "
                         f"architecture ({'; '.join(details)}). Point {WEIGHTS_ENV} or weights= at the "
                         f"matching file (e.g. {Path(_torchvision_weights_enum('resnet50').url).name}).")
    model.load_state_dict(state, strict=False)


_NOTICES_GIVEN: set[str] = set()


def _notice(message: str) -> None:
    """Print ``message`` once per process (a model with two backbones says it once)."""
    if message not in _NOTICES_GIVEN:
        _NOTICES_GIVEN.add(message)
        print(f"fgfs: {message}", file=sys.stderr, flush=True)


def make_backbone(
    name: str,
    stage: str = "layer3",
    weights: str | os.PathLike | None = None,
    *,
    outputs: Sequence[str] | None = None,
    width: int = 32,
) -> Backbone:
    """A backbone cut after ``stage``.

    ``weights``: ``None`` (random init), ``"imagenet"`` (local file from ``$FGFS_WEIGHTS`` or
    torchvision's cache) or a path. ``outputs``: the stages to return (default just
    ``stage``; e.g. ``("layer2", "layer3")`` makes ``forward`` return a dict).
    ``width``: the small CNN's first-stage channels.
    """
    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONE_NAMES)}")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    outputs = tuple(outputs) if outputs else (stage,)
    if stage not in outputs:
        outputs = outputs + (stage,)
    source: Path | None = None
    if name == "small_cnn":
        stages, channels = small_cnn_stages(width)
        # the shipped file exists for the default width only; another width (tests' tiny
        # models) starts from random weights, and its weights_source says so (None)
        if str(weights) == "imagenet":
            _notice("no ImageNet weights exist for small_cnn; random initialisation.")
        elif weights is not None and not (str(weights) == "fashionsynth" and width != SMALL_CNN_WIDTH):
            source = find_small_cnn_weights(weights)
            _load_small_cnn_weights(stages, source, width)
    else:
        import torchvision.models as tvm

        model = getattr(tvm, name)(weights=None)  # never lets torchvision download
        if weights is not None:
            source = find_imagenet_weights(name, None if str(weights) == "imagenet" else weights)
            if source is None:
                where = (f"{weights}" if str(weights) != "imagenet"
                         else f"${WEIGHTS_ENV} or {Path(torch.hub.get_dir()) / 'checkpoints'}")
                _notice(f"no ImageNet weights for {name} found at {where}; using random initialisation "
                        f"(set {WEIGHTS_ENV}=/path/to/{Path(_torchvision_weights_enum(name).url).name}).")
            else:
                _load_resnet_weights(model, source)
        stages = OrderedDict(
            stem=nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
            layer1=model.layer1, layer2=model.layer2, layer3=model.layer3, layer4=model.layer4,
        )
        expansion = 4 if name == "resnet50" else 1
        channels = {k: c * expansion for k, c in zip(STAGES, (64, 128, 256, 512))}
    backbone = Backbone(name, stages, channels, outputs)
    backbone.weights_source = str(source) if source is not None else None
    backbone.weights_digest = file_digest(source) if source is not None else None
    return backbone


def default_backbone(cfg=None) -> str:
    """The profile's backbone name: ``small_cnn`` in quick, ``resnet50`` in full."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return cfg.pick(quick="small_cnn", full="resnet50")


def default_weights(cfg=None) -> str | None:
    """The profile's backbone weights: ``"imagenet"`` in full (the papers start from ImageNet;
    a local file is used when found, otherwise one line says the run starts from random
    weights), ``"fashionsynth"`` in quick (the small CNN pretrained once on FashionSynth
    images disjoint from the course's, :data:`SMALL_CNN_WEIGHTS`). Pass ``weights=None`` to a
    model's builder to train from scratch."""
    from ..config import load

    cfg = cfg if cfg is not None else load()
    return cfg.pick(quick="fashionsynth", full="imagenet")
