"""ASEN++: branch head by hand, the batched ROI against the released per-image procedure,
roi_align crops against an analytic oracle, the fused score, the two-stage loss and training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgfs_lib import config, evaluate, train
from fgfs_lib.models import asen_global_local as agl
from fgfs_lib.models.registry import build_model

from test_train import tiny_data


def _released_box(attention: np.ndarray, size: tuple[int, int], threshold: float) -> tuple[int, int, int, int]:
    """The authors' per-image ROI, re-stated with PIL and numpy: resize the map to the image
    (bilinear), min-max normalise, binarise, bounding rectangle of the foreground, square it
    on its centre with the longer edge, shift it inside the frame."""
    from PIL import Image

    h, w = size
    big = np.asarray(Image.fromarray(attention.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
    big = (big - big.min()) / (big.max() - big.min())
    ys, xs = np.nonzero(big > threshold)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    side = min(max(x1 - x0, y1 - y0), min(h, w))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nx0, ny0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    nx0, ny0 = min(max(nx0, 0), w - side), min(max(ny0, 0), h - side)
    return nx0, ny0, nx0 + side, ny0 + side


@pytest.mark.parametrize("grid,size,threshold", [((7, 7), (112, 112), 0.4), ((8, 8), (64, 64), 0.1),
                                                 ((14, 14), (224, 224), 0.4)])
def test_batched_roi_matches_the_released_per_image_procedure_within_one_pixel(grid, size, threshold):
    g = torch.Generator().manual_seed(sum(grid))
    logits = torch.randn(40, *grid, generator=g) * 3
    attention = torch.softmax(logits.flatten(1), 1).view(40, *grid)
    boxes = agl.roi_boxes(attention, size, threshold)
    for n in range(40):
        expected = torch.tensor(_released_box(attention[n].numpy(), size, threshold), dtype=torch.float32)
        assert (boxes[n] - expected).abs().max() <= 1.0, (n, boxes[n], expected)
        assert boxes[n, 2] - boxes[n, 0] == boxes[n, 3] - boxes[n, 1]  # square
        assert boxes[n, 0] >= 0 and boxes[n, 1] >= 0 and boxes[n, 2] <= size[1] and boxes[n, 3] <= size[0]


def test_crops_of_a_linear_ramp_equal_the_ramp_at_each_output_pixel():
    """Bilinear sampling is exact on a linear image, so each output pixel of the crop is the
    ramp's value at the centre of its bin: an oracle for one batched roi_align call."""
    H = W = 40
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    ramp = torch.stack([j + 2 * i, 3 * j - i, i])                     # pixel (i, j) at continuous (j+.5, i+.5)
    images = torch.stack([ramp, ramp * 0.5])
    boxes = torch.tensor([[4.0, 6.0, 20.0, 22.0], [10.0, 3.0, 34.0, 27.0], [8.0, 8.0, 12.0, 12.0]])
    index = torch.tensor([0, 1, 0])
    size = 8
    crops = agl.crop_pairs(images, index, boxes, size)
    for n, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        centres = torch.arange(size, dtype=torch.float32) + 0.5
        cx = x0 + centres * (x1 - x0) / size - 0.5                       # back to pixel-index coordinates
        cy = y0 + centres * (y1 - y0) / size - 0.5
        yy, xx = torch.meshgrid(cy, cx, indexing="ij")
        expected = torch.stack([xx + 2 * yy, 3 * xx - yy, yy]) * (0.5 if index[n] == 1 else 1.0)
        torch.testing.assert_close(crops[n], expected, atol=1e-4, rtol=1e-5)


def test_branch_head_matches_equations_by_hand():
    torch.manual_seed(0)
    head = agl.BranchHead(channels=6, attribute_dim=5, common=4, embed_dim=3)
    V, e = torch.randn(2, 6, 3, 2), torch.randn(2, 5)
    x, alpha = head(V, e)
    for b in range(2):
        P = torch.tanh(torch.einsum("oc,chw->ohw", head.conv.weight[:, :, 0, 0], V[b]) + head.conv.bias[:, None, None])
        q = torch.tanh(head.attr_transform1.weight @ e[b] + head.attr_transform1.bias)
        s = torch.einsum("dhw,d->hw", P, q) / 2.0                        # sqrt(common = 4)
        a = torch.exp(s) / torch.exp(s).sum()
        f = (V[b] * a).sum(dim=(1, 2))
        t = torch.relu(head.attr_transform2.weight @ e[b] + head.attr_transform2.bias)
        beta = torch.sigmoid(head.fc2(torch.relu(head.fc1(torch.cat([f, t])))))
        out = head.feature_fc(f * beta)
        torch.testing.assert_close(alpha[b], a, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(x[b], out / out.norm(), atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def data():
    return tiny_data(size=32)


@pytest.fixture(scope="module")
def cfg():
    return config.load("quick", 0)


def _model(data, cfg, **options):
    torch.manual_seed(0)
    return build_model("asenpp", data.meta, cfg, crop_size=16, **options).eval()


def test_fused_score_is_point_six_global_plus_point_four_local_cosine(data, cfg):
    model = _model(data, cfg)
    x = data.train.batch(torch.arange(6))
    attributes = torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.no_grad():
        fused = model.embed(x, attributes)
        parts = model.branches(model.features(x), torch.arange(6), attributes)
        all_attributes = model.embed_all_attributes(model.features(x))
    cos_g = parts["global"] @ parts["global"].t()
    cos_l = parts["local"] @ parts["local"].t()
    torch.testing.assert_close(fused @ fused.t(), 0.6 * cos_g + 0.4 * cos_l, atol=1e-5, rtol=1e-5)
    for n, a in enumerate(attributes.tolist()):  # the batched all-attribute path agrees
        torch.testing.assert_close(all_attributes[a, n], fused[n], atol=1e-5, rtol=1e-5)


def test_stage_two_loss_is_global_plus_tenth_local_plus_tenth_alignment(data, cfg):
    from fgfs_lib import losses

    model = _model(data, cfg)
    idx = torch.arange(12)
    batch = {"images": data.train.batch(idx), "labels": data.train.labels[idx]}
    total, logs = model.loss(batch)
    known = batch["labels"].t() >= 0
    assert logs["crops"] == known.sum()  # one crop per annotated (image, attribute) pair, no more
    with torch.no_grad():
        feats = model.features(batch["images"])
        every = {}
        for name in ("global", "local"):
            every[name] = torch.zeros(2, 12, 64)
            for a in range(2):
                for b in range(12):
                    if known[a, b]:
                        parts = model.branches(feats, torch.tensor([b]), torch.tensor([a]))
                        every[name][a, b] = parts[name][0]
        trip = {k: losses.batch_all_triplet_loss(v, batch["labels"], average="attribute")[0] for k, v in every.items()}
        cos = (every["global"] * every["local"]).sum(-1)[known]
        align = (1 - cos).clamp_min(0).mean()
    torch.testing.assert_close(total.detach(), trip["global"] + 0.1 * trip["local"] + 0.1 * align,
                               atol=1e-5, rtol=1e-4)
    stage1 = _model(data, cfg, stage="global")
    stage1.load_state_dict(model.state_dict())
    loss1, logs1 = stage1.loss(batch)
    torch.testing.assert_close(loss1.detach(), trip["global"], atol=1e-5, rtol=1e-4)
    assert "align" not in logs1


def test_two_stages_through_the_trainer(data, cfg, tmp_path):
    """Stage 1 trains the global branch only; stage 2 starts from it (init_from), trains the
    local branch at lr and the global one at lr / 10; evaluation ranks with the fused score."""
    torch.manual_seed(0)
    stage1 = build_model("asenpp_global", data.meta, cfg, crop_size=16)
    local_before = {k: v.clone() for k, v in stage1.state_dict().items() if k.startswith("local_")}
    r1 = train.fit(stage1, data, cfg, out_dir=tmp_path / "s1", verbose=False, epochs=1, steps_per_epoch=4,
                   batch_size=16)
    after1 = stage1.state_dict()
    assert all(torch.equal(v, after1[k]) for k, v in local_before.items())  # stage 1 never touched them
    stage2 = build_model("asenpp", data.meta, cfg, crop_size=16)
    optimizer, _ = stage2.configure_optimizers(train.default_settings(cfg, lr=1e-3))
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(1e-4), pytest.approx(1e-3)]
    r2 = train.fit(stage2, data, cfg, out_dir=tmp_path / "s2", verbose=False, epochs=1, steps_per_epoch=4,
                   batch_size=16, init_from=str(tmp_path / "s1" / "last.pt"))
    after2 = stage2.state_dict()
    assert not torch.equal(after2["local_head.feature_fc.weight"], after1["local_head.feature_fc.weight"])
    assert math.isfinite(r2.history[-1]["valid_map"]) and math.isfinite(r1.history[-1]["valid_map"])
    assert stage2.embed_dim == 2 * 64


# -- the released checkpoint layout (Maryeon/asenpp) ---------------------------------------------


def _released_attnnet(p: dict, V: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The released AttnEmbedding forward, re-stated on the raw tensors of a state dict:
    conv + tanh, attr_transform1 + tanh, sum over channels / sqrt(common), softmax over
    positions, x * map summed; attr_transform2 + ReLU, fc1 + ReLU, fc2 + sigmoid gate;
    feature_fc (unnormalised)."""
    x = torch.tanh(F.conv2d(V, p["conv.weight"], p["conv.bias"]))
    a = torch.tanh(F.linear(e, p["attr_transform1.weight"], p["attr_transform1.bias"]))
    att = (a[:, :, None, None] * x).sum(1, keepdim=True) / x.shape[1] ** 0.5
    att = torch.softmax(att.flatten(2), dim=2).view(V.shape[0], 1, *V.shape[2:])
    f = (V * att).flatten(2).sum(2)
    t = torch.relu(F.linear(e, p["attr_transform2.weight"], p["attr_transform2.bias"]))
    m = torch.relu(F.linear(torch.cat([f, t], 1), p["fc1.weight"], p["fc1.bias"]))
    m = torch.sigmoid(F.linear(m, p["fc2.weight"], p["fc2.bias"]))
    return F.linear(f * m, p["feature_fc.weight"], p["feature_fc.bias"]), att[:, 0]


def _released_checkpoint(num_attributes: int, seed: int = 0):
    """A checkpoint in the released layout with random weights (torchvision's initialisation
    for the convolutions, random BN statistics): ResNet-50 global and ResNet-34 local
    backbones cut after layer3, small heads."""
    import torchvision

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g) * 0.05  # noqa: E731
    state = {}
    nets = {"global": torchvision.models.resnet50(weights=None), "local": torchvision.models.resnet34(weights=None)}
    for branch, net in nets.items():
        for k, v in net.state_dict().items():
            if k.startswith(("layer4", "fc")):
                continue
            if k.endswith("running_var"):
                v = 0.5 + torch.rand(v.shape, generator=g)
            elif k.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias", "1.bias")):
                v = rand(*v.shape)
            state[f"choices.{branch}.basenet.{k}"] = v
    emb, common, out = 16, {"global": 12, "local": 8}, 10
    state["choices.global.attrnet.attr_embedding.weight"] = rand(num_attributes, emb) * 20
    state["choices.local.attrnet.attr_embedding.weight"] = state["choices.global.attrnet.attr_embedding.weight"]
    for branch, c in (("global", 1024), ("local", 256)):
        d = common[branch]
        shapes = {"conv.weight": (d, c, 1, 1), "conv.bias": (d,), "attr_transform1.weight": (d, emb),
                  "attr_transform1.bias": (d,), "attr_transform2.weight": (emb, emb), "attr_transform2.bias": (emb,),
                  "fc1.weight": (c // 2, c + emb), "fc1.bias": (c // 2,), "fc2.weight": (c, c // 2),
                  "fc2.bias": (c,), "feature_fc.weight": (out, c), "feature_fc.bias": (out,)}
        for k, s in shapes.items():
            state[f"choices.{branch}.attnnet.{k}"] = rand(*s) * 10
    return {"model": state, "epoch": 3}, nets


def test_released_asenpp_checkpoint_gives_the_released_forward():
    checkpoint, nets = _released_checkpoint(num_attributes=3)
    model = agl.asenpp_from_released(checkpoint, num_attributes=3, crop_size=32)
    state = checkpoint["model"]
    assert (model.global_backbone.name, model.local_backbone.name) == ("resnet50", "resnet34")
    assert model.embed_dim == 20 and model.threshold == 0.1
    g = torch.Generator().manual_seed(1)
    images, crops = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 32, 32, generator=g)
    attributes = torch.tensor([2, 0])
    with torch.no_grad():
        for branch, x, ours_backbone, ours_head in (("global", images, model.global_backbone, model.global_head),
                                                    ("local", crops, model.local_backbone, model.local_head)):
            net = nets[branch]
            net.load_state_dict({k.removeprefix(f"choices.{branch}.basenet."): v for k, v in state.items()
                                 if k.startswith(f"choices.{branch}.basenet.")}, strict=False)
            net.eval()
            V = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
            e = state["choices.global.attrnet.attr_embedding.weight"][attributes]
            p = {k.removeprefix(f"choices.{branch}.attnnet."): v for k, v in state.items()
                 if k.startswith(f"choices.{branch}.attnnet.")}
            expected, expected_map = _released_attnnet(p, V, e)
            ours, ours_map = ours_head(ours_backbone(x), model.attribute_embedding(attributes))
            torch.testing.assert_close(ours_map, expected_map, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(ours, F.normalize(expected, dim=-1), atol=1e-5, rtol=1e-4)
            assert expected_map.std() > 1e-3  # the maps are not uniform: the check can fail
        fused = model.embed(images, attributes)
    assert fused.shape == (2, 20) and torch.allclose(fused.norm(dim=1), torch.ones(2))


def test_released_asenpp_checkpoint_that_does_not_fit_is_refused_with_the_keys():
    checkpoint, _ = _released_checkpoint(num_attributes=3)
    with pytest.raises(ValueError, match="embeds 3 attributes, not 4"):
        agl.asenpp_from_released(checkpoint, num_attributes=4)
    broken = {k: v for k, v in checkpoint["model"].items() if k != "choices.local.attnnet.fc1.weight"}
    with pytest.raises(ValueError, match="local_head.fc1.weight"):
        agl.asenpp_from_released(broken, num_attributes=3)
    with pytest.raises(ValueError, match="not an ASEN\\+\\+ checkpoint"):
        agl.asenpp_from_released({"state_dict": {}}, num_attributes=3)
    stage1 = {k: v for k, v in checkpoint["model"].items() if not k.startswith("choices.local.")}
    assert agl.asenpp_from_released(stage1, num_attributes=3).stage == "global"


def test_fusion_sweep_from_one_pass_equals_each_score_ranked_on_its_own(data, cfg):
    model = _model(data, cfg)
    sweep = agl.fusion_maps(model, data, "test", fusions=(0.0, 0.6, 1.0))
    for b, score in ((0.0, "local"), (0.6, "fused"), (1.0, "global")):
        alone = evaluate.retrieval_map(agl.variant(model, score=score), data, "test")
        assert sweep[b]["overall"] == pytest.approx(alone["overall"], abs=1e-4), (b, score)
    assert agl.variant(model, score="local").embed_dim == 64 and model.embed_dim == 128
