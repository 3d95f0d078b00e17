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
# # 05 · Baselines: one general space (triplet network) and masked subspaces (CSN)
#
# **Goals.**
# - See why *one* embedding for all attributes cannot serve attribute-specific similarity:
#   the same pair of images must be close for one attribute and far for another.
# - Build the two baselines of every table in the papers, the triplet network and the
#   Conditional Similarity Network (CSN), from their equations, then train them with the
#   course's one training loop (`fgfs_lib.train`), which every later notebook reuses.
# - Read the result per attribute against the random ranking, look at CSN's learned masks,
#   and look at the general space with t-SNE coloured by two different attributes.
#
# **Papers and equations.** Triplet network: the "Triplet" row of ASEN (Ma et al., AAAI 2020)
# with its cosine ranking loss (eq. 9). CSN: Veit, Belongie, Karaletsos, *Conditional
# Similarity Networks*, CVPR 2017: masked embedding $f(x)\odot m_a$ (eq. 1), Euclidean
# margin ranking loss (eq. 2), embedding-L2 and mask-L1 regularisers (eq. 3).
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | trains 3 models x 4 epochs x 75 steps x 64 images: about 5 min from scratch (278.8 s in a fresh-clone `./course run` at c845b1c, `benchmarks/RESULTS.md`; each of the three runs about 90 s); about 2 min with the two baselines' checkpoints present | test MAP (seed 0): random 16.9, triplet network 34.7, CSN 60.4 (details 48.3-84.4), CSN from random weights 36.4 (details at random: 15.5-30.2 vs 15.1-25.9) |
# | full | 1 GPU | not yet measured (2 x 50 epochs of 100k triplets, ResNet-50) | paper (FashionAI): random 15.79, triplet 38.52, CSN 53.52 |

# %%
# %matplotlib inline
import fgfs_lib
from fgfs_lib import config, utils, viz

cfg = config.load()
generator = utils.seed_everything(cfg.seed)
print(cfg.banner())

# %%
import numpy as np
import torch
import torch.nn.functional as F

from fgfs_lib import data as fgfs_data
from fgfs_lib import evaluate, losses, train
from fgfs_lib.models import csn as csn_module
from fgfs_lib.models.registry import build_model
from fgfs_lib.viz import embeddings as viz_embeddings
from fgfs_lib.viz import training as viz_training

data = fgfs_data.load("fashionsynth", cfg=cfg)
meta = data.meta
names = meta.attribute_names
print(data.summary())

# %% [markdown]
# ## 1. One space cannot be right for every attribute
#
# A triplet network learns one embedding $f(x)$ and uses the same distance for every
# question. Training triplets for different attributes then pull the same pair of images in
# opposite directions: two dresses with the *same neckline* are a positive pair for
# "neckline" and, when their colours differ, the anchor and a negative for "colour".
# How often does that happen on our training images? For every pair of images that share
# the value of attribute $a$, count how often they differ on attribute $b$.

# %%
labels = data.train.labels
A = meta.num_attributes
conflict = torch.full((A, A), float("nan"))
for a in range(A):
    for b in range(A):
        if a == b:
            continue
        both = (labels[:, a] >= 0) & (labels[:, b] >= 0)
        y = labels[both]
        same_a = y[:, None, a] == y[None, :, a]
        differ_b = y[:, None, b] != y[None, :, b]
        off_diagonal = ~torch.eye(len(y), dtype=torch.bool)
        pairs = same_a & off_diagonal
        if pairs.any():
            conflict[a, b] = (pairs & differ_b).sum() / pairs.sum()
colour = names.index("colour")
print("share of same-value pairs whose colour differs:")
for a in range(A):
    if a != colour:
        print(f"  same {names[a]:<16} {conflict[a, colour]:.2f}")
assert (conflict[torch.arange(A) != colour, colour] > 0.8).all()  # 8 colours drawn independently

# %% [markdown]
# More than 80 % of the pairs that one attribute calls *similar* are *dissimilar* for colour
# (8 colours, drawn independently of everything else). A single space has to settle every
# such conflict the same way for all questions: it can encode several attributes side by side,
# but then every distance mixes all of them, and whatever the backbone separates most
# easily dominates the mix (section 9 measures which). Attribute-specific models give each
# attribute its own notion of distance.
#
# ## 2. The random baseline
#
# MAP depends on how many candidates share the query's value, so "random" is different for
# every attribute. Notebook 02 derived the exact expected MAP of a random ranking; here it is
# on our test split.

# %%
random_test = evaluate.random_map(data, "test")
random_named = {names[a]: v for a, v in random_test["per_attribute"].items()}
random_named["overall"] = random_test["overall"]
print({k: round(v, 1) for k, v in random_named.items()})

# %% [markdown]
# ## 3. The triplet network
#
# Backbone (in the quick profile a small CNN cut after its third stage, 8x8 feature map at
# 64 px; in the full profile ResNet-50 cut after layer3), global average pooling, a linear
# layer and L2 normalisation:
#
# $$f(x) = \frac{W\,\mathrm{pool}(\phi(x))}{\lVert W\,\mathrm{pool}(\phi(x))\rVert_2}, \qquad
#   \ell(a,p,n) = \max\bigl(0,\ m - \cos(f(a), f(p)) + \cos(f(a), f(n))\bigr),\ m = 0.2 .$$
#
# The attribute is not an input. We compute $f$ by hand from the model's parts and check it
# against the library, for two different attributes.

# %%
torch.manual_seed(cfg.seed)
triplet_demo = build_model("triplet", meta, cfg).eval()
x = data.train.batch(torch.arange(6))
with torch.no_grad():
    phi = triplet_demo.backbone(x)                      # [B, C, h, w], any h, w
    mine = F.normalize(phi.mean(dim=(2, 3)) @ triplet_demo.fc.weight.T + triplet_demo.fc.bias, dim=1)
    for a in (names.index("neckline_design"), colour):
        lib = triplet_demo.embed(x, torch.full((6,), a))
        assert torch.allclose(mine, lib, atol=1e-5)
print("feature map", tuple(phi.shape), "-> embedding", tuple(mine.shape), "(the same for every attribute)")

# %% [markdown]
# ## 4. CSN: one space, one mask per attribute
#
# CSN keeps one general embedding $f(x)\in\mathbb{R}^D$ (not normalised) and gives each
# attribute (a *condition*) a mask $m_a$:
#
# $$f_a(x) = f(x)\odot m_a \quad (1), \qquad
#   L_T = \max\bigl(0,\ \lVert f_a(x)-f_a(x^+)\rVert - \lVert f_a(x)-f_a(x^-)\rVert + m\bigr) \quad (2)$$
#
# $$L = L_T + \lambda_1 \lVert f(x)\rVert_2 + \lambda_2 \lVert m\rVert_1, \qquad
#   \lambda_1 = 5\cdot10^{-3},\ \lambda_2 = 5\cdot10^{-4} \quad (3)$$
#
# Masks are either **fixed**: disjoint blocks of $D/A$ dimensions, so each attribute owns its
# own subspace, or **learned**: $m_a = \mathrm{ReLU}(\beta_a)$, free to share dimensions
# between related attributes. The regularisers keep the embedding from growing (a Euclidean
# margin can otherwise be met by scaling) and push unused mask entries to zero. Below, the
# fixed masks and eq. (1) by hand, checked against `fgfs_lib.models.csn`.

# %%
D = 64
sizes = [D // A + (1 if a < D % A else 0) for a in range(A)]  # 64 = 4 x 7 + 6 x 6
edges = np.cumsum([0, *sizes])
blocks = torch.zeros(A, D)
for a in range(A):
    blocks[a, edges[a]:edges[a + 1]] = 1.0
assert torch.equal(blocks.sum(0), torch.ones(D))  # every dimension belongs to exactly one attribute
assert torch.equal(blocks, csn_module.disjoint_masks(A, D))

torch.manual_seed(cfg.seed)
csn_demo = build_model("csn", meta, cfg, mask="fixed", embed_dim=D).eval()
attrs = torch.tensor([0, 1, 6, 8, 9, 4])
with torch.no_grad():
    f = csn_demo.general_embedding(csn_demo.features(x))
    mine = f * csn_demo.masks()[attrs]                                       # eq. (1)
    assert torch.allclose(mine, csn_demo.embed(x, attrs))
    assert torch.equal(csn_demo.masks(), csn_module.disjoint_masks(A, D))
print("nonzero dimensions per fixed mask:", csn_module.disjoint_masks(A, D).sum(1).int().tolist())

# %% [markdown]
# ## 5. Training: one loop for every model
#
# `fgfs_lib.train.fit` asks the model for its loss on a batch and does the rest: Adam and
# StepLR, validation MAP after every epoch, checkpoints that a killed run resumes from, a NaN
# guard, and (on a GPU) mixed precision. `train_or_load` keys the checkpoint folder by a hash
# of the whole configuration, so running this notebook again, or a later notebook asking for
# the same model, loads the trained weights instead of training again.
#
# **Batches.** The papers sample 100k triplets (anchor, positive, negative, attribute) per
# epoch, three backbone passes per triplet. In the quick profile we use *in-batch* triplets:
# random batches of 64 images, one backbone pass each, the embeddings of every image for
# every attribute, and every valid triplet inside the batch (notebook 02). On a CPU this
# learns far more per second (notebook 06 compares both samplers for the same number of
# backbone passes); the full profile keeps the papers' sampling.
#
# **Averaging.** Colour and pattern apply to every image, the other attributes to a
# fraction of them, so about 80 % of the valid triplets in a batch are colour or pattern
# triplets. A plain mean over all valid triplets would train almost only those two. Every
# in-batch model of the course therefore uses `average="attribute"`
# (`fgfs_lib.losses.batch_all_triplet_loss`): each attribute's mean hinge, then the mean over
# attributes, so each attribute weighs the same.
#
# Both baselines get the same backbone, data, batches and budget. CSN uses learned masks
# (its better variant in the paper).
#
# **Where the backbone starts.** The papers start every backbone from ImageNet weights. The
# quick profile's small CNN starts from weights pretrained once on FashionSynth images that
# the course never uses (`fgfs_lib.models.backbones`, made by
# `scripts/pretrain_quick_backbone.py`: notebook 03's classifier, 8,000 steps on 21,600 images
# of another dataset seed). A third run, CSN from random weights with the same budget, shows
# what that start buys.

# %%
settings = train.default_settings(cfg)
print(settings)
triplet_run = train.train_or_load("triplet", data, cfg)
csn_run = train.train_or_load("csn", data, cfg, model_options={"mask": "learned"})
scratch_run = train.train_or_load("csn", data, cfg, model_options={"mask": "learned", "weights": None})
print("backbone weights:", {label: run.model.backbone.weights_source or "random"
                            for label, run in (("CSN", csn_run), ("CSN from scratch", scratch_run))})
for run in (triplet_run, csn_run, scratch_run):
    print(f"{run.run_config['model']['name']}: {'loaded' if run.reused else 'trained'}, "
          f"best valid MAP {run.best_map:.1f} at epoch {run.best_epoch}, "
          f"{run.images_per_second:.0f} training images/s (when it was trained), {run.checkpoint_dir.name}")

# %%
fig = viz_training.training_curves({"triplet network": triplet_run.history, "CSN (learned masks)": csn_run.history,
                                   "CSN, from scratch": scratch_run.history},
                                   random_map=evaluate.random_map(data, "valid")["overall"])
viz.save(fig, "05_training_curves")

# %% [markdown]
# ## 6. Test MAP per attribute

# %%
results = {}
for label, run in (("triplet network", triplet_run), ("CSN (learned masks)", csn_run),
                   ("CSN, from scratch", scratch_run)):
    test = evaluate.retrieval_map(run.model, data, "test")
    results[label] = {**test["per_attribute_name"], "overall": test["overall"]}
header = f"{'attribute':<16}{'random':>8}" + "".join(f"{k:>22}" for k in results)
print(header)
for name in [*names, "overall"]:
    print(f"{name:<16}{random_named[name]:>8.1f}" + "".join(f"{r[name]:>22.1f}" for r in results.values()))

# %%
fig = viz_training.map_per_attribute(results, random_named, title="FashionSynth test MAP: the two baselines")
viz.save(fig, "05_map_per_attribute")

# %%
trip, csn_res = results["triplet network"], results["CSN (learned masks)"]
gain = {label: {n: r[n] - random_named[n] for n in [*names, "overall"]} for label, r in results.items()}
global_attrs = ["colour", "pattern"]
local = ["collar_design", "lapel_design", "neckline_design", "neck_design"]
scratch = gain["CSN, from scratch"]
for label, g in gain.items():
    assert g["overall"] > 2, label                                  # every model learns beyond chance
# the papers' ordering: masked subspaces above one general space (same backbone start and budget)
assert csn_res["overall"] > trip["overall"]
# one space has to trade attributes against each other; CSN's masks give each its own dimensions
assert np.mean([csn_res[n] for n in global_attrs]) > np.mean([trip[n] for n in global_attrs])
# the pretrained start is what makes the small details learnable in this budget
assert np.mean([gain["CSN (learned masks)"][n] for n in local]) > np.mean([scratch[n] for n in local]) + 10
assert max(scratch[n] for n in global_attrs) > 2 * max(scratch[n] for n in local)  # from scratch: big things only

# %% [markdown]
# ## 7. What CSN's masks learned
#
# Rows are attributes, columns are the 64 embedding dimensions. A fixed mask would show ten
# disjoint blocks; learned masks start as $\mathrm{ReLU}(\mathcal{N}(0.9, 0.7))$ noise and
# are shaped by the ranking loss and the L1 term.

# %%
masks = csn_run.model.masks().detach().cpu()
fig = viz_embeddings.mask_matrix(masks, names, title="CSN learned masks (ReLU(β), after training)")
viz.save(fig, "05_csn_masks")
m = F.normalize(masks, dim=1)
overlap = m @ m.T
print("mask cosine overlap with colour's mask:")
print({n: round(float(overlap[colour, a]), 2) for a, n in enumerate(names) if a != colour})
assert (masks >= 0).all()

# %% [markdown]
# ## 8. Looking at the general space
#
# We embed 400 test images with the triplet network and map them to 2-D with t-SNE, then
# colour the *same* map twice: by colour, and by sleeve length. A space that served both
# attributes would show clusters for each. The numbers under the picture say it without
# t-SNE: for each image, the share of its 10 nearest neighbours (cosine, in the full
# embedding) that have its value, in the general space and in CSN's subspace of that
# attribute.

# %%
sleeve = names.index("sleeve_length")
pool = torch.nonzero((data.test.labels[:, sleeve] >= 0) & (data.test.labels[:, colour] >= 0)).squeeze(1)
chosen = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed))[:400]]
rows = torch.stack([chosen, torch.full_like(chosen, colour), torch.zeros_like(chosen)], 1)
general = evaluate.embed_pairs(triplet_run.model, data.test, rows)
# CSN's own subspace for each attribute, for comparison: the same images, embedded per attribute
csn_spaces = {a: evaluate.embed_pairs(csn_run.model, data.test, torch.stack(
    [chosen, torch.full_like(chosen, a), torch.zeros_like(chosen)], 1)) for a in (colour, sleeve)}
points = viz_embeddings.tsne_2d(general, seed=cfg.seed)
pick = [colour, sleeve]
fig = viz_embeddings.scatter_by_attributes(points, data.test.labels[chosen][:, pick], [names[a] for a in pick],
                                           [meta.value_names[a] for a in pick],
                                           title="triplet network: one t-SNE map, two colourings")
viz.save(fig, "05_tsne_general_space")


# %%
def neighbour_agreement(embeddings: torch.Tensor, values: torch.Tensor, k: int = 10) -> float:
    """Mean share of each point's k nearest neighbours (cosine) that have its value."""
    e = F.normalize(embeddings, dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices
    return float((values[nn_idx] == values[:, None]).float().mean())


agree = {names[a]: neighbour_agreement(general, data.test.labels[chosen, a]) for a in pick}
own = {names[a]: neighbour_agreement(csn_spaces[a], data.test.labels[chosen, a]) for a in pick}
chance = {names[a]: float((torch.bincount(data.test.labels[chosen, a]) / len(chosen)).pow(2).sum()) for a in pick}
print("10-NN agreement in the general space:  ", {k: round(v, 2) for k, v in agree.items()})
print("... in CSN's subspace of that attribute:", {k: round(v, 2) for k, v in own.items()})
print("chance agreement:                      ", {k: round(v, 2) for k, v in chance.items()})
for name in agree:  # the general space carries both attributes a little; a subspace of its own carries one well
    assert chance[name] < agree[name] < own[name], name

# %% [markdown]
# ## 9. What we found
#
# Measured in the quick profile (seed 0, one run; test MAP x100; random ranking 16.9); every
# model sees the same batches and budget, the first two from the pretrained small CNN:
#
# | | overall | colour | pattern | skirt / coat / pant length | sleeve | collar, lapel, neckline, neck |
# |---|---|---|---|---|---|---|
# | random | 16.9 | 12.9 | 20.4 | 17.5 / 16.0 / 18.6 | 14.7 | 21.4, 21.3, 15.1, 25.9 |
# | triplet network | 34.7 | 24.8 | 32.4 | 49.0 / 30.7 / 71.2 | 20.4 | 69.0, 46.2, 38.5, 85.5 |
# | CSN, learned masks | 60.4 | 66.2 | 74.3 | 55.8 / 44.1 / 61.8 | 38.9 | 71.0, 59.2, 48.3, 84.4 |
# | CSN, from random weights | 36.4 | 58.2 | 45.1 | 27.2 / 31.9 / 43.1 | 15.4 | 21.7, 22.1, 15.5, 30.2 |
#
# - **One space has to trade attributes against each other.** The triplet network learns
#   what the pretrained backbone makes easy to separate (neck design 85.5, pant length 71.2,
#   collar 69.0) and little of colour (24.8), which needs the opposite invariance: in its
#   space 42 % of an image's 10 nearest neighbours share its colour (chance 13 %) and 28 %
#   its sleeve length (chance 14 %); in CSN's subspaces of those attributes, more (the
#   printout above).
# - **Masks remove the conflict.** With the same backbone, batches and budget, CSN learns
#   colour *and* pattern (66.2, 74.3) and every length and detail above random. The papers'
#   ordering, CSN well above the triplet network, reproduces here (60.4 vs 34.7 overall,
#   one seed; notebook 06 has three).
# - **The start decides what is learnable in this budget.** From random weights the same CSN
#   learns colour and pattern (58.2, 45.1) and the lengths partly, and the four design
#   details and sleeve length stay at random. The small CNN pretrained once on other
#   FashionSynth images (as the papers start from ImageNet) already separates the details;
#   300 steps then suffice to arrange them into attribute spaces.
# - **The learned masks are still close to their start.** Their cosine overlap with the
#   colour mask (0.49-0.69) is near that of the random initialisation (about 0.67): 300 steps
#   and the small L1 weight (5e-4) do not specialise them.
#
# **What the papers report (FashionAI, ResNet-50, 224 px, ImageNet weights):** random 15.79,
# triplet network 38.52, CSN 53.52 (ASEN poster); AG-MAN's table has CSN at 50.80. The
# ordering, CSN well above the triplet network, is the claim we can check here; the absolute
# numbers depend on the data and are not comparable.
#
# **Next.** Notebook 06 replaces CSN's fixed-per-attribute masks by attention that depends on
# the image: ASEN looks at *where* the attribute is (spatial attention) and *which* channels
# matter for it (channel attention).

# %% [markdown]
# ### Running it yourself
#
# The same models from the command line (checkpoints resume if the run is interrupted):
#
# ```
# python -m fgfs_lib train --model triplet --data fashionsynth --profile quick --out runs/triplet
# python -m fgfs_lib train --model csn --data fashionsynth --profile quick --option mask=learned --out runs/csn
# python -m fgfs_lib evaluate --checkpoint runs/csn/best.pt
# ```
#
# Training speed: `python benchmarks/train_speed.py` prints images per second per model and
# sampling.
