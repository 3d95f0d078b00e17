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
# # 04 · Attribute-aware attention: where to look (ASA) and which channels matter (ACA)
#
# **Goals.**
# - Build ASEN's two attention modules from their equations, one tensor at a time with the
#   shapes printed, and check them against `fgfs_lib.models.attention`.
# - Meet both published forms of the spatial attention: ASEN's (AAAI 2020) 1x1-convolution
#   score and ASENet_V2's scaled dot-product, and see why one batched pass can serve every
#   attribute at once.
# - Train ASEN once (notebook 06 reuses the run) and *measure* where its spatial attention
#   looks, against FashionSynth's ground-truth regions, with notebook 03's localisation
#   metrics; look at what the channel gates select per attribute.
#
# **Papers and equations.** ASEN: Ma, Dong, Long, Zhang, He, Xue, Ji, *Fine-Grained Fashion
# Similarity Learning by Attribute-Specific Embedding Network*, AAAI 2020: attribute-aware
# spatial attention (ASA, eqs. 1-4: $P=\tanh(\mathrm{Conv}(V))$, $q=\tanh(W_q a)$, score,
# softmax over positions, weighted sum) and attribute-aware channel attention (ACA, eqs.
# 5-6: $\beta=\sigma(W_2\,\delta(W_1[I_s, \delta(W_c a)]))$, $I_c = I_s\odot\beta$). ASENet_V2's
# scaled dot-product score (Dong et al., TIP 2021). Equation numbers follow the order of
# the paper's method section (the seed folder holds the poster only).
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 110 s from scratch (110.1 s in a fresh-clone `./course run` at c845b1c, `benchmarks/RESULTS.md`), of which training ASEN (4 epochs of about 20 s, each followed by validation) takes 85-95 s; about 25-30 s with the checkpoint | seed 0: ASEN test MAP 87.2 (random 16.9); every attribute learned (coat length 59.9 to colour 98.6; details 66.6-97.7); ASA's mass inside the region 0.26 vs 0.13 uniform over all attributes, 2.5-2.8x uniform on the details, where the tanh bound caps it at 3.8-4.3x and a fixed position prior reaches 3.8-8.1x; ASA's centre of mass follows the region's (correlation 0.70-0.95 on the details) |
# | full | 1 GPU | not yet measured (ResNet-50 layer3, 14x14 maps, 50 epochs) | the paper shows maps only; no localisation numbers exist for real data |

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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fgfs_lib import cam, evaluate, metrics, train
from fgfs_lib.models import asen as asen_module
from fgfs_lib.models.attention import AttributeChannelAttention, AttributeSpatialAttention
from fgfs_lib.models.registry import build_model
from fgfs_lib.viz import embeddings as viz_embeddings
from fgfs_lib.viz import maps as viz_maps

data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
meta, test = data.meta, data.test
names = meta.attribute_names
A = meta.num_attributes
print(f"{A} attributes: {', '.join(names)}")

# %% [markdown]
# ## 1. The problem attention solves
#
# Notebook 05's baselines pool the backbone's feature map $V\in\mathbb{R}^{c\times h\times w}$
# into one vector with the *same* weights everywhere (global average pooling), whatever the
# question. A neckline covers a few percent of the image: averaged with everything else, its
# evidence is diluted by the background, the colour and the rest of the garment. ASEN makes
# the pooling depend on the attribute $a$ twice:
#
# - **ASA** (spatial): a softmax over the $h\cdot w$ positions, computed from the features
#   *and* the attribute, says where to pool: near the neck for "neckline", along the arms for
#   "sleeve length";
# - **ACA** (channel): a sigmoid gate over the $c$ channels of the pooled vector, again from
#   the features and the attribute, keeps the channels that describe this attribute (the
#   same neck region holds the collar, the lapel and the neckline).
#
# We start from the feature map of an (untrained) ASEN backbone for four test images, each
# asked about a different attribute.

# %%
torch.manual_seed(cfg.seed)
fresh = build_model("asen", meta, cfg).eval()
images = test.batch(torch.arange(4))
attributes = torch.tensor([names.index(n) for n in ("neckline_design", "sleeve_length", "colour", "pant_length")])
with torch.no_grad():
    V = fresh.features(images)
B, C, h, w = V.shape
print("images", tuple(images.shape), "-> V", tuple(V.shape), f"(c={C} channels on an {h}x{w} grid)")

# %% [markdown]
# ## 2. ASA, step by step
#
# **Eq. (1)**, a shared $d$-dimensional space for the image and the attribute: a 1x1
# convolution maps every position's $c$-vector to $d$ dimensions, an embedding (a one-hot
# $a$ times a matrix $W_q$) maps the attribute there too; both through $\tanh$:
#
# $$P = \tanh(\mathrm{Conv}_{1\times1}(V))\in\mathbb{R}^{d\times h\times w},\qquad
#   q = \tanh(W_q a)\in\mathbb{R}^{d}.$$

# %%
d = 16
torch.manual_seed(1)
conv_d = nn.Conv2d(C, d, kernel_size=1)        # Conv_1x1 of eq. (1)
W_q = nn.Embedding(A, d)                         # W_q a for a one-hot a = a row of W_q
conv_score = nn.Conv2d(d, 1, kernel_size=1)      # the v1 score of eq. (2)
with torch.no_grad():
    P = torch.tanh(conv_d(V))
    q = torch.tanh(W_q(attributes))
print("P", tuple(P.shape), " q", tuple(q.shape))

# %% [markdown]
# **Eq. (2)**, one score per position. ASEN (v1) multiplies $P$ with $q$ broadcast over the
# grid and scores the product with another 1x1 convolution; ASENet_V2 takes the scaled dot
# product of each position with $q$, as in transformer attention:
#
# $$s^{v1} = \mathrm{Conv}_{1\times1}(P\odot q)\in\mathbb{R}^{h\times w},\qquad
#   s^{v2}_j = \frac{\langle P_j, q\rangle}{\sqrt d}.$$
#
# **Eq. (3)**, a softmax over the $h\cdot w$ positions (not over channels): the weights of
# each image sum to one. **Eq. (4)**, the attended feature is the weighted sum of the
# *backbone's* features (not of $P$): $I_s = \sum_j \alpha_j V_j \in \mathbb{R}^c$.

# %%
with torch.no_grad():
    s_v1 = conv_score(P * q[:, :, None, None]).squeeze(1)                # eq. (2), v1
    s_v2 = (P * q[:, :, None, None]).sum(1) / math.sqrt(d)               # eq. (2), v2
    alpha_v1 = torch.softmax(s_v1.flatten(1), dim=1).view(B, h, w)       # eq. (3)
    alpha_v2 = torch.softmax(s_v2.flatten(1), dim=1).view(B, h, w)
    I_s = (V * alpha_v1[:, None]).sum(dim=(2, 3))                         # eq. (4)
print("s", tuple(s_v1.shape), " alpha", tuple(alpha_v1.shape), " I_s", tuple(I_s.shape))
print("alpha sums per image:", alpha_v1.sum(dim=(1, 2)).tolist())
assert torch.allclose(alpha_v1.sum(dim=(1, 2)), torch.ones(B))

# %% [markdown]
# Now the library's module with the same weights copied in: it must give the same attention
# and the same pooled feature, in both forms.

# %%
asa_v1 = AttributeSpatialAttention(C, A, hidden=d, form="v1", bounded=False)  # the paper's eq. (2)
asa_v2 = AttributeSpatialAttention(C, A, hidden=d, form="v2")
asa_released = AttributeSpatialAttention(C, A, hidden=d, form="v1")  # default: tanh on the score
for module in (asa_v1, asa_v2, asa_released):
    module.feature_proj.load_state_dict(conv_d.state_dict())
    module.attribute_embedding.load_state_dict(W_q.state_dict())
asa_v1.score.load_state_dict(conv_score.state_dict())
asa_released.score.load_state_dict(conv_score.state_dict())
with torch.no_grad():
    pooled_lib, alpha_lib = asa_v1(V, attributes)
    pooled_v2, alpha_lib_v2 = asa_v2(V, attributes)
    alpha_released = torch.softmax(torch.tanh(s_v1).flatten(1), dim=1).view(B, h, w)  # tanh, then eq. (3)
    _, alpha_lib_released = asa_released(V, attributes)
assert torch.allclose(alpha_lib, alpha_v1, atol=1e-6) and torch.allclose(pooled_lib, I_s, atol=1e-5)
assert torch.allclose(alpha_lib_v2, alpha_v2, atol=1e-6)
assert torch.allclose(pooled_v2, (V * alpha_v2[:, None]).sum(dim=(2, 3)), atol=1e-5)
assert torch.allclose(alpha_lib_released, alpha_released, atol=1e-6)
print("library ASA (v1, v1 as released, v2) == inline equations")

# %% [markdown]
# Three details that fall out of the equations:
#
# - **The authors' released ASENet bounds the score.** Their code applies $\tanh$ to the v1
#   score before the softmax (the library's default, `bounded=True`; the cell above checks
#   it). Every score then lies in $[-1, 1]$, so the most attended position can weigh at most
#   $e^2\approx7.4$ times the least attended one: a cap on how much of its mass the map can
#   put on a small region.
# - **Without the bound, the v1 score's bias does nothing.** A softmax is unchanged when the
#   same constant is added to every score, so the bias of the score convolution gets no
#   gradient (the unit test `test_gradients_reach_every_parameter` checks that it is exactly
#   zero); under $\tanh$ it moves the scores along the curve and does count.
# - **Every attribute in one pass.** The score is linear in $q$:
#   $\mathrm{Conv}_{1\times1}(P\odot q) = \langle P_j,\, w\odot q\rangle + b$ with $w$ the score
#   convolution's weights. $P$ does not depend on the attribute, so the scores of all $A$
#   attributes are one `einsum` of $P$ [B, d, h, w] with the $A$ vectors $w\odot q_a$. That is
#   what makes *in-batch* triplets cheap (notebook 06): one backbone pass, then every image
#   under every attribute.

# %%
with torch.no_grad():
    s_shifted = conv_score(P * q[:, :, None, None]).squeeze(1) + 123.0
    assert torch.allclose(torch.softmax(s_shifted.flatten(1), 1), alpha_v1.flatten(1), atol=1e-6)
    q_all = torch.tanh(W_q.weight)                                       # [A, d]
    s_all = torch.einsum("bdhw,ad->abhw", P, q_all * conv_score.weight.view(1, d)) + conv_score.bias
    _, alpha_all = asa_v1.forward_all(V)                                 # [A, B, h, w]
assert torch.allclose(torch.softmax(s_all.flatten(2), 2).view(A, B, h, w), alpha_all, atol=1e-6)
print("all attributes at once:", tuple(alpha_all.shape), "(attribute, image, h, w)")

# %% [markdown]
# ## 3. ACA, step by step
#
# **Eq. (5)**: the attribute gets a second embedding $W_c a$ (through a ReLU), concatenated
# with the attended feature $I_s$; two fully connected layers with a ReLU between them and a
# sigmoid at the end give one gate per channel, $\beta\in(0,1)^c$. **Eq. (6)**: the gate
# multiplies the feature, $I_c = I_s\odot\beta$. ASEN then projects $I_c$ with one more
# linear layer and L2-normalises it (eq. 7), so similarities are cosines.

# %%
torch.manual_seed(2)
d_c, hidden = 12, 20
W_c = nn.Embedding(A, d_c)                                  # W_c of eq. (5)
fc1, fc2 = nn.Linear(C + d_c, hidden), nn.Linear(hidden, C)  # W_1, W_2 of eq. (5)
with torch.no_grad():
    joint = torch.cat([I_s, torch.relu(W_c(attributes))], dim=1)
    beta = torch.sigmoid(fc2(torch.relu(fc1(joint))))           # eq. (5)
    I_c = I_s * beta                                            # eq. (6)
print("[I_s, ReLU(W_c a)]", tuple(joint.shape), "-> beta", tuple(beta.shape), "-> I_c", tuple(I_c.shape))
assert ((beta > 0) & (beta < 1)).all()

aca = AttributeChannelAttention(C, A, attribute_dim=d_c, hidden=hidden)
aca.attribute_embedding.load_state_dict(W_c.state_dict())
aca.fc1.load_state_dict(fc1.state_dict())
aca.fc2.load_state_dict(fc2.state_dict())
with torch.no_grad():
    gated_lib, beta_lib = aca(I_s, attributes)
assert torch.allclose(beta_lib, beta, atol=1e-6) and torch.allclose(gated_lib, I_c, atol=1e-6)
print("library ACA == inline equations")

# %% [markdown]
# The whole head, as `fgfs_lib.models.asen.ASEN` runs it, for the untrained model: ASA, ACA,
# projection and normalisation by hand, against `model.embed`; and the batched
# `embed_all_attributes` against one attribute at a time.

# %%
with torch.no_grad():
    pooled, _ = fresh.spatial(V, attributes)
    gated, _ = fresh.channel(pooled, attributes)
    mine = F.normalize(fresh.projection(gated), dim=1)              # eq. (7)
    assert torch.allclose(mine, fresh.embed(images, attributes), atol=1e-5)
    every = fresh.embed_all_attributes(V)                            # [A, B, D]
    for a in range(A):
        assert torch.allclose(every[a], fresh.embed_from_features(V, torch.full((B,), a)), atol=1e-5)
print("embedding", tuple(mine.shape), "unit norm:", torch.allclose(mine.norm(dim=1), torch.ones(B)))

# %% [markdown]
# ## 4. Train ASEN once
#
# The same run as notebook 06 (`fgfs_lib.models.asen.comparison_runs(cfg)["ASEN"]`: the
# profile's default training settings, exactly those of notebook 05's baselines), so
# `train_or_load` trains it here the first time and every later notebook loads it.
# Quick profile: in-batch triplets (batches of 64 images, every valid triplet of every
# attribute in the batch, the loss averaged per attribute), Adam, a few epochs; notebook 06
# explains the sampling and compares it with the papers' 3-image triplets.

# %%
spec = dict(asen_module.comparison_runs(cfg)["ASEN"])
run = train.train_or_load(spec.pop("model_name"), data, cfg, **spec)
model = run.model.eval()
dev = next(model.parameters()).device
test_map = evaluate.retrieval_map(model, data, "test")
random_map = evaluate.random_map(data, "test")
print(f"ASEN test MAP {test_map['overall']:.1f} (random {random_map['overall']:.1f})")
for a, name in enumerate(names):
    print(f"  {name:<16} {test_map['per_attribute'][a]:5.1f}   random {random_map['per_attribute'][a]:5.1f}")
assert test_map["overall"] > random_map["overall"] + 5

# %% [markdown]
# ## 5. Where does ASA look?
#
# One test image per garment category, one column per attribute: the attention map
# $\alpha$ of that attribute (upsampled from the feature grid), the ground-truth region's
# box dashed. Faded panels: the attribute does not apply to that garment (ASEN still
# computes a map, it just has no meaning).

# %%
H = test.image_size
show = torch.tensor([int(torch.nonzero(test.categories == k)[0]) for k in range(len(meta.category_names))])
with torch.no_grad():
    maps_show = model.attention_maps_all(test.batch(show).to(dev)).cpu()     # [A, N, h, w]
maps_show = cam.upsample_maps(maps_show.transpose(0, 1), H)                  # [N, A, H, W]
fig = viz_maps.attribute_overlays(test.denormalize(test.batch(show)), maps_show, names, gt_boxes=test.boxes[show])
viz.save(fig, "04_asa_maps")
print("rows:", [meta.category_names[int(test.categories[i])] for i in show])

# %% [markdown]
# ## 6. Measured: how well does ASA localise?
#
# As in notebook 03, over the test images where each attribute applies (at most 400 per
# attribute): **pointing game** (is the map's maximum inside the region?), **mass inside**
# (share of the attention inside the region; a uniform map scores the region's `area`), and
# **box IoU** of ASEN++'s box (threshold 0.1 on the min-max normalised map, square) with the
# ground-truth box. Baselines that look at no image: a centred Gaussian for pointing and
# mass, a centred box of half the frame for IoU, and the **position prior**: for each
# attribute, the share of training images whose region covers each pixel (where the
# attribute usually is; `cam.position_prior`). Only a map that beats the prior shows more
# than a learned position. **corr y / corr x**: the correlation, over the test images, of
# the map's centre of mass with the region's (`cam.centroid_correlation`); a fixed map such
# as the prior has none, so this is the column that says the map follows the garment. The
# last column is the test MAP: attention can only be expected to find an attribute the model
# has learned.

# %%
rows = []
for a, name in enumerate(names):
    idx = torch.nonzero(test.labels[:, a] >= 0).flatten()[:400]
    with torch.no_grad():
        low = torch.cat([model.attention_maps(test.batch(chunk).to(dev), a).cpu() for chunk in idx.split(200)])
    masks, gt = test.region_masks(idx, a), test.boxes[idx, a]
    maps = cam.upsample_maps(low, H)
    s = cam.localisation_scores(maps, masks, gt)
    g = cam.localisation_scores(cam.centre_gaussian_maps(len(idx), H), masks, gt)
    train_masks = data.train.region_masks(torch.nonzero(data.train.labels[:, a] >= 0).flatten()[:4000], a)
    prior = train_masks.float().mean(0)  # where the region usually is: the share of training regions per pixel
    assert torch.equal(prior, cam.position_prior(train_masks))
    prior_mass = metrics.mass_inside(prior.expand(len(idx), H, H), masks)  # a fixed map: no boxes to score
    corr_y, corr_x = cam.centroid_correlation(maps, masks)
    centre_iou = metrics.box_iou(cam.centre_boxes(len(idx), H), gt).float()
    rows.append([len(idx), s["area"].mean(), s["pointing"].nanmean(), g["pointing"].nanmean(), s["mass"].nanmean(),
                 g["mass"].nanmean(), prior_mass.nanmean(), corr_y, corr_x, s["asen_iou"].nanmean(),
                 centre_iou.nanmean(), test_map["per_attribute"][a]])
table = np.array([[float(v) for v in r] for r in rows])
header = ["n", "area", "point", "pt:centre", "mass", "m:centre", "m:prior", "corr y", "corr x", "IoU", "IoU:centre", "MAP"]
col = {k: i for i, k in enumerate(header)}
print(f"{'attribute':<16}" + "".join(f"{k:>11}" for k in header))
for name, vals in zip(names, table):
    print(f"{name:<16}{int(vals[0]):>11}" + "".join(f"{v:>11.2f}" for v in vals[1:]))

# %%
fig = viz_maps.metric_bars({"ASA": table[:, col["point"]], "centre Gaussian": table[:, col["pt:centre"]]},
                           names, "pointing game", title="ASA's maximum inside the attribute's region")
viz.save(fig, "04_asa_pointing")
fig = viz_maps.metric_bars({"ASA": table[:, col["mass"]], "uniform (area)": table[:, col["area"]],
                            "centre Gaussian": table[:, col["m:centre"]], "position prior": table[:, col["m:prior"]]},
                           names, "attention mass inside the region")
viz.save(fig, "04_asa_mass")

# %% [markdown]
# How to read it: `mass` against `area` is the gain over looking everywhere; `point`
# against `pt:centre` the gain over always pointing at the centre. The attributes the model
# has learned (MAP well above random) are where the attention has a reason to move; for the
# others the map is whatever the untrained head produces.

# %%
learned = table[:, col["MAP"]] > np.array([random_map["per_attribute"][a] for a in range(A)]) + 10
print("attributes learned (test MAP > random + 10):", [n for n, k in zip(names, learned) if k])
print(f"  mass inside: ASA {table[learned, col['mass']].mean():.2f} vs uniform {table[learned, col['area']].mean():.2f}"
      f" vs centre {table[learned, col['m:centre']].mean():.2f}")
print(f"  pointing: ASA {table[learned, col['point']].mean():.2f} vs centre {table[learned, col['pt:centre']].mean():.2f}")
print(f"  box IoU: ASA {table[learned, col['IoU']].mean():.2f} vs centre box {table[learned, col['IoU:centre']].mean():.2f}")
assert learned.any()
assert table[learned, col["mass"]].mean() > table[learned, col["area"]].mean()

# %% [markdown]
# ### The image, or only the position?
#
# FashionSynth frames every top alike (notebook 01), so a design detail sits in nearly the
# same place in every image, and a map that never looks at the image already knows a lot.
# Below, per design detail: ASA's mass inside the region as a multiple of the uniform share,
# the same for the position prior, and whether ASA's map follows the region from image to
# image. Then the committed command-line runs (`results/06_asen_cli_attention*.json`, three
# seeds of each score form: the released tanh-bounded one trained here, and the paper's
# unbounded eq. (2), `--option bounded=false`; written by `scripts/attention_mass.py`, this
# section's measure over every test image carrying the attribute).

# %%
details = [n for n in names if n.endswith("_design")]
print(f"{'design detail':<16}{'ASA / uniform':>14}{'prior / uniform':>16}{'corr y':>8}{'corr x':>8}")
for name in details:
    r = table[names.index(name)]
    print(f"{name:<16}{r[col['mass']] / r[col['area']]:>13.1f}x{r[col['m:prior']] / r[col['area']]:>15.1f}x"
          f"{r[col['corr y']]:>+8.2f}{r[col['corr x']]:>+8.2f}")
detail_rows = table[[names.index(n) for n in details]]
assert (detail_rows[:, col["m:prior"]] > 3 * detail_rows[:, col["area"]]).all()  # the prior alone passes "3x uniform"
assert (detail_rows[:, [col["corr y"], col["corr x"]]] > 0.5).all()  # ASA's map moves with the region

committed = {}
for form, suffix in (("released", ""), ("paper eq. 2", "_unbounded")):
    path = (config.repo_root() or Path.cwd()) / "results" / f"06_asen_cli_attention{suffix}.json"
    committed[form] = json.loads(path.read_text())["per_run"] if path.is_file() else None
if all(committed.values()) and cfg.quick:
    print("\ncommitted CLI runs, test split: mass / uniform, and centroid correlation (rows / columns)")
    first = next(iter(committed["released"].values()))
    print(f"{'':<30}" + "".join(f"{n:>18}" for n in details))
    print(f"{'position prior':<30}" + "".join(f"{first[n]['prior_ratio']:>17.1f}x" for n in details))
    for form, per_run in committed.items():
        for label, row in per_run.items():
            print(f"{form + ', ' + label[-6:]:<30}" + "".join(f"{row[n]['ratio']:>17.1f}x" for n in details))
            print(f"{'':<30}" + "".join(f"{row[n]['centroid_corr_row']:>+10.2f} / {row[n]['centroid_corr_col']:+.2f}"
                                        for n in details))
else:
    print("committed CLI attention runs not found (or another profile): `python scripts/run_cli_seeds.py` writes them")

# %% [markdown]
# ### How much mass *can* the released score put inside a region?
#
# The released ASENet bounds every score with $\tanh$ (section 2): a map can weigh one cell
# at most $e^2 \approx 7.4$ times another. For a region covering a share $f_j$ of each
# feature-grid cell $j$, the most mass a bounded map can put inside is reached with score
# $+1$ on the cells most covered by the region and $-1$ elsewhere (the mass is a ratio of
# sums linear in $e^{s_j}$, so each $s_j$ sits at a bound); for a region of whole cells, a
# share $r$ of the grid, it is $r e^2 / (r e^2 + 1 - r)$: 0.24 for $r = 0.04$. The
# unbounded score of the paper's eq. (2) has no cap: a large enough score gap puts any mass
# below 1 inside. Below, per attribute and on the feature grid, the cap of the bounded form
# beside the mass the trained (bounded) ASA puts there; the bounded model can never exceed
# its cap, which the cell checks.

# %%
def bounded_mass_cap(cell_share: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """[N, cells] share of each grid cell inside the region -> [N] the largest mass a map with
    scores in [-bound, bound] puts inside: +bound on the k most covered cells, the best k."""
    share = cell_share.sort(dim=1, descending=True).values
    k = torch.arange(1, share.shape[1] + 1)
    ratio = math.exp(2 * bound)  # the most and least attended cells' weights e^{+b} / e^{-b}
    top = share.cumsum(1)
    return ((ratio * top + share.sum(1, keepdim=True) - top) / (ratio * k + share.shape[1] - k)).max(1).values


whole = torch.zeros(1, 100)
whole[0, :4] = 1  # a region of whole cells, 4 % of the grid: the closed form above
assert abs(float(bounded_mass_cap(whole)) - 0.04 * math.e ** 2 / (0.04 * math.e ** 2 + 0.96)) < 1e-6
mass_rows = []
for a, name in enumerate(names):
    idx = torch.nonzero(test.labels[:, a] >= 0).flatten()[:400]
    with torch.no_grad():
        low = torch.cat([model.attention_maps(test.batch(chunk).to(dev), a).cpu() for chunk in idx.split(200)])
    share = F.adaptive_avg_pool2d(test.region_masks(idx, a).float()[:, None], low.shape[-2:]).flatten(1)
    mass = (low.flatten(1) * share).sum(1)  # ASA's mass inside the region, on the grid
    mass_rows.append([share.mean(), mass.mean(), bounded_mass_cap(share).mean()])
    assert (mass <= bounded_mass_cap(share) + 1e-5).all()  # the tanh bound holds for every image
mass_table = np.array([[float(v) for v in r] for r in mass_rows])
print(f"{'attribute':<16}{'area':>8}{'ASA mass':>10}{'cap tanh':>10}{'cap unbounded':>15}")
for name, (area, mass, cap) in zip(names, mass_table):
    print(f"{name:<16}{area:>8.3f}{mass:>10.3f}{cap:>10.3f}{1.0:>15.3f}")

# %% [markdown]
# ## 7. What does ACA select?
#
# The gate $\beta$ of every attribute, averaged over 300 test images: one row per
# attribute, one column per channel of $I_s$. If ACA only rescaled all channels alike, the
# rows would be flat and equal; the table below measures how different the rows are (cosine
# similarity of the centred mean gates) and how strongly each gate varies across channels.

# %%
idx = torch.arange(300)
with torch.no_grad():
    feats = model.features(test.batch(idx).to(dev))
    pooled_all, _ = model.spatial.forward_all(feats)                  # [A, N, c]
    _, gates = model.channel.forward_all(pooled_all)                  # [A, N, c]
mean_gates = gates.mean(1).cpu()
fig = viz_embeddings.mask_matrix(mean_gates, names, title="ACA: mean channel gate per attribute")
viz.save(fig, "04_aca_gates")
centred = F.normalize(mean_gates - mean_gates.mean(0, keepdim=True), dim=1)
similarity = centred @ centred.T
print(f"{'attribute':<16}{'gate std over channels':>24}{'most similar gate':>30}")
for a, name in enumerate(names):
    other = similarity[a].clone()
    other[a] = -2
    b = int(other.argmax())
    print(f"{name:<16}{float(mean_gates[a].std()):>24.3f}{names[b]:>22} ({float(other[b]):+.2f})")
assert ((gates > 0) & (gates < 1)).all()

# %% [markdown]
# ## 8. What we found
#
# Measured on the quick profile, seed 0 (numbers from the run that wrote this text; your
# rerun prints its own above):
#
# - **The equations are the library.** ASA (both forms) and ACA built inline from eqs. 1-6
#   match `fgfs_lib.models.attention` to float precision, and the batched all-attribute path
#   equals one attribute at a time.
# - **From the pretrained small CNN, ASEN learns every attribute** in the quick budget:
#   test MAP 87.2 against 16.9 for a random ranking, from coat length (59.9 vs 16.0) and
#   neckline (66.6 vs 15.1) to neck design (97.7) and colour (98.6); three seeds of the CLI
#   run: `results/06_asen_cli.md`. From random weights, a run 2.5x longer (10 epochs, 750
#   steps, cosine schedule) on an earlier form of the data (`detail_scale` 1.15, tops not
#   framed as close-ups; data hash 06bf96b01855, now b5ba5a399b9a) still left sleeve
#   length and the four design details at random (`results/06_asen_cli_scratch_seed0.md`).
# - **ASA looks at the garment, not just anywhere**: over all ten attributes 0.26 of the
#   attention mass is inside the ground-truth region against 0.13 for a uniform map and 0.22
#   for a centred Gaussian; the maximum is inside the region 73 % of the time (centre: 47 %).
#   On the details the mass is 2.5-2.8x the uniform share (collar 0.25 in a region of 0.10,
#   lapel 0.16 of 0.06, neckline 0.16 of 0.06, neck 0.20 of 0.07); on the lengths, colour and
#   pattern 1.6-2.1x. The square ASEN++ box is no better than a fixed centre box (IoU 0.30 vs
#   0.33): an 8x8 map upsampled to 64 px is too coarse for tight boxes.
# - **But a map that never sees the image puts more mass there.** FashionSynth frames its
#   tops alike, so the position prior alone (the share of training images whose region covers
#   each pixel) puts 6.5x (collar), 3.8x (lapel), 5.5x (neckline) and 8.1x (neck) the uniform
#   share inside the detail regions: more than ASA in every seed of either score form (the
#   committed table above), and more than notebook 03's CAM on collar and neck (CAM mass 0.50
#   and 0.52 against the prior's 0.64 and 0.59; above it on lapel and neckline). "Mass inside"
#   therefore cannot tell localisation from a learned position on this data, and a bar such
#   as "3x uniform" is passed by the prior. What the prior cannot do is move: ASA's centre of
#   mass follows the region's from image to image (correlation 0.70-0.90 over rows and
#   0.84-0.95 over columns on the details here; 0.51-0.94 and 0.72-0.97 over the three
#   committed seeds), so the map does look at each image.
# - **The released tanh bound is close to binding.** The most mass a bounded map can put in
#   those detail regions is 0.24-0.37 (3.8-4.3x uniform, the table above); ASA reaches
#   67-71 % of that cap on each detail. The unbounded score of the paper's eq. (2) has no
#   such cap: ASEN trained from the CLI with `--option bounded=false` (three seeds) puts
#   3.9-7.3x the uniform share inside every detail's region, at the same test MAP (86.9 /
#   88.8 / 88.4 against 87.2 / 88.2 / 86.3 bounded; `results/06_asen_cli_attention_unbounded.md`,
#   `results/06_asen_cli_unbounded.md`), which beats the prior on lapel and neckline only,
#   and follows the regions about as well (least on neck design: rows 0.34-0.61).
# - **ACA's gates differ by attribute** (per-channel spread 0.16-0.25), most for sleeve
#   length and colour; attributes that share a region or a kind of evidence get similar
#   gates (skirt and coat length +0.77, lapel and neckline +0.58).
#
# **Next.** Notebook 05 trains the two baselines; notebook 06 puts ASA and ACA together in
# ASEN, removes each in turn (the paper's ablations) and compares everything on the same
# data and budget.
