"""Backbones: output shapes for any input size, stage cuts, weights fallback, registry."""

import types

import pytest
import torch

from fgfs_lib import config
from fgfs_lib.models import backbones
from fgfs_lib.models.backbones import make_backbone




@pytest.mark.parametrize("size", [32, 64, 97])
def test_small_cnn_shapes_follow_input(size):
    net = make_backbone("small_cnn").eval()
    out = net(torch.randn(2, 3, size, size))
    # layer3 has output stride 8 (floor at every 2x2 pool)
    assert out.shape == (2, net.out_channels, size // 8, size // 8)
    assert net.out_channels == 128


def test_small_cnn_64px_gives_8x8():
    assert make_backbone("small_cnn")(torch.randn(1, 3, 64, 64)).shape[-2:] == (8, 8)


@pytest.mark.parametrize("name,channels", [("resnet18", 256), ("resnet34", 256), ("resnet50", 1024)])
@pytest.mark.parametrize("size", [64, 96])
def test_resnet_layer3_stride_16(name, channels, size):
    net = make_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, size, size))
    assert net.out_channels == channels
    assert out.shape == (1, channels, size // 16, size // 16)


def test_stage_cut_and_intermediate_outputs():
    net = make_backbone("resnet50", stage="layer3", outputs=("layer2", "layer3")).eval()
    assert "layer4" not in net.stages  # nothing after the cut is kept
    with torch.no_grad():
        maps = net(torch.randn(1, 3, 64, 64))
    assert set(maps) == {"layer2", "layer3"}
    assert maps["layer2"].shape == (1, 512, 8, 8)
    assert maps["layer3"].shape == (1, 1024, 4, 4)
    assert net.channels["layer2"] == 512 and net.out_channels == 1024
    small = make_backbone("small_cnn", stage="layer4", outputs=("layer2",))
    maps = small(torch.randn(1, 3, 64, 64))
    assert maps["layer2"].shape == (1, 64, 16, 16) and maps["layer4"].shape == (1, 256, 4, 4)


def test_same_seed_same_init():
    torch.manual_seed(3)
    a = make_backbone("small_cnn")
    torch.manual_seed(3)
    b = make_backbone("small_cnn")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone("vgg16")
    with pytest.raises(ValueError, match="unknown stage"):
        make_backbone("small_cnn", stage="layer9")


def test_missing_weights_falls_back_with_one_line_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FGFS_WEIGHTS", str(tmp_path / "nothing_here"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_NOTICES_GIVEN", set())
    net = make_backbone("resnet18", weights="imagenet")
    make_backbone("resnet18", weights="imagenet")  # the same notice is not repeated
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no ImageNet weights for resnet18" in err[0] and "random" in err[0]
    assert net.weights_source is None


@pytest.mark.parametrize("model_name", ["asen", "csn", "triplet"])
def test_full_profile_models_start_from_imagenet_weights_when_a_file_is_found(tmp_path, monkeypatch, capsys,
                                                                             model_name):
    """The full profile asks for ImageNet weights by default: a local file is loaded; without
    one, a single line says the run starts from random weights. The quick profile asks for none."""
    import torchvision

    from fgfs_lib.models.registry import build_model

    meta = types.SimpleNamespace(num_attributes=3, num_values=[2, 2, 2])
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None)
    file = tmp_path / "r50.pth"
    torch.save(reference.state_dict(), file)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_NOTICES_GIVEN", set())
    monkeypatch.setenv("FGFS_WEIGHTS", str(file))
    model = build_model(model_name, meta, config.load("full"))
    assert model.backbone.weights_source == str(file)
    assert torch.equal(model.backbone.stages["layer2"][0].conv1.weight, reference.layer2[0].conv1.weight)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("FGFS_WEIGHTS")
    model = build_model(model_name, meta, config.load("full"))
    err = capsys.readouterr().err.strip().splitlines()
    assert model.backbone.weights_source is None
    assert len(err) == 1 and "no ImageNet weights for resnet50" in err[0] and "random initialisation" in err[0]
    assert build_model(model_name, meta, config.load("quick")).backbone.weights_source is None
    assert capsys.readouterr().err == ""


def test_weights_from_local_file_are_loaded(tmp_path, monkeypatch, capsys):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    file = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), file)
    monkeypatch.setenv("FGFS_WEIGHTS", str(file))
    net = make_backbone("resnet18", weights="imagenet")
    assert capsys.readouterr().err == ""
    assert net.weights_source == str(file)
    assert torch.equal(net.stages["layer3"][0].conv1.weight, reference.layer3[0].conv1.weight)
    # a folder holding torchvision's file name works too, and an explicit path wins
    folder = tmp_path / "dir"
    folder.mkdir()
    name = backbones.find_imagenet_weights("resnet18", tmp_path / "nope")
    assert name == file  # falls through to $FGFS_WEIGHTS
    torch.save(reference.state_dict(), folder / "resnet18-f37072fd.pth")
    assert backbones.find_imagenet_weights("resnet18", folder) == folder / "resnet18-f37072fd.pth"


def test_weights_of_wrong_architecture_are_refused(tmp_path):
    import torchvision

    file = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), file)
    with pytest.raises(ValueError, match="r50.pth.*(missing|shape)"):
        make_backbone("resnet18", weights=file)


def test_registry_builds_baselines_and_rejects_unknown():
    from fgfs_lib.models.registry import build_model, available_models

    meta = types.SimpleNamespace(num_attributes=4, num_values=[3, 3, 3, 3])
    assert {"triplet", "csn"} <= set(available_models())
    model = build_model("csn", meta, config.load("quick"), mask="fixed", embed_dim=8)
    assert model.model_config == {"name": "csn", "options": {"mask": "fixed", "embed_dim": 8}}
    emb = model.embed(torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 3]))
    assert emb.shape == (3, 8)
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope", meta)
