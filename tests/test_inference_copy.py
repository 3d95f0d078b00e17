"""evaluate.inference_copy: the faster CPU copy every evaluation runs must embed like the model.

The oracle is the model itself, run the plain way (eval mode, contiguous memory, BatchNorm
separate) image by image; every registered model is checked on real FashionSynth images.
"""

import copy

import pytest
import torch

from fgfs_lib import config, data, evaluate
from fgfs_lib.data import synth
from fgfs_lib.models.registry import available_models, build_model


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = synth.make_fashionsynth(tmp_path_factory.mktemp("synth") / "fs", seed=0, num_images=40, processes=1)
    return data.load("fashionsynth", root=root)


def test_fold_batchnorm_is_the_same_function():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3), torch.nn.BatchNorm2d(4))
    for bn in (net[1], net[4]):  # non-trivial statistics and affine parameters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 3, 9, 9)
    folded = evaluate.fold_batchnorm(copy.deepcopy(net))
    assert [type(m).__name__ for m in folded] == ["Conv2d", "Identity", "ReLU", "Conv2d", "Identity"]
    assert torch.allclose(folded(x), net(x), atol=1e-5)
    train_mode = evaluate.fold_batchnorm(copy.deepcopy(net).train())
    assert isinstance(train_mode[1], torch.nn.BatchNorm2d)  # batch statistics cannot be folded


@pytest.mark.parametrize("name", [n for n in available_models() if n != "attribute_classifier"])
def test_embed_pairs_equals_the_plain_forward_for_every_model(name, images, tmp_path, monkeypatch):
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path))
    cfg = config.load("quick", 0)
    torch.manual_seed(0)
    model = build_model(name, images.meta, cfg)
    model.train()  # as a training run calls it mid-epoch
    state = {k: v.clone() for k, v in model.state_dict().items()}
    split = images.test
    n, A = len(split), images.meta.num_attributes
    pairs = torch.stack([torch.arange(n).repeat_interleave(2), torch.arange(2 * n) % A], 1)
    fast = evaluate.embed_pairs(model, split, pairs, batch_size=7)
    assert model.training  # mode restored, weights untouched
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    model.eval()
    with torch.no_grad():
        feats = model.features(split.batch(pairs[:, 0]))
        plain = model.embed_from_features(feats, pairs[:, 1]).float()
    assert torch.allclose(fast, plain, atol=1e-4), (fast - plain).abs().max()
