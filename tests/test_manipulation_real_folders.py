"""Notebook 09's manipulation-search protocol on folders in the real formats, Shopping100k
(ADDE's one-hot lists) and DeepFashion (ASEN's split files), written with the fixture writers
of tests/fixtures/make_fixtures.py and read back through ``fgfs_lib.data.load``.

The fixture folders themselves are too small for a query (no two test images differ in one
attribute), so each test writes a slightly larger folder: 30 test images drawn as variants of
a few garments, some attributes not applicable (-1), attributes of different sizes (DeepFashion
with ASEN's 156 to 230 values), a gallery smaller than the largest K. An oracle searcher
(codes = the true label vectors) must reach 100 % at every K; a seeded random searcher must
match, query by query, a brute-force loop that ranks the gallery by the same scores."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fgfs_lib.data as data
from fgfs_lib import manipulation as manip

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

KS = list(manip.DEFAULT_KS)  # up to 50, more than the 29 other test images: K > N - 1 included
NUM_TEST = 30


def variants(rng: np.random.Generator, num_values: list[int], n: int) -> np.ndarray:
    """[n, A] labels: copies of four garments (a quarter of their attributes -1, "does not
    apply"), each with one attribute set to one of its first four values."""
    small = [min(k, 4) for k in num_values]
    garments = np.stack([rng.integers(0, k, 4) for k in small], 1)
    garments[rng.random(garments.shape) < 0.25] = -1
    rows = garments[rng.integers(0, len(garments), n)]
    changed = rng.integers(0, len(num_values), n)
    rows[np.arange(n), changed] = [rng.integers(0, small[a]) for a in changed]
    return rows


def write_images(root: Path, names: list[str], seed: int) -> None:
    for i, name in enumerate(names):
        fixtures.tiny_image(root / name, seed=seed + i, fmt="JPEG")


def shopping100k_folder(root: Path) -> np.ndarray:
    """An ADDE-format folder (train and test lists); returns the test labels written."""
    attr_num = [5, 2, 7, 3]
    rng = np.random.default_rng(0)
    fixtures.write(root / "attr_num.txt", [str(n) for n in attr_num])
    labels = {"train": variants(rng, attr_num, 10), "test": variants(rng, attr_num, NUM_TEST)}
    for k, (split, lab) in enumerate(labels.items()):
        names = [f"images/{split}_{i}.jpg" for i in range(len(lab))]
        fixtures.write(root / f"imgs_{split}.txt", names, crlf=True)
        fixtures.write(root / f"labels_{split}.txt", [fixtures.onehot(attr_num, v) for v in lab.tolist()], crlf=True)
        write_images(root, names, seed=300 + 100 * k)
    return labels["test"]


def deepfashion_folder(root: Path) -> np.ndarray:
    """An ASEN-format folder as published for DeepFashion (no label_test.txt: the test labels
    are the union of query_test.txt and candidate_test.txt, one (image, attribute, value) a
    line); returns the test labels written."""
    attributes = {"texture": 156, "fabric": 218, "shape": 180, "part": 216, "style": 230}
    rng = np.random.default_rng(1)
    fixtures.write(root / "meta.json", [json.dumps({"ATTRIBUTES": list(attributes), "ATTRIBUTES_NUM": attributes})])
    labels = {}
    for k, (split, n) in enumerate((("train", 10), ("valid", 10), ("test", NUM_TEST))):
        labels[split] = variants(rng, list(attributes.values()), n)
        names = [f"img/{split}_{i}.jpg" for i in range(n)]
        fixtures.write(root / f"filenames_{split}.txt", names, crlf=(split == "test"))
        write_images(root, names, seed=500 + 100 * k)
        img, attr = np.nonzero(labels[split] >= 0)
        lines = [f"{i} {a} {labels[split][i, a]}" for i, a in zip(img.tolist(), attr.tolist())]
        if split == "train":
            fixtures.write(root / "label_train.txt", lines)
            continue
        is_query = (img % 5) == 0
        fixtures.write(root / f"query_{split}.txt", [x for x, q in zip(lines, is_query) if q], crlf=True)
        fixtures.write(root / f"candidate_{split}.txt", [x for x, q in zip(lines, is_query) if not q], crlf=True)
    return labels["test"]


FOLDERS = {"shopping100k": (shopping100k_folder, {"protocol": "multilabel"}),
           "deepfashion": (deepfashion_folder, {})}  # ASEN's DeepFashion files: the default protocol


@pytest.fixture(params=list(FOLDERS), scope="module")
def folder(request, tmp_path_factory):
    """(loaded RetrievalData, test labels as written) for one format."""
    write_folder, options = FOLDERS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    written = write_folder(root)
    return data.load(request.param, root=root, image_size=8, **options), written


class OracleSearcher:
    """Codes = the true label vectors, a query's vector = its target vector: the squared
    distance is 0 exactly for the gallery images with the target vector."""

    similarity = "euclidean"

    def encode(self, split):
        return split.labels.double()

    def gallery_vectors(self, codes, attribute):
        return codes

    def query_vectors(self, codes, attribute, values):
        out = codes.clone()
        out[:, attribute] = values.to(out.dtype)
        return out


class RecordingRandomSearcher(manip.RandomSearcher):
    """The library's random searcher, keeping every query vector it drew with its wish."""

    def __init__(self, generator):
        super().__init__(generator)
        self.drawn = []

    def query_vectors(self, codes, attribute, values):
        out = super().query_vectors(codes, attribute, values)
        self.drawn.append((codes, attribute, values, out))
        return out


def brute_force(labels, queries, gallery, query_vector, dot):
    """Per query, by plain loops: the hit at every K of ``KS`` and (ADDE's, gallery-normalised)
    NDCG@30 of the ranking of the other gallery images by dot product or minus squared distance (ties to
    the lower index)."""
    labels, gallery = labels.tolist(), gallery.double().tolist()
    hits, ndcgs = [], []
    for img, a, v in queries.tolist():
        target = list(labels[img])
        target[a] = v
        q = query_vector(img, a, v)
        score = [sum(x * y for x, y in zip(q, g)) if dot else -sum((x - y) ** 2 for x, y in zip(q, g))
                 for g in gallery]
        order = sorted((j for j in range(len(labels)) if j != img), key=lambda j: (-score[j], j))
        exact = [labels[j] == target for j in order]  # the whole vector, -1 matching -1
        hits.append([any(exact[:k]) for k in KS])
        rel = [sum(x == t for x, t in zip(labels[j], target)) / len(target) for j in order]
        dcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(rel[:30]))
        best = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(sorted(rel, reverse=True)[:30]))
        ndcgs.append((dcg / sum(1 / math.log2(i + 2) for i in range(30)), dcg / best))
    return hits, ndcgs


def check_ndcg(result, ndcgs):
    """ADDE's NDCG@30 (ideal: 30 fully relevant results) and the gallery-normalised one."""
    assert result["ndcg"] == pytest.approx(100 * sum(x for x, _ in ndcgs) / len(ndcgs))
    assert result["ndcg_gallery"] == pytest.approx(100 * sum(y for _, y in ndcgs) / len(ndcgs))


def notebook_queries(folder):
    """Section 1 of notebook 09: the manipulation queries of the test split, checked against
    the rule derived by a loop over images, attributes and values."""
    d, written = folder
    test = d.test
    assert test.labels.tolist() == written.tolist()  # read back as written, -1 included
    queries = manip.manipulation_queries(test.labels, d.meta.num_values)
    brute = []
    for i in range(len(test)):
        for a, n in enumerate(d.meta.num_values):
            if test.labels[i, a] < 0:
                continue
            for v in range(n):
                t = test.labels[i].clone()
                t[a] = v
                if v != test.labels[i, a] and (test.labels == t).all(1).any():
                    brute.append([i, a, v])
    assert queries.tolist() == brute
    return queries


def test_the_folders_give_queries_with_non_applicable_attributes(folder):
    d, _ = folder
    queries = notebook_queries(folder)
    target = manip.target_vectors(d.test.labels[queries[:, 0]], queries[:, 1], queries[:, 2])
    assert len(queries) >= 20 and len(torch.unique(queries[:, 1])) >= 3
    assert (target < 0).any()  # some targets need a -1 matched
    assert len(d.test) < max(KS)


def test_oracle_searcher_finds_every_target_at_every_k(folder):
    d, _ = folder
    queries = notebook_queries(folder)
    result = manip.evaluate(OracleSearcher(), d.test, queries, ks=KS)
    assert result["topk"] == {k: 100.0 for k in KS}
    assert result["hits"].all()
    codes = OracleSearcher().encode(d.test)
    hits, ndcgs = brute_force(d.test.labels, queries, codes, lambda i, a, v: OracleSearcher().query_vectors(
        codes[i:i + 1], a, torch.tensor([v]))[0].tolist(), dot=False)
    assert all(all(row) for row in hits)
    check_ndcg(result, ndcgs)


def test_random_searcher_matches_the_brute_force_loop(folder):
    d, _ = folder
    queries = notebook_queries(folder)
    searcher = RecordingRandomSearcher(torch.Generator().manual_seed(0))
    codes = manip.encode_all({"random": searcher}, d.test)["random"]  # as section 5 does
    result = manip.evaluate(searcher, d.test, queries, ks=KS, codes=codes)
    drawn = {}  # (image, attribute, value) -> the query vector the searcher drew
    for q_codes, a, values, out in searcher.drawn:
        for row, v, vec in zip(q_codes, values.tolist(), out):
            (img,) = (codes == row).all(1).nonzero()[:, 0].tolist()
            drawn[img, a, v] = vec.tolist()
    assert len(drawn) == len(queries)
    hits, ndcgs = brute_force(d.test.labels, queries, codes, lambda i, a, v: drawn[i, a, v], dot=True)
    assert result["hits"].tolist() == hits
    assert result["topk"] == {k: sum(row[c] for row in hits) / len(hits) * 100 for c, k in enumerate(KS)}
    check_ndcg(result, ndcgs)
    assert 0 < result["topk"][1] < 100 and result["topk"][max(KS)] == 100.0  # K past the gallery: all found


def test_random_floor_is_exact_on_a_gallery_smaller_than_k(folder):
    """Section 1's exact random floor, against the count of targets m among the n = N - 1
    other images: P(hit in the first K) = 1 - C(n - m, K) / C(n, K) (1 when K > n - m)."""
    d, _ = folder
    queries = notebook_queries(folder)
    floor = manip.random_topk(queries, d.test.labels, KS)
    labels, n = d.test.labels.tolist(), len(d.test) - 1
    for k in KS:
        total = 0.0
        for img, a, v in queries.tolist():
            target = list(labels[img])
            target[a] = v
            m = sum(row == target for row in labels)
            total += 1 - math.comb(n - m, k) / math.comb(n, k) if k <= n else 1.0
        assert floor[k] == pytest.approx(100 * total / len(queries))
