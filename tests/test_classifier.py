"""The GAP multi-attribute classifier (FashionSearchNet eq. 1), trained through the one training loop."""

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


def test_validate_is_mean_accuracy_x100():
    model = clf.AttributeClassifier(_MeanColour(), [3])
    with torch.no_grad():
        model.heads[0].weight.copy_(torch.eye(3))
        model.heads[0].bias.zero_()
    split = _FakeSplit(torch.tensor([[0], [1], [2], [-1]]))
    split.labels = torch.tensor([[0], [2], [2], [-1]])  # one error in three labelled images
    result = model.validate(SimpleNamespace(valid=split), "valid")
    assert result["overall"] == pytest.approx(100 * 2 / 3)
    assert result["per_attribute"] == {0: pytest.approx(100 * 2 / 3)}


def test_classification_batches_carry_each_images_label_row():
    from fgfs_lib import batches

    kind = batches.batch_kind("classification")
    labels = torch.arange(20).view(10, 2)
    settings = SimpleNamespace(steps_per_epoch=7, batch_size=2)  # no minimum batch size
    rows = kind.plan(labels, settings, torch.Generator().manual_seed(0))
    assert rows.shape == (7, 2)
    for step in rows:
        assert len(set(step.tolist())) == 2  # no image twice in a batch
    images = torch.randn(2, 3, 4, 4)
    batch = kind.assemble(images, rows[0], labels)
    assert set(batch) == {"images", "labels"} and torch.equal(batch["labels"], labels[rows[0]])


def test_trains_through_the_trainer_and_the_cache_reloads_identical_weights(tmp_path, monkeypatch):
    from test_train import tiny_data

    from fgfs_lib.train import train_or_load

    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path))
    cfg = config.load(profile="quick", seed=3)
    data = tiny_data()
    options = dict(model_options=dict(backbone="small_cnn", width=4), sampling="classification", epochs=3,
                   steps_per_epoch=10, batch_size=16, lr=1e-2, lr_schedule="cosine", use="last", verbose=False)
    run = train_or_load("attribute_classifier", data, cfg, **options)
    assert not run.reused and len(run.history) == 3
    assert run.history[-1]["loss"] < 0.7 * run.history[0]["loss"]  # eq. 1 goes down
    colour = clf.evaluate_classifier(run.model, data.test, train_labels=data.train.labels)
    assert colour["accuracy"][0] > colour["majority"][0] + 0.3  # the bright channel is learnt
    assert run.history[-1]["valid_map"] == pytest.approx(run.model.validate(data)["overall"])
    again = train_or_load("attribute_classifier", data, cfg, **options)
    assert again.reused and again.checkpoint_dir == run.checkpoint_dir
    for (k, v), (k2, v2) in zip(run.model.state_dict().items(), again.model.state_dict().items()):
        assert k == k2 and torch.equal(v.cpu(), v2.cpu())
    other = train_or_load("attribute_classifier", data, cfg, **{**options, "epochs": 1})
    assert not other.reused and other.checkpoint_dir != run.checkpoint_dir
