"""Single-image search (fgfs_lib.search): names, values, the query first, PIL/path queries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fgfs_lib import search
from fgfs_lib.models.asen import ASEN

META = SimpleNamespace(
    attribute_names=["colour", "sleeve_length"],
    value_names=[["red", "green", "blue"], ["short", "long"]],
    num_values=[3, 2],
    num_attributes=2,
)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class TinySplit(torch.utils.data.Dataset):
    """The ImageSplit contract on random 32 px images (labels [N, A], batch, image_size)."""

    def __init__(self, n: int = 12, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        # blocky images (4x4 cells of 8 px): distinct, and stable under resizing
        self.raw = torch.rand(n, 3, 4, 4, generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
        self.images = (self.raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        self.labels = torch.stack([torch.arange(n) % 3, torch.arange(n) % 2], dim=1)
        self.labels[1, 1] = -1  # one image without a sleeve length
        self.image_size = 32
        self.mean, self.std = MEAN, STD

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], i

    def batch(self, indices, augment=False):
        return self.images[torch.as_tensor(indices)]

    def denormalize(self, x):
        return x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ASEN(2, backbone="small_cnn", width=4, embed_dim=8, hidden=6).eval()


def test_resolve_attribute_by_name_or_id():
    assert search.resolve_attribute(META, "sleeve_length") == 1
    assert search.resolve_attribute(META, "Sleeve Length") == 1
    assert search.resolve_attribute(META, 0) == 0
    with pytest.raises(ValueError, match="this dataset has: colour, sleeve_length"):
        search.resolve_attribute(META, "neckline")
    with pytest.raises(ValueError, match="out of range"):
        search.resolve_attribute(META, 2)


def test_query_in_gallery_comes_first_with_score_one_and_value_names(model):
    split = TinySplit()
    for q in (0, 5, 7):
        result = search.search(model, split.images[q], "colour", split, META, k=4)
        assert int(result.indices[0]) == q
        assert float(result.scores[0]) == pytest.approx(1.0, abs=1e-5)
        assert len(result) == 4 and result.attribute_name == "colour"
        assert result.value_names == [META.value_names[0][int(split.labels[i, 0])] for i in result.indices]
        assert torch.all(result.scores[:-1] >= result.scores[1:])  # best first
    excluded = search.search(model, split.images[5], 0, split, META, k=3, exclude=5)
    assert 5 not in excluded.indices.tolist()
    assert "rank" in str(excluded) and excluded.rows()[0]["rank"] == 1


def test_scores_match_a_brute_force_cosine_ranking(model):
    split = TinySplit(seed=3)
    q = 2
    with torch.no_grad():
        emb = model.embed(split.images, torch.zeros(len(split), dtype=torch.long))
    expected = torch.sort(emb @ emb[q], descending=True, stable=True)
    result = search.search(model, split.images[q], "colour", split, META, k=len(split))
    assert result.indices.tolist() == expected.indices.tolist()
    torch.testing.assert_close(result.scores, expected.values, atol=1e-5, rtol=1e-5)


def test_gallery_keeps_only_annotated_images_and_can_be_reused(model):
    split = TinySplit()
    gallery = search.embed_gallery(model, split, "sleeve_length", META, batch_size=5)
    assert 1 not in gallery.indices.tolist() and len(gallery) == len(split) - 1
    torch.testing.assert_close(gallery.embeddings.norm(dim=-1), torch.ones(len(gallery)))
    result = search.search(model, split.images[4], "sleeve_length", gallery, META, k=len(gallery))
    assert int(result.indices[0]) == 4 and set(result.value_names) == {"short", "long"}
    with pytest.raises(ValueError, match="embedded for 'sleeve_length'"):
        search.search(model, split.images[4], "colour", gallery, META)


def test_pil_and_path_queries_are_preprocessed_like_the_gallery(model, tmp_path):
    from PIL import Image

    split = TinySplit()
    q = 6
    pixels = (split.raw[q].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    path = tmp_path / "query.png"
    Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(path)  # bigger: resized back to 32
    loaded = search.load_query(path, split)
    assert loaded.shape == (1, 3, 32, 32)
    # away from the cell borders the resized pixels equal the originals up to 8-bit rounding
    torch.testing.assert_close(loaded[0][:, 2:6, 2:6], split.images[q][:, 2:6, 2:6], atol=0.02, rtol=0)
    from_pil = search.search(model, Image.open(path), "colour", split, META, k=1)
    from_path = search.search(model, str(path), "colour", split, META, k=1)
    assert int(from_pil.indices[0]) == int(from_path.indices[0]) == q
    with pytest.raises(FileNotFoundError, match="does not exist"):
        search.search(model, tmp_path / "missing.png", "colour", split, META)


def test_embedding_tensor_gallery_returns_row_numbers(model):
    split = TinySplit()
    emb = search.embed_gallery(model, split, 0, META).embeddings
    result = search.search(model, split.images[3], 0, emb, META, k=2)
    assert int(result.indices[0]) == 3 and result.value_names == [None, None]
