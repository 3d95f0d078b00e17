"""FashionSynth: procedurally drawn garments with ground-truth attribute regions.

Introduced in ``notebooks/01_datasets.py``.

Why a synthetic dataset
-----------------------
The five real datasets (FashionAI, DARN, DeepFashion, Zappos50k, Shopping100k) need sign-ups
and tens of GB. FashionSynth is small enough to generate on a laptop CPU in seconds, and it
has something no real dataset has: the ground-truth *region* of every attribute, so the
attention of ASEN / AG-MAN and the activation maps of FashionSearchNet can be *measured*
(pointing game, attention mass inside the region) instead of only shown.

What is drawn
-------------
A stylised figure (head, neck, arms, legs; random skin tone and hair) wears one *main*
garment of one of seven categories, plus a plain neutral garment for the other half of the
body. Only the main garment is labelled. Each category carries only the attributes that make
sense for it (``CATEGORY_ATTRIBUTES``), so label vectors have "not applicable" entries (-1)
as in real data:

==========  ========================================================================
category    attributes
==========  ========================================================================
tee         sleeve_length, neckline_design, colour, pattern
shirt       sleeve_length, collar_design, colour, pattern
sweater     sleeve_length, neck_design, colour, pattern
dress       skirt_length, sleeve_length, neckline_design, colour, pattern
coat        coat_length, sleeve_length, lapel_design, colour, pattern
skirt       skirt_length, colour, pattern
trousers    pant_length, colour, pattern
==========  ========================================================================

The eight FashionAI attributes keep FashionAI's meaning; value counts follow FashionAI where
the values can be told apart at 64 px (FashionAI's "invisible" value is never drawn):
skirt 6, sleeve 7 (FashionAI 9), coat 7 (8), pant 6, collar 5, lapel 5, neckline 7 (10),
neck 4 (5). DARN-style global attributes: colour (8 values) and pattern (5 values).

Design rationale: region sizes and confounders
----------------------------------------------
* **Small local details.** The design attributes (neckline, collar, lapel, neck) live in
  fixed zones around the neck; a zone covers 4-8 % of the image (figures under Presets), and
  neighbouring values differ in a few dozen pixels (crew vs round neckline, notched vs peak
  lapel). These should be the hard attributes, as they are in FashionAI. The lengths'
  regions are several times larger, and so is the garment's (colour, pattern).
* **Lengths** (sleeve, skirt, coat, pant) are read against the body: a hem ends at a height
  relative to the knee or ankle, a sleeve at a point along the arm. Their regions are larger
  (the arms; the lower body) because the evidence is spread out.
* **Global attributes** (colour, pattern) cover the whole garment and are easy: a model that
  only learns colour gets colour right and nothing else.
* **Nuisance, independent of every label:** scale (figure height 72-95 % of the image),
  position, a rotation of up to +-8 degrees, body proportions and pose (arm angle, stance),
  skin tone, hair colour, background colour and texture (gradients, blotches, wall stripes,
  a floor line), the neutral second garment, and with probability ``0.35 * clutter`` an
  object (a bag or a ball) drawn in front of the figure (an occluder) or behind it (a
  distractor). Colour and pattern vary independently of every other attribute, so overall
  appearance is a poor proxy for any single attribute.
* **Confounders we allow on purpose:** the category is visible and determines which
  attributes apply (as in real data). Because each value is drawn uniformly and
  independently, no label predicts another one within a category.
* **Difficulty settings** are part of the recorded configuration: ``detail_scale`` (size of
  the local details and their zones, smaller is harder), ``detail_contrast`` (0: details in
  weak shades of the garment; 1: black or white), ``size_balance`` (below) and ``clutter``
  (background contrast and the probability of an object; 0 = clean, 1 = default).

Presets (generator version 4)
-----------------------------
``preset="hard"`` is version 3's setting, pixel for pixel: details drawn in weak shades of
the garment (neighbouring values differ in a median of 38 / 48 / 25 / 19 pixels for lapel /
collar / neckline / neck; 120 images of seed 0, pixels changing by more than 25/255), and a
longer garment covering more pixels. Two things went wrong there, both measured on the
quick profile: 4-epoch ASEN runs learned none of the four details (MAP at random over three
seeds, ``results/06_asen_seeds.md``, written on version 3 data), and the
garment's pixel count alone, with no learning, ranked skirt, coat and pant length 11.8,
17.0 and 27.8 MAP points above random (:mod:`fgfs_lib.trivial_baseline`, 4,000 images,
``results/synth_calibration/hard_4000.json``): the lengths had a shortcut.

``preset="calibrated"`` (the default) changes four knobs, and nothing else:

* ``detail_contrast=0.8``: collars, lapels and neck bands drawn close to black or white
  against the garment, folds and seams back in the garment's colour, and a trim along the
  neckline's cut-out.
* ``framing="tops"``: tees, shirts and sweaters (the categories whose only length is the
  sleeve) are shot as upper-body close-ups, the way FashionAI photographs tops, about 1.5x
  closer; dresses, coats, skirts and trousers stay full-body shots. A top's details
  (collar, neck, a tee's neckline) then cover about 2.2x more pixels.
* ``detail_scale=1.0``: the details keep version 3's size. On the test images that carry
  them the regions cover on average collar 9.8 %, lapel 5.8 %, neckline 5.7 % and neck 7.3 %
  of the image
  (``results/synth_calibration/calibrated.json``). Neighbouring values differ in a median
  of 132 / 54 / 53 / 66 pixels for collar / lapel / neckline / neck (hard: 48 / 38 / 25 / 19;
  120 images of seed 0; ``tests/test_data_synth.py`` checks calibrated > 1.3 x hard).
* ``size_balance=1``: the figure is zoomed by ``(A_mid / A) ** 0.5`` (:func:`size_balance_factor`),
  so the garment covers the same number of pixels whatever its lengths: short garments are
  shot closer, long ones from further away. Ranking by pixel count is then within
  0.5 MAP of random on every attribute, and by mean colour within 1.2 except on colour and
  pattern (+74.9, +2.1; ``calibrated.json``, 12,000 images). The price: the figure's own size (head, shoulders)
  now tells a garment's length; a model can read that, the trivial statistics cannot.

What the preset changes for learning, measured with notebook 03's classifier trained from
scratch (4,000 steps of 32 images, validation accuracy above the majority value,
``results/synth_calibration/README.md``): with full-body framing and ``detail_scale=1.15``
collar +0.26, lapel +0.32, neckline +0.16, neck +0.34; with the preset's framing and
``detail_scale=1.0`` collar +0.31, lapel +0.31, neckline +0.24, neck +0.55. Either way the
details take thousands of steps from scratch; the quick profile therefore starts its
backbone from weights pretrained on other FashionSynth images
(:mod:`fgfs_lib.models.backbones`), as the papers start from ImageNet.

Regions
-------
For every applicable attribute the image has a ground-truth region: for the design
attributes a fixed zone (the union of where any value of that attribute can be drawn, so
the zone's shape does not leak the value), for sleeve length both arms, for skirt, coat and
pant length the lower body, for colour and pattern the garment's own pixels. On disk a
region mask is one 16-bit PNG per image (bit ``a`` set = pixel inside attribute ``a``'s
region) plus ``boxes_<split>.npy`` (float32 [N, A, 4], pixel x0, y0, x1, y1, NaN where the
attribute does not apply).

Determinism and layout
----------------------
Labels are drawn in the main process from ``seed``; every image's nuisance comes from its
own generator ``numpy.random.default_rng([seed, image_index])``, so the output does not
depend on how many processes render it: the same seed and configuration give byte-identical
files. :func:`make_fashionsynth` writes into a temporary folder and renames it. The folder
follows the ASEN split format (see :mod:`fgfs_lib.data.asen_format`) with value names added,
so the same reader loads synthetic and real data; :func:`write_synth_splits` writes its split
files with :func:`fgfs_lib.data.asen_format.write_folder`. The subfolder ``triplet_split/``
holds the triplet-relation task (Zappos50k's, Table 4 of AG-MAN) in Zappos50k's CSN list
format, one condition per attribute (:func:`write_relation_split`; read it with
:func:`fgfs_lib.data.zappos.load_zappos`); it is derived from the labels and the seed, so it is
not part of the configuration or its hash, and folders written before it existed load as
before. Entry points:

* :func:`synth_config` the configuration dict of a profile (with overrides);
* :func:`make_fashionsynth` ``(out_dir, profile="quick", seed=0, num_images=None,
  image_size=None, processes=None, **options) -> Path`` writes a dataset folder (about
  1 s for ``num_images=300``: the size used in tests);
* :func:`ensure_fashionsynth` ``(cfg, **overrides) -> Path`` the cached folder
  ``cfg.data_dir / "fashionsynth" / <config hash>``, generated on first use;
* :func:`render_image` one image, its region masks and boxes (for the notebook).
* :func:`relation_triplets` ``(labels, num_triplets, seed)`` triplet-relation rows
  ``(anchor, closer, farther, condition)`` of one split.
"""

from __future__ import annotations

import colorsys
import json
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

GENERATOR_VERSION = 4

ATTRIBUTES: list[str] = [
    "skirt_length", "sleeve_length", "coat_length", "pant_length", "collar_design",
    "lapel_design", "neckline_design", "neck_design", "colour", "pattern",
]
VALUES: dict[str, list[str]] = {
    "skirt_length": ["mini", "short", "knee", "midi", "ankle", "floor"],
    "sleeve_length": ["sleeveless", "cap", "short", "elbow", "three_quarter", "wrist", "extra_long"],
    "coat_length": ["cropped", "waist", "hip", "thigh", "knee", "midi", "ankle"],
    "pant_length": ["micro", "short", "knee", "capri", "cropped", "full"],
    "collar_design": ["pointed", "peter_pan", "mandarin", "puritan", "sailor"],
    "lapel_design": ["notched", "peak", "shawl", "wide_shawl", "collarless"],
    "neckline_design": ["crew", "round", "v_neck", "deep_v", "square", "boat", "sweetheart"],
    "neck_design": ["turtle", "low_turtle", "ruffle", "cowl"],
    "colour": ["red", "orange", "yellow", "green", "blue", "purple", "white", "black"],
    "pattern": ["plain", "horizontal_stripes", "vertical_stripes", "dots", "checks"],
}
CATEGORIES: list[str] = ["tee", "shirt", "sweater", "dress", "coat", "skirt", "trousers"]
CATEGORY_PROBS: list[float] = [0.13, 0.15, 0.13, 0.16, 0.19, 0.12, 0.12]
CATEGORY_ATTRIBUTES: dict[str, list[str]] = {
    "tee": ["sleeve_length", "neckline_design", "colour", "pattern"],
    "shirt": ["sleeve_length", "collar_design", "colour", "pattern"],
    "sweater": ["sleeve_length", "neck_design", "colour", "pattern"],
    "dress": ["skirt_length", "sleeve_length", "neckline_design", "colour", "pattern"],
    "coat": ["coat_length", "sleeve_length", "lapel_design", "colour", "pattern"],
    "skirt": ["skirt_length", "colour", "pattern"],
    "trousers": ["pant_length", "colour", "pattern"],
}
A = len(ATTRIBUTES)
ATTR_ID = {name: i for i, name in enumerate(ATTRIBUTES)}
DETAIL_ATTRIBUTES = ("collar_design", "lapel_design", "neckline_design", "neck_design")  # the small local ones

PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": {"num_images": 12_000, "image_size": 64, "valid_fraction": 0.2, "test_fraction": 0.2},
    "full": {"num_images": 180_000, "image_size": 224, "valid_fraction": 0.1, "test_fraction": 0.1},
}
DEFAULT_OPTIONS: dict[str, Any] = {
    "detail_scale": 1.0,      # size of the local details and their zones (smaller = harder)
    "detail_contrast": 0.0,   # 0 = the details in weak shades of the garment; 1 = black / white
    "size_balance": 0.0,      # 1 = figure scale cancels the garment's area (size does not tell length)
    "framing": "full",        # "tops": tee, shirt and sweater shot as upper-body close-ups
    "clutter": 1.0,           # background contrast and object probability (0 = clean)
    "scale_range": [0.72, 0.95],  # figure height as a fraction of the image height
    "max_rotation": 8.0,      # degrees
    "query_fraction": 0.2,    # FashionAI protocol: 20 % queries, 80 % candidates
}
# Named difficulty presets: a preset sets DEFAULT_OPTIONS' knobs, explicit options win.
# ``hard`` is generator version 3's setting (details in weak garment shades, garment size
# free to predict length); ``calibrated`` is the default, measured in the module docstring.
PRESETS: dict[str, dict[str, Any]] = {
    "hard": {},
    "calibrated": {"detail_scale": 1.0, "detail_contrast": 0.8, "size_balance": 1.0, "framing": "tops"},
}
DEFAULT_PRESET = "calibrated"

# ----------------------------------------------------------------------------------------
# Values, in the figure's canonical coordinates: x in [0, 100] (centre 50), y in [0, 100]
# from the top of the head (0) to the soles (98). Shoulder line y = 17, waist 44, hip 50,
# knee about 72, ankle 94.
# ----------------------------------------------------------------------------------------
SKIRT_HEM_Y = [57.0, 63.0, 71.0, 79.0, 88.0, 96.0]
PANT_HEM_Y = [55.0, 61.0, 70.0, 79.0, 86.0, 95.0]
COAT_HEM_Y = [40.0, 47.0, 54.0, 62.0, 71.0, 80.0, 90.0]
SLEEVE_FRACTION = [0.0, 0.15, 0.3, 0.5, 0.7, 0.92, 1.1]  # of the arm length (shoulder -> wrist)
ARM_LENGTH = 38.0
SHOULDER_Y = 17.0

COLOUR_HSV = {  # hue in degrees, (sat range), (value range)
    "red": (0, (0.75, 1.0), (0.7, 0.95)), "orange": (28, (0.8, 1.0), (0.85, 1.0)),
    "yellow": (54, (0.75, 1.0), (0.88, 1.0)), "green": (125, (0.6, 0.95), (0.5, 0.85)),
    "blue": (218, (0.7, 1.0), (0.6, 0.95)), "purple": (280, (0.5, 0.85), (0.5, 0.85)),
    "white": (0, (0.0, 0.06), (0.92, 1.0)), "black": (0, (0.0, 0.15), (0.08, 0.2)),
}
SKIN_TONES = np.array([[245, 208, 180], [232, 184, 140], [205, 150, 105], [160, 105, 70],
                       [110, 70, 45]], dtype=np.float64)
NEUTRALS = np.array([[128, 128, 128], [196, 184, 160], [150, 142, 110], [88, 96, 110],
                     [170, 170, 176]], dtype=np.float64)


def synth_config(profile: str = "quick", seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """The full generator configuration of ``profile`` (what is hashed and recorded)."""
    if profile not in PROFILE_DEFAULTS:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILE_DEFAULTS)}")
    preset = overrides.pop("preset", None) or DEFAULT_PRESET
    if preset not in PRESETS:
        raise ValueError(f"unknown FashionSynth preset {preset!r}; use one of {', '.join(PRESETS)}")
    config: dict[str, Any] = {"dataset": "fashionsynth", "version": GENERATOR_VERSION,
                              "profile": profile, "seed": int(seed), "preset": preset}
    config.update(PROFILE_DEFAULTS[profile])
    config.update(DEFAULT_OPTIONS)
    config.update(PRESETS[preset])
    unknown = set(overrides) - set(config) - {"processes"}
    if unknown:
        raise TypeError(f"unknown FashionSynth option(s) {sorted(unknown)}; valid: {sorted(config)}")
    for key, value in overrides.items():
        if key != "processes" and value is not None:
            config[key] = value
    config["num_images"] = int(config["num_images"])
    config["image_size"] = int(config["image_size"])
    if config["num_images"] < 20:
        raise ValueError(f"num_images must be at least 20, got {config['num_images']}")
    if config["image_size"] < 16:
        raise ValueError(f"image_size must be at least 16, got {config['image_size']}")
    config["scale_range"] = [float(v) for v in config["scale_range"]]
    return config


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the configuration (names the cache folder)."""
    from ..config import stable_hash

    return stable_hash(config)


# ----------------------------------------------------------------------------------------
# Labels (main process, one generator for the whole dataset)
# ----------------------------------------------------------------------------------------
def detail_region_shares(split: Any, attribute_names: Sequence[str]) -> dict[str, float]:
    """Per design detail: the mean share of the image its ground-truth region covers, over the
    images of ``split`` (an :class:`~fgfs_lib.data.ImageSplit`) that carry it."""
    out = {}
    for name in DETAIL_ATTRIBUTES:
        a = list(attribute_names).index(name)
        rows = (split.labels[:, a] >= 0).nonzero().flatten()
        out[name] = float(split.region_masks(rows, a).float().mean())
    return out


def sample_labels(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Category ids [N] and label matrix [N, A] (-1 = not applicable), values uniform."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    categories = rng.choice(len(CATEGORIES), size=num_images, p=CATEGORY_PROBS)
    labels = np.full((num_images, A), -1, dtype=np.int64)
    raw = rng.random((num_images, A))
    for a, name in enumerate(ATTRIBUTES):
        n = len(VALUES[name])
        applies = np.array([name in CATEGORY_ATTRIBUTES[c] for c in CATEGORIES])[categories]
        labels[applies, a] = np.minimum((raw[applies, a] * n).astype(np.int64), n - 1)
    return categories, labels


# ----------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------
def _ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 360.0,
             n: int = 16) -> list[tuple[float, float]]:
    angles = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in angles]


def _mirror(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(100.0 - x, y) for x, y in points]


def _scale_about(points: Sequence[tuple[float, float]], anchor: tuple[float, float],
                 k: float) -> list[tuple[float, float]]:
    ax, ay = anchor
    return [(ax + (x - ax) * k, ay + (y - ay) * k) for x, y in points]


def _segment_quad(p0: np.ndarray, p1: np.ndarray, w0: float, w1: float) -> list[tuple[float, float]]:
    """A quadrilateral around the segment p0 -> p1, half widths w0 at p0 and w1 at p1."""
    d = p1 - p0
    d = d / (np.linalg.norm(d) + 1e-9)
    n = np.array([-d[1], d[0]])
    return [tuple(p0 + n * w0), tuple(p1 + n * w1), tuple(p1 - n * w1), tuple(p0 - n * w0)]


ANCHOR = (50.0, SHOULDER_Y)


def neckline_shapes() -> list[list[list[tuple[float, float]]]]:
    """Per neckline value, the skin-coloured cut-out polygons (canonical coordinates)."""
    y = SHOULDER_Y
    return [
        [_ellipse(50, y - 0.5, 5, 3.5, 0, 180)],                    # crew
        [_ellipse(50, y - 0.5, 7, 7.5, 0, 180)],                    # round
        [[(44, y - 0.5), (56, y - 0.5), (50, y + 9)]],              # v_neck
        [[(45.5, y - 0.5), (54.5, y - 0.5), (50, y + 16)]],         # deep_v
        [[(44, y - 0.5), (56, y - 0.5), (56, y + 7), (44, y + 7)]],  # square
        [_ellipse(50, y - 0.5, 12, 3, 0, 180)],                     # boat
        [[(42.5, y - 0.5), (42.5, y + 3), (44.5, y + 6.5), (47.5, y + 6.5), (50, y + 3.5),
          (52.5, y + 6.5), (55.5, y + 6.5), (57.5, y + 3), (57.5, y - 0.5)]],  # sweetheart
    ]


def collar_shapes() -> list[list[tuple[str, list[tuple[float, float]]]]]:
    """Per collar value, (kind, polygon) pieces; kind 'collar' or 'skin' (drawn in order)."""
    y = SHOULDER_Y
    band = [(45.5, y - 3.5), (54.5, y - 3.5), (54.5, y + 0.5), (45.5, y + 0.5)]
    opening = [(47.5, y - 0.5), (52.5, y - 0.5), (50, y + 5)]
    pointed = [(49.6, y - 1), (43, y - 0.5), (45.5, y + 7), (49.6, y + 4)]
    peter = _ellipse(45.6, y - 0.5, 5.0, 6.0, 0, 180, 12)
    puritan = _ellipse(50, y - 1, 13, 8.5, 0, 180, 20)
    mandarin = [(44.8, y - 3.8), (49.5, y - 3.8), (49.5, y + 0.8), (44.8, y + 0.8)]
    sailor_outer = [(37.5, y - 0.5), (62.5, y - 0.5), (62.5, y + 3), (50, y + 14), (37.5, y + 3)]
    sailor_inner = [(45, y - 0.5), (55, y - 0.5), (50, y + 8)]
    return [
        [("collar", band), ("skin", opening), ("collar", pointed), ("collar", _mirror(pointed))],
        [("skin", opening), ("collar", peter), ("collar", _mirror(peter))],
        [("skin", opening), ("collar", mandarin), ("collar", _mirror(mandarin))],
        [("collar", puritan), ("skin", [(49, y - 1), (51, y - 1), (50, y + 7)])],
        [("collar", sailor_outer), ("skin", sailor_inner)],
    ]


def lapel_shapes() -> list[list[tuple[str, list[tuple[float, float]]]]]:
    """Per lapel value, (kind, polygon) pieces; kind 'inner' (shirt), 'lapel', 'line'."""
    y = SHOULDER_Y
    inner = [(44.5, y - 0.5), (55.5, y - 0.5), (50, y + 15)]
    notched = [(45, y - 1), (39, y + 2), (42.8, y + 4.6), (39.5, y + 6.2), (50, y + 15), (46.5, y - 1)]
    peak = [(45, y - 1), (41, y + 2.5), (35.5, y - 0.5), (39.5, y + 7), (50, y + 15), (46.5, y - 1)]
    shawl = [(45, y - 1)] + [(50 - 8.5 * math.sin(t) - 0.5, y + 15 * (1 - math.cos(t)) * 0.5 + 7.5 * (t / math.pi) - 0.0)
                             for t in np.linspace(0.2, math.pi - 0.2, 7)] + [(50, y + 15), (46.5, y - 1)]
    wide = [(45, y - 1)] + [(50 - 13 * math.sin(t) - 0.5, y + 15 * (1 - math.cos(t)) * 0.5 + 7.5 * (t / math.pi))
                            for t in np.linspace(0.2, math.pi - 0.2, 7)] + [(50, y + 15), (46.5, y - 1)]
    trim = [(44.5, y - 0.5), (45.5, y - 0.5), (50.5, y + 14.5), (49.5, y + 15)]
    pieces = []
    for lapel in (notched, peak, shawl, wide):
        pieces.append([("inner", inner), ("lapel", lapel), ("lapel", _mirror(lapel))])
    pieces.append([("inner", inner), ("line", trim), ("line", _mirror(trim))])
    return pieces


def neck_shapes() -> list[list[tuple[str, list[tuple[float, float]]]]]:
    """Per neck value, pieces: 'band' (garment colour), 'fold' (darker line polygons)."""
    y = SHOULDER_Y
    turtle = [(44.8, y - 7.5), (55.2, y - 7.5), (55.8, y + 1), (44.2, y + 1)]
    low = [(44.5, y - 4), (55.5, y - 4), (55.8, y + 1), (44.2, y + 1)]
    zig = [(43.5, y + 1)]
    xs = np.linspace(43.5, 56.5, 9)
    for i, x in enumerate(xs):
        zig.append((float(x), y - 6.5 if i % 2 == 0 else y - 2.5))
    zig.append((56.5, y + 1))
    cowl = _ellipse(50, y - 1, 10, 10, 0, 180, 18)
    folds = []
    for r in (4.0, 6.8, 9.2):
        arc = _ellipse(50, y - 1 - 0.15 * r, r, r * 0.85, 15, 165, 10)
        inner = _ellipse(50, y - 1 - 0.15 * r, r - 0.9, r * 0.85 - 0.9, 165, 15, 10)
        folds.append(arc + inner)
    ribs = []
    for yy in (y - 5.5, y - 3, y - 0.5):
        ribs.append([(45, yy), (55, yy), (55, yy + 0.6), (45, yy + 0.6)])
    return [
        [("band", turtle)] + [("fold", r) for r in ribs],
        [("band", low), ("fold", [(44.5, y - 2), (55.5, y - 2), (55.5, y - 1.4), (44.5, y - 1.4)])],
        [("band", zig)],
        [("band", cowl)] + [("fold", f) for f in folds],
    ]


def _zone(polygons: Sequence[Sequence[tuple[float, float]]], margin: float = 1.0) -> list[tuple[float, float]]:
    pts = np.array([p for poly in polygons for p in poly])
    x0, y0 = pts.min(0) - margin
    x1, y1 = pts.max(0) + margin
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def detail_zones() -> dict[str, list[tuple[float, float]]]:
    """The fixed region (canonical rectangle) of each design attribute at detail_scale 1."""
    return {
        "neckline_design": _zone([p for v in neckline_shapes() for p in v]),
        "collar_design": _zone([p for v in collar_shapes() for _, p in v]),
        "lapel_design": _zone([p for v in lapel_shapes() for _, p in v]),
        "neck_design": _zone([p for v in neck_shapes() for _, p in v]),
    }


_NECKLINES = neckline_shapes()
_COLLARS = collar_shapes()
_LAPELS = lapel_shapes()
_NECKS = neck_shapes()
_ZONES = detail_zones()


# ----------------------------------------------------------------------------------------
# Colours and textures
# ----------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h % 360) / 360.0, s, v)) * 255.0


def garment_colour(name: str, rng: np.random.Generator) -> np.ndarray:
    hue, (s0, s1), (v0, v1) = COLOUR_HSV[name]
    return _hsv(hue + rng.uniform(-7, 7), rng.uniform(s0, s1), rng.uniform(v0, v1))


def _shade(rgb: np.ndarray, k: float) -> np.ndarray:
    """k > 0 towards white, k < 0 towards black."""
    target = 255.0 if k > 0 else 0.0
    return rgb + (target - rgb) * abs(k)


def _contrast(rgb: np.ndarray, k: float) -> np.ndarray:
    """A shade that stands out from ``rgb``: lighter for dark colours, darker for light ones."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return _shade(rgb, k if luminance < 120 else -k)


def _tuple(rgb: np.ndarray) -> tuple[int, int, int]:
    c = np.clip(np.round(rgb), 0, 255).astype(int)
    return int(c[0]), int(c[1]), int(c[2])


def _background(size: int, rng: np.random.Generator, clutter: float) -> np.ndarray:
    """uint8 [size, size, 3]: a muted colour with a gradient and one texture kind."""
    base = _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.35), rng.uniform(0.45, 0.95))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * math.pi)
    shade = 1.0 + clutter * rng.uniform(0.05, 0.2) * ((xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle))
    kind = rng.integers(0, 4)
    amp = clutter * rng.uniform(0.06, 0.18)
    if kind == 1:  # blotches: low-frequency noise, bilinear upsampled
        grid = rng.standard_normal((5, 5)).astype(np.float32)
        noise = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.BILINEAR))
        shade = shade + amp * noise
    elif kind == 2:  # wall stripes
        period = rng.uniform(0.08, 0.2)
        vertical = rng.random() < 0.5
        coord = xx if vertical else yy
        shade = shade + amp * np.sign(np.sin(2 * math.pi * coord / period + rng.uniform(0, 6.3)))
    elif kind == 3:  # floor line: the lower part darker or lighter
        horizon = rng.uniform(0.65, 0.9)
        shade = shade + amp * 1.5 * np.where(yy > horizon, -1.0, 0.3)
    img = base.astype(np.float32)[None, None, :] * shade[:, :, None].astype(np.float32)
    grain = clutter * rng.uniform(0, 6)
    if grain > 0:
        img += np.float32(grain) * rng.standard_normal((size, size, 1), dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _pattern_mask(kind: int, u: np.ndarray, v: np.ndarray, period: float, phase: tuple[float, float]) -> np.ndarray | None:
    """Boolean [H, W]: where the secondary colour goes (canonical coordinates u, v)."""
    pu, pv = (u + phase[0]) / period, (v + phase[1]) / period
    if kind == 0:
        return None
    if kind == 1:
        return (pv - np.floor(pv)) < 0.45
    if kind == 2:
        return (pu - np.floor(pu)) < 0.45
    if kind == 3:
        du = pu - np.floor(pu) - 0.5
        dv = pv - np.floor(pv) - 0.5
        return du * du + dv * dv < 0.28 ** 2
    return ((np.floor(pu) + np.floor(pv)) % 2) == 0


# ----------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------
class _Canvas:
    """Draws canonical-coordinate polygons on an RGB image and on a garment mask."""

    def __init__(self, size: int, background: np.ndarray, centre: tuple[float, float], scale: float,
                 rotation: float):
        self.size = size
        self.image = Image.fromarray(background)
        self.draw = ImageDraw.Draw(self.image)
        self.centre, self.scale = centre, scale
        self.cos, self.sin = math.cos(rotation), math.sin(rotation)

    def to_pixels(self, points: Sequence[tuple[float, float]], scale: float = 1.0) -> list[tuple[float, float]]:
        ox, oy = self.centre
        s = self.scale * scale
        out = []
        for x, y in points:
            dx, dy = x - 50.0, y - 50.0
            out.append((ox + s * (self.cos * dx - self.sin * dy), oy + s * (self.sin * dx + self.cos * dy)))
        return out

    def to_canonical_grid(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0:self.size, 0:self.size].astype(np.float32)
        dx, dy = xx + 0.5 - self.centre[0], yy + 0.5 - self.centre[1]
        u = 50.0 + (self.cos * dx + self.sin * dy) / self.scale
        v = 50.0 + (-self.sin * dx + self.cos * dy) / self.scale
        return u, v

    def polygon(self, points: Sequence[tuple[float, float]], colour: np.ndarray | tuple) -> None:
        fill = _tuple(np.asarray(colour, dtype=np.float64))
        self.draw.polygon(self.to_pixels(points), fill=fill)


def _body(rng: np.random.Generator) -> dict[str, Any]:
    sw = rng.uniform(14.5, 17.5)
    body = {
        "sw": sw,                               # shoulder half-width
        "ww": sw - rng.uniform(1.5, 3.5),       # waist half-width
        "hw": sw + rng.uniform(-1.0, 1.5),      # hip half-width
        "arm_angle": math.radians(rng.uniform(8, 24)),
        "ankle_dx": rng.uniform(5.5, 10.0),
        "skin": SKIN_TONES[rng.integers(0, len(SKIN_TONES))] + rng.uniform(-10, 10, 3),
        "hair": _hsv(rng.uniform(10, 40), rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.6)),
    }
    arms = []
    for side in (-1, 1):
        shoulder = np.array([50 + side * (sw - 1.5), SHOULDER_Y + 1.5])
        direction = np.array([side * math.sin(body["arm_angle"]), math.cos(body["arm_angle"])])
        arms.append((shoulder, direction))
    body["arms"] = arms
    legs = []
    for side in (-1, 1):
        hip = np.array([50 + side * 7.5, 50.0])
        ankle = np.array([50 + side * body["ankle_dx"], 94.0])
        legs.append((hip, ankle))
    body["legs"] = legs
    return body


def _leg_point(body: dict[str, Any], side_index: int, y: float) -> np.ndarray:
    hip, ankle = body["legs"][side_index]
    t = (y - hip[1]) / (ankle[1] - hip[1])
    return hip + (ankle - hip) * t


def _draw_figure(c: _Canvas, body: dict[str, Any]) -> None:
    skin = body["skin"]
    for hip, ankle in body["legs"]:
        c.polygon(_segment_quad(hip, ankle, 4.6, 2.6), skin)
        c.polygon(_ellipse(ankle[0] + (1.5 if ankle[0] > 50 else -1.5), 96.0, 3.4, 2.0, n=10), skin * 0.8)
    for shoulder, d in body["arms"]:
        wrist = shoulder + d * ARM_LENGTH
        c.polygon(_segment_quad(shoulder, wrist, 3.3, 2.3), skin)
        c.polygon(_ellipse(*(wrist + d * 2.2), 2.6, 2.8, n=10), skin)
    c.polygon([(46.6, 8), (53.4, 8), (53.6, SHOULDER_Y + 2), (46.4, SHOULDER_Y + 2)], skin)
    c.polygon(_ellipse(50, 6, 5.2, 6.2, n=18), skin)
    c.polygon(_ellipse(50, 4.2, 5.6, 4.8, 180, 360, 12) + [(55.4, 6), (44.6, 6)], body["hair"])


def _torso(body: dict[str, Any], hem_y: float, flare: float = 0.0) -> list[tuple[float, float]]:
    sw, ww, hw = body["sw"], body["ww"], body["hw"]
    pts = [(50 - sw, SHOULDER_Y), (50 + sw, SHOULDER_Y), (50 + ww, 40.0)]
    if hem_y > 40:
        hem_half = hw + max(0.0, hem_y - 50) * flare + (hem_y > 44) * 0.5
        pts += [(50 + hem_half, hem_y), (50 - hem_half, hem_y)]
    else:
        pts = [(50 - sw, SHOULDER_Y), (50 + sw, SHOULDER_Y),
               (50 + sw + (ww - sw) * (hem_y - SHOULDER_Y) / (40 - SHOULDER_Y), hem_y),
               (50 - sw - (ww - sw) * (hem_y - SHOULDER_Y) / (40 - SHOULDER_Y), hem_y)]
        return pts
    pts.append((50 - ww, 40.0))
    return pts


def _sleeves(body: dict[str, Any], fraction: float) -> list[list[tuple[float, float]]]:
    if fraction <= 0:
        return []
    out = []
    for shoulder, d in body["arms"]:
        start = shoulder - d * 2.5
        end = shoulder + d * ARM_LENGTH * fraction
        out.append(_segment_quad(start, end, 5.0, 4.2 if fraction < 1 else 4.6))
    return out


def _skirt(body: dict[str, Any], hem_y: float) -> list[tuple[float, float]]:
    ww, hw = body["ww"], body["hw"]
    hem_half = hw + 0.5 + (hem_y - 50) * 0.28
    return [(50 - ww, 43.0), (50 + ww, 43.0), (50 + hw + 0.5, 50.0), (50 + hem_half, hem_y),
            (50 - hem_half, hem_y), (50 - hw - 0.5, 50.0)]


def _trousers(body: dict[str, Any], hem_y: float) -> list[list[tuple[float, float]]]:
    ww, hw = body["ww"], body["hw"]
    pieces = [[(50 - ww, 43.0), (50 + ww, 43.0), (50 + hw, 50.0), (50 + hw, 55.0), (50 - hw, 55.0), (50 - hw, 50.0)]]
    for side_index, side in enumerate((-1, 1)):
        top = _leg_point(body, side_index, 50.0)
        bottom = _leg_point(body, side_index, hem_y)
        width_bottom = 5.6 - 1.8 * (hem_y - 50) / 44
        quad = _segment_quad(top + np.array([side * 0.8, 0.0]), bottom, 6.6, width_bottom)
        pieces.append(quad)
    return pieces


def garment_pieces(cat: str, body: dict[str, Any], value: dict[str, int]) -> list[list[tuple[float, float]]]:
    """The main garment's polygons (canonical coordinates) for category ``cat``'s values."""
    sleeves = _sleeves(body, SLEEVE_FRACTION[value["sleeve_length"]]) if "sleeve_length" in value else []
    if cat in ("tee", "shirt", "sweater"):
        return [_torso(body, 51.0)] + sleeves
    if cat == "dress":
        return [_torso(body, 45.0), _skirt(body, SKIRT_HEM_Y[value["skirt_length"]])] + sleeves
    if cat == "coat":
        return [_torso(body, COAT_HEM_Y[value["coat_length"]], flare=0.12)] + sleeves
    if cat == "skirt":
        return [_skirt(body, SKIRT_HEM_Y[value["skirt_length"]])]
    return _trousers(body, PANT_HEM_Y[value["pant_length"]])


def _union_area(polygons: Sequence[Sequence[tuple[float, float]]], k: int = 2) -> float:
    """Area (canonical units squared) of the union of ``polygons``, rasterised at ``k`` px per
    unit: the pieces overlap (sleeves and torso, trouser legs and waist)."""
    canvas = Image.new("1", (120 * k, 120 * k), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon([((x + 10) * k, (y + 10) * k) for x, y in poly], fill=1)
    return float(np.count_nonzero(np.asarray(canvas))) / (k * k)


LENGTHS = ("sleeve_length", "skirt_length", "coat_length", "pant_length")
TOPS = ("tee", "shirt", "sweater")  # the categories whose only length is the sleeve
TOPS_WINDOW = (-3.0, 63.0)  # framing="tops": canonical rows in view (head to below the hands)


def size_balance_factor(cat: str, body: dict[str, Any], value: dict[str, int], balance: float) -> float:
    """How much to scale the figure so a longer garment does not cover more pixels.

    Every length (sleeve, skirt, coat, pant) grows the garment's area ``A`` monotonically
    with its value index, so the category's smallest and largest areas are those with every
    length at its first and at its last value. The factor ``(A_mid / A) ** (balance / 2)``,
    with ``A_mid`` their geometric mean, zooms in on short garments and out from long ones:
    at ``balance=1`` the garment's pixel count no longer depends on its lengths (only on the
    random figure scale); at 0 nothing changes (generator version 3). The price, stated in
    the module docstring: the figure's own size (head, shoulders) now tells the length.
    """
    if balance <= 0:
        return 1.0
    shortest = {k: (0 if k in LENGTHS else v) for k, v in value.items()}
    longest = {k: (len(VALUES[k]) - 1 if k in LENGTHS else v) for k, v in value.items()}
    area = _union_area(garment_pieces(cat, body, value))
    middle = math.sqrt(_union_area(garment_pieces(cat, body, shortest)) *
                       _union_area(garment_pieces(cat, body, longest)))
    return float((middle / area) ** (balance / 2))


def _garment_rows(pieces: Sequence[Sequence[tuple[float, float]]]) -> tuple[float, float]:
    ys = [y for poly in pieces for _, y in poly]
    return min(ys), max(ys)


def render_image(index: int, category: int, label_row: np.ndarray, config: dict[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw image ``index``: uint8 [S, S, 3], uint16 region bits [S, S], float32 boxes [A, 4]."""
    size = config["image_size"]
    supersample = 2 if size <= 128 else 1
    big = size * supersample
    rng = np.random.default_rng([config["seed"], index])
    clutter = float(config["clutter"])
    detail = float(config["detail_scale"])
    cat = CATEGORIES[category]
    value = {name: int(label_row[ATTR_ID[name]]) for name in ATTRIBUTES if label_row[ATTR_ID[name]] >= 0}

    lo, hi = config["scale_range"]
    height = rng.uniform(lo, hi) * big
    scale = height / 100.0
    rotation = math.radians(rng.uniform(-1, 1) * config["max_rotation"])
    shift = (rng.uniform(-1, 1), rng.uniform(-1, 1))

    background = _background(size, rng, clutter)  # at the output size: smooth anyway
    if supersample > 1:
        background = np.asarray(Image.fromarray(background).resize((big, big), Image.BILINEAR))
    body = _body(rng)
    pieces = garment_pieces(cat, body, value)
    scale *= size_balance_factor(cat, body, value, float(config["size_balance"]))
    tops_close_up = config.get("framing", "full") == "tops" and cat in TOPS
    if tops_close_up:  # scale_range now refers to the upper-body window, not the whole figure
        scale *= 100.0 / (TOPS_WINDOW[1] - TOPS_WINDOW[0])
    free_x = max(0.0, big / 2 - scale * 34)
    free_y = max(0.0, big / 2 - scale * 51)
    centre = (big / 2 + shift[0] * free_x, big / 2 + shift[1] * free_y)
    if scale * 100 > 0.98 * big:  # a close-up: keep the garment (with the neck) in the frame
        top, bottom = TOPS_WINDOW if tops_close_up else _garment_rows(pieces)
        top = min(top, SHOULDER_Y - 8)
        middle = (top + bottom) / 2
        free_y = max(0.0, big / 2 - scale * (bottom - top) / 2 - 1)
        centre = (centre[0], big / 2 - scale * (middle - 50) + shift[1] * free_y)
    c = _Canvas(big, background, centre, scale, rotation)
    main = garment_colour(VALUES["colour"][value["colour"]], rng)
    secondary = _contrast(main, rng.uniform(0.45, 0.6))
    pattern = value["pattern"]
    neutral = NEUTRALS[rng.integers(0, len(NEUTRALS))] + rng.uniform(-12, 12, 3)
    obj = None
    if rng.random() < 0.35 * clutter:
        obj = {
            "front": rng.random() < 0.5, "kind": int(rng.integers(0, 2)),
            "xy": (rng.uniform(0.1, 0.9) * big, rng.uniform(0.15, 0.95) * big),
            "r": rng.uniform(0.07, 0.14) * big,
            "colour": _hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.95)),
        }
    period = rng.uniform(6.5, 9.0)
    phase = (rng.uniform(0, period), rng.uniform(0, period))

    def draw_object() -> None:
        x, y = obj["xy"]
        r = obj["r"]
        fill = _tuple(obj["colour"])
        if obj["kind"] == 0:  # bag with a handle
            c.draw.rectangle([x - r, y - 0.7 * r, x + r, y + 0.7 * r], fill=fill)
            c.draw.arc([x - 0.6 * r, y - 1.4 * r, x + 0.6 * r, y - 0.1 * r], 180, 360, fill=fill,
                       width=max(1, int(r * 0.15)))
        else:  # ball
            c.draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    if obj is not None and not obj["front"]:
        draw_object()
    _draw_figure(c, body)

    # The neutral second garment (not labelled).
    if cat in ("skirt", "trousers"):
        for poly in [_torso(body, 47.0)] + _sleeves(body, 0.3):
            c.polygon(poly, neutral)
        c.polygon(_ellipse(50, SHOULDER_Y - 0.5, 5, 3.5, 0, 180), body["skin"])
    elif cat != "dress":
        for poly in _trousers(body, 95.0):
            c.polygon(poly, neutral)

    # The main garment: silhouette into a mask, then the patterned texture through it.
    garment = Image.new("L", (big, big), 0)
    gdraw = ImageDraw.Draw(garment)
    for poly in pieces:
        gdraw.polygon(c.to_pixels(poly), fill=255)
    texture = np.empty((big, big, 3), dtype=np.uint8)
    texture[:] = np.array(_tuple(main), dtype=np.uint8)
    u, v = c.to_canonical_grid()
    secondary_where = _pattern_mask(pattern, u, v, period, phase)
    if secondary_where is not None:
        texture[secondary_where] = np.array(_tuple(secondary), dtype=np.uint8)
    c.image.paste(Image.fromarray(texture), (0, 0), garment)

    # Details, scaled about the neck by detail_scale.
    def draw_detail(points: Sequence[tuple[float, float]], colour: np.ndarray) -> None:
        c.polygon(_scale_about(points, ANCHOR, detail), colour)

    strong = float(config["detail_contrast"])

    def detail_shade(k: float) -> np.ndarray:  # k at contrast 0, black / white at 1
        return _contrast(main, k + (1.0 - k) * strong)

    edge = _contrast(main, 0.35 * (1.0 - strong))  # folds and seams: back towards the garment
    if "neckline_design" in value:
        for poly in _NECKLINES[value["neckline_design"]]:
            draw_detail(poly, body["skin"])
            if strong > 0:  # a trim along the cut-out
                c.draw.line(c.to_pixels(_scale_about(poly, ANCHOR, detail)) + c.to_pixels(
                    _scale_about(poly[:1], ANCHOR, detail)), fill=_tuple(detail_shade(0.35)), width=supersample)
    if "collar_design" in value:
        collar = detail_shade(0.4)
        for kind, poly in _COLLARS[value["collar_design"]]:
            draw_detail(poly, body["skin"] if kind == "skin" else collar)
    if "lapel_design" in value:
        inner = NEUTRALS[1] if rng.random() < 0.5 else np.array([235.0, 235, 230])
        lapel = detail_shade(0.25)
        trim = lapel if strong > 0 else edge
        for kind, poly in _LAPELS[value["lapel_design"]]:
            draw_detail(poly, inner if kind == "inner" else lapel if kind == "lapel" else trim)
        hem = COAT_HEM_Y[value["coat_length"]]
        y0 = SHOULDER_Y + 15 * detail
        c.polygon([(49.7, y0), (50.3, y0), (50.3, hem), (49.7, hem)], edge)
    if "neck_design" in value:
        band = detail_shade(0.2)
        for kind, poly in _NECKS[value["neck_design"]]:
            draw_detail(poly, band if kind == "band" else edge)

    if obj is not None and obj["front"]:
        draw_object()

    image = c.image.reduce(supersample) if supersample > 1 else c.image
    rgb = np.array(image, dtype=np.uint8)  # a writable copy (asarray of a PIL image is read-only)

    # Regions at the output resolution.
    bits = np.zeros((size, size), dtype=np.uint16)
    k = 1.0 / supersample
    zone_polys: dict[str, list[list[tuple[float, float]]]] = {}
    for name in ("neckline_design", "collar_design", "lapel_design", "neck_design"):
        zone_polys[name] = [_scale_about(_ZONES[name], ANCHOR, detail)]
    arm_zones = []
    for shoulder, d in body["arms"]:
        arm_zones.append(_segment_quad(shoulder - d * 2.5, shoulder + d * (ARM_LENGTH + 5), 5.5, 4.5))
    zone_polys["sleeve_length"] = arm_zones
    lower = [(50 - body["hw"] - 12, 43.0), (50 + body["hw"] + 12, 43.0), (50 + body["hw"] + 12, 99.0),
             (50 - body["hw"] - 12, 99.0)]
    zone_polys["skirt_length"] = [lower]
    zone_polys["pant_length"] = [lower]
    zone_polys["coat_length"] = [[(50 - body["hw"] - 8, 36.0), (50 + body["hw"] + 8, 36.0),
                                  (50 + body["hw"] + 8, 99.0), (50 - body["hw"] - 8, 99.0)]]
    garment_small = np.asarray(garment.reduce(supersample) if supersample > 1 else garment) >= 128
    boxes = np.full((A, 4), np.nan, dtype=np.float32)
    for name in value:
        a = ATTR_ID[name]
        if name in ("colour", "pattern"):
            region = garment_small
        else:
            zimg = Image.new("L", (size, size), 0)
            zdraw = ImageDraw.Draw(zimg)
            for poly in zone_polys[name]:
                zdraw.polygon([(x * k, y * k) for x, y in c.to_pixels(poly)], fill=1)
            region = np.asarray(zimg, dtype=bool)
        if not region.any():
            continue
        bits |= (region.astype(np.uint16) << a)
        rows = np.flatnonzero(region.any(1))
        cols = np.flatnonzero(region.any(0))
        boxes[a] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return rgb, bits, boxes


# ----------------------------------------------------------------------------------------
# Writing a dataset
# ----------------------------------------------------------------------------------------
def _render_chunk(args: tuple[int, int, np.ndarray, np.ndarray, dict[str, Any], str, list[str]]
                  ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    start, stop, categories, labels, config, root, rel_paths = args
    size = config["image_size"]
    n = stop - start
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint16)
    boxes = np.empty((n, A, 4), dtype=np.float32)
    for j in range(n):
        rgb, bits, box = render_image(start + j, int(categories[j]), labels[j], config)
        images[j], masks[j], boxes[j] = rgb, bits, box
        Image.fromarray(rgb).save(os.path.join(root, rel_paths[j]), format="PNG", compress_level=1)
        region_path = os.path.join(root, rel_paths[j].replace("images/", "regions/", 1))
        Image.fromarray(bits).save(region_path, format="PNG", compress_level=1)
    return start, images, masks, boxes


def split_sizes(config: dict[str, Any]) -> dict[str, int]:
    n = config["num_images"]
    n_valid = int(round(n * config["valid_fraction"]))
    n_test = int(round(n * config["test_fraction"]))
    return {"train": n - n_valid - n_test, "valid": n_valid, "test": n_test}


def default_processes() -> int:
    return max(1, min(os.cpu_count() or 1, 16))


def write_synth_splits(root: Path, split_data: dict[str, dict[str, Any]], config: dict[str, Any]) -> None:
    """Write FashionSynth's split files (both protocols) into ``root``, in the ASEN split format."""
    from .asen_format import write_folder
    from .core import DatasetMeta

    meta = DatasetMeta("fashionsynth", list(ATTRIBUTES), [list(VALUES[a]) for a in ATTRIBUTES], list(CATEGORIES))
    write_folder(root, meta, {s: d["filenames"] for s, d in split_data.items()},
                 {s: d["labels"] for s, d in split_data.items()}, seed=config["seed"],
                 query_fraction=config["query_fraction"],
                 categories={s: d["categories"] for s, d in split_data.items()})


# ----------------------------------------------------------------------------------------
# The triplet-relation split (Zappos50k's task, in its CSN list format)
# ----------------------------------------------------------------------------------------
RELATION_FOLDER = "triplet_split"
RELATION_TRIPLETS_PER_IMAGE = 10  # rows drawn per image of the split, over all conditions


def relation_seed(seed: int, split: str) -> int:
    """The seed of one split's triplet-relation rows, derived from the dataset ``seed``."""
    from .core import SPLITS

    index = SPLITS.index(split)
    return int(np.random.SeedSequence([seed, 0x7452, index]).generate_state(1)[0])


def relation_triplets(labels: Any, num_triplets: int, seed: int) -> Any:
    """Triplet-relation rows ``(anchor, closer, farther, condition)`` (LongTensor [T, 4]) from a
    split's ``labels [N, A]``, the condition being the attribute id.

    Drawn by :func:`fgfs_lib.sampling.relation_triplet_list` from ``torch.Generator`` seeded
    with ``seed``: the anchor and the closer image share the condition's value, the farther
    image has another one (each annotated). Rows are ordered by condition (stably), the order
    the CSN lists hold them, so a split read back through :mod:`.zappos` gives the same tensor.
    """
    import torch

    from ..sampling import csn_rows_to_triplets, relation_triplet_list

    generator = torch.Generator().manual_seed(int(seed))
    rows = csn_rows_to_triplets(relation_triplet_list(torch.as_tensor(labels), num_triplets, generator))
    return rows[torch.argsort(rows[:, 3], stable=True)]


def relation_split(split_labels: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every split's triplet-relation rows with image ids over all splits in order (train,
    valid, test: the order of ``filenames.json``), :data:`RELATION_TRIPLETS_PER_IMAGE` rows per
    image. A split too small to form any triplet gets none."""
    import torch

    out, offset = {}, 0
    for split, labels in split_labels.items():
        try:
            rows = relation_triplets(labels, RELATION_TRIPLETS_PER_IMAGE * len(labels), relation_seed(seed, split))
        except ValueError as error:
            if "no attribute can form a triplet" not in str(error):
                raise
            rows = torch.zeros(0, 4, dtype=torch.long)
        rows[:, :3] += offset
        out[split] = rows
        offset += len(labels)
    return out


def write_relation_split(root: Path, split_data: dict[str, dict[str, Any]], config: dict[str, Any]) -> Path:
    """Write the triplet-relation split into ``root / RELATION_FOLDER`` in the CSN list format
    of Zappos50k: ``filenames.json`` (every image, paths relative to that folder) and
    ``tripletlists/<attribute>_tripletlist_{train,val,test}.txt`` (line ``i j k``: image ``i``
    is closer to ``k`` than to ``j``). Read it back with
    ``zappos.load_zappos(root / RELATION_FOLDER, conditions=ATTRIBUTES, name="fashionsynth")``.
    Outside ``config.json``: the dataset's config and hash do not depend on it."""
    import warnings

    from .zappos import triplet_path

    folder = Path(root) / RELATION_FOLDER
    (folder / "tripletlists").mkdir(parents=True)
    names = [f"../{name}" for d in split_data.values() for name in d["filenames"]]
    (folder / "filenames.json").write_text(json.dumps(names, indent=0) + "\n")
    with warnings.catch_warnings():  # values with a single image in a small split: expected, not news
        warnings.simplefilter("ignore")
        rows = relation_split({s: d["labels"] for s, d in split_data.items()}, config["seed"])
    for split, split_rows in rows.items():
        for a, name in enumerate(ATTRIBUTES):
            part = split_rows[split_rows[:, 3] == a].tolist()
            triplet_path(folder, name, split).write_text("".join(f"{i} {far} {near}\n" for i, near, far, _ in part))
    return folder


def make_fashionsynth(out_dir: str | os.PathLike, profile: str = "quick", seed: int = 0,
                      num_images: int | None = None, image_size: int | None = None,
                      processes: int | None = None, verbose: bool = False, overwrite: bool = False,
                      **options: Any) -> Path:
    """Generate FashionSynth into ``out_dir`` (replaced atomically); return the folder.

    ``options`` override the profile's settings (``detail_scale``, ``clutter``,
    ``scale_range``, ``max_rotation``, ``valid_fraction``, ``test_fraction``,
    ``query_fraction``). ``processes`` does not change the output, only the speed.
    A non-empty ``out_dir`` that is not an earlier ``make-data`` output is refused unless
    ``overwrite`` (:func:`fgfs_lib.utils.atomic_path`: only what fgfs writes is replaced).
    """
    from ..utils import atomic_path, progress

    config = synth_config(profile, seed, num_images=num_images, image_size=image_size, **options)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    categories, labels = sample_labels(config["num_images"], config["seed"])
    sizes = split_sizes(config)
    processes = processes or default_processes()
    with atomic_path(out_dir, directory=True, command="make-data", overwrite=overwrite) as tmp:
        offsets = {}
        start = 0
        for split, n in sizes.items():
            offsets[split] = (start, start + n)
            start += n
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "regions" / split).mkdir(parents=True)
        size = config["image_size"]
        n_all = config["num_images"]
        all_paths = [f"images/{split}/{i - offsets[split][0]:06d}.png"
                     for split in sizes for i in range(*offsets[split])]
        cache = _ArrayCache(tmp / "cache", offsets, size)
        boxes = np.empty((n_all, A, 4), dtype=np.float32)
        chunk = max(16, min(512, n_all // (processes * 4) + 1))
        tasks = [(s, min(s + chunk, n_all), categories[s:s + chunk], labels[s:s + chunk], config, str(tmp),
                  all_paths[s:s + chunk]) for s in range(0, n_all, chunk)]
        if processes > 1 and len(tasks) > 1:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with ctx.Pool(processes) as pool:
                for s, im, ma, bo in progress(pool.imap_unordered(_render_chunk, tasks), desc="FashionSynth",
                                              total=len(tasks)):
                    cache.put(s, im, ma)
                    boxes[s:s + len(bo)] = bo
        else:
            for task in progress(tasks, desc="FashionSynth"):
                s, im, ma, bo = _render_chunk(task)
                cache.put(s, im, ma)
                boxes[s:s + len(bo)] = bo
        cache.close()
        split_data = {}
        for split, (s0, s1) in offsets.items():
            split_data[split] = {
                "filenames": all_paths[s0:s1], "labels": labels[s0:s1], "categories": categories[s0:s1],
                "boxes": boxes[s0:s1],
            }
            np.save(tmp / f"boxes_{split}.npy", boxes[s0:s1])
            (tmp / f"categories_{split}.txt").write_text(
                "".join(CATEGORIES[c] + "\n" for c in categories[s0:s1]))
        write_synth_splits(tmp, split_data, config)
        write_relation_split(tmp, split_data, config)
        config_out = dict(config, config_hash=config_hash(config), split_sizes=sizes)
        (tmp / "config.json").write_text(json.dumps(config_out, indent=2, sort_keys=True) + "\n")
    if verbose:
        print(f"FashionSynth: {config['num_images']} images at {config['image_size']} px in "
              f"{time.perf_counter() - t0:.1f} s with {processes} processes -> {out_dir}")
    return out_dir


class _ArrayCache:
    """The decoded dataset beside the PNGs: ``cache/<split>_images.npy`` (uint8 [N, 3, H, W],
    the layout the models take, so a memory map needs no copy) and, while they fit in 2 GiB,
    ``cache/<split>_masks.npy`` (uint16 [N, H, W]). Written chunk by chunk into memory-mapped
    ``.npy`` files, so the full profile (180k images at 224 px, 27 GB) never has to fit in RAM;
    larger masks stay in ``regions/`` and are read lazily."""

    def __init__(self, folder: Path, offsets: dict[str, tuple[int, int]], size: int):
        folder.mkdir(exist_ok=True)
        total = max(stop for _, stop in offsets.values())
        keep_masks = total * size * size * 2 <= 2 * 2**30
        self.offsets = offsets
        self.images = {split: np.lib.format.open_memmap(folder / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                                        shape=(stop - start, 3, size, size))
                       for split, (start, stop) in offsets.items()}
        self.masks = {split: np.lib.format.open_memmap(folder / f"{split}_masks.npy", mode="w+", dtype=np.uint16,
                                                       shape=(stop - start, size, size))
                      for split, (start, stop) in offsets.items()} if keep_masks else {}

    def put(self, start: int, images: np.ndarray, masks: np.ndarray) -> None:
        """Store rendered images [n, H, W, 3] and masks [n, H, W] of global indices start.. ."""
        stop = start + len(images)
        for split, (s0, s1) in self.offsets.items():
            lo, hi = max(start, s0), min(stop, s1)
            if lo >= hi:
                continue
            self.images[split][lo - s0:hi - s0] = images[lo - start:hi - start].transpose(0, 3, 1, 2)
            if self.masks:
                self.masks[split][lo - s0:hi - s0] = masks[lo - start:hi - start]

    def close(self) -> None:
        for array in [*self.images.values(), *self.masks.values()]:
            array.flush()
        self.images, self.masks = {}, {}


def cache_dir(cfg: Any, config: dict[str, Any]) -> Path:
    return Path(cfg.data_dir) / "fashionsynth" / config_hash(config)


def ensure_fashionsynth(cfg: Any = None, seed: int = 0, processes: int | None = None, verbose: bool = True,
                        **overrides: Any) -> Path:
    """The cached FashionSynth folder of ``cfg``'s profile (dataset ``seed``, default 0).

    Generated on first use into ``cfg.data_dir / "fashionsynth" / <config hash>``.
    """
    from .. import config as config_module

    cfg = cfg if cfg is not None else config_module.load()
    config = synth_config(cfg.profile, seed, **overrides)
    folder = cache_dir(cfg, config)
    if not (folder / "config.json").is_file():
        make_fashionsynth(folder, processes=processes, verbose=verbose, **{
            k: v for k, v in config.items() if k not in ("dataset", "version")})
    return folder
