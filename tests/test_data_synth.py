"""FashionSynth: determinism, the on-disk format round trip, regions, protocols, ImageSplit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fgfs_lib.data as data
from fgfs_lib import config
from fgfs_lib.data import commands, core, files, synth, zappos

N = 300


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synth.make_fashionsynth(tmp_path_factory.mktemp("synth") / "fs", seed=0, num_images=N, processes=1)


@pytest.fixture(scope="module")
def tiny_data(tiny) -> data.RetrievalData:
    return data.load("fashionsynth", root=tiny)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_whatever_the_process_count(tiny, tmp_path):
    again = synth.make_fashionsynth(tmp_path / "again", seed=0, num_images=N, processes=2)
    first, second = tree_digest(tiny), tree_digest(again)
    assert len(first) > 2 * N  # images + regions + split files
    assert first == second


def test_another_seed_gives_other_images(tiny, tmp_path):
    other = synth.make_fashionsynth(tmp_path / "other", seed=1, num_images=40, processes=1)
    a = np.asarray(Image.open(tiny / "images/train/000000.png"))
    b = np.asarray(Image.open(other / "images/train/000000.png"))
    assert not np.array_equal(a, b)


def test_round_trip_labels_and_files(tiny, tiny_data):
    categories, labels = synth.sample_labels(N, 0)
    sizes = synth.split_sizes(synth.synth_config("quick", 0, num_images=N))
    assert [len(tiny_data.split(s)) for s in ("train", "valid", "test")] == list(sizes.values())
    stacked = torch.cat([tiny_data.train.labels, tiny_data.valid.labels, tiny_data.test.labels])
    assert torch.equal(stacked, torch.from_numpy(labels))
    cats = torch.cat([tiny_data.train.categories, tiny_data.valid.categories, tiny_data.test.categories])
    assert torch.equal(cats, torch.from_numpy(categories))
    # The PNG files hold the same pixels and region bits as the in-memory cache.
    names = files.read_filenames(tiny / "filenames_valid.txt", [])
    for i in (0, 7, len(names) - 1):
        png = torch.from_numpy(np.array(Image.open(tiny / names[i]))).permute(2, 0, 1)
        assert torch.equal(png, tiny_data.valid.raw([i])[0])
        bits = np.asarray(Image.open(tiny / names[i].replace("images/", "regions/")))
        for a in range(synth.A):
            assert torch.equal(torch.from_numpy(((bits >> a) & 1).astype(bool)), tiny_data.valid.mask(i, a))
    assert tiny_data.meta.attribute_names == synth.ATTRIBUTES
    assert tiny_data.meta.num_values == [6, 7, 7, 6, 5, 5, 7, 4, 8, 5]
    assert tiny_data.config["config_hash"] == synth.config_hash(synth.synth_config("quick", 0, num_images=N))


def test_attributes_apply_exactly_per_category(tiny_data):
    split = tiny_data.train
    for c, name in enumerate(synth.CATEGORIES):
        rows = split.labels[split.categories == c]
        if len(rows) == 0:
            continue
        expected = torch.tensor([a in synth.CATEGORY_ATTRIBUTES[name] for a in synth.ATTRIBUTES])
        assert torch.equal(rows >= 0, expected.expand_as(rows))
        for a in np.flatnonzero(expected.numpy()):
            assert int(rows[:, a].max()) < len(synth.VALUES[synth.ATTRIBUTES[a]])


def test_boxes_are_the_bounding_boxes_of_the_masks(tiny_data):
    split = tiny_data.test
    assert split.boxes.shape == (len(split), synth.A, 4)
    assert torch.equal(torch.isnan(split.boxes[..., 0]), split.labels < 0)
    for i in range(0, len(split), 7):
        for a in range(synth.A):
            m = split.mask(i, a)
            if split.labels[i, a] < 0:
                assert not m.any()
                continue
            ys, xs = torch.nonzero(m, as_tuple=True)
            box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            assert torch.equal(split.boxes[i, a], box)


def test_design_regions_are_small_and_lengths_larger(tiny_data):
    split = tiny_data.train
    fractions = {}
    for a, name in enumerate(synth.ATTRIBUTES):
        rows = torch.nonzero(split.labels[:, a] >= 0).flatten()
        masks = split.region_masks(rows, a)
        fractions[name] = masks.float().mean().item()
    for name in ("collar_design", "lapel_design", "neckline_design", "neck_design"):
        assert 0.01 < fractions[name] <= 0.12, (name, fractions[name])  # the details stay small
    details = max(fractions[n] for n in ("collar_design", "lapel_design", "neckline_design", "neck_design"))
    for name in ("skirt_length", "coat_length", "pant_length"):
        assert fractions[name] > 1.5 * details, (name, fractions)
    # region_masks with one attribute per image equals mask(i, a)
    idx, attrs = torch.tensor([0, 1, 2]), torch.tensor([8, 9, 1])
    batch = split.region_masks(idx, attrs)
    for k in range(3):
        assert torch.equal(batch[k], split.mask(int(idx[k]), int(attrs[k])))


def test_batch_normalises_flips_and_matches_getitem(tiny_data):
    split = tiny_data.train
    idx = torch.tensor([3, 0, 17, 3])
    x = split.batch(idx)
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert torch.allclose(x[1], split[0][0])
    assert torch.allclose(split.denormalize(x) * 255, split.raw(idx).float(), atol=1e-3)
    items = split.__getitems__([5, 6])
    assert [i for _, i in items] == [5, 6] and torch.allclose(items[0][0], split[5][0])
    g = torch.Generator().manual_seed(0)
    flipped = split.batch(torch.arange(32), augment=True, generator=g)
    plain = split.batch(torch.arange(32))
    same = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 32
    loader = torch.utils.data.DataLoader(split, batch_size=8)
    images, ids = next(iter(loader))
    assert images.shape == (8, 3, 64, 64) and torch.equal(ids, torch.arange(8))


def test_synth_protocol_keeps_every_category_of_an_attribute_in_proportion(tiny_data):
    for split_name in ("valid", "test"):
        split = tiny_data.split(split_name)
        q, c = tiny_data.queries(split_name), tiny_data.candidates(split_name)
        assert set(q[:, 0].tolist()).isdisjoint(c[:, 0].tolist())
        rows = torch.cat([q, c])
        # every applicable attribute of every image is one row, with its label
        assert len(rows) == int((split.labels >= 0).sum())
        assert torch.equal(split.labels[rows[:, 0], rows[:, 1]], rows[:, 2])
        # so an attribute's rows hold each category that carries it, as often as the split does
        for a, name in enumerate(synth.ATTRIBUTES):
            cats = split.categories[rows[rows[:, 1] == a, 0]]
            carriers = [k for k, cat in enumerate(synth.CATEGORIES) if name in synth.CATEGORY_ATTRIBUTES[cat]]
            for k in carriers:
                assert int((cats == k).sum()) == int((split.categories == k).sum())
        # and a fifth of each category's images are queries
        query_images = torch.unique(q[:, 0])
        for k in range(len(synth.CATEGORIES)):
            members = int((split.categories == k).sum())
            assert int((split.categories[query_images] == k).sum()) == round(0.2 * members)


def test_stratified_protocol_on_a_hand_made_matrix():
    labels = np.array([[0, -1], [1, 2], [-1, 1], [0, 0], [1, -1], [0, 1]])
    categories = np.array([0, 1, 2, 1, 0, 1])
    q, c = core.stratified_protocol(labels, categories, np.random.default_rng(0), 0.5)
    rows = np.concatenate([q, c])
    assert sorted(map(tuple, rows[:, :2].tolist())) == [(0, 0), (1, 0), (1, 1), (2, 1), (3, 0), (3, 1),
                                                         (4, 0), (5, 0), (5, 1)]
    assert all(labels[i, a] == v for i, a, v in rows)
    query_images = set(q[:, 0].tolist())
    assert query_images.isdisjoint(c[:, 0].tolist())
    # round(0.5 * n) per category: 1 of {0, 4}, 2 of {1, 3, 5} (round half to even), 0 of {2}
    assert len(query_images & {0, 4}) == 1 and len(query_images & {1, 3, 5}) == 2 and 2 not in query_images


def test_multilabel_protocol_has_every_attribute_and_disjoint_images(tiny):
    d = data.load("fashionsynth", root=tiny, protocol="multilabel")
    q, c = d.test_queries, d.test_candidates
    assert set(q[:, 0].tolist()).isdisjoint(c[:, 0].tolist())
    rows = torch.cat([q, c])
    assert len(rows) == int((d.test.labels >= 0).sum())
    assert torch.equal(d.test.labels[rows[:, 0], rows[:, 1]], rows[:, 2])
    n_query_images = len(torch.unique(q[:, 0]))
    assert n_query_images == round(0.2 * len(d.test))


def test_protocol_functions_on_a_hand_made_label_matrix():
    labels = np.array([[0, -1], [1, 2], [-1, 1], [0, 0], [1, -1]])
    q, c = core.fashionai_protocol(labels, np.random.default_rng(0), 0.5)
    rows = np.concatenate([q, c])
    assert sorted(rows[:, 0].tolist()) == [0, 1, 2, 3, 4]
    assert all(labels[i, a] == v for i, a, v in rows)
    assigned = {int(i): int(a) for i, a, _ in rows}
    assert assigned[0] == 0 and assigned[4] == 0 and assigned[2] == 1  # their only applicable attribute
    counts = np.bincount(rows[:, 1], minlength=2)
    assert len(q) == sum(int(round(0.5 * n)) for n in counts)  # per attribute, a fraction are queries


def test_load_generates_into_the_cache_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FGFS_DATA_DIR", str(tmp_path))
    cfg = config.load("quick")
    d1 = data.load("fashionsynth", cfg=cfg, num_images=40, processes=1)
    expected = tmp_path / "fashionsynth" / synth.config_hash(synth.synth_config("quick", 0, num_images=40))
    assert d1.root == expected
    stamp = (expected / "config.json").stat().st_mtime_ns
    d2 = data.load("fashionsynth", cfg=cfg, num_images=40, processes=1)
    assert (expected / "config.json").stat().st_mtime_ns == stamp
    assert torch.equal(d1.train.images, d2.train.images)
    harder = synth.synth_config("quick", 0, num_images=40, detail_scale=0.7)
    assert synth.config_hash(harder) != expected.name  # difficulty is part of the recorded config
    assert not list(tmp_path.glob("fashionsynth/.*.tmp"))  # nothing half-built left behind


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(synth, "write_synth_splits", boom)
    with pytest.raises(RuntimeError):
        synth.make_fashionsynth(tmp_path / "fs", num_images=30, processes=1)
    assert list(tmp_path.iterdir()) == []


def test_clear_errors_for_bad_names_roots_and_options(tmp_path):
    with pytest.raises(ValueError, match="valid names: fashionsynth, fashionai, darn"):
        data.load("fashion-mnist")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        data.load("fashionsynth", root=tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing meta.json"):
        data.load("deepfashion", root=tmp_path / "empty")
    with pytest.raises(TypeError, match="unknown FashionSynth option"):
        synth.synth_config("quick", 0, detail_size=2)
    with pytest.raises(ValueError, match="protocol"):
        data.load("fashionsynth", root=tmp_path, protocol="pairs")


def test_make_data_command(tmp_path, capsys):
    out = tmp_path / "made"
    # 80 images: with 40 the test split gets no query, which verify-data reports
    rc = commands.make_data(["--profile", "quick", "--seed", "3", "--out", str(out), "--num-images", "80",
                             "--image-size", "32", "--processes", "1"])
    assert rc == 0
    d = data.load("fashionsynth", root=out)
    assert d.train.image_size == 32 and d.config["seed"] == 3
    assert (out / "query_test.txt").is_file() and (out / "images" / "test").is_dir()
    tr = zappos.load_zappos(out / "triplet_split", image_size=32, conditions=synth.ATTRIBUTES, name="fashionsynth")
    assert len(tr.images) == 80 and len(tr.triplets["test"]) == 10 * len(d.test)
    capsys.readouterr()
    assert commands.verify_data(["--dataset", "fashionsynth", "--root", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"fashionsynth at {out}: 80 images checked, OK"


def test_file_based_split_without_cache_matches_the_in_memory_one(tiny, tiny_data, tmp_path):
    # The full profile keeps no cache/ (too big): images and regions come from the PNG files.
    copy = tmp_path / "nocache"
    shutil.copytree(tiny, copy, ignore=shutil.ignore_patterns("cache"))
    d = data.load("fashionsynth", root=copy)
    assert not d.test.in_memory and d.test.has_regions
    idx = torch.tensor([0, 3, 9])
    assert torch.equal(d.test.batch(idx), tiny_data.test.batch(idx))
    assert torch.equal(d.test.region_masks(idx, 8), tiny_data.test.region_masks(idx, 8))
    assert torch.equal(d.test.mask(4, 1), tiny_data.test.mask(4, 1))


# ----------------------------------------------------------------------------- triplet relation
@pytest.mark.filterwarnings("ignore:attribute .* single image")  # 60-image splits: rare values
def test_relation_split_reads_back_through_the_zappos_reader(tiny, tiny_data):
    folder = tiny / synth.RELATION_FOLDER
    names = [f"../{n}" for s in ("train", "valid", "test")
             for n in files.read_filenames(tiny / f"filenames_{s}.txt", [])]
    assert len(names) == N
    read = zappos.load_zappos(folder, image_size=64, conditions=synth.ATTRIBUTES, name="fashionsynth")
    assert [p.resolve() for p in read.images.paths] == [(folder / n).resolve() for n in names]
    assert read.meta.attribute_names == synth.ATTRIBUTES and "fashionsynth at" in read.summary()
    labels = {s: tiny_data.split(s).labels for s in ("train", "valid", "test")}
    expected = synth.relation_split(labels, seed=0)
    sizes = [len(v) for v in labels.values()]
    for k, split in enumerate(labels):
        assert len(expected[split]) == synth.RELATION_TRIPLETS_PER_IMAGE * sizes[k] > 0
        assert torch.equal(read.triplets[split], expected[split]), split
        # the rows, in the split's own image ids, are relation_triplets of its labels
        local = expected[split].clone()
        local[:, :3] -= sum(sizes[:k])
        assert torch.equal(local, synth.relation_triplets(labels[split], len(local), synth.relation_seed(0, split)))
    # the pixels behind a test id are the test split's
    first = int(read.triplets["test"][0, 0])
    assert torch.equal(read.images.raw([first])[0], tiny_data.test.raw([first - sizes[0] - sizes[1]])[0])
    # one CSN file per attribute and split, in the folder's manifest
    lists = sorted(p.name for p in (folder / "tripletlists").iterdir())
    assert lists == sorted(f"{a}_tripletlist_{s}.txt" for a in synth.ATTRIBUTES for s in ("train", "val", "test"))


@pytest.mark.filterwarnings("ignore:attribute .* single image")
def test_relation_triplets_hold_on_the_labels_and_follow_the_seed(tiny_data):
    labels = tiny_data.train.labels
    rows = synth.relation_triplets(labels, 3000, seed=5)
    anchor, closer, farther, cond = rows.T
    va, vc, vf = labels[anchor, cond], labels[closer, cond], labels[farther, cond]
    assert bool((va >= 0).all() and (vf >= 0).all())  # every image annotated for its condition
    assert torch.equal(va, vc) and bool((va != vf).all()) and bool((anchor != closer).all())
    assert set(cond.tolist()) == set(range(synth.A))  # each attribute is a condition
    assert torch.equal(cond, cond.sort().values)  # grouped by condition, as the lists hold them
    assert torch.equal(rows, synth.relation_triplets(labels, 3000, seed=5))
    assert not torch.equal(rows, synth.relation_triplets(labels, 3000, seed=6))
    assert synth.relation_seed(0, "train") != synth.relation_seed(0, "test") != synth.relation_seed(1, "test")


def test_the_relation_split_leaves_config_hash_and_images_alone(tiny, tiny_data, tmp_path):
    # the quick profile's hash that the committed results record (results/08_agman_seeds.json)
    assert synth.config_hash(synth.synth_config("quick", 0)) == "b5ba5a399b9a"
    recorded = json.loads((tiny / "config.json").read_text())
    assert recorded["config_hash"] == synth.config_hash(synth.synth_config("quick", 0, num_images=N))
    assert not any("triplet" in key or "relation" in key for key in recorded)
    # a folder written before the split existed still loads, to the same data
    old = tmp_path / "before_the_split"
    shutil.copytree(tiny, old, ignore=shutil.ignore_patterns(synth.RELATION_FOLDER))
    d = data.load("fashionsynth", root=old)
    assert torch.equal(d.test.images, tiny_data.test.images) and d.config == tiny_data.config


# ----------------------------------------------------------------------------- presets (version 4)
# sha256 over (rgb, region bits) of images 0, 5, ..., 35 of quick seed 0 (40 images), rendered
# by generator version 3 (commit 4c79726) before the presets existed.
HARD_V3_DIGEST = "559630a1886dae0254202d63b530e3da11c2c6260c2e67a5cde32b88b8a69feb"


def render_digest(config: dict) -> str:
    categories, labels = synth.sample_labels(config["num_images"], config["seed"])
    digest = hashlib.sha256()
    for i in range(0, 40, 5):
        rgb, bits, _ = synth.render_image(i, int(categories[i]), labels[i], config)
        digest.update(rgb.tobytes())
        digest.update(bits.tobytes())
    return digest.hexdigest()


def test_hard_preset_draws_version_3_images_and_calibrated_is_the_default():
    hard = synth.synth_config("quick", 0, num_images=40, preset="hard")
    assert render_digest(hard) == HARD_V3_DIGEST
    default = synth.synth_config("quick", 0, num_images=40)
    assert default["preset"] == synth.DEFAULT_PRESET == "calibrated" and default["version"] == 4
    assert {k: default[k] for k in synth.PRESETS["calibrated"]} == synth.PRESETS["calibrated"]
    assert render_digest(default) != HARD_V3_DIGEST
    # an explicit option wins over the preset, and changes the cache key
    tweaked = synth.synth_config("quick", 0, num_images=40, detail_contrast=0.3)
    assert tweaked["detail_contrast"] == 0.3 and synth.config_hash(tweaked) != synth.config_hash(default)
    with pytest.raises(ValueError, match="preset"):
        synth.synth_config("quick", 0, preset="easy")


def changed_pixels(config: dict, attribute: str, images: range) -> list[int]:
    """Per image carrying ``attribute``: pixels that change by more than 25/255 when its
    value is replaced by the next one (the image otherwise identical)."""
    a = synth.ATTR_ID[attribute]
    categories, labels = synth.sample_labels(config["num_images"], config["seed"])
    out = []
    for i in images:
        if labels[i, a] < 0:
            continue
        other = labels[i].copy()
        other[a] = (other[a] + 1) % len(synth.VALUES[attribute])
        x = synth.render_image(i, int(categories[i]), labels[i], config)[0].astype(int)
        y = synth.render_image(i, int(categories[i]), other, config)[0].astype(int)
        out.append(int((np.abs(x - y).max(-1) > 25).sum()))
    return out


@pytest.mark.parametrize("attribute", ["collar_design", "lapel_design", "neckline_design", "neck_design"])
def test_calibrated_details_differ_in_more_pixels_than_hard_ones(attribute):
    hard = synth.synth_config("quick", 0, num_images=120, preset="hard")
    calibrated = synth.synth_config("quick", 0, num_images=120)
    h = np.median(changed_pixels(hard, attribute, range(120)))
    c = np.median(changed_pixels(calibrated, attribute, range(120)))
    assert c > 1.3 * h, (attribute, h, c)


def test_size_balance_makes_the_garment_area_independent_of_its_lengths():
    body = synth._body(np.random.default_rng(3))
    for cat, attribute, n in [("skirt", "skirt_length", 6), ("trousers", "pant_length", 6),
                              ("coat", "coat_length", 7), ("tee", "sleeve_length", 7)]:
        base = {"colour": 0, "pattern": 0, "coat_length": 0, "sleeve_length": 0, "lapel_design": 0}
        base = {k: v for k, v in base.items() if k in synth.CATEGORY_ATTRIBUTES[cat]}
        plain, balanced = [], []
        for v in range(n):
            value = dict(base, **{attribute: v})
            area = synth._union_area(synth.garment_pieces(cat, body, value))
            plain.append(area * synth.size_balance_factor(cat, body, value, 0.0) ** 2)
            balanced.append(area * synth.size_balance_factor(cat, body, value, 1.0) ** 2)
        assert plain[-1] > 1.4 * plain[0], cat            # unbalanced: longer = more pixels
        assert np.ptp(balanced) < 1e-6 * max(balanced), cat  # balanced: the same area


def test_tops_framing_zooms_tops_only():
    full = synth.synth_config("quick", 0, num_images=60, framing="full")
    tops = synth.synth_config("quick", 0, num_images=60, framing="tops")
    categories, labels = synth.sample_labels(60, 0)
    neck = synth.ATTR_ID["neck_design"]
    ratios = []
    for i in range(60):
        a = synth.render_image(i, int(categories[i]), labels[i], full)
        b = synth.render_image(i, int(categories[i]), labels[i], tops)
        if synth.CATEGORIES[categories[i]] not in synth.TOPS:
            assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))
        elif labels[i, neck] >= 0:
            ratios.append(((b[1] >> neck) & 1).sum() / ((a[1] >> neck) & 1).sum())
    assert len(ratios) >= 3 and min(ratios) > 1.8, ratios
