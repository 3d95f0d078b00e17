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
# # 01 · Datasets: FashionSynth and the five real datasets
#
# **Goals.**
# - Meet **FashionSynth**, the course's embedded dataset: garments drawn procedurally, every
#   attribute labelled *and localised* (a ground-truth box and mask per attribute).
# - See the samples of every attribute value, the regions, the label statistics and which
#   attribute applies to which garment.
# - Understand the two evaluation protocols (FashionAI-style and multi-label) and compute
#   the MAP a random ranking gets, our sanity anchor for every later notebook.
# - Know how to plug in FashionAI, DARN, DeepFashion, Zappos50k and Shopping100k, and how
#   `verify-data` finds dead images and broken label lines.
#
# **Papers and equations.** The data formats and protocols are those of ASEN (Ma et al.,
# AAAI 2020: FashionAI, DARN, DeepFashion splits), CSN (Veit et al., CVPR 2017: Zappos50k
# triplets) and FashionSearchNet / ADDE (Shopping100k). One equation: the expected average
# precision of a random ranking, derived in section 5.
#
# **Run time and expected numbers.**
#
# | profile | hardware | run time | expected numbers |
# |---|---|---|---|
# | quick | 2-core CPU | about 20 s with the data cached (16.9 s measured in a fresh-clone `./course run` at c845b1c, benchmarks/RESULTS.md, after notebook 00 generated it), plus about 18 s the first time (12,000 images at 64 px, 2 processes) | 7,200 / 2,400 / 2,400 images; 59-481 test queries per attribute (1,983 in all); random-ranking MAP 16.9 (test, FashionAI protocol) |
# | full | 1 GPU | ~10 min the first time (180,000 images at 224 px, in parallel) | 144k / 18k / 18k images; not yet measured |

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

import fgfs_lib.data as data
import fgfs_lib.viz.data as vdata
from fgfs_lib.data import synth

# %% [markdown]
# ## 1. Why an embedded dataset, and what makes it hard in the right way
#
# The real datasets need sign-ups and tens of GB, and none of them says *where* an
# attribute is in the image. FashionSynth is generated on the fly (18 s with 2 processes in
# the quick profile) and stores, for every applicable attribute, its **region**, so later
# notebooks can *measure* whether attention looks at the neckline instead of only showing
# heat maps.
#
# Design decisions, written down *before* any model is compared (the same text is in the
# docstring of `fgfs_lib.data.synth`):
#
# - **Seven garment categories**, each with only the attributes that make sense (no sleeve
#   length on trousers): labels have "not applicable" entries (`-1`) as in real data.
# - **FashionAI's eight attributes** plus DARN-style **colour** and **pattern**. Value
#   counts follow FashionAI where they can be told apart at 64 px (FashionAI's "invisible"
#   value is never drawn).
# - **Local details are small**: neckline, collar, lapel and neck designs live in zones of
#   about 5-10 % of the image (the default `calibrated` preset; tops are shot as upper-body
#   close-ups, the way FashionAI photographs them), and neighbouring values differ in a few
#   dozen pixels. These are the hard attributes, as in FashionAI.
# - **Nuisance independent of every label**: scale, position, rotation (±8°), body shape
#   and pose, skin tone, hair, background colour and texture, a neutral second garment,
#   and an occasional object in front of (occluder) or behind (distractor) the figure.
#   Colour and pattern are drawn independently of the other attributes, so the overall
#   look is a poor proxy for any single attribute.
# - **Difficulty knobs** recorded with the data: `detail_scale` (size of the details),
#   `detail_contrast`, `framing`, `size_balance` and `clutter` (background contrast and
#   object probability); the presets `calibrated` (default) and `hard` set them
#   (`fgfs_lib.data.synth` measures both).

# %%
t0 = time.perf_counter()
ds = data.load("fashionsynth", cfg=cfg)
print(f"loaded in {time.perf_counter() - t0:.1f} s")
print(ds.summary())
meta = ds.meta
print({k: ds.config[k] for k in ("profile", "seed", "image_size", "detail_scale", "clutter", "config_hash")})

# %%
assert meta.attribute_names == synth.ATTRIBUTES and meta.num_attributes == 10
assert len(ds.train) > len(ds.valid) > 0 and ds.train.image_size == cfg.pick(quick=64, full=224)
assert min(meta.num_values) >= 4
for name, n in zip(meta.attribute_names, meta.num_values):
    print(f"{name:16s} {n:2d} values: {', '.join(meta.value_names[meta.attribute_id(name)])}")

# %% [markdown]
# ## 2. What a batch is: derive it, then use the library
#
# Images are stored as `uint8` and normalised on the fly with the ImageNet mean and
# standard deviation (so a backbone with ImageNet weights sees what it expects). For the
# in-memory FashionSynth splits, `ImageSplit.batch(indices)` is one indexing operation plus
# this arithmetic: no Python loop over images.

# %%
idx = torch.tensor([0, 5, 42, 7])
raw = ds.train.raw(idx)                                   # uint8 [B, 3, H, W]
mean = torch.tensor(data.IMAGENET_MEAN).view(1, 3, 1, 1)
std = torch.tensor(data.IMAGENET_STD).view(1, 3, 1, 1)
mine = (raw.float() / 255 - mean) / std
assert torch.allclose(mine, ds.train.batch(idx), atol=1e-6)
assert torch.allclose(ds.train.denormalize(mine) * 255, raw.float(), atol=1e-3)
print(raw.shape, raw.dtype, "->", mine.shape, mine.dtype)

# %% [markdown]
# ## 3. Samples per attribute value
#
# One figure per attribute: rows are values, columns random training images with that
# value. For the four design attributes we also zoom on the attribute's region, because
# at 64 px the details are only a few pixels wide: that is the point.

# %%
for a, name in enumerate(meta.attribute_names):
    fig = vdata.value_grid(ds.train, meta, a, per_value=6, seed=cfg.seed)
    viz.save(fig, f"01_values_{name}")

# %%
fig = vdata.value_grid(ds.train, meta, "sleeve_length", per_value=8, seed=cfg.seed)

# %%
for name in ("neckline_design", "collar_design", "lapel_design", "neck_design"):
    fig = vdata.value_grid(ds.train, meta, name, per_value=8, seed=cfg.seed, crop=True)
    viz.save(fig, f"01_values_{name}_zoom")

# %% [markdown]
# ## 4. Regions: where each attribute is
#
# For every applicable attribute the data has a mask (`split.mask(i, a)`, tinted magenta
# below) and its bounding box (`split.boxes[i, a]`, yellow). Design attributes have a fixed
# zone around the neck (the union of where any of their values can be drawn, so the zone's
# shape does not leak the value); sleeve length has the arms; the lengths of skirts, coats
# and trousers the lower body; colour and pattern the garment's own pixels.

# %%
cats = ds.train.categories
examples = [int(torch.nonzero(cats == c)[0]) for c in range(len(meta.category_names))]
fig = vdata.region_overlay(ds.train, examples, meta=meta)
viz.save(fig, "01_regions")

# %% [markdown]
# Derive a box from a mask by hand and compare with the stored one:

# %%
i, a = examples[3], meta.attribute_id("neckline_design")
m = ds.train.mask(i, a)
ys, xs = torch.nonzero(m, as_tuple=True)
mine = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
assert torch.equal(mine, ds.train.boxes[i, a])
assert torch.equal(torch.isnan(ds.train.boxes[..., 0]), ds.train.labels < 0)  # NaN exactly where n/a
print("box", mine.tolist(), "mask pixels", int(m.sum()))

# %%
area = {}
for a, name in enumerate(meta.attribute_names):
    rows = torch.nonzero(ds.train.labels[:2000, a] >= 0).flatten()
    area[name] = 100 * ds.train.region_masks(rows, a).float().mean().item()
    print(f"{name:16s} region = {area[name]:5.1f} % of the image")
# the details stay small (issue 10's bar for the quick profile: at most 12 % of the image)
assert all(1 < area[n] < 12 for n in ("collar_design", "lapel_design", "neckline_design", "neck_design"))
assert min(area[n] for n in ("skirt_length", "coat_length", "pant_length")) > 12

# %% [markdown]
# ## 5. Label statistics and applicability
#
# Which attribute is labelled for which category, and how many images each value has
# (values are drawn uniformly within a category, so the bars are flat up to noise).

# %%
fig = vdata.applicability(ds.train, meta)
viz.save(fig, "01_applicability")

# %%
fig = vdata.value_histograms(ds.train, meta)
viz.save(fig, "01_value_counts")

# %%
known = ds.train.labels >= 0
for c, cat in enumerate(meta.category_names):
    expected = torch.tensor([a in synth.CATEGORY_ATTRIBUTES[cat] for a in meta.attribute_names])
    assert torch.equal(known[cats == c], expected.expand(int((cats == c).sum()), -1))
for a in range(meta.num_attributes):
    col = ds.train.labels[:, a]
    counts = torch.bincount(col[col >= 0], minlength=meta.num_values[a])
    assert counts.min() > 0.5 * counts.float().mean()  # every value is well represented
print("labelled attributes per training image:", known.sum(1).float().mean().item())

# %% [markdown]
# ## 6. The two protocols, and the MAP of a random ranking
#
# **FashionAI protocol** (ASEN's evaluation): a query `(i, a, v)` is answered by ranking the
# candidates *of the same attribute*; relevant = same value. A FashionAI photo is labelled
# for one attribute, so in the real FashionAI folders each image is one row
# (`fashionai.convert_fashionai_csv` writes them with `fgfs_lib.data.core.fashionai_protocol`:
# 20 % of each attribute's images are queries, 80 % candidates). A FashionSynth image carries
# three to five attributes, and keeping only one of them would leave whole categories out of
# some attributes' rows (the docstring of `fgfs_lib.data.core.stratified_protocol` has the
# numbers). So here every applicable attribute of every validation and test image is a row,
# and the queries are drawn per garment category: 20 % of the images of each category are
# queries for all their attributes, the rest candidates (`stratified_protocol`). Each
# attribute's rows, queries included, then hold its categories in proportion.
#
# **Multi-label protocol**: 20 % of all the images, drawn without regard to category, are
# queries, and again every applicable attribute of every image is a row; it is what search
# with attribute manipulation (notebook 09) needs. The two protocols differ only in how the
# query images are drawn, and on the test split they give almost the same rows: 1,983 query
# and 7,909 candidate rows against 1,979 and 7,913 (printed below).

# %%
fig = vdata.protocol_counts(ds)
viz.save(fig, "01_protocol_counts")
rows = torch.cat([ds.test_queries, ds.test_candidates])
# every applicable attribute of every test image is one row, and an image is a query or a
# candidate for all its attributes (queries drawn per category: each category in proportion)
assert len(rows) == int((ds.test.labels >= 0).sum()) and len(torch.unique(rows[:, :2], dim=0)) == len(rows)
assert set(ds.test_queries[:, 0].tolist()).isdisjoint(ds.test_candidates[:, 0].tolist())
assert torch.bincount(ds.test_queries[:, 1], minlength=10).min() >= cfg.pick(quick=40, full=300)
multi = data.load("fashionsynth", cfg=cfg, protocol="multilabel")
assert set(multi.test_queries[:, 0].tolist()).isdisjoint(multi.test_candidates[:, 0].tolist())
print(f"multi-label: {len(multi.test_queries)} query rows, {len(multi.test_candidates)} candidate rows")

# %% [markdown]
# **Random-ranking MAP.** With $N$ candidates of which $R$ are relevant, a random ranking
# puts a relevant item at rank $k$ with probability $R/N$; given that, the expected
# precision at $k$ is $(1 + (k-1)\frac{R-1}{N-1})/k$. Summing over $k$ and dividing by
# $R$:
#
# $$E[\mathrm{AP}] = \frac{1}{N}\Big(H_N + \frac{R-1}{N-1}\,(N - H_N)\Big),\qquad H_N = \sum_{k=1}^{N} \frac1k .$$
#
# It is a little above $R/N$. We check the formula by simulation, then compute the
# expected MAP of our test split: every later notebook must beat it by a wide margin
# (for FashionAI the ASEN poster reports 15.79; notebook 02 computes 14.9 for a
# FashionAI-shaped split with uniform values).

# %%
def expected_random_ap(R: int, N: int) -> float:
    if R == 0:
        return 0.0
    H = (1.0 / np.arange(1, N + 1)).sum()
    return (H + (R - 1) / (N - 1) * (N - H)) / N if N > 1 else 1.0


rng = np.random.default_rng(cfg.seed)
R, N = 7, 40
sims = []
for _ in range(4000):
    rel = np.zeros(N, bool)
    rel[rng.choice(N, R, replace=False)] = True
    sims.append((np.cumsum(rel) / np.arange(1, N + 1))[rel].mean())
print(f"formula {expected_random_ap(R, N):.4f}  simulation {np.mean(sims):.4f}")
assert abs(expected_random_ap(R, N) - np.mean(sims)) < 0.01

# %%
def random_map(queries: torch.Tensor, candidates: torch.Tensor) -> tuple[float, dict[str, float]]:
    aps, per = [], {}
    for a in range(meta.num_attributes):
        cand = candidates[candidates[:, 1] == a]
        q = queries[queries[:, 1] == a]
        vals = [expected_random_ap(int((cand[:, 2] == v).sum()), len(cand)) for v in q[:, 2].tolist()]
        per[meta.attribute_names[a]] = 100 * float(np.mean(vals)) if vals else float("nan")
        aps += vals
    return 100 * float(np.mean(aps)), per


overall, per_attr = random_map(ds.test_queries, ds.test_candidates)
print(f"expected MAP of a random ranking (test, FashionAI protocol): {overall:.1f}")
print({k: round(v, 1) for k, v in per_attr.items()})
assert 10 < overall < 35

# %% [markdown]
# ## 7. The difficulty knobs
#
# The same image drawn with smaller details (`detail_scale=0.7`) and without clutter
# (`clutter=0`). The setting is part of the configuration hash, so each variant is cached
# separately and recorded in `ds.config`. We do **not** tune these to make any method win;
# the quick profile uses the defaults (1.0, 1.0).

# %%
i = examples[3]
variants = {"default": {}, "detail_scale=0.7": {"detail_scale": 0.7}, "detail_scale=1.3": {"detail_scale": 1.3},
            "clutter=0": {"clutter": 0.0}, "clutter=2": {"clutter": 2.0}}
images = []
for options in variants.values():
    conf = synth.synth_config(cfg.profile, 0, **options)
    rgb, _, _ = synth.render_image(i, int(cats[i]), ds.train.labels[i].numpy(), conf)
    images.append(torch.from_numpy(rgb).permute(2, 0, 1))
assert torch.equal(images[0], ds.train.raw([i])[0])  # rendering is deterministic
fig = vdata.image_row(images, list(variants))
viz.save(fig, "01_difficulty")

# %% [markdown]
# ## 8. On disk: the ASEN split format
#
# `python -m fgfs_lib make-data --profile quick --seed 0 --out DIR` writes the same folder
# as the cache `load` uses. The split files sit at the top level, in the format of ASEN's
# FashionAI / DARN / DeepFashion releases, with value names added to `meta.json`; images,
# regions (16-bit PNG, bit `a` = region of attribute `a`) and an in-memory cache below, and
# `triplet_split/`: the triplet-relation task (notebook 08) in Zappos50k's CSN list format,
# one condition per attribute, read by `fgfs_lib.data.zappos.load_zappos`:

# %%
for path in sorted(ds.root.iterdir()):
    size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
    print(f"{path.name + ('/' if path.is_dir() else ''):34s} {size / 1e6:8.2f} MB")
print((ds.root / "label_train.txt").read_text().splitlines()[0], "   <- img_id a v a v ...")
print((ds.root / "query_test.txt").read_text().splitlines()[0], "         <- img_id a v")

# %% [markdown]
# ## 9. Plugging in the real datasets
#
# None of them can be downloaded here; with your own copy, each is one call. Every
# reader parses Windows line endings and reports problems as `file:line: reason`.
#
# | dataset | folder layout | load |
# |---|---|---|
# | FashionAI | ASEN split folder, or the raw Tianchi CSV: `fashionai.convert_fashionai_csv("Annotations/label.csv", image_root=ROOT)` writes one | `data.load("fashionai", root=ROOT)` |
# | DARN | ASEN split folder (`filenames_*`, `label_train.txt` with several pairs per line, `query_/candidate_*`, `meta.json`) | `data.load("darn", root=ROOT)` |
# | DeepFashion | ASEN split folder | `data.load("deepfashion", root=ROOT)` |
# | Zappos50k | CSN: `filenames.json`, `tripletlists/{class,closure,gender,heel}_tripletlist_{train,val,test}.txt` | `data.load("zappos50k", root=ROOT)` → triplets `(anchor, closer, farther, condition)` |
# | Shopping100k | ADDE: `imgs_*.txt`, `labels_*.txt` (one-hot groups), `attr_num.txt` | `data.load("shopping100k", root=ROOT, protocol="multilabel")` |
#
# Many DARN image links are dead. `python -m fgfs_lib verify-data --dataset darn --root ROOT
# --write-clean CLEAN` lists every missing or corrupt image and malformed line, exits
# non-zero, and writes split files without them (the images are not copied). Here it is on
# the tiny test fixture, which has a CRLF label file with several pairs per line, a
# malformed line, a missing and a corrupt image:

# %%
from fgfs_lib.data import commands, verify

fixture = config.repo_root() / "tests" / "fixtures" / "asen"
report = verify.verify("darn", fixture)
print(report.format())
assert not report.ok and {p.kind for p in report.problems} == {"format", "missing", "corrupt"}

# %%
clean_dir = cfg.output_dir / "01_clean_darn_fixture"
rc = commands.verify_data(["--dataset", "darn", "--root", str(fixture), "--write-clean", str(clean_dir)])
darn = data.load("darn", root=clean_dir, image_size=32)
print(darn.summary())
assert rc == 2 and verify.verify("darn", clean_dir).ok and darn.train.boxes is None

# %%
try:
    data.load("deep-fashion")
except ValueError as err:
    print("ValueError:", err)
try:
    data.load("darn", root=cfg.data_dir / "darn-not-here")
except FileNotFoundError as err:
    print("FileNotFoundError:", err)

# %% [markdown]
# ## Summary
#
# - FashionSynth: 10 attributes (8 FashionAI + colour + pattern) over 7 categories, with
#   "not applicable" labels, small local details (about 5-10 % of the image) and nuisance that is
#   independent of every label. Every applicable attribute has a ground-truth box and mask.
# - `data.load("fashionsynth", cfg=cfg)` returns train / valid / test `ImageSplit`s and the
#   query / candidate rows of the FashionAI protocol (or `protocol="multilabel"`).
# - A random ranking scores the MAP printed in section 6: the floor for every model.
# - The real datasets load through the same `RetrievalData` once you have them;
#   `verify-data` finds and cleans what is broken.
#
# Next: notebook 02 builds triplets and the MAP metric on this data.
