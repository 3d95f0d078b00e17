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
    # the quick profile starts from the small CNN's shipped FashionSynth weights
    assert build_model(model_name, meta, config.load("quick")).backbone.weights_source == str(
        backbones.SMALL_CNN_WEIGHTS)
    assert build_model(model_name, meta, config.load("quick"), weights=None).backbone.weights_source is None
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


def _save_small_cnn(path, seed, width=32, stages=("layer1", "layer2", "layer3")):
    torch.manual_seed(seed)
    net = make_backbone("small_cnn", stage="layer4", width=width)
    state = {k: v for k, v in net.stages.state_dict().items() if k.split(".")[0] in stages}
    torch.save({"state_dict": state, "record": {"what": "test"}}, path)
    return state


def test_small_cnn_weights_load_the_stages_the_file_has(tmp_path):
    import hashlib

    file = tmp_path / "w.pt"
    state = _save_small_cnn(file, seed=3)
    torch.manual_seed(99)
    net = make_backbone("small_cnn", stage="layer4", weights=file)
    own = net.stages.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())  # layer1-3 (BN buffers too)
    torch.manual_seed(99)
    random = make_backbone("small_cnn", stage="layer4")
    layer4 = [k for k in own if k.startswith("layer4.")]
    assert layer4 and all(torch.equal(own[k], random.stages.state_dict()[k]) for k in layer4)  # untouched
    assert net.weights_source == str(file)
    assert net.weights_digest == hashlib.sha256(file.read_bytes()).hexdigest()[:12]


def test_small_cnn_weights_refuse_a_wrong_width_or_a_missing_file(tmp_path):
    file = tmp_path / "w16.pt"
    _save_small_cnn(file, seed=0, width=16)
    with pytest.raises(ValueError, match="width 32"):
        make_backbone("small_cnn", weights=file)
    # the shipped start exists for width 32 only: another width asked for it starts at random
    torch.manual_seed(5)
    narrow = make_backbone("small_cnn", weights="fashionsynth", width=8)
    torch.manual_seed(5)
    assert narrow.weights_source is None and torch.equal(
        narrow.stages["layer1"][0].weight, make_backbone("small_cnn", width=8).stages["layer1"][0].weight)
    with pytest.raises(FileNotFoundError, match="pretrain_quick_backbone"):
        make_backbone("small_cnn", weights=tmp_path / "absent.pt")
    assert make_backbone("small_cnn", weights="imagenet").weights_source is None  # none exist: random


def test_cache_key_follows_the_weights_content(tmp_path):
    from fgfs_lib import train
    from fgfs_lib.models.registry import build_model

    meta = types.SimpleNamespace(num_attributes=2, num_values=[3, 4], name="x", attribute_names=["a", "b"],
                                 value_names=None)
    data = types.SimpleNamespace(meta=meta, config={"seed": 0}, root="")
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    _save_small_cnn(a, seed=1)
    _save_small_cnn(b, seed=2)
    cfg = config.load("quick")
    settings = train.default_settings(cfg)

    def key(weights):
        rc = train.run_config(build_model("asen", meta, cfg, weights=weights), data, cfg, settings)
        return rc, train.config_hash(rc)

    (rc_a, ha), (rc_b, hb), (rc_none, hn) = key(a), key(b), key(None)
    assert rc_a["model"]["backbone_weights"] != rc_b["model"]["backbone_weights"]
    assert len({ha, hb, hn}) == 3 and "backbone_weights" not in rc_none["model"]
    b.write_bytes(a.read_bytes())  # same content under another name: the weights' part of the key agrees
    assert key(b)[0]["model"]["backbone_weights"] == rc_a["model"]["backbone_weights"]


def test_shipped_quick_weights_say_how_they_were_made():
    """The committed start of the quick profile: pretrained on images the course never uses."""
    payload = torch.load(backbones.SMALL_CNN_WEIGHTS, map_location="cpu", weights_only=True)
    record = payload["record"]
    assert record["pretraining_data"]["seed"] != config.load("quick").seed == 0
    assert record["command"].startswith("python scripts/pretrain_quick_backbone.py")
    assert {k.split(".")[0] for k in payload["state_dict"]} == {"layer1", "layer2", "layer3"}
    net = make_backbone("small_cnn", weights="fashionsynth")
    assert all(torch.equal(net.stages.state_dict()[k], v) for k, v in payload["state_dict"].items())
