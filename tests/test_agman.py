"""AG-MAN (fgfs_lib.models.agman): shapes, the AGA parts against hand re-statements, the loss
weightings' gradients, the classification targets, and training through the trainer."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fgfs_lib import config, train
from fgfs_lib.models import agman
from fgfs_lib.models.agman import AGMAN
from fgfs_lib.models.registry import build_model

from test_train import assert_same_params, cfg, data, params  # noqa: F401 (fixtures)

A = 3
TINY = dict(backbone="small_cnn", width=4, embed_dim=8, value_dim=6, attention_dim=5, aca_hidden=7, ca_reduction=2)
VARIANTS = [{}, {"multilevel": False}, {"classify": False}, {"use_asa": False}, {"use_sa": False},
            {"use_aca": False}, {"use_ca": False}, {"head": "release"}, {"sa_kernel": 3}]


def _model(seed: int = 0, **options) -> AGMAN:
    torch.manual_seed(seed)
    return AGMAN(A, **{**TINY, **options}).eval()


@pytest.mark.parametrize("size", [32, 48])
@pytest.mark.parametrize("options", VARIANTS)
def test_quick_shapes_follow_the_input_size(size, options):
    model = _model(**options)
    images = torch.randn(4, 3, size, size)
    with torch.no_grad():
        feats = model.features(images)
        emb = model.embed(images, torch.tensor([0, 1, 2, 1]))
        alpha = model.attention_maps(images, 1)
    h = size // 8  # small_cnn: layer3 at stride 8
    c3 = 4 * TINY["width"]
    multilevel = options.get("multilevel", True)
    assert feats["map"].shape == (4, 2 * c3 if multilevel else c3, h, h)
    assert feats["fused"].shape == (4, c3, h, h)
    dim = TINY["value_dim"] if options.get("head") == "release" else TINY["embed_dim"]
    assert emb.shape == (4, dim)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    assert alpha.shape == (4, h, h)
    torch.testing.assert_close(alpha.sum(dim=(1, 2)), torch.ones(4))
    if model.classify:
        assert model.class_logits(feats).shape == (4, A)


def test_full_profile_shapes_on_resnet50_at_any_size():
    opts = {**agman.default_options(config.load("full", 0)), "weights": None}
    assert (opts["backbone"], opts["embed_dim"], opts["value_dim"]) == ("resnet50", 1024, 512)
    torch.manual_seed(0)
    model = AGMAN(A, **opts).eval()
    images = torch.randn(2, 3, 80, 96)  # layer2 10x12, layer3 5x6: no 224 or 14 anywhere
    with torch.no_grad():
        feats = model.features(images)
        emb = model.embed_all_attributes(feats)
        logits = model.class_logits(feats)
    assert feats["map"].shape == (2, 2048, 5, 6)
    assert emb.shape == (A, 2, 1024) and logits.shape == (2, A)


@pytest.mark.parametrize("options", VARIANTS)
def test_all_attributes_at_once_equals_one_at_a_time(options):
    model = _model(**options)
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(images)
        every = model.embed_all_attributes(feats)
        for a in range(A):
            torch.testing.assert_close(every[a], model.embed_from_features(feats, torch.full((5,), a)),
                                       atol=1e-6, rtol=1e-5)


def test_multilevel_fusion_against_a_hand_restatement():
    torch.manual_seed(0)
    f2, f3 = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    lateral = torch.nn.Conv2d(3, 5, 1)
    pooled = torch.zeros(2, 3, 4, 4)
    for i in range(4):
        for j in range(4):
            pooled[:, :, i, j] = f2[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].amax(dim=(2, 3))
    expected = f3 + torch.einsum("oc,bchw->bohw", lateral.weight[:, :, 0, 0], pooled) + lateral.bias[:, None, None]
    torch.testing.assert_close(agman.fuse_levels(f2, f3, lateral), expected)


def test_asa_against_a_loop_over_positions():
    model = _model()
    images = torch.randn(2, 3, 32, 32)
    attributes = torch.tensor([2, 0])
    with torch.no_grad():
        feats = model.features(images)["map"]
        alpha = model.head({"map": feats, "fused": feats}, attributes)["alpha"][0]
        asa, vec = model.asa, model.attribute_p
        for b in range(2):
            wa = vec.fc.weight @ vec.embedding.weight[attributes[b]] + vec.fc.bias  # W_a a
            pa = torch.sigmoid(wa) * wa  # eq. (2)
            h, w = feats.shape[-2:]
            scores = torch.zeros(h, w)
            for i in range(h):
                for j in range(w):
                    p_ij = torch.tanh(asa.key.weight[:, :, 0, 0] @ feats[b, :, i, j] + asa.key.bias)  # eq. (1)
                    scores[i, j] = p_ij @ pa / math.sqrt(TINY["attention_dim"])
            torch.testing.assert_close(alpha[b], torch.softmax(scores.flatten(), 0).view(h, w))


def test_spatial_attention_against_a_hand_restatement():
    torch.manual_seed(1)
    sa = agman.ChannelPoolSpatial(kernel_size=1)
    x = torch.randn(2, 3, 4, 5, 5)
    out, gate = sa(x, scale=2.0)
    w, b = sa.conv.weight.view(2), sa.conv.bias
    expected = torch.sigmoid(w[0] * 2 * x.mean(2) + w[1] * 2 * x.max(2).values + b)
    torch.testing.assert_close(gate, expected)
    torch.testing.assert_close(out, x * expected[:, :, None])


def test_head_pooling_equals_the_explicit_attended_map():
    """The head folds SA into the pooling weights; it must equal building f_s = α ⊙ W_1 f(I),
    applying SA to it (eq. 4) and summing over the positions."""
    model = _model()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(images)
        head = model.head(feats)
        f_s, alpha = model.asa(feats["map"], model.attribute_p()[:, None])  # [A, B, c, h, w]
        h, w = alpha.shape[-2:]
        f_s_prime, gate = model.sa(f_s, scale=float(h * w))
        torch.testing.assert_close(head["alpha"], alpha)
        torch.testing.assert_close(head["sa"], gate)
        torch.testing.assert_close(head["pooled"], f_s_prime.sum(dim=(-2, -1)), atol=1e-5, rtol=1e-5)


def test_aca_and_ca_against_hand_restatements():
    torch.manual_seed(2)
    aca, ca = agman.AttributeGuidedChannel(6, 4), agman.SqueezeExcite(6, reduction=2)
    x, q = torch.randn(2, 3, 6), torch.randn(2, 1, 6)
    out, gate = aca(x, q)
    for k in range(2):
        for b in range(3):
            joint = torch.cat([q[k, 0], x[k, b]])  # eq. (6a): [q(a), f_s']
            g = torch.sigmoid(aca.fc2.weight @ torch.relu(aca.fc1.weight @ joint + aca.fc1.bias) + aca.fc2.bias)
            torch.testing.assert_close(gate[k, b], g)
            torch.testing.assert_close(out[k, b], (aca.mix.weight @ x[k, b] + aca.mix.bias) * g)  # eq. (6b)
    out, gate = ca(x)
    g = torch.sigmoid(torch.relu(x @ ca.down.weight.t() + ca.down.bias) @ ca.up.weight.t() + ca.up.bias)
    assert ca.down.out_features == 3
    torch.testing.assert_close(gate, g)
    torch.testing.assert_close(out, x * g)


def test_ablations_remove_what_they_say():
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        wo_asa = _model(use_asa=False)
        head = wo_asa.head(wo_asa.features(x))
        torch.testing.assert_close(head["alpha"], torch.full_like(head["alpha"], 1 / 16))
        for options, key in [({"use_sa": False}, "sa"), ({"use_aca": False}, "aca"), ({"use_ca": False}, "ca"),
                             ({"head": "release"}, "ca")]:
            model = _model(**options)
            assert key not in model.head(model.features(x))
    assert not hasattr(_model(classify=False), "classifier")
    assert "layer4" not in _model(classify=False).backbone.stages


def test_gated_attribute_vector_is_sigmoid_times_linear():
    vec = agman.GatedAttributeVector(3, 4)
    wa = vec.embedding.weight @ vec.fc.weight.t() + vec.fc.bias
    torch.testing.assert_close(vec(), torch.sigmoid(wa) * wa)
    torch.testing.assert_close(vec(torch.tensor([2, 0])), (torch.sigmoid(wa) * wa)[[2, 0]])


def test_classification_targets_against_a_loop():
    labels = torch.tensor([[0, -1, 3], [-1, -1, 0], [2, 1, -1]])
    expected = torch.zeros(3, 3)
    for i in range(3):
        for a in range(3):
            if labels[i, a] != -1:
                expected[i, a] = 1.0
    torch.testing.assert_close(agman.attribute_type_targets(labels), expected)


def _grad(rule: str, s: list[float], losses: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.tensor(s, requires_grad=True)
    task = torch.tensor(losses, requires_grad=True)
    agman.weighted_total(list(task), weights, rule).backward()
    return weights.grad, task.grad


def test_uncertainty_weighting_gradient_equals_the_analytic_one():
    s, losses = [0.3, -1.2], [0.7, 0.05]
    g_s, g_l = _grad("uncertainty", s, losses)
    torch.testing.assert_close(g_s, torch.tensor([0.5 * (1 - math.exp(-si) * li) for si, li in zip(s, losses)]))
    torch.testing.assert_close(g_l, torch.tensor([0.5 * math.exp(-si) for si in s]))
    # the stationary point is s = log L: there the gradient vanishes
    g_s, _ = _grad("uncertainty", [math.log(0.7), math.log(0.05)], losses)
    torch.testing.assert_close(g_s, torch.zeros(2), atol=1e-7, rtol=0)


def test_eq9_gradient_is_positive_for_every_loss_so_descent_diverges():
    for w in (-5.0, 0.0, 3.0):
        for loss in (0.0, 0.1, 10.0):
            g, _ = _grad("eq9", [w, w], [loss, loss])
            torch.testing.assert_close(g, torch.full((2,), 0.5 * math.exp(w) * loss + 1.0))
            assert bool((g >= 1.0).all())
    # plain gradient descent with fixed task losses: w falls every step and the total with it
    w = torch.zeros(2, requires_grad=True)
    totals = []
    for _ in range(200):
        total = agman.weighted_total([torch.tensor(0.4), torch.tensor(0.1)], w, "eq9")
        w.grad = None
        total.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
        totals.append(float(total.detach()))
    assert all(b < a for a, b in zip(totals, totals[1:]))
    assert float(w.max()) < -15 and totals[-1] < -30


def test_equal_weighting_is_half_the_sum():
    total = agman.weighted_total([torch.tensor(0.4), torch.tensor(0.2)], None, "equal")
    torch.testing.assert_close(total, torch.tensor(0.3))


def test_registry_builds_every_variant():
    meta = SimpleNamespace(num_attributes=A)
    cfg = config.load("quick", 0)
    expected = {"agman": {}, "agman_wo_ml": {"multilevel": False}, "agman_aga_only": {"multilevel": False,
                "classify": False}, "agman_wo_asa": {"asa_on": False}, "agman_release": {"head_kind": "release"}}
    for name, flags in expected.items():
        model = build_model(name, meta, cfg, **{k: v for k, v in TINY.items() if k != "embed_dim"})
        assert model.model_config["name"] == name
        for flag, value in flags.items():
            actual = model.asa.enabled if flag == "asa_on" else getattr(model, flag)
            assert actual == value, (name, flag)
    labels = agman.ablation_runs("all")
    assert set(labels) >= {"ASENet_V2", "AG-MAN", "w/o ASA", "w/o SA", "w/o ACA", "w/o CA"}
    for run in labels.values():
        build_model(run["model_name"], meta, cfg)


SMALL = dict(epochs=2, steps_per_epoch=3, batch_size=16, checkpoint_every=2, eval_batch_size=64)
OPTIONS = dict(width=4, embed_dim=8, value_dim=8, attention_dim=8, aca_hidden=8, ca_reduction=2)


@pytest.mark.parametrize("sampling", ["in_batch", "triplets"])
def test_training_learns_loss_weights_and_resumes(data, cfg, tmp_path, sampling):
    settings = dict(SMALL, sampling=sampling)
    torch.manual_seed(0)
    reference = build_model("agman", data.meta, cfg, **OPTIONS)
    logs = []
    result = train.fit(reference, data, cfg, out_dir=tmp_path / "whole", verbose=False,
                       on_step=lambda step, log: logs.append(log), **settings)
    assert result.stopped is None and len(result.history) == 2
    assert {"triplet", "classification", "weight_c", "weight_t"} <= set(logs[0])
    assert float(reference.loss_weights.abs().min()) > 0  # s is in the optimiser and moved

    class Killed(RuntimeError):
        pass

    def kill(step, log):
        if step == 4:
            raise Killed

    torch.manual_seed(0)
    model = build_model("agman", data.meta, cfg, **OPTIONS)
    with pytest.raises(Killed):
        train.fit(model, data, cfg, out_dir=tmp_path / "killed", verbose=False, on_step=kill, **settings)
    torch.manual_seed(5)
    resumed = build_model("agman", data.meta, cfg, **OPTIONS)
    train.fit(resumed, data, cfg, out_dir=tmp_path / "killed", verbose=False, **settings)
    assert_same_params(params(resumed), params(reference))


def test_equal_weights_stay_fixed_and_train_or_load_reuses(data, cfg):
    options = {**OPTIONS, "weighting": "equal"}
    first = train.train_or_load("agman", data, cfg, model_options=options, verbose=False, **SMALL)
    assert not first.reused
    torch.testing.assert_close(first.model.loss_weights.detach(), torch.zeros(2))
    again = train.train_or_load("agman", data, cfg, model_options=options, verbose=False, **SMALL)
    assert again.reused and again.checkpoint_dir == first.checkpoint_dir
    assert_same_params(params(again.model), params(first.model))


def test_claim_verdicts():
    assert agman.claim_verdict({"seeds_holding": 3, "seeds": 3}, -1.0) == "reproduced"
    assert agman.claim_verdict({"seeds_holding": 0, "seeds": 3}, 1.0) == "NOT reproduced"
    assert agman.claim_verdict({"seeds_holding": 2, "seeds": 3}, 1.0) == "mixed: depends on the seed"
    assert agman.claim_verdict({"seeds_holding": 1, "seeds": 1}, -0.5) == "does NOT hold on this seed only"
    assert agman.claim_verdict(None, 0.5) == "holds on this seed only"
