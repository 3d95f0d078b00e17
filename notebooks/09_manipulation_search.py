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
# # 09 · Search with attribute manipulation: FashionSearchNet and its baselines
#
# **Goals.**
# - Build the manipulation-search protocol the way ADDE builds it for Shopping100k: every
#   test image x every attribute x every other value, kept when some gallery image has
#   exactly the wanted label vector; Top-K accuracy and NDCG@K (ADDE's definition beside
#   the gallery-normalised one), with the random floor computed exactly.
# - Build FashionSearchNet step by step (activation-map boxes with the paper's rule, ROI
#   pooling into attribute representations, the soft triplet loss, value prototypes,
#   the learned global representation), check each piece against `fgfs_lib`, and train it
#   live beside the paper's Table 2 baselines: attribute-based, AMNet-like, "w/o Loc.".
# - Give the paper's ordering (FSN > w/o Loc. > AMNet > attribute-based at Top-30) a verdict
#   on this run and on the committed multi-seed run (`scripts/run_fsn_seeds.py`).
# - Search interactively: an image (gallery index or file) and a wish (`attribute=value`,
#   or "similar by attribute"), in a widget whose callback is a plain, tested function.
#
# **Papers and equations.** FashionSearchNet (Ak et al., "Fashion search with attribute
# manipulation"; no public code): eq. 1 classification, eq. 2 attribute activation maps
# $M_{ac}(i,j) = \sum_k w_{a}(k,c)\,\mathrm{conv}_k(i,j)$ (notebook 03), the soft triplet
# loss (eqs. 3-5) $d^+ = \frac{e^{\lVert h(\hat I)-h(I^+)\rVert}}{e^{\lVert h(\hat I)-h(I^+)\rVert}+e^{\lVert h(\hat I)-h(I^-)\rVert}}$,
# $L_T = \sum_I \sum_a d^+$, and the global representation and ranking loss (eqs. 6-7)
# $F(I,a^*) = [h_1(I)\lambda_{1,a^*},\dots,h_A(I)\lambda_{A,a^*}]\,w_{a^*}$,
# $L_G = \sum_I\sum_{a^*} d^+(F(\hat I,a^*),F(I^+,a^*),F(I^-,a^*))$. AMNet (Zhao et al.):
# a memory of value prototypes fused with the query feature. ADDE (Hou et al.): the query
# rule and NDCG@K.
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 180 s on an idle CPU in a fresh-clone `./course run` (182.0 s at commit c845b1c, `benchmarks/RESULTS.md`), most of it training: on a machine about 10 % slower the training cell took 151 s and the evaluation cell 48 s | seed 0, calibrated FashionSynth, pretrained small CNN: Top-30 FashionSearchNet 81.0 %, without eqs. 6-7 80.1, w/o Loc. 87.4, AMNet-like 32.4, attribute-based 88.6, random 1.8; three seeds (`results/09_fsn_seeds.md`): 81.8 ± 1.0 / 80.8 / 86.9 ± 2.5 / 33.4 ± 2.3 / 88.7 ± 0.3. Box IoU with the true region: paper's rule 0.44, min-max 0.31. Paper, Shopping100k Top-30: FSN 56.6 %, w/o Loc. 5.4 points lower, AMNet about 16 lower, attribute-based about 19 below AMNet |
# | full | 1 GPU | not yet measured (stage 1 and three stage-2 runs of 20k steps at batch 16, ResNet-50) | paper: Top-30 56.6 % (Shopping100k), 37.6 % (DeepFashion) |
#
# Every number in the outputs below is printed from the run (calibrated FashionSynth,
# generator version 4); the numbers typed into section 8 are copied from this run's output
# and from `results/09_fsn_seeds.json`.

# %%
# %matplotlib inline
import fgfs_lib
from fgfs_lib import config, utils, viz

cfg = config.load()
generator = utils.seed_everything(cfg.seed)
print(cfg.banner())

# %%
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fgfs_lib import cam, manipulation as manip, metrics
from fgfs_lib.models import fashionsearchnet as fsn
from fgfs_lib.models.backbones import default_weights
from fgfs_lib.viz import manipulation as viz_manip

data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
meta, test = data.meta, data.test
names = meta.attribute_names
A = meta.num_attributes

# %% [markdown]
# ## 1. The protocol: manipulation queries, Top-K, NDCG@K, and the random floor
#
# A query is (image, attribute $a$, wanted value $v$). Its *target vector* is the image's
# label vector with $a$ set to $v$; attributes that do not apply to the garment (`-1`, no
# sleeve length on trousers) must match too. ADDE keeps a query only if some gallery image
# has exactly that vector. The gallery is the test split; a query's own image is left out
# of its ranking (it can never be a target: it differs in $a$).

# %%
queries = manip.manipulation_queries(test.labels, meta.num_values)
counts = torch.bincount(queries[:, 1], minlength=A)
print(f"{len(queries)} manipulation queries from {len(test)} test images")
for a in range(A):
    print(f"  {names[a]:<16} {int(counts[a]):6d}")

# derive the rule inline for a few images and compare
brute = []
for i in range(40):
    for a, n in enumerate(meta.num_values):
        if test.labels[i, a] < 0:
            continue
        for v in range(n):
            t = test.labels[i].clone()
            t[a] = v
            if v != test.labels[i, a] and (test.labels == t).all(1).any():
                brute.append([i, a, v])
assert queries[queries[:, 0] < 40].tolist() == brute

# %% [markdown]
# **Top-K accuracy**: a hit when one of the K best images has exactly the target vector.
# **Random floor, exactly**: with $m$ targets among the $N-1$ candidates, a random ranking
# misses all of them in its first $K$ with probability $\binom{N-1-m}{K}/\binom{N-1}{K}$.
#
# **NDCG@K, two definitions.** ADDE's (the published number): relevance = share of the
# attributes equal to the target's, gain $2^{rel}-1$, discount $1/\log_2(i+1)$, and an ideal
# DCG that assumes $K$ fully relevant results. `metrics.manipulation_ndcg` divides by the
# best ordering of this gallery instead; the two differ, so the table reports both names.

# %%
ks = list(manip.DEFAULT_KS)
exact_floor = manip.random_topk(queries, test.labels, ks)
sim = manip.evaluate(manip.RandomSearcher(generator), test, queries, ks=ks)
print("K              " + " ".join(f"{k:>6d}" for k in ks))
print("random, exact  " + " ".join(f"{exact_floor[k]:6.2f}" for k in ks))
print("random scores  " + " ".join(f"{sim['topk'][k]:6.2f}" for k in ks))
print(f"random scores: NDCG@30 ADDE {sim['ndcg']:.1f}, gallery-normalised {sim['ndcg_gallery']:.1f}")
assert abs(sim["topk"][30] - exact_floor[30]) < 3.0

# %% [markdown]
# ## 2. Stage 1 and the box: the paper's rule against notebook 03's
#
# FashionSearchNet's stage 1 is notebook 03's GAP classifier (eq. 1); its attribute
# activation maps (eq. 2) give one box per attribute: "the pixel values that are above 20%
# of the maximum value are segmented and a bounding box is estimated which covers the
# largest segmented region". Notebook 03 thresholds the *min-max normalised* map instead.
# CAMs have negative values, so the two differ: $m > 0.2\max m$ against
# $m > \min m + 0.2(\max m - \min m)$. Below, the paper's rule by hand (flood fill of the
# largest 8-connected region) against `cam.fsn_boxes(..., rule="max")`.

# %%
def paper_box(mp, threshold=0.2):
    """Largest 8-connected region above threshold x max, by flood fill; whole frame if max <= 0."""
    H, W = mp.shape
    if mp.max() <= 0:
        return [0.0, 0.0, float(W), float(H)]
    fg = (mp > threshold * mp.max()).numpy()
    seen, best = np.zeros_like(fg), []
    for y, x in zip(*np.nonzero(fg)):
        if seen[y, x]:
            continue
        stack, comp = [(y, x)], []
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            comp.append((cy, cx))
            for ny in range(max(cy - 1, 0), min(cy + 2, H)):
                for nx in range(max(cx - 1, 0), min(cx + 2, W)):
                    if fg[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        if len(comp) > len(best):
            best = comp
    ys, xs = zip(*best)
    return [float(min(xs)), float(min(ys)), float(max(xs) + 1), float(max(ys) + 1)]


toy = torch.randn(6, 16, 16, generator=generator) + torch.linspace(-1.0, 1.0, 16)
assert all(paper_box(mp) == cam.fsn_boxes(mp, rule="max").tolist() for mp in toy)
print("paper's rule by hand == cam.fsn_boxes(rule='max') on 6 random maps with negative values")

# %% [markdown]
# ## 3. Training: stage 1, then FashionSearchNet and the baselines from it
#
# `fsn.train_table2` trains, through the course's trainer (`train_or_load`, so a rerun
# loads the checkpoints), the stage-1 classifier (`fashionsearchnet` with `stage=1`, eq. 1)
# and, every one starting from those weights with the same stage-2 budget:
#
# | run | attribute representation | search with a wish |
# |---|---|---|
# | FashionSearchNet | ROI pooling of each attribute's box (paper's rule) -> FC layers $h_a$; classification + $L_T$; $\lambda$, $w_{a^*}$ by $L_G$ | replace $h_{a^*}$ by the prototype, compare $F(\cdot, a^*)$ |
# | w/o Loc. | the same network, every box the whole frame (no activation maps) | the same |
# | AMNet-like | one global feature $f$ | $g(f, M^\top e)$: memory of value prototypes addressed by the manipulation vector |
# | attribute-based | the stage-1 classifier's predictions | substitute the wanted value, rank by the log-probability of the target vector |
#
# `FGFS_FSN_SCALE` multiplies the step counts, for a machine too loaded for the budget; the
# scale is part of every run's configuration.

# %% tags=["parameters"]
scale = float(os.environ.get("FGFS_FSN_SCALE", "1.0"))
prototype_images = cfg.pick(**fsn.PROTOTYPE_IMAGES)  # training images averaged into the prototypes
print(fsn.table2_settings(cfg, scale))

# %%
t0 = time.perf_counter()
runs = fsn.train_table2(data, cfg, scale=scale)
train_seconds = time.perf_counter() - t0
for label, run in runs.items():
    h = run.history[-1]
    print(f"{label:<18} {'loaded' if run.reused else 'trained'}: {h['steps']} steps, "
          f"{h['train_seconds']:.0f} s when trained, final loss {h['loss']:.3f}")
print(f"training cell: {train_seconds:.0f} s (on this machine, under its current load)")

# %% [markdown]
# How well does stage 1 localise, with each box rule? IoU of the box with the ground-truth
# region of FashionSynth, per attribute, on 256 test images (the attribute's predicted
# class, as the paper does).

# %%
stage1 = runs["stage1"].model.eval()
idx = torch.arange(256)
x = test.batch(idx).to(utils.device())
with torch.no_grad():
    maps, _ = cam.attribute_activation_maps(stage1.classifier, x)
maps = maps.cpu()
rows = []
for a in range(A):
    keep = (test.labels[idx, a] >= 0).nonzero(as_tuple=True)[0]
    if len(keep) == 0:
        continue
    gt = test.region_masks(idx[keep], a)
    gt_boxes = cam.mask_to_box(gt)
    iou_max, iou_mm = (metrics.box_iou(cam.fsn_boxes(maps[keep, a], rule=r), gt_boxes).nanmean().item()
                       for r in ("max", "minmax"))
    area_max, area_mm = (((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean().item()
                         for b in (cam.fsn_boxes(maps[keep, a], rule=r) for r in ("max", "minmax")))
    rows.append((names[a], len(keep), iou_max, iou_mm, area_max / test.image_size ** 2, area_mm / test.image_size ** 2))
print(f"{'attribute':<16} {'n':>4} {'IoU paper':>10} {'IoU minmax':>11} {'area paper':>11} {'area minmax':>12}")
for r in rows:
    print(f"{r[0]:<16} {r[1]:4d} {r[2]:10.3f} {r[3]:11.3f} {r[4]:11.3f} {r[5]:12.3f}")
mean_iou = np.mean([r[2] for r in rows]), np.mean([r[3] for r in rows])
print(f"mean IoU: paper's rule {mean_iou[0]:.3f}, min-max rule {mean_iou[1]:.3f}")
fig = viz.maps.metric_bars({"paper: > 0.2 max": [r[2] for r in rows], "min-max > 0.2": [r[3] for r in rows]},
                           [r[0] for r in rows], ylabel="box IoU with the true region")
viz.save(fig, "09_box_rules")

# %% [markdown]
# ## 4. The pieces, derived inline and checked against the library
#
# **Soft triplet loss (eqs. 3-5)**: a softmax over the two distances; $d^+$ is the weight
# on the positive distance, so minimising it pushes $\lVert h(\hat I)-h(I^+)\rVert$ below
# $\lVert h(\hat I)-h(I^-)\rVert$ (it equals $\sigma(d_{pos}-d_{neg})$).

# %%
fsn_model = runs["FashionSearchNet"].model.eval()
with torch.no_grad():
    feats = fsn_model.features(x[:16])
    reps = fsn_model.attribute_representations(feats)  # [16, A, D]
anchor, pos, neg = reps[:8, 0], reps[8:, 0], reps[:8, 1]
d_pos, d_neg = (anchor - pos).norm(dim=1), (anchor - neg).norm(dim=1)
mine = (torch.exp(d_pos) / (torch.exp(d_pos) + torch.exp(d_neg))).mean()
assert torch.allclose(mine, fsn.soft_triplet_loss(anchor, pos, neg), atol=1e-6)
assert torch.allclose(mine, torch.sigmoid(d_pos - d_neg).mean(), atol=1e-6)
print(f"soft triplet loss on 8 triplets: {mine.item():.4f} (by hand) == library")

# %% [markdown]
# **ROI pooling into $h_a$**: each attribute's box (on the feature grid) is pooled into a
# fixed grid with `roi_align`, then that attribute's FC layers.

# %%
from torchvision.ops import roi_align

a = names.index("sleeve_length")
box = feats["boxes"][:, a]
pooled = roi_align(feats["map"], torch.cat([torch.arange(16.0, device=box.device)[:, None], box], 1),
                   output_size=fsn_model.roi_size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
with torch.no_grad():
    mine = fsn_model.attribute_fc[a](pooled)
assert torch.allclose(mine, reps[:, a], atol=1e-5)
print(f"h_{names[a]}: ROI {fsn_model.roi_size}x{fsn_model.roi_size} of the box -> FC == library, shape {tuple(mine.shape)}")

# %% [markdown]
# **Prototypes**: the mean $h_a$ of the training images with each value. A loop over values
# for one attribute against `manip.value_prototypes` (which uses `index_add`), on the
# training images the searchers use.

# %%
proto_split = fsn._Subset(data.train, torch.arange(min(prototype_images or len(data.train), len(data.train))))
train_reps = fsn.FSNSearcher(fsn_model, []).encode(proto_split)
protos = manip.value_prototypes(train_reps, proto_split.labels.to(train_reps.device), meta.num_values)
for v in range(meta.num_values[a]):
    members = proto_split.labels[:, a] == v
    assert torch.allclose(train_reps[members.to(train_reps.device), a].mean(0), protos[a][v], atol=1e-5)
print(f"prototypes of {names[a]} from {len(proto_split)} training images: loop == library")

# %% [markdown]
# **Manipulation and the global representation (eq. 6)**: swap $h_{a^*}$ for the prototype
# of the wanted value, weight each $h_a$ by $\lambda_{a,a^*}$, concatenate, project with
# $w_{a^*}$. The learned $\lambda$ say which attributes matter when $a^*$ changes.

# %%
wish = torch.tensor([(int(test.labels[0, a]) + 1) % meta.num_values[a]])
with torch.no_grad():
    swapped = reps[:1].clone()
    swapped[0, a] = protos[a][wish[0]]
    mine = torch.cat([swapped[:, b] * fsn_model.lam[a, b] for b in range(A)], 1) @ fsn_model.project[a]
    library = fsn.FSNSearcher(fsn_model, protos).query_vectors(reps[:1], a, wish.to(reps.device))
assert torch.allclose(mine, library, atol=1e-4)
lam = fsn_model.lam.detach().cpu()
print(f"eq. 6 by hand == FSNSearcher.query_vectors; learned lambda (row = manipulated attribute):")
print(" " * 16 + " ".join(f"{n[:6]:>7}" for n in names))
for r in range(A):
    print(f"{names[r]:<16}" + " ".join(f"{lam[r, c].item():7.2f}" for c in range(A)))

# %% [markdown]
# ## 5. Top-K on the test queries: FashionSearchNet and Table 2's baselines
#
# Every method ranks the whole test gallery for every query (one matrix product per batch
# of queries). "FashionSearchNet (concat, no eqs. 6-7)" is the same network searched with
# the plain concatenation of the $h_a$: what the global representation adds.

# %%
searchers = fsn.table2_searchers(runs, data.train, prototype_images)
t0 = time.perf_counter()
codes, results = manip.encode_all(searchers, test), {}
for label, searcher in searchers.items():
    results[label] = manip.evaluate(searcher, test, queries, ks=ks, codes=codes[label])
results["random"] = {**sim, "topk": exact_floor}  # exact Top-K; NDCG of the random scores above
print(f"evaluated {len(searchers)} methods on {len(queries)} queries in {time.perf_counter() - t0:.0f} s\n")
print(f"{'method':<40} " + " ".join(f"Top-{k:<3d}" for k in ks) + "  NDCG@30 ADDE  NDCG@30 gallery")
for label, r in results.items():
    print(f"{label:<40} " + " ".join(f"{r['topk'][k]:6.1f}" for k in ks)
          + f"  {r['ndcg']:12.1f}  {r['ndcg_gallery']:15.1f}")
fig = viz_manip.topk_curves({k: v["topk"] for k, v in results.items()}, title="manipulation search, test split")
viz.save(fig, "09_topk")

# %% [markdown]
# Top-30 per manipulated attribute (the paper's Table 2 layout).

# %%
print(f"{'attribute':<16} {'queries':>7} " + " ".join(f"{label[:14]:>15}" for label in searchers))
for a_ in range(A):
    if a_ not in results["FashionSearchNet"]["per_attribute"]:
        continue
    n = results["FashionSearchNet"]["per_attribute"][a_]["count"]
    print(f"{names[a_]:<16} {n:7d} " + " ".join(
        f"{results[label]['per_attribute'][a_]['topk'][30]:15.1f}" for label in searchers))

# %% [markdown]
# ## 6. The paper's ordering: a verdict
#
# The paper (Shopping100k, Top-30): FashionSearchNet 56.6 % > w/o Loc. (5.4 points lower)
# > AMNet (16 points lower than FSN) > attribute-based. On this run, and, because one seed
# is noisy, on the committed run over three seeds (`results/09_fsn_seeds.json`, written by
# `scripts/run_fsn_seeds.py`) when it exists:

# %%
order = [("FashionSearchNet", "w/o Loc."), ("w/o Loc.", "AMNet-like"), ("AMNet-like", "attribute-based"),
         ("attribute-based", "random")]
for better, worse in order:
    b, w = results[better]["topk"][30], results[worse]["topk"][30]
    print(f"live run:  {better} > {worse}: {'holds' if b > w else 'does NOT hold'} ({b:.1f} vs {w:.1f})")
seeds_file = Path(fgfs_lib.__file__).resolve().parent.parent / "results" / "09_fsn_seeds.json"
committed = json.loads(seeds_file.read_text()) if seeds_file.is_file() else None
same_data = json.loads(json.dumps(data.config, default=str))
if committed is not None and (committed.get("data_config") != same_data
                              or committed.get("backbone_start") != default_weights(cfg)):
    print(f"{seeds_file.name} was measured on other data or from another backbone start: not used; "
          f"re-run python scripts/run_fsn_seeds.py")
    committed = None
if committed is not None:
    print(f"\ncommitted run: seeds {committed['seeds']}, scale {committed['scale']}, commit {committed['commit']}")
    for o in committed["summary"]["orderings"]:
        print(f"  {o['better']} > {o['worse']}: {'holds' if o['holds_on_mean'] else 'does NOT hold'} on the mean "
              f"({o['holds_in_seeds']}/{o['of']} seeds)")
    for label, row in committed["summary"]["table"].items():
        print(f"  {label:<40} Top-30 {row['top30_mean']:5.1f} ± {row['top30_std']:.1f}")
elif not seeds_file.is_file():
    print(f"\n{seeds_file.name} not committed yet: run python scripts/run_fsn_seeds.py")

# %% [markdown]
# ## 7. Search interactively
#
# `viz_manip.run_search` is the widget's callback: a method, a query (a gallery index, or
# the path of an image file, preprocessed like the gallery), a mode ("manipulate":
# `attribute = value`; "similar": by attribute, the query's own value kept) and K. Results
# with exactly the target labels are framed green. Under nbval (no browser) the widget is
# only built; the static call below shows the same thing.

# %%
q = int(queries[0, 0])
a_wish, v_wish = int(queries[0, 1]), int(queries[0, 2])
result, fig = viz_manip.run_search(searchers, codes, test, meta, method="FashionSearchNet", query=q, mode="manipulate",
                                   attribute=names[a_wish], value=meta.value_names[a_wish][v_wish], k=8)
print(f"query {q}: {names[a_wish]} -> {meta.value_names[a_wish][v_wish]}; "
      f"{int(result['correct'].sum())} of the top 8 have exactly the target labels")
viz.save(fig, "09_search_example")

# %%
from IPython.display import display

widget = viz_manip.search_widget(searchers, codes, test, meta)
display(widget)

# %% [markdown]
# ## 8. What to take away
#
# - The protocol is ADDE's: the query count, the random floor (computed exactly and
#   checked by simulation) and both NDCG definitions are printed above. ADDE's NDCG is the
#   comparable one: the gallery-normalised NDCG is higher on random scores.
# - FashionSearchNet's pieces (paper's box rule, ROI attribute representations, soft
#   triplet loss, prototypes, eq. 6) are each checked against a hand computation here and
#   against brute-force oracles in `tests/test_fashionsearchnet.py`.
# - **The paper's ordering does not reproduce** (section 6; three seeds at the default
#   scale, from the pretrained small CNN). Localisation *hurts*: FashionSearchNet 81.8 ± 1.0
#   against 86.9 ± 2.5 for the same network on whole-frame boxes (0/3 seeds hold), most on the
#   design details (collar 49.7 vs 69.0, neckline 42.8 vs 66.8 on seed 0): a box of the paper's
#   rule on an 8x8 map, pooled to 3x3, keeps less of a small detail than the whole map does.
#   AMNet-like is far behind (33.4), and the attribute-based baseline is the best method
#   (88.7 ± 0.3): FashionSynth's attributes describe the whole image and the pretrained
#   classifier predicts them well, so predicting the labels and asking for the wished label
#   vector is the shortcut every learned method has to beat. On real photographs, with
#   attributes that leave most of the look undescribed, the paper finds the opposite.
# - The paper's box rule (20 % of the maximum) gives tighter boxes than notebook 03's min-max
#   rule on these maps (mean IoU with the true region 0.44 against 0.31, section 2).
# - The same protocol runs unchanged on Shopping100k and DeepFashion folders read with
#   `fgfs_lib.data.load` (`tests/test_manipulation_real_folders.py` checks it there: an oracle
#   searcher scores 100 % at every K, and a random one matches a brute-force loop query by
#   query).
# - The learned weights λ of eq. 6 stay within 0.02 of their start (1). Overall the plain
#   concatenation scores within 1 point of the global representation (Top-30 80.1 vs 81.0 on
#   seed 0, 80.8 vs 81.8 over three seeds), though per attribute the two differ by up to 31
#   points (pant length 47.9 vs 78.7, skirt length 61.4 vs 75.1, neckline 56.2 vs 42.8): the
#   learned projection $w_{a^*}$, not λ, makes the difference.
# - Per-attribute Top-30 (section 5) shows where localisation can matter: attributes with
#   a small region (the design details) against colour and pattern, which cover the garment.
