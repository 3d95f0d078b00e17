"""The authors' checkpoints load: ``load_released`` reproduces the released ASENet and
ASENet_V2 forward passes, and ``import-checkpoint`` writes an fgfs checkpoint that
``evaluate`` reads.

The oracle re-states the released forward passes from their description (a ResNet-50 cut
after layer3; the heads below, written step by step as the release computes them, with the
one-hot attribute through bias-free linear maps) on checkpoints built in the released
layout: ``{"epoch", "state_dict", "prec"}`` with keys ``embeddingnet.<name>``. Nothing is
downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

import fgfs_lib
from fgfs_lib import train
from fgfs_lib.models import load_released
from fgfs_lib.models.released import RELEASED_FORMATS, register_released

A = 8  # FashionAI's attributes


def _backbone_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random ResNet-50 without layer4, with an unused fc, as the release saves it; BatchNorm
    statistics randomised so that eval-mode BatchNorm matters."""
    net = torchvision.models.resnet50(weights=None)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("layer4.")}
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = torch.randn(value.shape, generator=generator) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
    return state


def _random(generator, *shape, scale=0.05):
    return torch.randn(*shape, generator=generator) * scale


def released_asen_state(generator) -> dict[str, torch.Tensor]:
    head = {
        "mask_fc1.weight": _random(generator, 512, A, scale=1.0), "mask_fc2.weight": _random(generator, 1024, A, scale=1.0),
        "fc1.weight": _random(generator, 512, 2048), "fc1.bias": _random(generator, 512),
        "fc2.weight": _random(generator, 1024, 512), "fc2.bias": _random(generator, 1024),
        "feature_fc.weight": _random(generator, 1024, 1024), "feature_fc.bias": _random(generator, 1024),
        "conv1.weight": _random(generator, 512, 1024, 1, 1), "conv1.bias": _random(generator, 512),
        "conv2.weight": _random(generator, 1, 512, 1, 1, scale=1.0), "conv2.bias": _random(generator, 1),
    }
    return {**{f"backbonenet.{k}": v for k, v in _backbone_state(generator).items()}, **head}


def released_asen_v2_state(generator, num_attributes=A) -> dict[str, torch.Tensor]:
    head = {
        "attr_embedding.weight": _random(generator, num_attributes, 512, scale=1.0),
        "attr_transform1.weight": _random(generator, 512, 512), "attr_transform1.bias": _random(generator, 512),
        "conv1.weight": _random(generator, 512, 1024, 1, 1), "conv1.bias": _random(generator, 512),
        "img_bn1.weight": 1 + _random(generator, 512), "img_bn1.bias": _random(generator, 512),
        "img_bn1.running_mean": _random(generator, 512), "img_bn1.running_var": 0.5 + torch.rand(512, generator=generator),
        "img_bn1.num_batches_tracked": torch.tensor(100),
        "attr_transform2.weight": _random(generator, 512, 512), "attr_transform2.bias": _random(generator, 512),
        "fc1.weight": _random(generator, 512, 1536), "fc1.bias": _random(generator, 512),
        "fc2.weight": _random(generator, 1024, 512), "fc2.bias": _random(generator, 1024),
    }
    return {**{f"backbonenet.{k}": v for k, v in _backbone_state(generator).items()}, **head}


def save_released(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({"epoch": 7, "state_dict": {f"embeddingnet.{k}": v for k, v in state.items()}, "prec": 0.61}, path)
    return path


# ----------------------------------------------------------------------------- the oracle


def released_backbone(s, x):
    def bn(x, p):
        return F.batch_norm(x, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"], s[p + ".bias"],
                            training=False, eps=1e-5)

    x = F.relu(bn(F.conv2d(x, s["backbonenet.conv1.weight"], stride=2, padding=3), "backbonenet.bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    for layer, blocks in (("layer1", 3), ("layer2", 4), ("layer3", 6)):
        for b in range(blocks):
            p = f"backbonenet.{layer}.{b}"
            stride = 2 if b == 0 and layer != "layer1" else 1  # the stride sits on the 3x3 conv
            out = F.relu(bn(F.conv2d(x, s[p + ".conv1.weight"]), p + ".bn1"))
            out = F.relu(bn(F.conv2d(out, s[p + ".conv2.weight"], stride=stride, padding=1), p + ".bn2"))
            out = bn(F.conv2d(out, s[p + ".conv3.weight"]), p + ".bn3")
            residual = bn(F.conv2d(x, s[p + ".downsample.0.weight"], stride=stride), p + ".downsample.1") if b == 0 else x
            x = F.relu(out + residual)
    return x


def released_asen_forward(s, images, c):
    x = released_backbone(s, images)                                     # [B, 1024, h, w]
    onehot = F.one_hot(c, A).float()
    img = torch.tanh(F.conv2d(x, s["conv1.weight"], s["conv1.bias"]))
    mask = torch.tanh(onehot @ s["mask_fc1.weight"].t())[:, :, None, None]
    att = torch.tanh(F.conv2d(mask * img, s["conv2.weight"], s["conv2.bias"]))   # tanh on the score
    att = torch.softmax(att.flatten(2), dim=2).view_as(att)
    x = (x * att).flatten(2).sum(2)
    mask = F.relu(onehot @ s["mask_fc2.weight"].t())
    gate = torch.sigmoid(F.linear(F.relu(F.linear(torch.cat([x, mask], 1), s["fc1.weight"], s["fc1.bias"])),
                                  s["fc2.weight"], s["fc2.bias"]))
    x = F.linear(x * gate, s["feature_fc.weight"], s["feature_fc.bias"])
    return x / x.pow(2).sum(1, keepdim=True).sqrt()


def released_asen_v2_forward(s, images, c):
    x = released_backbone(s, images)
    img = F.conv2d(x, s["conv1.weight"], s["conv1.bias"])
    img = torch.tanh(F.batch_norm(img, s["img_bn1.running_mean"], s["img_bn1.running_var"], s["img_bn1.weight"],
                                  s["img_bn1.bias"], training=False, eps=1e-5))
    attr = s["attr_embedding.weight"][c]
    q = torch.tanh(F.linear(attr, s["attr_transform1.weight"], s["attr_transform1.bias"]))[:, :, None, None]
    att = (q * img).sum(1, keepdim=True) / 512 ** 0.5                      # no tanh on the score
    att = torch.softmax(att.flatten(2), dim=2).view_as(att)
    x = (x * att).flatten(2).sum(2)
    attr = F.relu(F.linear(attr, s["attr_transform2.weight"], s["attr_transform2.bias"]))
    gate = torch.sigmoid(F.linear(F.relu(F.linear(torch.cat([x, attr], 1), s["fc1.weight"], s["fc1.bias"])),
                                  s["fc2.weight"], s["fc2.bias"]))
    x = x * gate                                                         # no projection
    return x / x.pow(2).sum(1, keepdim=True).sqrt()


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("source,make_state,forward", [
    ("asen", released_asen_state, released_asen_forward),
    ("asen_v2", released_asen_v2_state, released_asen_v2_forward),
])
def test_load_released_reproduces_the_released_forward(tmp_path, source, make_state, forward):
    generator = torch.Generator().manual_seed(0)
    state = make_state(generator)
    model = load_released(save_released(state, tmp_path / "released.pth.tar"), source, num_attributes=A)
    assert not model.training
    images = torch.randn(2, 3, 224, 224, generator=generator)
    attributes = torch.tensor([3, 6])
    with torch.no_grad():
        expected = forward(state, images, attributes)
        ours = model.embed(images, attributes)
        every = model.embed_all_attributes(model.features(images))       # [A, B, D], the batched path
    assert ours.shape == expected.shape == (2, 1024)
    assert (ours - expected).abs().max() < 1e-4
    assert (every[attributes, torch.arange(2)] - expected).abs().max() < 1e-4
    # the attribute matters: another attribute gives another embedding
    assert (every[0] - every[1]).abs().max() > 1e-3


def test_load_released_refuses_wrong_attribute_count_and_other_layouts(tmp_path):
    generator = torch.Generator().manual_seed(1)
    path = save_released(released_asen_state(generator), tmp_path / "asen.pth")
    with pytest.raises(ValueError, match="embeds 8 attributes"):
        load_released(path, "asen", num_attributes=9)
    with pytest.raises(ValueError, match="asen.pth"):
        load_released(path, "asen_v2", num_attributes=A)  # an ASENet file read as ASENet_V2
    with pytest.raises(ValueError, match="unknown checkpoint source 'csn'"):
        load_released(path, "csn", num_attributes=A)
    with pytest.raises(FileNotFoundError):
        load_released(tmp_path / "missing.pth", "asen", num_attributes=A)


def test_a_module_adds_a_source_through_the_hook(tmp_path):
    from fgfs_lib.models.registry import load_builtin_models

    load_builtin_models()
    assert {"asen", "asen_v2", "asenpp"} <= set(RELEASED_FORMATS)  # asenpp: registered by its own module
    @register_released("test_source")
    def convert(state, num_attributes, scale=1.0):
        layer = torch.nn.Linear(num_attributes, 2)
        layer.load_state_dict({k: v * scale for k, v in state.items()})
        return layer.eval()

    try:
        weight, bias = torch.ones(2, 3), torch.zeros(2)
        torch.save({"model": {"module.weight": weight, "module.bias": bias}}, tmp_path / "x.pt")
        layer = load_released(tmp_path / "x.pt", "test_source", 3, scale=2.0)
        assert torch.equal(layer.weight, 2 * weight) and not layer.training
    finally:
        RELEASED_FORMATS.pop("test_source")


def _tiny_fashionsynth(tmp_path) -> Path:
    from fgfs_lib.data.synth import make_fashionsynth

    return make_fashionsynth(tmp_path / "fs", seed=0, num_images=60, image_size=32, processes=1)


def test_import_checkpoint_cli_writes_what_evaluate_reads(tmp_path, capsys):
    from fgfs_lib import cli, evaluate

    assert cli.COMMANDS["import-checkpoint"][:2] == ("fgfs_lib.models.released", "cli_import_checkpoint")
    generator = torch.Generator().manual_seed(2)
    root = _tiny_fashionsynth(tmp_path)
    num_attributes = fgfs_lib.data.load("fashionsynth", root=root).meta.num_attributes
    state = released_asen_v2_state(generator, num_attributes)
    path = save_released(state, tmp_path / "v2.pth.tar")
    out = tmp_path / "imported"
    assert cli.main(["import-checkpoint", "--source", "asen_v2", str(path), "--data", "fashionsynth",
                     "--root", str(root), "--out", str(out)]) == 0
    model, ckpt = train.load_model(out / "best.pt")
    assert ckpt["run_config"]["model"]["name"] == "asen_v2" and ckpt["epoch"] == 7
    direct = load_released(path, "asen_v2", num_attributes)  # its forward pass is checked above
    assert all(torch.equal(v.cpu(), direct.state_dict()[k]) for k, v in model.state_dict().items())
    assert evaluate.cli_evaluate(["--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["config"]["imported"]["source"] == "asen_v2"
    # a bad file: an error line naming it, exit 2, nothing written
    (tmp_path / "bad.pth").write_text("not a checkpoint")
    capsys.readouterr()
    args = ["import-checkpoint", "--source", "asen", str(tmp_path / "bad.pth"), "--data", "fashionsynth",
            "--root", str(root), "--out", str(tmp_path / "bad_out")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.pth" in err and "Traceback" not in err
    assert not (tmp_path / "bad_out").exists()
    # a folder another command wrote (a training run's best.pt) is refused, and left as it was
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_text("the user's trained model")
    assert cli.main(args[:-1] + [str(tmp_path / "run")]) == 2
    assert (tmp_path / "run" / "best.pt").read_text() == "the user's trained model"
