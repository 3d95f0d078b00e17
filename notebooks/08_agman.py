# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · AG-MAN: multi-level features, an attribute-type classifier and the AGA attention
#
# **Goals.**
# - Build AG-MAN step by step: layer2 features fused into layer3 ("multi-level"), a
#   classification branch over the attribute *types*, and the AGA head (ASA, SA, ACA, CA);
#   check every step against `fgfs_lib.models.agman`, then use the library.
# - Show that the paper's dynamic loss weighting (eq. 9) is mis-signed: derive its gradient,
#   run it and assert that it diverges; replace it with the homoscedastic-uncertainty form and
#   compare with fixed equal weights.
# - Train AG-MAN, ASENet_V2 (the paper's main baseline) and the ablations of Tables 5-8 on the
#   same data and budget, print the paper's FashionAI numbers beside ours and give each of the
#   paper's claims a verdict, on this live run and on the committed three-seed run
#   (`scripts/run_agman_seeds.py`).
#
# **Papers and equations.** L. Xiao and T. Yamasaki, *Attribute-Guided Multi-Level Attention
# Network for Fine-Grained Fashion Retrieval* (AG-MAN): multi-level features and the
# classification branch (section 2.2, eq. 7), AGA: ASA eqs. 1-3, SA eq. 4, ACA eqs. 5-6, CA
# (Figure 3d), cosine triplet loss eq. 8, the weighted loss eq. 9. The baseline ASENet_V2 (Dong
# et al., TIP 2021; notebook 06's `asen_v2`). The uncertainty weighting: Kendall, Gal and
# Cipolla, CVPR 2018.
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 140 s on an idle CPU in a fresh-clone `./course run` (140.8 s at commit c845b1c, `benchmarks/RESULTS.md`) | seed 0, from the pretrained small CNN: test MAP ASENet_V2 80.1, AGA only 57.9, AGA + multi-level 51.4, AGA + classification 55.5, AG-MAN 56.7, AG-MAN (equal weights) 57.3 (random 16.9); TR accuracy CSN 86.3, ASENet_V2 90.9, AG-MAN 85.0 %. Three seeds (`results/08_agman_seeds.md`): AG-MAN 56.4 ± 0.4 against ASENet_V2 79.6 ± 0.7; at 7.5x the images (`results/08_agman_long.md`) 82.6 ± 0.3 against 89.5 ± 0.6 |
# | full | 1 GPU | not measured (11 runs x 50 epochs of 100k triplets, ResNet-50) | paper, FashionAI MAP: ASENet_V2 60.76, AGA only 61.97, AG-MAN 62.88; w/o ASA 50.80, w/o SA 61.67, w/o ACA 61.50, w/o CA 61.41 |

# %%
# %matplotlib inline
import fgfs_lib
from fgfs_lib import config, utils, viz

cfg = config.load()
generator = utils.seed_everything(cfg.seed)
print(cfg.banner())

# %%
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from fgfs_lib import cam, evaluate, train
from fgfs_lib.models import agman
from fgfs_lib.models.registry import build_model
from fgfs_lib.viz import maps as viz_maps
from fgfs_lib.viz import training as viz_training

data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
meta, test = data.meta, data.test
names = meta.attribute_names
A = meta.num_attributes

# %% [markdown]
# ## 1. Multi-level features
#
# A backbone's last stages are trained for object categories; AG-MAN's premise is that
# fine-grained attributes (a collar's shape, a hem's length) also need the lower-level
# features of earlier stages. With $F_2, F_3$ the outputs of blocks 2 and 3:
#
# $$F_{2,3} = F_3 + \mathrm{Conv}_{1\times1}\bigl(\mathrm{MaxPool}(F_2)\bigr),\qquad
#   f(I) = [F_3,\ F_{2,3}]\ \text{(channels)}.$$
#
# The pool brings $F_2$ to $F_3$'s grid (28 -> 14 at 224 px on ResNet-50), whatever it is.
# In the quick profile the small CNN's stages play the ResNet's parts: "layer2" / "layer3" /
# "layer4" are its 2nd / 3rd / 4th conv stages, at stride 4 / 8 / 16 (ASEN cuts both
# backbones after layer3). We build $f(I)$ by hand from the backbone's stages and compare it
# with the library.

# %%
torch.manual_seed(cfg.seed)
dev = utils.device()
model = build_model("agman", meta, cfg).to(dev).eval()
images = test.batch(torch.arange(6)).to(dev)
with torch.no_grad():
    x = images
    for key in ("stem", "layer1", "layer2"):
        if key in model.backbone.stages:
            x = model.backbone.stages[key](x)
    f2 = x
    f3 = model.backbone.stages["layer3"](f2)
    pooled_f2 = F.adaptive_max_pool2d(f2, f3.shape[-2:])
    f23 = f3 + model.lateral(pooled_f2)
    f_image = torch.cat([f3, f23], dim=1)
    feats = model.features(images)
assert torch.allclose(feats["map"], f_image, atol=1e-5) and torch.allclose(feats["fused"], f23, atol=1e-5)
print(f"images {tuple(images.shape)} -> F2 {tuple(f2.shape)}, F3 {tuple(f3.shape)}, "
      f"pooled F2 {tuple(pooled_f2.shape)}, f(I) {tuple(f_image.shape)}")

# %% [markdown]
# ## 2. The AGA head, step by step
#
# For attribute $a$ (one-hot), with $c'$ the attention width:
#
# - **ASA** (eqs. 1-3): $p(I) = \tanh(\mathrm{Conv}_{c'}(f(I)))$, the gated attribute vector
#   $p(a) = \sigma(W_a a) \odot W_a a$, attention
#   $\alpha = \mathrm{softmax}_j\bigl(p(I)_j \cdot p(a) / \sqrt{c'}\bigr)$ over the positions $j$,
#   $f_s = \alpha \odot W_1 f(I)$;
# - **SA** (eq. 4): $W_{SA} = \sigma(\mathrm{Conv}_1([\mathrm{Avg}_c(f_s), \mathrm{Max}_c(f_s)]))$,
#   $f_{s'} = f_s \odot W_{SA}$, then sum pooling over the positions;
# - **ACA** (eqs. 5-6): $q(a) = \sigma(W_{a'} a) \odot W_{a'} a$,
#   $W_{ACA} = \sigma(W_{c_2}\, r(W_{c_1}[q(a), f_{s'}]))$, $f_c = W_2 f_{s'} \odot W_{ACA}$;
# - **CA** (Figure 3d, squeeze-excite): $f_{c'} = f_c \odot \sigma(W_{up}\, r(W_{down} f_c))$;
# - an FC to the embedding size and L2 normalisation; similarity = cosine (eq. 8).
#
# Two choices the paper leaves open: ACA's text says "addition", its equation a concatenation
# (we follow the equation); SA reads $h w \cdot f_s$ so that its input does not shrink with the
# grid. The authors' release replaces CA and the FC with a CSN-style mask (512-d,
# `agman_release`); **the numbers below use the paper's head.**

# %%
attributes = (torch.arange(6) % A).to(dev)
with torch.no_grad():
    fmap = feats["map"]
    p_image = torch.tanh(model.asa.key(fmap))  # eq. (1)
    wa = model.attribute_p.fc(model.attribute_p.embedding(attributes))
    p_attr = torch.sigmoid(wa) * wa  # eq. (2)
    scores = torch.einsum("bdhw,bd->bhw", p_image, p_attr) / math.sqrt(p_image.shape[1])
    alpha = torch.softmax(scores.flatten(1), dim=1).view_as(scores)  # eq. (3)
    f_s = alpha[:, None] * model.asa.value(fmap)  # [B, c, h, w]
    hw = alpha.shape[1] * alpha.shape[2]
    stats = torch.stack([hw * f_s.mean(1), hw * f_s.amax(1)], dim=1)
    w_sa = torch.sigmoid(model.sa.conv(stats))[:, 0]  # eq. (4a)
    pooled = (f_s * w_sa[:, None]).sum(dim=(2, 3))  # eq. (4b), then sum pooling
    wa2 = model.attribute_q.fc(model.attribute_q.embedding(attributes))
    q_attr = torch.sigmoid(wa2) * wa2  # eq. (5)
    w_aca = torch.sigmoid(model.aca.fc2(torch.relu(model.aca.fc1(torch.cat([q_attr, pooled], 1)))))  # (6a)
    f_c = model.aca.mix(pooled) * w_aca  # eq. (6b)
    f_c2 = f_c * torch.sigmoid(model.ca.up(torch.relu(model.ca.down(f_c))))  # CA
    by_hand = F.normalize(model.projection(f_c2), dim=-1)
    library = model.embed_from_features(feats, attributes)
assert torch.allclose(by_hand, library, atol=1e-5), (by_hand - library).abs().max()
print(f"alpha {tuple(alpha.shape)} (sums to 1: {alpha.sum(dim=(1, 2))[:3].tolist()}), "
      f"SA gate {tuple(w_sa.shape)}, embedding {tuple(library.shape)}; by hand == library")
for name in ("asen_v2", "agman_aga_only", "agman", "agman_release"):
    n_params = sum(p.numel() for p in build_model(name, meta, cfg).parameters())
    print(f"{name:<16} {n_params / 1e3:8.1f} k parameters")

# %% [markdown]
# ## 3. The classification branch: one class per attribute type
#
# $F_{2,3}$ goes through layer4, global average pooling and an FC with one logit per
# attribute; the target says whether the image *has* the attribute, whatever its value
# (a skirt and a dress both have "skirt length", mini or maxi). Trained with binary
# cross-entropy (eq. 7), used only in training. On FashionSynth, as on FashionAI, an
# attribute is annotated (label $\ge 0$) exactly where it applies.

# %%
labels = test.labels[:6].cpu()
targets = agman.attribute_type_targets(labels)
loop = torch.tensor([[1.0 if int(labels[i, a]) >= 0 else 0.0 for a in range(A)] for i in range(len(labels))])
assert torch.equal(targets, loop)
print("labels (-1 = not applicable):\n", labels.tolist())
print("targets:\n", targets.int().tolist())

# %% [markdown]
# ## 4. Eq. 9 is mis-signed; the uncertainty form is not
#
# The paper combines the two losses as
#
# $$L = \tfrac12 e^{w_0} L_c + w_0 + \tfrac12 e^{w_1} L_t + w_1,\qquad
#   \frac{\partial L}{\partial w_k} = \tfrac12 e^{w_k} L_k + 1 \;\ge\; 1 .$$
#
# The gradient is positive for every value of $w$ (the losses are never negative): there is
# no stationary point, gradient descent lowers $w$ at every step, $L \to -\infty$ and the
# weights $\tfrac12 e^{w}$ of both tasks go to 0: the network stops learning. (The released
# code never passes $w$ to its optimiser, so it trains with fixed weights 0.5 and 0.5.) The
# homoscedastic-uncertainty form it resembles flips the sign of the exponent:
#
# $$L = \sum_k \tfrac12 e^{-s_k} L_k + \tfrac12 s_k,\qquad
#   \frac{\partial L}{\partial s_k} = \tfrac12\bigl(1 - e^{-s_k} L_k\bigr) = 0
#   \iff s_k = \log L_k,$$
#
# a minimum (second derivative $\tfrac12 e^{-s}L > 0$): a task with a large loss gets a small
# weight $\tfrac12 e^{-s} = 1/(2L)$. First autograd against both formulas, then two short
# training runs, identical except for the weighting (the weights at 100x the network's
# learning rate so that 40 steps show where each goes).

# %%
for w in (-3.0, 0.0, 2.0):
    for loss in (0.0, 0.3, 5.0):
        weights = torch.full((2,), w, requires_grad=True)
        agman.weighted_total([torch.tensor(loss)] * 2, weights, "eq9").backward()
        assert torch.allclose(weights.grad, torch.tensor(0.5 * math.exp(w) * loss + 1.0)), (w, loss)
        weights = torch.full((2,), w, requires_grad=True)
        agman.weighted_total([torch.tensor(loss)] * 2, weights, "uncertainty").backward()
        assert torch.allclose(weights.grad, torch.tensor(0.5 * (1 - math.exp(-w) * loss))), (w, loss)
print("autograd == the analytic gradients of eq. 9 and of the uncertainty form")

demo_settings = dict(epochs=1, steps_per_epoch=40, batch_size=32, validate=False, checkpoint_every=0)
traces = {}
with tempfile.TemporaryDirectory() as tmp:
    for rule in ("eq9", "uncertainty"):
        torch.manual_seed(cfg.seed)
        demo = build_model("agman", meta, cfg, weighting=rule, weight_lr=100.0)
        steps = []
        t0 = time.perf_counter()
        train.fit(demo, data, cfg, out_dir=Path(tmp) / rule, verbose=False,
                  on_step=lambda step, logs: steps.append(logs), **demo_settings)
        traces[rule] = steps
        print(f"{rule:<12} {len(steps)} steps in {time.perf_counter() - t0:.0f} s: "
              f"weights (c, t) {steps[0]['weight_c']:+.2f}, {steps[0]['weight_t']:+.2f} -> "
              f"{steps[-1]['weight_c']:+.2f}, {steps[-1]['weight_t']:+.2f}; total loss {steps[-1]['loss']:+.3f}")


def plot_loss_weights(traces: dict) -> plt.Figure:
    """Left: the learned weights per step; right: the weight each task gets."""
    fig, (ax_w, ax_k) = plt.subplots(1, 2, figsize=(10, 3.4))
    for rule, steps in traces.items():
        sign = 1.0 if rule == "eq9" else -1.0
        for key, style in (("weight_c", "-"), ("weight_t", "--")):
            values = [s[key] for s in steps]
            task = "classification" if key == "weight_c" else "triplet"
            ax_w.plot(values, style, label=f"{rule}: {'w' if rule == 'eq9' else 's'} ({task})")
            ax_k.plot([0.5 * math.exp(sign * v) for v in values], style, label=f"{rule} ({task})")
    ax_w.set(xlabel="step", ylabel="learned parameter", title="w (eq. 9) and s (uncertainty)")
    ax_k.set(xlabel="step", ylabel="task weight", yscale="log",
             title="0.5 e^{w} (eq. 9) and 0.5 e^{-s} (uncertainty)")
    for ax in (ax_w, ax_k):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


viz.save(plot_loss_weights(traces), "08_loss_weights")
eq9 = traces["eq9"]
for key in ("weight_c", "weight_t"):  # eq. 9 diverges: w falls at every single step
    values = [s[key] for s in eq9]
    assert all(b < a for a, b in zip(values, values[1:])), key
    assert 0.5 * math.exp(values[-1]) < 0.1 * 0.5, key  # the task weight lost over 90 %
unc = traces["uncertainty"]
for key, loss_key in (("weight_c", "classification"), ("weight_t", "triplet")):
    target = math.log(sum(s[loss_key] for s in unc[-10:]) / 10)  # the stationary point log L
    print(f"uncertainty {key}: s = {unc[-1][key]:+.2f}, log(mean {loss_key} loss, last 10 steps) = {target:+.2f}")
    assert abs(unc[-1][key] - target) < 1.0, key

# %% [markdown]
# Eq. 9's weights fall at every step and keep falling; its total loss goes negative because
# of the $+w$ terms, not because the model got better. The uncertainty form's $s_k$ settle
# near $\log L_k$ (asserted within 1.0 above). The runs below use the uncertainty form with
# the weights at 10x the network's learning rate (the paper gives none), and one AG-MAN run
# with fixed equal weights (0.5, 0.5: what the release trains) to measure what the learned
# weighting buys.
#
# ## 5. AG-MAN, ASENet_V2 and the ablations, on one budget
#
# | label | multi-level | classification | AGA parts | paper (Table) |
# |---|---|---|---|---|
# | ASENet_V2 (`asen_v2`) | - | - | ASEN's ASA (v2) + ACA | 9 |
# | AGA only | - | - | ASA, SA, ACA, CA | 5, 9 |
# | AGA + multi-level | yes | - | all | 5 |
# | AGA + classification | - | yes | all | 5 |
# | AG-MAN | yes | yes | all | 5, 7 |
# | w/o ASA / SA / ACA / CA | yes | yes | one part off | 7 |
#
# Every run: the same FashionSynth data, seed and training settings
# (`agman.run_settings`; quick: 2 epochs x 40 in-batch steps of 32 images, about a seventh of
# the images of the profile's default run, and no validation pass (it cost more than the
# training); the result is the last weights; full: the paper's setting). Every number below
# is read from the run; section 7 adds the committed three-seed run `results/08_agman_seeds.*`
# (calibrated data, pretrained start), which also holds the one-part-off runs of Tables 7-8.

# %%
# live: the main grid (Tables 5-6, ASENet_V2, equal weights); Tables 7-8's one-part-off runs
# ("aga") come from the multi-seed script, to keep this notebook within its budget
specs = agman.ablation_runs("main", cfg)
print(train.default_settings(cfg, **{k: v for k, v in specs["AG-MAN"].items() if k != "model_name"}))
runs, t_start = {}, time.perf_counter()
for label, spec in specs.items():
    spec = dict(spec)
    runs[label] = train.train_or_load(spec.pop("model_name"), data, cfg, verbose=False, **spec)
    r = runs[label]
    print(f"{label:<24} {'loaded' if r.reused else 'trained'}: final training loss {r.history[-1]['loss']:.4f}, "
          f"{sum(h['train_seconds'] for h in r.history):5.0f} s of training, {r.images_per_second:4.0f} img/s")
print(f"all runs: {time.perf_counter() - t_start:.0f} s in this session")

# %% [markdown]
# ## 6. Test MAP per attribute, beside the paper
#
# Ours: FashionSynth's test split, FashionAI protocol (notebook 02). The paper's column is
# its FashionAI overall MAP (ResNet-50, ImageNet weights, real photographs): compare the
# orderings, not the values.

# %%
random_test = evaluate.random_map(data, "test")
table = {"random": {**{names[a]: v for a, v in random_test["per_attribute"].items()},
                    "overall": random_test["overall"]}}
for label, run in runs.items():
    result = evaluate.retrieval_map(run.model, data, "test")
    table[label] = {**result["per_attribute_name"], "overall": result["overall"]}
short = [n.replace("_design", "").replace("_length", "_len") for n in names]
print(f"{'FashionSynth (ours)':<24}" + "".join(f"{s[:9]:>10}" for s in short) + f"{'overall':>9}{'paper':>8}")
for label, row in table.items():
    paper = agman.PAPER_FASHIONAI.get(label)
    print(f"{label:<24}" + "".join(f"{row[n]:>10.1f}" for n in names) + f"{row['overall']:>9.1f}"
          + (f"{paper:>8.2f}" if paper is not None else f"{'-':>8}"))
fig = viz_training.map_per_attribute({k: v for k, v in table.items() if k in ("ASENet_V2", "AGA only", "AG-MAN")},
                                     table["random"], title="FashionSynth test MAP (one seed)")
viz.save(fig, "08_map_per_attribute")
fig = viz_training.map_per_attribute({k: {"overall": v["overall"]} for k, v in table.items() if k != "random"},
                                     {"overall": table["random"]["overall"]}, title="overall test MAP (one seed)")
viz.save(fig, "08_overall_map")
for label in runs:  # every run learns something in this budget
    assert table[label]["overall"] > table["random"]["overall"] + 1, label

# %% [markdown]
# ## 7. The paper's claims: live seed and three seeds
#
# Each claim is an ordering of overall MAP (`agman.CLAIMS`). One seed can flip an ordering
# whose gap is smaller than the seed-to-seed spread, so the verdict comes from the committed
# multi-seed run (`python scripts/run_agman_seeds.py`, same runs and settings, seeds 0-2; it
# shares seed 0's checkpoints with this notebook) when it holds the claim.

# %%
results_file = (config.repo_root() or Path.cwd()) / "results" / "08_agman_seeds.json"
seeds_report = json.loads(results_file.read_text()) if results_file.is_file() else None
if seeds_report is not None and seeds_report.get("profile") != cfg.profile:
    print(f"{results_file.name} holds the {seeds_report.get('profile')} profile, not {cfg.profile}: not used")
    seeds_report = None
same_data = json.loads(json.dumps(data.config, default=str))
if seeds_report is not None and seeds_report.get("data_config") != same_data:
    print(f"{results_file.name} was measured on other FashionSynth data (another generator version or preset): "
          f"not used; re-run `python scripts/run_agman_seeds.py`")
    seeds_report = None
multi = {}
if seeds_report is not None:
    multi = {c["claim"]: c for c in seeds_report["summary"]["orderings"]}
    print(f"multi-seed run: seeds {seeds_report['seeds']}, device {seeds_report['env']['device']}, "
          f"commit {seeds_report['env']['git_commit']}, runs {list(seeds_report['summary']['models'])}")
print(f"{'claim':<44}{'paper':>7}{'live':>7}{'3 seeds (mean ± sd)':>22}{'holds':>7}   verdict")
for better, worse in agman.CLAIMS:
    key = f"{better} > {worse}"
    if better not in table or worse not in table:
        m = multi.get(key)
        print(f"{key:<44}{'':>7}{'-':>7}" + (f"{m['difference']['mean']:+.1f} ± {m['difference']['std']:.1f}".rjust(22)
              + f"{m['seeds_holding']}/{m['seeds']}".rjust(7) if m else f"{'-':>22}{'-':>7}")
              + "   not run live (scripts/run_agman_seeds.py --group aga)")
        continue
    live = table[better]["overall"] - table[worse]["overall"]
    p_hi, p_lo = agman.PAPER_FASHIONAI.get(better), agman.PAPER_FASHIONAI.get(worse)
    paper_gap = f"{p_hi - p_lo:+7.2f}" if p_hi is not None and p_lo is not None else f"{'-':>7}"
    m = multi.get(key)
    spread = f"{m['difference']['mean']:+.1f} ± {m['difference']['std']:.1f}" if m else "-"
    holds = f"{m['seeds_holding']}/{m['seeds']}" if m else "-"
    print(f"{key:<44}{paper_gap}{live:>+7.1f}{spread:>22}{holds:>7}   {agman.claim_verdict(m, live)}")

# %% [markdown]
# **How to read it.** "reproduced" needs every seed to agree; a gap smaller than its spread is
# noise, whichever sign the live seed shows. The absolute numbers are not the paper's (64 px
# synthetic images, a small CNN pretrained on other FashionSynth images in place of ImageNet
# weights, a few thousand training images seen per run), and
# the quick budget is short: the verdicts say what this budget shows, not what AG-MAN can do
# with 50 epochs of ResNet-50. The multi-seed markdown (`results/08_agman_seeds.md`) holds
# the per-attribute means and spreads.

# %% [markdown]
# ## 8. Where AG-MAN and ASENet_V2 look
#
# The localisation measures of notebooks 03-04 against FashionSynth's ground-truth regions,
# over at most 100 test images per attribute where it applies: **pointing game** (the map's
# maximum inside the region) and **mass inside** (share of the attention inside the region;
# a uniform map scores the region's `area`). AG-MAN's map is ASA's $\alpha$ (before SA),
# ASENet_V2's its own ASA; both on the feature grid, upsampled to the image.

# %%
H = test.image_size
loc = {}
for label in ("ASENet_V2", "AG-MAN"):
    net = runs[label].model
    dev = next(net.parameters()).device
    rows = []
    for a in range(A):
        idx = torch.nonzero(test.labels[:, a] >= 0).flatten()[:100]
        with torch.no_grad():
            low = net.attention_maps(test.batch(idx).to(dev), a).cpu()
        s = cam.localisation_scores(cam.upsample_maps(low, H), test.region_masks(idx, a), test.boxes[idx, a])
        rows.append((float(s["pointing"].nanmean()), float(s["mass"].nanmean()), float(s["area"].mean())))
    loc[label] = rows
print(f"{'attribute':<16}{'area':>7}" + "".join(f"{lab + ' ' + k:>22}" for lab in loc for k in ("point", "mass")))
for a, name in enumerate(names):
    print(f"{name:<16}{loc['AG-MAN'][a][2]:>7.2f}"
          + "".join(f"{loc[lab][a][0]:>22.2f}{loc[lab][a][1]:>22.2f}" for lab in loc))
fig = viz_maps.metric_bars({lab: torch.tensor([r[1] for r in rows]) for lab, rows in loc.items()}
                           | {"uniform (area)": torch.tensor([r[2] for r in loc["AG-MAN"]])},
                           names, "attention mass inside the region")
viz.save(fig, "08_attention_mass")

# %% [markdown]
# `mass` above `area` means the attention moved towards the attribute's region; on
# attributes whose MAP stays near random (section 6) the map has no reason to move. It does
# not prove that the map looks at each image: on FashionSynth's alike-framed tops a fixed
# map of where each detail usually is puts 3.8-8.1x the uniform share inside the detail
# regions (notebook 04, which also measures whether ASEN's map follows the region).

# %% [markdown]
# ## 9. Triplet relation (the paper's Table 4)
#
# Table 4 is UT Zappos50k's triplet-relation task: given an anchor, two images and a
# condition, is the anchor closer to the one that shares its value? `make-data` writes
# FashionSynth's version in the CSN list format (`triplet_split/`, one condition per
# attribute, read by `fgfs_lib.data.zappos.load_zappos`); here 5,000 rows are drawn from the
# test labels (`synth.relation_triplets`, seed 0). A row is right when the anchor is strictly
# closer to the matching image (cosine; Euclidean for CSN); a tie is wrong. Chance is 50 %: an
# embedding that knows nothing of the condition's value picks the right image half the time
# (ties only lower that). CSN is notebook 05's run (learned masks), reused from the cache. The
# "start" column is each model before training (the pretrained backbone under random heads).
# The paper's values are on real shoe photographs: compare orderings, not values.

# %%
from fgfs_lib.data import synth

PAPER_TR = {"CSN": 93.14, "ASENet_V2": 92.54, "AG-MAN": 93.32}  # AG-MAN's Table 4, UT Zappos50k
tr_runs = {"CSN": train.train_or_load("csn", data, cfg, model_options={"mask": "learned"}, verbose=False),
           "ASENet_V2": runs["ASENet_V2"], "AG-MAN": runs["AG-MAN"]}
tr_rows = synth.relation_triplets(test.labels, 5000, seed=0)
tr_margin = 3 * 100 * (0.25 / len(tr_rows)) ** 0.5  # 3 standard errors of a fair coin over these rows
print(f"FashionSynth test split: {len(tr_rows)} rows, {len(torch.unique(tr_rows[:, 3]))} conditions; chance 50 %")
print(f"{'method':<10} {'start':>7} {'trained':>8} {'paper':>7}")
tr_acc = {}
for label, run in tr_runs.items():
    torch.manual_seed(cfg.seed)  # the untrained start, as the run built it (pretrained backbone included)
    start = build_model(run.run_config["model"]["name"], data.meta, cfg, **run.run_config["model"]["options"])
    tr_acc[label] = (evaluate.triplet_relation(start.to(utils.device()).eval(), test, tr_rows),
                     evaluate.triplet_relation(run.model, test, tr_rows))
    print(f"{label:<10} {tr_acc[label][0]:7.2f} {tr_acc[label][1]:8.2f} {PAPER_TR[label]:7.2f}")
for label, (start_acc, acc) in tr_acc.items():
    assert acc > 50 + tr_margin, f"{label}: {acc:.2f} % is not above chance (50 % + {tr_margin:.1f})"
    assert acc > start_acc, f"{label}: training did not improve TR ({start_acc:.2f} -> {acc:.2f} %)"

# %% [markdown]
# ## 10. What we found
#
# Every number here is printed above or in the committed files it names.
#
# - **AG-MAN does not beat ASENet_V2 here; the paper's main claim is NOT reproduced.** Over
#   three seeds at this notebook's budget (2 x 40 steps of 32 images) AG-MAN reaches
#   56.4 ± 0.4 test MAP against 79.6 ± 0.7 for ASENet_V2 (`results/08_agman_seeds.md`); AGA
#   alone 60.4 ± 2.8. Each of the paper's "adds" is negative or noise: multi-level features
#   -5.1 ± 2.0 and the classification branch -4.6 ± 3.5 against AGA only (0/3 seeds each),
#   SA, ACA and CA within one seed-to-seed spread of zero, and the uncertainty weighting equal
#   to fixed weights (+0.0 ± 0.8). Only ASA matters, and a lot: without it 28.8 ± 1.5
#   (+27.5, 3/3 seeds), as in the paper (its largest ablation gap, 12 points).
# - **Most of the gap is budget, not all of it.** ASENet_V2 embeds the pretrained backbone's
#   own pooled features (no projection), so its colour and pattern are right from the first
#   step; AGA learns a value convolution, a channel mix and a projection from random weights
#   first. The clearest sign is colour (three-seed means): 96.0 for ASENet_V2, 24.1-46.1 for
#   every AGA variant with ASA and 15.3 without it, at this budget. With 7.5x the images
#   (notebook 06's budget; `python scripts/run_agman_seeds.py --budget long --group main
#   --labels ASENet_V2 "AGA only" AG-MAN --out results/08_agman_long.json`, three seeds) the
#   gap shrinks but keeps its sign: ASENet_V2 89.5 ± 0.6, AGA only 87.9 ± 0.6 (-1.6 ± 0.7,
#   0/3 seeds), AG-MAN 82.6 ± 0.3 (-6.9 ± 0.8, 0/3). Multi-level features and the
#   classification branch together still cost 5.3 points.
# - **An initialisation the paper does not give decides SA.** From PyTorch's default
#   initialisation SA's sigmoid gate saturated at the positions ASA attends to, and "AGA only"
#   fell far below its present score (an earlier run of this notebook, not kept); starting SA's
#   convolution at zero (a constant gate of 0.5 that learns from there) gives the 57.9 above
#   (`fgfs_lib.models.agman.ChannelPoolSpatial`).
# - **Eq. 9 as printed diverges** (section 4 asserts it): its weights go to minus infinity.
#   The homoscedastic-uncertainty form is stable, but here it is no better than equal weights.
# - **Triplet relation (Table 4).** On FashionSynth's test rows ASENet_V2 leads (90.9 %),
#   then CSN (86.3) and AG-MAN (85.0); the paper has AG-MAN first (93.32) by 0.2-0.8 points.
#   Every model gains 18.9-20.5 points over its untrained start.
# - **Where they look.** AG-MAN's ASA puts less of its mass inside the ground-truth region
#   than ASENet_V2's on every attribute (details 0.23-0.37 against 0.34-0.44; section 8).
