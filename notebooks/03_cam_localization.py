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
# # 03 · CAM localization: where does a classifier look for an attribute?
#
# **Goals.**
# - Train FashionSearchNet's first stage: a multi-attribute classifier whose only pooling
#   is a global average (GAP), with one linear head per attribute (eq. 1).
# - Derive *attribute activation maps* (class activation maps per attribute, eq. 2) by
#   hand, check them against `fgfs_lib.cam`, and turn them into boxes the two ways the
#   papers do: FashionSearchNet's (largest region above 0.2 of the min-max normalised map;
#   the paper's own rule, 20 % of the maximum, is in notebook 09) and ASEN++'s (min-max
#   normalise, threshold 0.1, square box inside the frame).
# - *Measure* localisation against FashionSynth's ground-truth regions (pointing game,
#   share of map mass inside the region, box IoU), per attribute, next to trivial
#   baselines. The papers could only show such maps as pictures.
# - See where CAM fails (small details, attributes that share a region) and why that
#   motivates attention *conditioned on the attribute* (notebook 04).
#
# **Papers and equations.** FashionSearchNet (Ak et al., CVPR 2018; seed
# `fashionsearchnet_attribute_manipulation`): eq. 1 (summed cross-entropy over images and
# attributes) and eq. 2 ($M_{ac} = \sum_k w_{a(k,c)}\, \mathrm{conv}_k$), box from a 20 %
# threshold. CAM (Zhou et al., CVPR 2016). ASEN++ (Dong et al., TIP 2021): the ROI box of
# its local branch, and crops with `roi_align`.
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 2 min from scratch (109.1 s measured in a fresh-clone `./course run` at c845b1c, benchmarks/RESULTS.md); training the 600 steps is most of it (72 s of 118 s in a later run of the current code) | accuracy (from the pretrained small CNN): colour 1.00, pattern 0.99, lengths 0.62-0.85, design details 0.77-0.96 (majority 0.12-0.26). Mass inside the region on the details 0.39-0.52 vs 0.06-0.10 uniform; box IoU at the papers' thresholds 0.30 (FSN) / 0.20 (ASEN++) vs 0.33 for a fixed centre box |
# | full | 1 GPU | not yet measured | not yet measured (224 px, ResNet-50 cut after layer3, 14x14 maps) |

# %%
# %matplotlib inline
import fgfs_lib
from fgfs_lib import config, utils, viz

cfg = config.load()
generator = utils.seed_everything(cfg.seed)
print(cfg.banner())

# %%
import time

import numpy as np
import torch
import torch.nn.functional as F

from fgfs_lib import cam, metrics
from fgfs_lib.models import classifier as clf
from fgfs_lib.train import train_or_load
from fgfs_lib.viz import maps as viz_maps

notebook_start = time.perf_counter()
dev = utils.device()
data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
meta, test = data.meta, data.test
names = meta.attribute_names
print(f"{len(data.train)} train / {len(test)} test images at {test.image_size} px, {meta.num_attributes} attributes")
print({n: v for n, v in zip(names, meta.num_values)})

# %% [markdown]
# ## 1. A classifier with global average pooling (eq. 1)
#
# FashionSearchNet first trains a plain multi-attribute classifier. The backbone gives a
# feature map $\mathrm{conv}_k(I, i, j)$ (here: the profile's backbone cut after `layer3`:
# a small CNN with an 8x8 map at 64 px in quick, ResNet-50's 14x14 map at 224 px in
# full). Global average pooling turns it into one vector $x_I$, and each attribute $a$ has
# its own linear head $w_a$ (one row per value). The loss sums the cross-entropy over
# images and attributes:
#
# $$L_C = -\sum_{I=1}^{N} \sum_{a=1}^{A} \log p(g_{Ia} \mid x_I w_a) \qquad (1)$$
#
# FashionSynth, like FashionAI, labels only the attributes that apply to a garment (no
# sleeve length on trousers: label $-1$); those terms are simply not in the sum. We divide
# by the batch size. First eq. 1 by hand on one batch, then the library's version:

# %%
model = clf.build_classifier(meta, cfg)  # untrained, only to check the loss
idx = torch.arange(16)
labels = data.train.labels[idx]
logits = model(data.train.batch(idx))
mine = sum(-F.log_softmax(lg, dim=1)[labels[:, a] >= 0, labels[labels[:, a] >= 0, a]].sum()
           for a, lg in enumerate(logits)) / len(idx)
library, _ = clf.classification_loss(logits, labels)
assert torch.allclose(mine, library)
print(f"eq. 1 on 16 untrained images: {mine.item():.3f}; "
      f"chance level would be {sum(np.log(n) * (labels[:, a] >= 0).sum().item() for a, n in enumerate(meta.num_values)) / 16:.3f}")

# %% tags=["parameters"]
epochs = cfg.pick(quick=2, full=12)
steps_per_epoch = cfg.pick(quick=300, full=1000)  # 600 steps in quick (from the pretrained start), 12k in full
batch_size = cfg.pick(quick=32, full=64)
lr = cfg.pick(quick=1e-3, full=1e-4)
# the backbone's start, as the papers start from ImageNet: quick = the small CNN pretrained once
# on FashionSynth images the course never uses (scripts/pretrain_quick_backbone.py);
# full = a local ImageNet file if present, else random
weights = cfg.pick(quick="fashionsynth", full="imagenet")

# %% [markdown]
# The classifier trains through the same loop as every retrieval model in this course
# (`fgfs_lib.train`, notebook 05): batches of images with their label rows (the
# `classification` batch kind), the model's `loss` (eq. 1 above), Adam with a per-step cosine
# decay, and after each epoch the model's `validate` (mean accuracy on the valid split, x100).
# `train_or_load` keys the checkpoint by the run's configuration, so a rerun loads it.

# %%
t0 = time.perf_counter()
run = train_or_load("attribute_classifier", data, cfg, model_options=dict(weights=weights), use="last",
                    sampling="classification", epochs=epochs, steps_per_epoch=steps_per_epoch,
                    batch_size=batch_size, lr=lr, lr_schedule="cosine", weight_decay=1e-4, verbose=False)
model = run.model
loss = np.array([h["loss"] for h in run.history])
print(f"{'loaded' if run.reused else 'trained'} in {time.perf_counter() - t0:.0f} s "
      f"(training took {sum(h['train_seconds'] for h in run.history):.0f} s): {run.checkpoint_dir}")
print("eq. 1 per image, mean of each epoch:", np.round(loss, 2),
      "| valid accuracy x100:", [round(h["valid_map"], 1) for h in run.history])
assert loss[-1] < 0.8 * loss[0]

# %% [markdown]
# How good is the classifier? Accuracy per attribute on the test images where the
# attribute applies, against two chance levels: guessing uniformly ($1/n$) and always
# answering the training set's most frequent value (*majority*).

# %%
result = clf.evaluate_classifier(model, test, train_labels=data.train.labels)
accuracy, majority = result["accuracy"], result["majority"]
print(f"{'attribute':<16} {'n':>5} {'accuracy':>9} {'majority':>9} {'uniform':>8}")
for a, name in enumerate(names):
    print(f"{name:<16} {int(result['count'][a]):>5} {accuracy[a]:>9.3f} {majority[a]:>9.3f} {result['uniform'][a]:>8.3f}")
learned = accuracy > majority + 0.15  # attributes the classifier clearly knows
print("clearly above chance (> majority + 0.15):", [n for n, ok in zip(names, learned) if ok])
assert accuracy[names.index("colour")] > majority[names.index("colour")] + 0.5
assert (accuracy - majority).mean() > 0.1

# %% [markdown]
# ## 2. Attribute activation maps (eq. 2), derived by hand
#
# Because the head sees the *average* of the feature map, the logit of class $c$ is the
# average over positions of
#
# $$M_{ac}(I, i, j) = \sum_k w_{a(k,c)}\, \mathrm{conv}_k(I, i, j) \qquad (2)$$
#
# (plus the head's bias). $M_{ac}$ says how much each position contributes to "attribute
# $a$ has value $c$". FashionSearchNet takes $c$ = the most confident class. The map lives
# on the feature grid; we upsample it bilinearly to the image.

# %%
a = names.index("sleeve_length")
images = test.batch(torch.arange(8)).to(dev)
with torch.no_grad():
    feats = model.features(images)                         # conv_k(I, i, j): [B, C, h, w]
    pooled = feats.mean(dim=(2, 3))                        # x_I: global average pooling
    W, b = model.heads[a].weight, model.heads[a].bias      # w_a: [n_values, C]
    scores = pooled @ W.T + b                              # x_I w_a
    c = scores.argmax(1)                                   # the most confident class
    M = (W[c][:, :, None, None] * feats).sum(1)            # eq. 2: sum_k w_a(k,c) conv_k
    M_image = F.interpolate(M[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
library_maps, library_classes = cam.attribute_activation_maps(model, images, attributes=[a])
assert torch.equal(library_classes[:, 0], c)
assert torch.allclose(M_image, library_maps[:, 0], atol=1e-5)
assert torch.allclose(M.mean(dim=(1, 2)) + b[c], scores.max(1).values, atol=1e-4)  # GAP of the map = logit
print(f"feature map {tuple(feats.shape[1:])} -> map {tuple(M.shape[1:])} -> upsampled {tuple(M_image.shape[1:])}")

# %% [markdown]
# The library computes every attribute's map for a whole batch at once, for the predicted
# class or for any chosen class. We keep the low-resolution maps of all test images, for
# the predicted class and for the *true* class (to tell a wrong map from a wrong label).

# %%
low_pred, low_true, predicted = [], [], []
for start in range(0, len(test), 256):
    idx = torch.arange(start, min(start + 256, len(test)))
    x = test.batch(idx).to(dev)
    m, c = cam.attribute_activation_maps(model, x, upsample=False)
    m_true, _ = cam.attribute_activation_maps(model, x, classes=test.labels[idx], upsample=False)  # -1: predicted
    low_pred.append(m.cpu()); low_true.append(m_true.cpu()); predicted.append(c.cpu())
low_pred, low_true, predicted = torch.cat(low_pred), torch.cat(low_true), torch.cat(predicted)
print("maps:", tuple(low_pred.shape), "(images, attributes, h, w)")

# %% [markdown]
# ## 3. What the maps look like
#
# One test image per garment category; one column per attribute. Faded panels: the
# attribute does not apply. Dashed green: the ground-truth box; cyan: FashionSearchNet's
# box. Titles: predicted / true value.

# %%
category_names = meta.category_names
show = [int(torch.nonzero(test.categories == k)[0]) for k in range(len(category_names))]
show_idx = torch.tensor(show)
maps_show = cam.upsample_maps(low_pred[show_idx], test.image_size)
fig = viz_maps.attribute_overlays(
    test.denormalize(test.batch(show_idx)), maps_show, names, gt_boxes=test.boxes[show_idx],
    pred_boxes=cam.fsn_boxes(maps_show), value_names=meta.value_names,
    labels=test.labels[show_idx], predicted=predicted[show_idx])
viz.save(fig, "03_attribute_maps")
print("rows:", [category_names[int(test.categories[i])] for i in show])

# %% [markdown]
# ## 4. Measured: how well do the maps localise?
#
# For each attribute, over the test images where it applies:
#
# - **pointing game**: is the map's maximum inside the ground-truth region?
# - **mass inside**: the share of the map's positive mass inside the region (a uniform
#   map scores the region's area share, listed as `area`);
# - **box IoU** of FashionSearchNet's box (threshold 0.2, largest region) and of ASEN++'s
#   square box (threshold 0.1) with the ground-truth box.
#
# Baselines that look at no image: a centred Gaussian "map" (sigma = 1/4 of the frame)
# for pointing and mass, a centred box of half the frame's side and the whole image for
# IoU. We also score the map of the *true* class.

# %%
H = test.image_size
colour = names.index("colour")
rows, per_image = [], {}
for a, name in enumerate(names):
    idx = torch.nonzero(test.labels[:, a] >= 0).flatten()
    masks, gt = test.region_masks(idx, a), test.boxes[idx, a]
    s = cam.localisation_scores(cam.upsample_maps(low_pred[idx, a], H), masks, gt)
    s_true = cam.localisation_scores(cam.upsample_maps(low_true[idx, a], H), masks, gt)
    s_col = cam.localisation_scores(cam.upsample_maps(low_pred[idx, colour], H), masks, gt)  # another attribute's map
    g = cam.localisation_scores(cam.centre_gaussian_maps(len(idx), H), masks, gt)
    centre_iou = metrics.box_iou(cam.centre_boxes(len(idx), H), gt).float()
    whole_iou = metrics.box_iou(cam.whole_image_boxes(len(idx), H), gt).float()
    per_image[name] = {"idx": idx, **s}
    rows.append([len(idx), s["area"].mean(), s["pointing"].nanmean(), s_true["pointing"].nanmean(),
                 s_col["pointing"].nanmean(), g["pointing"].nanmean(), s["mass"].nanmean(), s_col["mass"].nanmean(),
                 g["mass"].nanmean(), s["fsn_iou"].nanmean(), s["asen_iou"].nanmean(), s_col["fsn_iou"].nanmean(),
                 centre_iou.nanmean(), whole_iou.nanmean()])
table = np.array([[float(v) for v in r] for r in rows])
header = ["n", "area", "point", "pt:true", "pt:col", "pt:gauss", "mass", "m:col", "m:gauss",
          "IoU:FSN", "IoU:ASEN", "IoU:col", "IoU:ctr", "IoU:all"]
col = {h: i for i, h in enumerate(header)}
print(f"{'attribute':<16}" + "".join(f"{h:>9}" for h in header))
for name, vals in zip(names, table):
    print(f"{name:<16}{int(vals[0]):>9}" + "".join(f"{v:>9.2f}" for v in vals[1:]))

# %% [markdown]
# Columns: `point` / `mass` / `IoU:FSN` / `IoU:ASEN` score the attribute's own map
# (predicted class); `pt:true` the map of the true class; `*:col` use the **colour**
# attribute's map for every attribute (does an attribute's own map beat a map that only
# knows where the garment is?); `*:gauss`, `IoU:ctr` (centre box, half the frame's side)
# and `IoU:all` (whole image) look at no image at all.

# %%
fig = viz_maps.metric_bars({"own CAM": table[:, col["point"]], "CAM, true class": table[:, col["pt:true"]],
                            "colour's CAM": table[:, col["pt:col"]], "centre Gaussian": table[:, col["pt:gauss"]]},
                           names, "pointing game")
viz.save(fig, "03_pointing_game")
fig = viz_maps.metric_bars({"FashionSearchNet box": table[:, col["IoU:FSN"]], "ASEN++ box": table[:, col["IoU:ASEN"]],
                            "centre box": table[:, col["IoU:ctr"]], "whole image": table[:, col["IoU:all"]]},
                           names, "mean box IoU")
viz.save(fig, "03_box_iou")

# %%
known = np.array([bool(v) for v in learned])
print("attributes the classifier knows:", [n for n, k in zip(names, known) if k])
for label, keep in [("known", known), ("not known", ~known)]:
    if keep.any():
        t = table[keep].mean(0)
        print(f"{label:>9}: pointing {t[col['point']]:.2f} (colour's map {t[col['pt:col']]:.2f}, centre Gaussian "
              f"{t[col['pt:gauss']]:.2f}) | mass {t[col['mass']]:.2f} (uniform {t[col['area']]:.2f}) | "
              f"IoU FSN {t[col['IoU:FSN']]:.2f}, ASEN++ {t[col['IoU:ASEN']]:.2f}, centre {t[col['IoU:ctr']]:.2f}, "
              f"whole {t[col['IoU:all']]:.2f}")
assert table[known, col["mass"]].mean() > table[known, col["area"]].mean() + 0.05
for name in ("collar_design", "lapel_design", "neckline_design", "neck_design"):  # small regions, found
    a = names.index(name)
    if known[a]:
        assert table[a, col["mass"]] > 3 * table[a, col["area"]], name

# %% [markdown]
# ## 5. The threshold decides the box
#
# Both papers fix a threshold: ASEN++ 0.1 on the min-max normalised map, FashionSearchNet
# 0.2 of the map's *maximum* ("the pixel values that are above 20% of the maximum value").
# On a CAM with negative values the paper's rule sets a higher bar than min-max at the same
# 0.2 ($0.2\max m > \min m + 0.2(\max m - \min m)$ when $\min m < 0$), so its boxes are as
# tight or tighter; notebook 09 uses the paper's rule
# (`cam.fsn_boxes(..., rule="max")`) and measures both. Here one axis serves both papers: the
# threshold on the min-max normalised map (`rule="minmax"`). How much does the choice matter? Mean box IoU against the threshold, for three groups of attributes:
# lengths (sleeve, skirt, coat, pant), small design details (collar, lapel, neckline, neck)
# and global ones (colour, pattern). At most 300 images per attribute keep this quick.

# %%
groups = {"lengths": ["skirt_length", "sleeve_length", "coat_length", "pant_length"],
          "details": ["collar_design", "lapel_design", "neckline_design", "neck_design"],
          "global": ["colour", "pattern"]}
thresholds = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
curves = {}
for group, members in groups.items():
    fsn, asen = np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for name in members:
        a = names.index(name)
        idx = per_image[name]["idx"][:300]
        maps_a, gt = cam.upsample_maps(low_pred[idx, a], H), test.boxes[idx, a]
        for t, thr in enumerate(thresholds):
            fsn[t] += metrics.box_iou(cam.fsn_boxes(maps_a, thr), gt).nanmean().item() / len(members)
            asen[t] += metrics.box_iou(cam.asen_boxes(maps_a, thr), gt).nanmean().item() / len(members)
    curves[f"{group}: FSN"], curves[f"{group}: ASEN++"] = fsn, asen
fig = viz_maps.threshold_curves(thresholds, curves, marks={"FSN 0.2": 0.2, "ASEN++ 0.1": 0.1},
                                baselines={"whole image (all)": table[:, col["IoU:all"]].mean()})
viz.save(fig, "03_threshold_iou")
for k, v in curves.items():
    print(f"{k:<18} best threshold {thresholds[int(np.argmax(v))]:.2f}: IoU {v.max():.2f} (at the paper's: "
          f"{v[thresholds.index(0.2 if 'FSN' in k else 0.1)]:.2f})")
if cfg.quick:  # what our 8x8 maps show; re-check at 14x14 in full
    assert curves["global: FSN"].max() > curves["global: FSN"][thresholds.index(0.2)] + 0.1

# %% [markdown]
# ## 6. Where CAM fails
#
# **Small details.** The design attributes live in a zone of a few percent of the image
# (`area` above: 0.06-0.10), about four to six of the 64 cells of the 8x8 feature grid in
# quick. A CAM is a weighted sum of *shared* feature maps at the grid's resolution,
# upsampled: even when its peak is in the right place, the region above 0.2 of the min-max
# normalised map spreads over more cells than that, so the box is much larger than the
# region. Ratio of box area to region area:

# %%
for name in names:
    a = names.index(name)
    idx = per_image[name]["idx"]
    boxes = cam.fsn_boxes(cam.upsample_maps(low_pred[idx, a], H))
    gt = test.boxes[idx, a]
    ratio = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) / ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))
    s = per_image[name]
    print(f"{name:<16} area {s['area'].mean():.3f}  FSN box / region area: median {ratio.median():5.1f}  "
          f"pointing {s['pointing'].nanmean():.2f}  IoU {s['fsn_iou'].nanmean():.2f}")

# %% [markdown]
# **Attributes that share a region, and maps that do not follow the attribute.**
# All heads read the same feature map; an attribute's map differs from another's only by
# the channel weights $w_a$. If the backbone's strong channels fire on the garment as a
# whole, every attribute's box ends up around the same blob. We measure it: the
# correlation between the maps of two attributes *on the same image*, and the IoU of
# their boxes next to the IoU of their *ground-truth* boxes. (In FashionSynth the four
# design details share the neck area by construction, as collar, lapel and neckline do
# in real photos; pairs below are chosen to have regions in *different* places.)

# %%
pairs = [("sleeve_length", "colour"), ("neckline_design", "colour"), ("sleeve_length", "neckline_design"),
         ("skirt_length", "pattern"), ("lapel_design", "coat_length")]
print(f"{'pair':<34} {'n':>5} {'map corr':>9} {'box IoU':>8} {'GT IoU':>7}")
pair_iou = {}
for p, q in pairs:
    ap, aq = names.index(p), names.index(q)
    idx = torch.nonzero((test.labels[:, ap] >= 0) & (test.labels[:, aq] >= 0)).flatten()
    mp, mq = low_pred[idx, ap].flatten(1), low_pred[idx, aq].flatten(1)
    mp, mq = mp - mp.mean(1, keepdim=True), mq - mq.mean(1, keepdim=True)
    corr = (mp * mq).sum(1) / (mp.norm(dim=1) * mq.norm(dim=1)).clamp_min(1e-12)
    box_p = cam.fsn_boxes(cam.upsample_maps(low_pred[idx, ap], H))
    box_q = cam.fsn_boxes(cam.upsample_maps(low_pred[idx, aq], H))
    pair_iou[p, q] = (metrics.box_iou(box_p, box_q).nanmean().item(),
                      metrics.box_iou(test.boxes[idx, ap], test.boxes[idx, aq]).nanmean().item())
    print(f"{p + ' / ' + q:<34} {len(idx):>5} {corr.mean():>9.2f} {pair_iou[p, q][0]:>8.2f} {pair_iou[p, q][1]:>7.2f}")
if cfg.quick:  # boxes of attributes in different places coincide: the maps do not follow the attribute
    assert pair_iou["lapel_design", "coat_length"][0] > pair_iou["lapel_design", "coat_length"][1] + 0.3

# %% [markdown]
# **Wrong class, wrong map?** The map is only as good as the classifier's knowledge of the
# attribute: mass inside the region for correctly and wrongly classified images.

# %%
for name in names:
    a = names.index(name)
    s = per_image[name]
    right = predicted[s["idx"], a] == test.labels[s["idx"], a]
    if right.all() or (~right).all():
        continue
    print(f"{name:<16} mass inside: right {s['mass'][right].nanmean():.2f} ({int(right.sum())} images), "
          f"wrong {s['mass'][~right].nanmean():.2f} ({int((~right).sum())})")

# %% [markdown]
# ## 7. ROI features: cropping what the box says, batched
#
# FashionSearchNet pools the features inside each attribute's box into attribute-specific
# layers (ROI pooling), and ASEN++ crops the box from the *image* and feeds it to a second
# network. The reference code of ASEN++ cropped with OpenCV one image at a time; with
# `torchvision.ops.roi_align` both are one batched call. The crop of an image-aligned box
# at its own size is the plain slice:

# %%
idx = torch.arange(6)
x = test.batch(idx)
a = names.index("colour")
boxes = cam.asen_boxes(cam.upsample_maps(low_pred[idx, a], H)).round()
crops = cam.roi_features(x, boxes, H, 32)  # ASEN++'s local input, resized to 32 px
x0, y0, x1, y1 = boxes[0].int().tolist()
exact = cam.roi_features(x[:1], boxes[:1], H, (y1 - y0, x1 - x0), sampling_ratio=1)
assert torch.allclose(exact[0], x[0, :, y0:y1, x0:x1], atol=1e-5)
with torch.no_grad():
    pooled_feats = cam.roi_features(model.features(x.to(dev)), boxes.to(dev), H, 2)  # FSN: ROI-pooled features
print("image crops", tuple(crops.shape), "| ROI features", tuple(pooled_feats.shape))
fig = viz_maps.overlay_maps(test.denormalize(crops),
                            titles=[f"crop {i}" for i in range(len(idx))])
viz.save(fig, "03_asen_crops")

# %% [markdown]
# ## 8. What our run shows
#
# Numbers from the quick profile, seed 0 (600 steps of 32 images from the pretrained small
# CNN; one seed only).
#
# - **From the pretrained start, the classifier knows every attribute.** Accuracy 0.62
#   (coat length) to 1.00 (colour) against majority guesses of 0.12-0.26; the four design
#   details 0.77-0.96. From random weights it takes longer: in the committed learning curve
#   `results/synth_calibration/curve_tops_framing_detail100.json` (this classifier from
#   scratch on the same data, one 4,000-step run of batches of 32, validation accuracy read
#   every 500 steps) every detail is within +0.08 of majority after 500 steps; at 1,000
#   steps neck design is +0.20 above it, lapel +0.10, collar and neckline +0.02 / +0.01;
#   every length passes majority + 0.15 by 1,500 steps and every detail by 2,500 (collar
#   +0.23, lapel +0.22, neckline +0.17, neck +0.46).
# - **Where the classifier knows the attribute, CAM finds its region, even a small one.**
#   On the four details the map puts 0.39-0.52 of its mass inside a region covering
#   0.06-0.10 of the image (5-7x a uniform map), and its peak lands inside the region for
#   77-93 % of the images. The mass alone is weak evidence on this data: the tops are framed
#   alike, and notebook 04 shows that a fixed map of where each detail usually is puts
#   3.8-8.1x the uniform share inside the same regions. That the maps look at each image
#   shows in section 6: on every detail the mass is higher on the images the classifier gets
#   right (collar 0.51 vs 0.35 over 25 wrong images, neck 0.53 vs 0.28 over 13).
# - **The colour map is not the detail maps.** Scoring the *colour* map against a detail's
#   region points inside 11-31 % of the time, against 77-93 % for the detail's own map: once
#   the backbone has channels for the details, a linear head per attribute can pick them.
#   On the lengths the colour map does nearly as well as the own map on pant length (0.93 vs
#   0.93) and less well on skirt and coat length (0.60 / 0.53 vs 0.88 / 0.67): their regions
#   are the garment's lower half. Colour's own map peaks on the garment no more often than a
#   centred Gaussian (0.61 vs 0.69), pattern's a little more often (0.79): the close-up
#   framing puts the garment in the middle of the picture. Boxes of attributes in different
#   places still overlap: lapel vs coat length, box IoU 0.53 where the true regions overlap
#   0.08.
# - **The paper's thresholds give loose boxes.** At 0.2 (FashionSearchNet's value, here on
#   the min-max normalised map; the paper's own rule, 20 % of the maximum, is a higher bar on
#   maps with negative values and gives tighter boxes, notebook 09) or 0.1 (ASEN++) the region above threshold covers
#   most of the garment: mean box IoU 0.30 / 0.20 over all
#   attributes, *no better than a fixed centre box (0.33)*. The best threshold on our 8x8 maps
#   is 0.4-0.7 (details: IoU 0.51 instead of 0.27 / 0.11). FashionSearchNet's boxes of the
#   small details are 2-6 times the detail's region. The thresholds were chosen for other
#   maps (AlexNet's conv7, ASEN's attention): treat them as hyper-parameters and measure,
#   as FashionSynth allows.
# - **What this motivates.** CAM localises what a classifier was trained to recognise, after
#   pooling, with one shared map per attribute head. Retrieval models have no class labels
#   at test time and must rank by similarity; ASEN puts the attribute *into* the map before
#   pooling (attribute-aware spatial attention, notebook 04). Notebook 07 reuses ASEN++'s
#   box rule from this notebook (`cam.asen_boxes`, applied to ASEN's attention maps) for
#   ASEN++'s local branch, but crops with its own batched `roi_align`
#   (`crop_pairs` in `fgfs_lib/models/asen_global_local.py`), not `cam.roi_features`.
#
# Not measured here: the full profile (ResNet-50 on 224 px images, 14x14 maps), other
# seeds, and FashionSearchNet's stage 2 (ROI-pooled attribute embeddings with a soft
# triplet loss), which belongs to notebook 09.

# %%
print(f"notebook ran in {time.perf_counter() - notebook_start:.0f} s")
