"""The GAP multi-attribute classifier (FashionSearchNet eq. 1) and its train-or-load cache."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fgfs_lib import config
from fgfs_lib.models import classifier as clf


def test_loss_is_eq1_per_image_and_ignores_not_applicable_labels():
    # two images, two attributes (2 and 3 values); image 1 has no label for attribute 0
    logits = [torch.tensor([[2.0, 0.0], [0.0, 5.0]]), torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])]
    labels = torch.tensor([[0, 1], [-1, 2]])
    loss, logs = clf.classification_loss(logits, labels)
    # -log softmax by hand
    term_00 = -(2.0 - math.log(math.exp(2.0) + 1.0))
    term_01 = math.log(3.0)
    term_11 = -(3.0 - math.log(math.exp(1.0) + math.exp(2.0) + math.exp(3.0)))
    assert loss.item() == pytest.approx((term_00 + term_01 + term_11) / 2, rel=1e-6)
    # accuracy over the 3 labelled entries: (0 -> 0 right), (1 -> argmax 0 wrong), (2 -> 2 right)
    assert logs["accuracy"] == pytest.approx(2 / 3)


def test_not_applicable_labels_get_no_gradient():
    logits = [torch.randn(3, 4, requires_grad=True), torch.randn(3, 2, requires_grad=True)]
    labels = torch.tensor([[1, -1], [-1, 0], [3, -1]])
    loss, _ = clf.classification_loss(logits, labels)
    loss.backward()
    assert torch.all(logits[0].grad[1] == 0) and torch.all(logits[1].grad[[0, 2]] == 0)
    assert logits[0].grad[0].abs().sum() > 0 and logits[1].grad[1].abs().sum() > 0
    # an attribute with no label at all adds nothing (and no NaN)
    loss_none, _ = clf.classification_loss([logits[0]], torch.full((3, 1), -1))
    assert loss_none.item() == 0.0


def test_classifier_shapes_on_any_image_size():
    from fgfs_lib.models.backbones import make_backbone

    model = clf.AttributeClassifier(make_backbone("small_cnn", width=4), [3, 5])
    for size in (16, 40):
        images = torch.randn(2, 3, size, size)
        feats = model.features(images)
        assert feats.shape == (2, model.backbone.out_channels, size // 8, size // 8)
        logits = model(images)
        assert [lg.shape for lg in logits] == [(2, 3), (2, 5)]


class _MeanColour(nn.Module):
    """A 'backbone' that returns the image itself: the GAP feature is the mean colour."""

    out_channels = 3

    def forward(self, x):
        return x


class _FakeSplit:
    """The parts of ImageSplit the classifier uses, on constant-colour images."""

    def __init__(self, labels, size=4):
        self.labels = labels
        colours = torch.eye(3)[labels[:, 0].clamp_min(0)] + 0.1 * (torch.arange(len(labels)).view(-1, 1) % 3)
        self.images = colours.view(-1, 3, 1, 1).expand(-1, 3, size, size).clone()

    def __len__(self):
        return len(self.labels)

    def batch(self, idx, augment=False, generator=None):
        return self.images[idx]


def test_evaluate_classifier_by_hand():
    model = clf.AttributeClassifier(_MeanColour(), [3])
    with torch.no_grad():  # predict the brightest channel
        model.heads[0].weight.copy_(torch.eye(3))
        model.heads[0].bias.zero_()
    labels = torch.tensor([[0], [1], [2], [-1]])
    split = _FakeSplit(labels)
    split.labels = torch.tensor([[0], [2], [2], [-1]])  # image 1 (green) is labelled 2: one error
    result = clf.evaluate_classifier(model, split, train_labels=torch.tensor([[2], [2], [1], [-1]]))
    assert result["accuracy"].tolist() == pytest.approx([2 / 3])
    assert result["count"].tolist() == [3]
    assert result["uniform"].tolist() == pytest.approx([1 / 3])
    assert result["majority"].tolist() == pytest.approx([2 / 3])  # train majority value 2


def _tiny_data(n=48):
    generator = torch.Generator().manual_seed(0)
    labels = torch.stack([torch.randint(0, 3, (n,), generator=generator),
                          torch.full((n,), -1)], dim=1)
    split = _FakeSplit(labels, size=8)
    meta = SimpleNamespace(num_values=[3, 2], num_attributes=2)
    return SimpleNamespace(meta=meta, train=split, test=split, config={"name": "tiny", "n": n})


def test_training_learns_and_the_cache_reloads_identical_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path))
    cfg = config.load(profile="quick", seed=3)
    data = _tiny_data()
    options = dict(steps=30, batch_size=16, lr=1e-2, backbone="small_cnn", width=4)
    model, record = clf.train_or_load_classifier(data, cfg, **options)
    assert not record["loaded"] and len(record["history"]["loss"]) == 30
    first, last = record["history"]["loss"][:5], record["history"]["loss"][-5:]
    assert sum(last) < 0.5 * sum(first)  # eq. 1 goes down on a learnable colour attribute
    assert clf.evaluate_classifier(model, data.test)["accuracy"][0] > 0.9
    again, record2 = clf.train_or_load_classifier(data, cfg, **options)
    assert record2["loaded"] and record2["key"] == record["key"]
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v.cpu(), v2.cpu())
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == [f"classifier_{record['key']}.json", f"classifier_{record['key']}.pt"]
    # another config (here: the seed) is another checkpoint
    _, record3 = clf.train_or_load_classifier(data, cfg, seed=4, **{**options, "steps": 2})
    assert not record3["loaded"] and record3["key"] != record["key"]


def test_cosine_schedule_anneals_and_bad_schedule_is_refused():
    data = _tiny_data(16)
    model = clf.build_classifier(data.meta, config.load(profile="quick"), backbone="small_cnn", width=4)
    with pytest.raises(ValueError, match="schedule"):
        clf.train_classifier(model, data, steps=1, batch_size=8, lr=1e-3, generator=torch.Generator(),
                             schedule="linear")
    cosine = clf.train_classifier(model, data, steps=4, batch_size=8, lr=1e-2, generator=torch.Generator())
    expected = [0.5 * 1e-2 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]  # rate used at step t
    assert cosine["lr"] == pytest.approx(expected)
    constant = clf.train_classifier(model, data, steps=3, batch_size=8, lr=1e-2, generator=torch.Generator(),
                                    schedule="constant")
    assert constant["lr"] == pytest.approx([1e-2] * 3)
