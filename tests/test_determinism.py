"""A training step is a function of the seed: the same state and batch give the same gradients.

Found in ASEN++: gathering the backbone map once per (image, attribute) pair with plain
indexing back-propagated through CPU atomic adds, so two runs of the same seed drifted apart
after the first step. ``utils.take_rows`` is the fix; these tests run with two threads, where
the atomic adds race (with the old gather, both ASEN++ cases here fail).
"""

import pytest
import torch

from fgfs_lib import batches, config, data, train, utils
from fgfs_lib.data import synth
from fgfs_lib.models.registry import available_models, build_model


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the races need at least two threads (the suite's default is one)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = synth.make_fashionsynth(tmp_path_factory.mktemp("synth") / "fs", seed=0, num_images=60, processes=1)
    return data.load("fashionsynth", root=root)


def test_take_rows_is_indexing_with_a_serial_backward(two_threads):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 128, 8, 8, generator=gen, requires_grad=True)
    index = torch.randint(0, 16, (400,), generator=gen)  # every row about 25 times
    upstream = torch.randn(400, 128, 8, 8, generator=gen)
    assert torch.equal(utils.take_rows(x, index), x[index])
    grads = []
    for _ in range(5):
        (grad,) = torch.autograd.grad(utils.take_rows(x, index), x, upstream)
        grads.append(grad)
    # oracle: the rows added one index at a time, in index order
    serial = torch.zeros_like(x)
    for i, row in zip(index.tolist(), upstream):
        serial[i] += row
    for grad in grads:
        assert torch.equal(grad, serial)


@pytest.mark.parametrize("name", available_models())
def test_one_training_step_gives_the_same_gradients_twice(name, images, tmp_path, monkeypatch, two_threads):
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path))
    cfg = config.load("quick", 0)
    utils.seed_everything(0)
    model = build_model(name, images.meta, cfg).train()
    settings = train.default_settings(cfg, batch_size=32)
    source = batches.BatchSource(images.train, batches.batch_kind(settings.sampling), torch.device("cpu"),
                                 workers=0, seed=0)
    plan = batches.epoch_plan(images.train.labels, settings, torch.Generator().manual_seed(0))
    _, batch = next(iter(source.batches(plan, 0)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    runs = []
    for _ in range(4):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # models that draw their triplets in the loss draw the same ones
        loss, _ = model.loss(batch)
        loss.backward()
        runs.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert runs[0], f"{name}: no gradients"
    for other in runs[1:]:
        differing = [k for k in runs[0] if not torch.equal(runs[0][k], other[k])]
        assert not differing, f"{name}: gradients differ between identical steps: {differing[:4]}"
