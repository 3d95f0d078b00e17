"""A new method plugs into the trainer without editing it: its own batch kind, its own loss,
its own parameter groups (frozen and slow parts), a start from another run's weights, and
the per-step cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fgfs_lib import batches, config, train
from fgfs_lib.models.base import ConditionalEmbedder
from fgfs_lib.optim import adam_with_schedule

from test_train import tiny_data


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def cfg():
    return config.load("quick", 0)


class Classifier(ConditionalEmbedder):
    """A per-attribute classifier trained on a registered batch kind; frozen stem, slow head."""

    def __init__(self, num_values: list[int]):
        super().__init__(len(num_values), 12)
        self.stem = nn.Conv2d(3, 12, 3, stride=2)
        self.body = nn.Linear(12, 12)
        self.heads = nn.ModuleList(nn.Linear(12, v) for v in num_values)
        self.stem.requires_grad_(False)

    def features(self, images):
        return torch.relu(self.body(torch.relu(self.stem(images)).mean(dim=(2, 3))))

    def embed_from_features(self, feats, attributes):
        return nn.functional.normalize(feats, dim=-1)

    def loss(self, batch):
        assert set(batch) == {"pixels", "targets"}  # the registered kind's batch, not a built-in one
        feats = self.features(batch["pixels"])
        terms = [nn.functional.cross_entropy(head(feats), batch["targets"][:, a], ignore_index=-1)
                 for a, head in enumerate(self.heads)]
        loss = torch.stack(terms).mean()
        return loss, {"ce": float(loss.detach())}

    def configure_optimizers(self, settings):
        groups = [{"params": self.body.parameters(), "lr": settings.lr},
                  {"params": self.heads.parameters(), "lr": settings.lr / 10}]
        return adam_with_schedule(groups, settings)

    def init_from_state(self, state):
        """Stage 2 starts from a stage-1 model whose body was called ``trunk``."""
        self.load_state_dict({k.replace("trunk.", "body."): v for k, v in state.items()})


batches.register_batch_kind(batches.BatchKind(
    "test_classification", 1,
    plan=lambda labels, settings, g: torch.randint(len(labels), (settings.steps_per_epoch, settings.batch_size),
                                                   generator=g),
    image_indices=lambda rows: rows,
    assemble=lambda images, rows, labels: {"pixels": images, "targets": labels[rows].to(images.device)},
))


def _copy(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_registered_kind_own_loss_and_parameter_groups(data, cfg, tmp_path):
    torch.manual_seed(0)
    model = Classifier(data.meta.num_values)
    before = _copy(model)
    losses = []
    result = train.fit(model, data, cfg, out_dir=tmp_path, verbose=False, sampling="test_classification",
                       epochs=3, steps_per_epoch=30, batch_size=32, lr=1e-2, validate=False,
                       on_step=lambda step, logs: losses.append(logs["ce"]))
    after = _copy(model)
    assert torch.equal(before["stem.weight"], after["stem.weight"])  # frozen
    assert not torch.equal(before["body.weight"], after["body.weight"])
    # Adam moves each weight by about lr per step at first: the heads' group moves 10x less
    body_step = (after["body.weight"] - before["body.weight"]).abs().mean()
    head_step = (after["heads.0.weight"] - before["heads.0.weight"]).abs().mean()
    assert head_step < body_step / 3
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10  # it learns
    assert result.run_config["settings"]["sampling"] == "test_classification"
    # a resumed run of a registered kind is refused if the settings differ, like any other
    with pytest.raises(train.CheckpointMismatch):
        train.fit(Classifier(data.meta.num_values), data, cfg, out_dir=tmp_path, verbose=False,
                  sampling="test_classification", epochs=3, steps_per_epoch=30, batch_size=16, lr=1e-2,
                  validate=False)


def test_init_from_another_runs_checkpoint_goes_through_init_from_state(data, cfg, tmp_path):
    class Stage1(Classifier):
        def __init__(self, num_values):
            super().__init__(num_values)
            self.trunk = self.body
            del self.body

        def features(self, images):
            return torch.relu(self.trunk(torch.relu(self.stem(images)).mean(dim=(2, 3))))

        def configure_optimizers(self, settings):
            return adam_with_schedule(self.parameters(), settings)

    torch.manual_seed(1)
    stage1 = Stage1(data.meta.num_values)
    train.fit(stage1, data, cfg, out_dir=tmp_path / "s1", verbose=False, sampling="test_classification",
              epochs=1, steps_per_epoch=5, batch_size=16, validate=False)
    torch.manual_seed(2)
    stage2 = Classifier(data.meta.num_values)
    train.fit(stage2, data, cfg, out_dir=tmp_path / "s2", verbose=False, sampling="test_classification",
              epochs=1, steps_per_epoch=2, batch_size=16, lr=0.0, validate=False,
              init_from=str(tmp_path / "s1" / "last.pt"))
    torch.testing.assert_close(stage2.body.weight, stage1.trunk.weight)  # lr 0: exactly stage 1's weights
    torch.testing.assert_close(stage2.heads[1].bias, stage1.heads[1].bias)


def test_cosine_schedule_steps_per_optimiser_step(data, cfg, tmp_path):
    torch.manual_seed(0)
    model = Classifier(data.meta.num_values)
    lrs = []
    trainer_lr = lambda step, logs: lrs.append(step)  # noqa: E731 - just counts steps
    result = train.fit(model, data, cfg, out_dir=tmp_path, verbose=False, sampling="test_classification",
                       epochs=2, steps_per_epoch=4, batch_size=16, lr=1e-2, lr_schedule="cosine",
                       validate=False, on_step=trainer_lr)
    # the lr recorded for epoch e is the one in force during its steps: cosine of the first step
    first, second = result.history[0]["lr"], result.history[1]["lr"]
    assert len(lrs) == 8
    assert math.isclose(second, 1e-2 * 0.5 * (1 + math.cos(math.pi * 7 / 8)), rel_tol=1e-6)
    assert math.isclose(first, 1e-2 * 0.5 * (1 + math.cos(math.pi * 3 / 8)), rel_tol=1e-6)


def test_a_start_is_keyed_by_its_weights_not_its_path(data, cfg, tmp_path):
    import shutil

    torch.manual_seed(1)
    stage1 = Classifier(data.meta.num_values)
    train.fit(stage1, data, cfg, out_dir=tmp_path / "s1", verbose=False, sampling="test_classification",
              epochs=1, steps_per_epoch=3, batch_size=16, validate=False)
    first = tmp_path / "s1" / "last.pt"
    (tmp_path / "elsewhere").mkdir()
    moved = shutil.copy(first, tmp_path / "elsewhere" / "start.pt")
    other = train.write_weights_checkpoint(tmp_path / "other.pt", Classifier(data.meta.num_values), {})

    def key(start):
        settings = train.default_settings(cfg, sampling="test_classification", init_from=str(start))
        return train.config_hash(train.run_config(Classifier(data.meta.num_values), data, cfg, settings))

    assert train.weights_digest(first) == train.weights_digest(moved) is not None
    assert key(first) == key(moved)   # the same weights at another path: the same run
    assert key(first) != key(other)   # other weights: another run
    assert train.weights_digest(tmp_path / "missing.pt") is None
