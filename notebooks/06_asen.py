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
# # 06 · ASEN: attribute-specific embeddings with spatial and channel attention
#
# **Goals.**
# - Train ASEN and the paper's two ablations ("w/o ASA": global average pooling, still
#   conditioned on the attribute through ACA; "w/o ACA") on the same data and budget as
#   notebook 05's triplet network and CSN, and read MAP per attribute beside the random
#   baseline and beside the seed poster's FashionAI and DARN tables.
# - Test the paper's claims (its orderings) on the live run and, because one seed is
#   noisy, on the committed multi-seed run (`scripts/compare_seeds.py`), and say plainly
#   which ones FashionSynth reproduces.
# - Look inside: attention maps, top-8 retrievals per query and attribute, two
#   attribute-specific spaces side by side, and a single-image search by attribute name.
# - Measure what the training sampler buys: in-batch triplets against the papers'
#   3-image triplets, per backbone pass and per second.
#
# **Papers and equations.** ASEN (Ma et al., AAAI 2020, poster in the seeds): ASA eqs. 1-4
# and ACA eqs. 5-6 (notebook 04), projection + L2 norm (eq. 7), cosine triplet ranking loss
# $\max(0, m - s(I, I^+|a) + s(I, I^-|a))$, $m = 0.2$; the ablations of its Table 2.
# ASENet_V2's scaled dot-product ASA (Dong et al., TIP 2021) is registered as `asen_v2`.
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 245 s in a fresh clone's `./course run` (243.2 s at c845b1c, `benchmarks/RESULTS.md`, idle CPU; notebooks 04-05 have trained ASEN, the triplet network and CSN, this notebook trains the two ablations and one epoch of 3-image triplets) | seed 0 test MAP: random 16.9, triplet 34.7, CSN 60.4, w/o ASA 83.1, w/o ACA 78.9, ASEN 87.2; after 4,800 backbone passes valid MAP 75.1 (in-batch) vs 32.2 (3-image triplets) |
# | full | 1 GPU | not yet measured (6 models x 50 epochs of 100k triplets, ResNet-50) | paper, FashionAI: triplet 38.52, CSN 53.52, w/o ASA 56.35, w/o ACA 50.87, ASEN 61.02 |
#
# The quick numbers are FashionSynth's `calibrated` preset (generator version 4), with every
# backbone starting from the small CNN pretrained once on other FashionSynth images
# (`fgfs_lib.models.backbones`), as the papers start from ImageNet.

# %%
# %matplotlib inline
import fgfs_lib
from fgfs_lib import config, utils, viz

cfg = config.load()
generator = utils.seed_everything(cfg.seed)
print(cfg.banner())

# %%
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fgfs_lib import cam, evaluate, search, train, trivial_baseline
from fgfs_lib.models import asen as asen_module
from fgfs_lib.viz import embeddings as viz_embeddings
from fgfs_lib.viz import maps as viz_maps
from fgfs_lib.viz import retrieval as viz_retrieval
from fgfs_lib.viz import training as viz_training

data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
meta, test = data.meta, data.test
names = meta.attribute_names
A = meta.num_attributes

# %% [markdown]
# ## 1. ASEN and what each ablation isolates
#
# ASEN embeds an image $I$ *for* an attribute $a$:
#
# $$V = \mathrm{CNN}(I),\quad I_s = \sum_j \alpha_j(V, a)\, V_j\ \text{(ASA)},\quad
#   I_c = I_s \odot \beta(I_s, a)\ \text{(ACA)},\quad f(I, a) = \frac{W I_c + b}{\lVert W I_c + b\rVert}.$$
#
# | model | pooling | channel gate | attribute enters through |
# |---|---|---|---|
# | triplet network (05) | average | none | nothing: one space for all |
# | CSN (05) | average | fixed per attribute (a learned mask on the embedding) | the mask |
# | ASEN w/o ASA | average | ACA | the gate only |
# | ASEN w/o ACA | ASA | none | the attention only |
# | ASEN | ASA | ACA | both |
#
# "w/o ASA" is the clean test of the spatial attention: the same attribute-conditioned
# network, only the pooling is the plain average. "triplet vs ASEN" mixes two effects (one
# shared space vs attribute-specific spaces, and attention). The check below makes sure the
# ablation really is global average pooling.

# %%
from fgfs_lib.models.registry import build_model

torch.manual_seed(cfg.seed)
wo_asa = build_model("asen_wo_asa", meta, cfg).eval()
x = test.batch(torch.arange(8))
attrs = torch.arange(8) % A
with torch.no_grad():
    feats = wo_asa.features(x)
    head = wo_asa.head(feats, attrs)
assert torch.allclose(head["pooled"], feats.mean(dim=(2, 3)), atol=1e-6)
for name in ("triplet", "csn", "asen_wo_asa", "asen_wo_aca", "asen"):
    n_params = sum(p.numel() for p in build_model(name, meta, cfg).parameters())
    print(f"{name:<12} {n_params / 1e3:8.1f} k parameters")

# %% [markdown]
# ## 2. Training: the same budget for every model
#
# Every model gets the profile's default training settings, the ones notebook 05 used for
# the baselines (`fgfs_lib.models.asen.comparison_runs`); `train_or_load` loads a run that
# notebook 04 or 05 (or `scripts/compare_seeds.py`) already trained with the same
# configuration.
#
# - **quick** (CPU): in-batch triplets. Each step embeds a batch of 64 images under every
#   attribute from *one* backbone pass and uses every valid triplet of every attribute in
#   the batch. The loss is averaged **per attribute** (each attribute's mean hinge, then the
#   mean over attributes): colour and pattern apply to every image, so they make about 80 %
#   of the valid triplets of a batch (notebook 02 counts them), and a plain mean over all
#   triplets would give those two four times the weight of the eight others together.
# - **full** (GPU): the papers' setting, 100k 3-image triplets per epoch re-sampled every
#   epoch, batch 16, Adam 1e-4, StepLR(3, 0.9), 50 epochs (ASENet_V2's schedule; the AAAI
#   paper trained 200 epochs with lr x 0.985 per epoch).

# %%
settings = train.default_settings(cfg)
print(settings)
runs = {}
for label, spec in asen_module.comparison_runs(cfg).items():
    spec = dict(spec)
    runs[label] = train.train_or_load(spec.pop("model_name"), data, cfg, **spec)
for label, run in runs.items():
    print(f"{label:<16} {'loaded' if run.reused else 'trained'}: best valid MAP {run.best_map:5.1f} at epoch "
          f"{run.best_epoch}, {run.images_per_second:5.0f} img/s when trained")

# %%
fig = viz_training.training_curves({k: r.history for k, r in runs.items()},
                                   random_map=evaluate.random_map(data, "valid")["overall"])
viz.save(fig, "06_training_curves")

# %% [markdown]
# ## 3. Test MAP per attribute, beside the paper
#
# Our numbers are on FashionSynth's test split: every attribute of a test image is one row,
# and a fifth of each category's images are queries, the rest candidates, so each
# attribute's rows hold every category that carries it in proportion
# (`fgfs_lib.data.core.stratified_protocol`). The random row is the exact expected MAP of a
# random ranking (notebook 02). Two more rows learn nothing: they rank the candidates by the
# garment's pixel count or by its mean colour (`fgfs_lib.trivial_baseline`). Where they beat
# random, the data has a shortcut and a model's gain there proves nothing.

# %%
random_test = evaluate.random_map(data, "test")
table = {"random": {**{names[a]: v for a, v in random_test["per_attribute"].items()},
                    "overall": random_test["overall"]}}
trivial = trivial_baseline.trivial_maps(data, "test")
for stat, result in trivial.items():
    table[f"trivial: {stat.replace('_', ' ')}"] = {**result["per_attribute_name"], "overall": result["overall"]}
for stat, result in trivial.items():  # no shortcut: size and colour tell nothing but colour / pattern
    for name in names:
        if name not in ("colour", "pattern"):
            assert abs(result["per_attribute_name"][name] - table["random"][name]) < 3, (stat, name)
for label, run in runs.items():
    result = evaluate.retrieval_map(run.model, data, "test")
    table[label] = {**result["per_attribute_name"], "overall": result["overall"]}
short = [n.replace("_design", "").replace("_length", "_len") for n in names]
print(f"{'FashionSynth (ours)':<20}" + "".join(f"{s[:9]:>10}" for s in short) + f"{'overall':>9}")
for label, row in table.items():
    print(f"{label:<20}" + "".join(f"{row[n]:>10.1f}" for n in names) + f"{row['overall']:>9.1f}")

# %%
for dataset, attributes in asen_module.PAPER_ATTRIBUTES.items():
    paper = asen_module.PAPER_MAP[dataset]
    cols = [n.replace("clothes_", "").replace("_design", "").replace("_length", "_len") for n in attributes]
    print(f"\n{dataset + ' (poster)':<20}" + "".join(f"{c[:9]:>10}" for c in cols) + f"{'overall':>9}")
    for key, label in [("random", "random"), *((v, k) for k, v in asen_module.PAPER_KEYS.items())]:
        print(f"{label:<20}" + "".join(f"{v:>10.2f}" for v in paper[key][:-1]) + f"{paper[key][-1]:>9.2f}")

# %%
fig = viz_training.map_per_attribute({k: v for k, v in table.items() if k != "random"}, table["random"],
                                     title="FashionSynth test MAP: baselines, ASEN and its ablations (one seed)")
viz.save(fig, "06_map_per_attribute")
for label in runs:  # every model learns something
    assert table[label]["overall"] > table["random"]["overall"] + 2, label
assert table["ASEN"]["overall"] > table["random"]["overall"] + 10
assert table["ASEN"]["colour"] > table["random"]["colour"] + 30

# %% [markdown]
# ## 4. Which of the paper's orderings hold?
#
# The poster's claims, as orderings of overall MAP (both FashionAI and DARN), checked on the
# live run (one seed) and on the committed multi-seed run (`results/06_asen_seeds.json`,
# written by `python scripts/compare_seeds.py`; same models, same settings, seeds 0-2). A
# single seed can flip an ordering whose gap is smaller than the seed-to-seed spread, so the
# verdict comes from the multi-seed numbers.

# %%
claims = [("ASEN", "ASEN w/o ASA"), ("ASEN", "ASEN w/o ACA"), ("ASEN w/o ASA", "ASEN w/o ACA"),
          ("ASEN", "CSN"), ("CSN", "triplet network"), ("ASEN w/o ASA", "CSN"), ("triplet network", "random")]
paper_fa = {k: asen_module.PAPER_MAP["FashionAI"][v][-1] for k, v in asen_module.PAPER_KEYS.items()}
paper_fa["random"] = asen_module.PAPER_MAP["FashionAI"]["random"][-1]
results_file = (config.repo_root() or Path.cwd()) / "results" / "06_asen_seeds.json"
seeds_report = json.loads(results_file.read_text()) if results_file.is_file() else None
if seeds_report is not None and seeds_report.get("profile") != cfg.profile:
    print(f"{results_file.name} holds the {seeds_report.get('profile')} profile, not {cfg.profile}: not used")
    seeds_report = None
multi = {}
if seeds_report is not None:
    multi = {o["claim"]: o for o in seeds_report["summary"]["orderings"]}
    print(f"multi-seed run: profile {seeds_report['profile']}, seeds {seeds_report['seeds']}, "
          f"device {seeds_report['env']['device']}, commit {seeds_report['env']['git_commit']}")
else:
    print(f"{results_file} not found: run `python scripts/compare_seeds.py` for the multi-seed verdict")
print(f"{'claim':<32}{'paper gap':>10}{'live gap':>10}{'multi-seed gap (mean ± sd)':>30}{'holds in':>10}   verdict")
for better, worse in claims:
    key = f"{better} > {worse}"
    live = table[better]["overall"] - table[worse]["overall"]
    paper_gap = paper_fa[better] - paper_fa[worse]
    m = multi.get(key)
    spread = f"{m['difference']['mean']:+.1f} ± {m['difference']['std']:.1f}" if m else "-"
    holds = f"{m['seeds_holding']}/{m['seeds']}" if m else "-"
    if m and m["seeds"] >= 2:
        verdict = ("reproduced" if m["seeds_holding"] == m["seeds"] else
                   "NOT reproduced" if m["seeds_holding"] == 0 else "mixed: depends on the seed")
    else:
        verdict = ("holds" if live > 0 else "does NOT hold") + " on this seed only"
    print(f"{key:<32}{paper_gap:>+10.1f}{live:>+10.1f}{spread:>30}{holds:>10}   {verdict}")

# %%
if seeds_report is not None:
    summary = seeds_report["summary"]["models"]
    print(f"{'model':<30}{'live (seed ' + str(cfg.seed) + ')':>16}{'multi-seed mean ± sd':>24}{'min':>7}{'max':>7}")
    for label, s in summary.items():
        live = table.get(label, {}).get("overall", float("nan"))
        o = s["overall"]
        print(f"{label:<30}{live:>16.1f}{o['mean']:>17.1f} ± {o['std']:<4.1f}{o['min']:>7.1f}{o['max']:>7.1f}")
    ranking = sorted(summary, key=lambda k: -summary[k]["overall"]["mean"])
    print("multi-seed ranking:", " > ".join(ranking))

# %% [markdown]
# **Verdict (quick profile, committed run over seeds 0, 1, 2; `results/06_asen_seeds.md`).**
# Every ordering of the poster holds on every seed:
# ASEN 87.3 ± 0.9 > w/o ASA 83.2 ± 0.6 > w/o ACA 79.4 ± 0.6 > CSN
# 63.6 ± 2.9 > triplet network 34.3 ± 0.4 > random 16.9. That includes the
# paper's "w/o ASA > w/o ACA" (+3.8 ± 1.0, 3/3 seeds). The gaps are larger than the
# paper's (ASEN > CSN +23.6 ± 3.2, 3/3 seeds; paper +7.5): every model here starts from a
# backbone pretrained on the very attributes it ranks, and the absolute numbers
# are not comparable with FashionAI's (other data, 64 px, about 20k training images seen).

# %% [markdown]
# ## 5. Where ASEN looks
#
# ASEN's spatial attention for a few test images under every attribute (notebook 04
# measures it against the ground-truth regions). Compare "w/o ACA": the same attention
# without a channel gate behind it.

# %%
H = test.image_size
dev = next(runs["ASEN"].model.parameters()).device
show = torch.tensor([int(torch.nonzero(test.categories == k)[0]) for k in range(0, len(meta.category_names), 2)])
for label in ("ASEN", "ASEN w/o ACA"):
    with torch.no_grad():
        low = runs[label].model.attention_maps_all(test.batch(show).to(dev)).cpu()
    fig = viz_maps.attribute_overlays(test.denormalize(test.batch(show)), cam.upsample_maps(low.transpose(0, 1), H),
                                      names, gt_boxes=test.boxes[show])
    viz.save(fig, f"06_attention_{label.replace(' ', '_').replace('/', '')}")

# %% [markdown]
# ## 6. Retrieval examples
#
# For three test queries, the top-8 test candidates under two different attributes: the
# same image, different questions, different answers. Green frame: the result has the
# query's value of that attribute; red: it does not. `fgfs_lib.search` does the ranking
# (cosine similarity in the attribute's space).

# %%
asen_model = runs["ASEN"].model
candidates = data.test_candidates
pairs = [("sleeve_length", "colour"), ("pant_length", "pattern"), ("coat_length", "colour")]
query_rows, results = [], []
for first, second in pairs:
    a, b = names.index(first), names.index(second)
    q = int(torch.nonzero((test.labels[:, a] >= 0) & (test.labels[:, b] >= 0))[0])
    for attr in (a, b):
        gallery_idx = candidates[candidates[:, 1] == attr, 0]
        gallery = search.embed_gallery(asen_model, test, attr, meta, indices=gallery_idx)
        results.append(search.search(asen_model, test.batch([q])[0], attr, gallery, meta, k=8, exclude=q))
        query_rows.append(q)
fig = viz_retrieval.retrieval_grid(test, query_rows, results, meta, title="ASEN: top-8 per query and attribute")
viz.save(fig, "06_retrieval_examples")
precision = [np.mean([v == int(test.labels[q, r.attribute]) for v in r.values]) for q, r in zip(query_rows, results)]
print("precision@8 per row:", [f"{p:.2f}" for p in precision])

# %% [markdown]
# ## 7. Two attribute-specific spaces
#
# The same 400 test images embedded by ASEN for *colour* and for *sleeve length*, each
# space mapped to 2-D with t-SNE and coloured by both attributes. In an attribute-specific
# space the points should cluster by that attribute's value and ignore the other one
# (compare notebook 05's single general space). The 10-nearest-neighbour agreement under
# each picture measures the same thing without t-SNE.

# %%
colour, sleeve = names.index("colour"), names.index("sleeve_length")
pool = torch.nonzero((test.labels[:, sleeve] >= 0) & (test.labels[:, colour] >= 0)).squeeze(1)
chosen = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed))[:400]]
pick = [colour, sleeve]


def neighbour_agreement(embeddings: torch.Tensor, values: torch.Tensor, k: int = 10) -> float:
    """Mean share of each point's k nearest neighbours (cosine) that share its value."""
    e = F.normalize(embeddings, dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))
    return float((values[sim.topk(k, dim=1).indices] == values[:, None]).float().mean())


agreement = {}
for space in pick:
    rows = torch.stack([chosen, torch.full_like(chosen, space), torch.zeros_like(chosen)], 1)
    emb = evaluate.embed_pairs(asen_model, test, rows)
    points = viz_embeddings.tsne_2d(emb, seed=cfg.seed)
    fig = viz_embeddings.scatter_by_attributes(points, test.labels[chosen][:, pick], [names[a] for a in pick],
                                               [meta.value_names[a] for a in pick],
                                               title=f"ASEN's {names[space]} space, coloured by two attributes")
    viz.save(fig, f"06_tsne_{names[space]}_space")
    agreement[names[space]] = {names[a]: neighbour_agreement(emb, test.labels[chosen, a]) for a in pick}
chance = {names[a]: float((torch.bincount(test.labels[chosen, a]) / len(chosen)).pow(2).sum()) for a in pick}
print("10-NN agreement (rows: space, columns: attribute):")
for space, row in agreement.items():
    print(f"  {space + ' space':<20}" + "".join(f"{k}: {v:.2f}   " for k, v in row.items()))
print("  chance              " + "".join(f"{k}: {v:.2f}   " for k, v in chance.items()))
assert agreement["colour"]["colour"] > chance["colour"] + 0.3

# %% [markdown]
# ## 8. One photo, one attribute name: single-image search
#
# What users of the authors' code kept asking for: "here is my photo; find items with the
# same *sleeve length*, and tell me what it is". `fgfs_lib.search.search` takes a tensor, a
# PIL image or a file path and an attribute *name*, and returns the top-k with indices,
# scores and value names. We save a test image as a PNG and search with the file.

# %%
from PIL import Image

q = int(torch.nonzero(test.labels[:, sleeve] >= 0)[3])
pixels = (test.denormalize(test.batch([q]))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
with tempfile.TemporaryDirectory() as tmp:
    photo = Path(tmp) / "my_photo.png"
    Image.fromarray(pixels).save(photo)
    result = search.search(asen_model, photo, "sleeve_length", test, meta, k=5)
print(result)
print("the photo's true sleeve length:", meta.value_names[sleeve][int(test.labels[q, sleeve])])
# the photo itself is in the gallery: it is found, with a cosine of ~1 (8-bit rounding aside)
assert q in result.indices.tolist() and float(result.scores[0]) > 0.99

# %% [markdown]
# ## 9. What the sampler buys: in-batch vs 3-image triplets
#
# The papers sample triplets (anchor, positive, negative, attribute) and run the backbone on
# all three images: 3 backbone passes buy one triplet of one attribute. In-batch sampling
# runs the backbone once per image and uses *every* valid triplet of *every* attribute inside
# the batch: 64 passes buy tens of thousands of triplets. Same ASEN, same number of images
# through the backbone per epoch (in-batch: 75 steps x 64 images; 3-image: 100 steps x 16
# triplets x 3 images, the papers' batch size). In the quick profile the 3-image run trains
# one epoch live (4,800 backbone passes) and is compared with the in-batch run's first epoch;
# the committed run (`scripts/compare_seeds.py`) trains both for the full 4 epochs on 3 seeds,
# printed after the live comparison. The full profile trains both for the profile's epochs.

# %%
live_epochs = None if cfg.full else 1  # quick: one epoch of 3-image triplets, live
sampler_runs = {}
for label, spec in asen_module.sampler_runs(cfg).items():
    spec = dict(spec)
    if label == "3-image triplets" and live_epochs:
        spec["epochs"] = live_epochs
    sampler_runs[label] = train.train_or_load(spec.pop("model_name"), data, cfg, **spec)
random_valid = evaluate.random_map(data, "valid")["overall"]
curves = {}
for label, run in sampler_runs.items():
    passes = asen_module.backbone_passes(run.history, run.run_config["settings"])
    seconds = np.cumsum([h["train_seconds"] for h in run.history]).tolist()
    curves[label] = {"passes": passes, "seconds": seconds, "map": [h["valid_map"] for h in run.history]}
common = min(c["passes"][-1] for c in curves.values())  # compare at the same number of backbone passes
for label, c in curves.items():
    at = max(i for i, p in enumerate(c["passes"]) if p <= common)
    gain = c["map"][at] - random_valid
    print(f"{label:<18} valid MAP {c['map'][at]:5.1f} after {c['passes'][at]:,} passes ({c['seconds'][at]:.0f} s of "
          f"training) -> {1000 * gain / c['passes'][at]:.2f} MAP above random per 1k passes")
fig = viz_retrieval.map_per_cost(curves, random_map=random_valid, title="ASEN: valid MAP per unit of training cost")
viz.save(fig, "06_sampler_cost")
for label in ("ASEN (in-batch triplets)", "ASEN (3-image triplets)") if seeds_report is not None else ():
    row = seeds_report["summary"]["models"][label]["overall"]
    passes = seeds_report["per_seed"]["0"][label]["backbone_passes"][-1]
    print(f"committed, seeds {seeds_report['seeds']}: {label:<26} test MAP {row['mean']:.1f} ± {row['std']:.1f} "
          f"after {passes:,} passes")

# %% [markdown]
# The seconds depend on the machine and on what else runs on it (the numbers above are
# from when each run was trained); the passes do not. Live (seed 0, quick): after the same
# 4,800 backbone passes the in-batch run is at valid MAP 75.1, the 3-image run at
# 32.2. Committed (3 seeds, 19,200 passes each): test MAP 87.3 ± 0.9 against
# 48.5 ± 3.2. One backbone pass per image buys far more triplets.

# %% [markdown]
# ## 10. The full profile
#
# With `FGFS_PROFILE=full` on a GPU the cells above train every model with the papers'
# setting (ResNet-50 cut after layer3, 224 px FashionSynth, 3-image triplets, 50 epochs) and
# the comparison becomes the paper's. The cell below additionally trains ASENet_V2's form of
# the spatial attention there; in the quick profile it only prints what it would do.

# %%
if cfg.full:
    v2 = train.train_or_load("asen_v2", data, cfg)
    v2_map = evaluate.retrieval_map(v2.model, data, "test")
    print(f"ASENet_V2-style ASA: test MAP {v2_map['overall']:.1f} (ASEN v1: {table['ASEN']['overall']:.1f})")
else:
    print("quick profile: ASENet_V2 (build_model('asen_v2', ...)) is trained only in the full profile")

# %% [markdown]
# ## 11. What we found
#
# - **Every ordering of the paper holds on FashionSynth**, on each of 3 seeds
#   (`results/06_asen_seeds.md`, quick, every model from the pretrained small CNN): test MAP
#   ASEN 87.3 ± 0.9, w/o ASA 83.2 ± 0.6, w/o ACA 79.4 ± 0.6, CSN 63.6 ± 2.9,
#   triplet network 34.3 ± 0.4 (random 16.9).
# - **Each attention module pays where its kind of evidence is** (3-seed means,
#   `results/06_asen_seeds.md`; the live table above is seed 0 alone). Mean over collar, lapel,
#   neckline and neck: ASEN 81.1, w/o ASA 74.2, w/o ACA 79.6, CSN 65.9, triplet network 58.7
#   (random 20.9). Removing the *spatial* attention costs 7.0 points on these small details
#   and nothing on colour (98.2 vs 98.0); removing the *channel* attention costs 10.5 on
#   colour (87.5) and 1.5 on the details. The difficulty ladder (`results/06_difficulty_ladder.md`, one seed) finds ASA
#   worth 6-10 points on the details at every detail size from 2 % to 14 % of the image.
# - **The triplet network stays clearly below ASEN on the details** (58.7 vs 81.1, 3-seed
#   means) and learns little colour (25.2): one space has to trade attributes off, and it
#   keeps what the pretrained backbone separates best.
# - **Attribute-specific spaces are specific**: in ASEN's colour space 99 % of each image's
#   10 nearest neighbours share its colour (chance 13 %), in its sleeve-length space 81 % share
#   its sleeve length (chance 14 %) and only 26 % its colour. The single-image search for
#   sleeve length returns the query's own value (extra long) at ranks 1-5.
# - **In-batch triplets learn far more per backbone pass** than the papers' 3-image
#   triplets: after the same 19,200 backbone passes, test MAP 87.3 ± 0.9 vs
#   48.5 ± 3.2 over 3 seeds.
# - **Shortcuts checked**: the two trivial rows (garment pixel count, mean colour) stay within
#   1.2 MAP of random on every attribute but colour and pattern (section 3).
# - **What the pretrained start means for the claims.** The papers start from ImageNet; the
#   quick profile starts from a backbone pretrained on other FashionSynth images with the
#   same attribute labels (`scripts/pretrain_quick_backbone.py`), a stronger head start than
#   ImageNet gives on FashionAI. From random weights, notebook 05's CSN with the same budget
#   leaves the four details at random (15.5-30.2 against 15.1-25.9), and ASEN trained 2.5x
#   longer (10 epochs, 750 steps, on an earlier form of the data;
#   `results/06_asen_cli_scratch_seed0.md`) still left sleeve length and the four details at
#   random, so the quick profile can only test the paper's detail claims from this start.
# - **Full profile**: run once on an H100 for 10 epochs of ASEN (`results/full/`); the code
#   path trains all models with the papers' setting and adds ASENet_V2's ASA.
#
# **Reproduce the multi-seed numbers**: `python scripts/compare_seeds.py --seeds 0 1 2`
# (quick: 65 min measured with other jobs on the 2-core CPU; it reuses the notebooks'
# checkpoints) writes `results/06_asen_seeds.json` and `.md`.
