"""The training loop, checkpoints, resume, evaluation and the train/evaluate CLI.

Training runs use a tiny in-memory dataset (16 px, ~100 images), so each test takes seconds.
"""

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fgfs_lib import batches, config, evaluate, metrics, train
from fgfs_lib.data import DatasetMeta, ImageSplit, RetrievalData
from fgfs_lib.models.base import ConditionalEmbedder
from fgfs_lib.models.csn import CSN
from fgfs_lib.models.backbones import SMALL_CNN_WEIGHTS, file_digest
from fgfs_lib.models.registry import build_model




# ----------------------------------------------------------------------------- tiny data


def _images(labels, size, g):
    """Attribute 0: which colour channel is bright; attribute 1: left or right half bright."""
    x = torch.rand(len(labels), 3, size, size, generator=g) * 60
    for i, (c, side) in enumerate(labels.tolist()):
        channel = c if c >= 0 else int(torch.randint(3, (1,), generator=g))
        half = side if side >= 0 else int(torch.randint(2, (1,), generator=g))
        x[i, channel, :, (slice(0, size // 2) if half == 0 else slice(size // 2, size))] += 180
    return x.clamp(0, 255).to(torch.uint8)


def _split(n, size, g, name):
    labels = torch.stack([torch.randint(3, (n,), generator=g), torch.randint(2, (n,), generator=g)], 1)
    labels[torch.rand(n, 2, generator=g) < 0.15] = -1
    return ImageSplit(labels, size, images=_images(labels, size, g), name=name)


def _pairs(split, g):
    rows = []
    for i in range(len(split)):
        known = torch.nonzero(split.labels[i] >= 0).squeeze(1)
        if len(known):
            a = int(known[torch.randint(len(known), (1,), generator=g)])
            rows.append((i, a, int(split.labels[i, a])))
    rows = torch.tensor(rows)
    q = torch.rand(len(rows), generator=g) < 0.25
    return rows[q], rows[~q]


def tiny_data(n_train=96, n_eval=48, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    meta = DatasetMeta(name="tiny", attribute_names=["colour", "side"],
                       value_names=[["red", "green", "blue"], ["left", "right"]])
    tr, va, te = _split(n_train, size, g, "train"), _split(n_eval, size, g, "valid"), _split(n_eval, size, g, "test")
    vq, vc = _pairs(va, g)
    tq, tc = _pairs(te, g)
    return RetrievalData(meta=meta, train=tr, valid=va, test=te, valid_queries=vq, valid_candidates=vc,
                         test_queries=tq, test_candidates=tc, root=None, config={"tiny": seed})


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture()
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("FGFS_DATA_DIR", str(tmp_path / "data"))
    return config.load("quick", 0)


def make(name, data, cfg, seed=0, **options):
    torch.manual_seed(seed)
    return build_model(name, data.meta, cfg, embed_dim=16, **options)


SMALL = dict(epochs=2, steps_per_epoch=7, batch_size=24, lr=3e-3, checkpoint_every=3)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0), k


# ----------------------------------------------------------------------------- training


def test_trainer_learns_tiny_set(data, cfg, tmp_path):
    model = make("triplet", data, cfg, weights=None)  # from scratch: the pretrained start is already good
    before = evaluate.retrieval_map(model, data, "valid")["overall"]
    result = train.fit(model, data, cfg, out_dir=tmp_path / "run", verbose=False,
                       epochs=4, steps_per_epoch=10, batch_size=24, lr=3e-3)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.75 * losses[0]
    rnd = evaluate.random_map(data, "valid")["overall"]
    assert result.best_map > rnd + 15 and result.best_map > before
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    assert all(np.isfinite(h["images_per_second"]) and h["images_per_second"] > 0 for h in result.history)


@pytest.mark.parametrize("sampling", ["in_batch", "triplets"])
def test_killed_run_resumes_to_the_same_weights(data, cfg, tmp_path, sampling):
    settings = dict(SMALL, sampling=sampling)
    reference = make("csn", data, cfg)
    train.fit(reference, data, cfg, out_dir=tmp_path / "whole", verbose=False, **settings)

    class Killed(RuntimeError):
        pass

    def kill(global_step, logs):
        if global_step == 12:  # mid epoch 2; last mid-epoch save was after step 3 of epoch 2
            raise Killed

    model = make("csn", data, cfg)
    with pytest.raises(Killed):
        train.fit(model, data, cfg, out_dir=tmp_path / "killed", verbose=False, on_step=kill, **settings)
    saved = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["finished"]) == (1, 3, False)

    torch.manual_seed(123)  # a fresh process: whatever the global RNG holds
    resumed = make("csn", data, cfg, seed=99)
    result = train.fit(resumed, data, cfg, out_dir=tmp_path / "killed", verbose=False, **settings)
    assert_same_params(params(resumed), params(reference))
    assert len(result.history) == 2
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert [h["loss"] for h in result.history] == pytest.approx([h["loss"] for h in whole["history"]], abs=1e-6)


def test_finished_run_is_not_trained_again(data, cfg, tmp_path):
    model = make("triplet", data, cfg)
    train.fit(model, data, cfg, out_dir=tmp_path / "run", verbose=False, **SMALL)
    weights = params(model)
    again = make("triplet", data, cfg, seed=5)
    calls = []
    result = train.fit(again, data, cfg, out_dir=tmp_path / "run", verbose=False,
                       on_step=lambda s, logs: calls.append(s), **SMALL)
    assert calls == [] and len(result.history) == 2
    assert_same_params(params(again), weights)


def test_nan_loss_stops_and_keeps_last_good_state(data, cfg, tmp_path):
    model = make("triplet", data, cfg)
    good = {}
    real_loss = model.loss

    def poisoned_loss(batch):
        loss, logs = real_loss(batch)
        return (loss * float("nan") if len(good) >= 5 else loss), logs

    model.loss = poisoned_loss

    def remember(step, logs):
        good[step] = params(model)

    result = train.fit(model, data, cfg, out_dir=tmp_path / "run", verbose=False, on_step=remember, **SMALL)
    assert result.stopped is not None and "non-finite loss" in result.stopped
    assert_same_params(params(model), good[5])  # the bad step changed nothing
    ckpt = train.load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["stopped"] == result.stopped and not ckpt["finished"]
    assert_same_params(ckpt["model_state"], good[5])
    assert all(torch.isfinite(v.float()).all() for v in ckpt["model_state"].values())


def test_checkpoint_of_another_model_or_config_is_refused(data, cfg, tmp_path):
    csn = make("csn", data, cfg, mask="fixed")
    train.fit(csn, data, cfg, out_dir=tmp_path / "csn", verbose=False, **dict(SMALL, epochs=1))
    path = tmp_path / "csn" / "last.pt"
    with pytest.raises(train.CheckpointMismatch, match="(?s)another model.*not in model: fixed_masks"):
        train.load_checkpoint(path, make("triplet", data, cfg))
    with pytest.raises(train.CheckpointMismatch, match=r"shape of fc.weight: \(16, 128\).*\(8, 128\)"):
        train.load_checkpoint(path, build_model("csn", data.meta, cfg, embed_dim=8, mask="fixed"))
    with pytest.raises(train.CheckpointMismatch, match=r"settings.lr: 0.003 \(checkpoint\) vs 0.001"):
        train.fit(make("csn", data, cfg, mask="fixed"), data, cfg, out_dir=tmp_path / "csn", verbose=False,
                  **dict(SMALL, epochs=1, lr=1e-3))
    # only tensors and plain Python values: loads with weights_only=True
    ckpt = torch.load(path, weights_only=True)
    model_config = dict(ckpt["run_config"]["model"])
    constructor = model_config.pop("constructor")
    assert model_config == {"name": "csn", "options": {"mask": "fixed", "embed_dim": 16}, "version": CSN.version,
                            "backbone_weights": [file_digest(SMALL_CNN_WEIGHTS)]}
    assert constructor["mask"] == "fixed" and constructor["embed_dim"] == 16  # defaults resolved beside them:
    assert constructor["margin"] == inspect.signature(CSN).parameters["margin"].default  # a default not passed
    assert ckpt["run_config"]["seed"] == 0


def test_a_changed_constructor_default_changes_the_cache_key(data, cfg, monkeypatch):
    """The key holds the resolved constructor arguments: changing a default (not an option
    anyone passed) gives a new key, so train_or_load retrains instead of reloading."""
    from fgfs_lib.models import asen as asen_module

    settings = train.default_settings(cfg, **SMALL)
    before = train.config_hash(train.run_config(build_model("asen", data.meta, cfg), data, cfg, settings))
    monkeypatch.setattr(asen_module, "default_options",
                        lambda c=None, _orig=asen_module.default_options: {**_orig(c), "hidden": 64})
    after = train.config_hash(train.run_config(build_model("asen", data.meta, cfg), data, cfg, settings))
    assert before != after
    again = train.config_hash(train.run_config(build_model("asen", data.meta, cfg), data, cfg, settings))
    assert again == after  # and the key is deterministic


def test_train_or_load_reuses_identical_config(data, cfg):
    first = train.train_or_load("triplet", data, cfg, model_options={"embed_dim": 16}, verbose=False,
                                **dict(SMALL, epochs=1))
    assert not first.reused and first.checkpoint_dir.parent == cfg.checkpoint_dir
    second = train.train_or_load("triplet", data, cfg, model_options={"embed_dim": 16}, verbose=False,
                                 **dict(SMALL, epochs=1))
    assert second.reused and second.checkpoint_dir == first.checkpoint_dir
    assert_same_params(params(second.model), params(first.model))
    assert second.history == first.history
    other = train.train_or_load("triplet", data, cfg, model_options={"embed_dim": 16}, verbose=False,
                                **dict(SMALL, epochs=1, lr=1e-3))
    assert not other.reused and other.checkpoint_dir != first.checkpoint_dir


def test_epoch_plan_batches_have_distinct_images(data):
    settings = train.TrainSettings(sampling="in_batch", steps_per_epoch=9, batch_size=40)
    plan = batches.epoch_plan(data.train.labels, settings, torch.Generator().manual_seed(0))
    assert plan["rows"].shape == (9, 40) and plan["flips"].shape == (9, 40)
    for row in plan["rows"]:
        assert len(set(row.tolist())) == 40
    again = batches.epoch_plan(data.train.labels, settings, torch.Generator().manual_seed(0))
    assert torch.equal(plan["rows"], again["rows"]) and torch.equal(plan["flips"], again["flips"])


def test_file_based_split_with_workers_trains_like_in_memory(data, cfg, tmp_path):
    """The DataLoader path (workers decoding files) gives the same batches as split.batch."""
    from PIL import Image

    paths = []
    for i, img in enumerate(data.train.images):
        paths.append(tmp_path / f"{i:04d}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    files = ImageSplit(data.train.labels, data.train.image_size, paths=paths, name="train")
    assert not files.in_memory
    file_data = RetrievalData(**{**data.__dict__, "train": files})
    settings = dict(SMALL, epochs=1, steps_per_epoch=3, sampling="triplets", validate=False)
    in_memory = make("triplet", data, cfg)
    train.fit(in_memory, data, cfg, out_dir=tmp_path / "mem", verbose=False, **settings)
    from_files = make("triplet", data, cfg)
    train.fit(from_files, file_data, cfg, out_dir=tmp_path / "files", verbose=False, num_workers=1, **settings)
    assert_same_params(params(from_files), params(in_memory))


# ----------------------------------------------------------------------------- evaluation


def test_embed_pairs_matches_per_pair_embedding_with_one_pass_per_image(data, cfg):
    model = make("csn", data, cfg).eval()
    pairs = torch.tensor([[3, 0, 1], [5, 1, 0], [3, 1, 1], [0, 0, 2], [5, 0, 0], [3, 0, 1]])
    seen = []
    real = model.features
    model.features = lambda x: (seen.append(len(x)), real(x))[1]
    emb = evaluate.embed_pairs(model, data.valid, pairs, batch_size=2)
    assert sum(seen) == 3  # images 0, 3, 5 once each
    with torch.no_grad():
        for row, e in zip(pairs, emb):
            direct = real(data.valid.batch(row[:1]))
            assert torch.allclose(e, model.embed_from_features(direct, row[1:2])[0], atol=1e-5)


def test_retrieval_map_cosine_and_euclidean_match_oracles(data, cfg):
    from sklearn.metrics import average_precision_score

    for name in ("triplet", "csn"):
        model = make(name, data, cfg)
        result = evaluate.retrieval_map(model, data, "test")
        q, c = data.test_queries, data.test_candidates
        emb = evaluate.embed_pairs(model, data.test, torch.cat([q, c]))
        qe, ce = emb[: len(q)], emb[len(q):]
        aps = []
        for i in range(len(q)):
            same_attr = c[:, 1] == q[i, 1]
            if name == "triplet":
                scores = torch.nn.functional.cosine_similarity(qe[i:i + 1], ce[same_attr])
            else:
                scores = -torch.cdist(qe[i:i + 1].double(), ce[same_attr].double())[0]
            rel = (c[same_attr, 2] == q[i, 2]).numpy()
            aps.append(average_precision_score(rel, scores.numpy()) if rel.any() else 0.0)
        assert result["overall"] == pytest.approx(100 * np.mean(aps), abs=1e-6)
        assert set(result["per_attribute_name"]) <= {"colour", "side"}
        if name == "triplet":
            direct = metrics.mean_average_precision(qe, q[:, 1], q[:, 2], ce, c[:, 1], c[:, 2])
            assert result["overall"] == pytest.approx(direct["overall"])


class OneHotOfValue(ConditionalEmbedder):
    """An image under attribute ``a`` embeds as the one-hot of its value of ``a``, read from the
    pixels of :func:`label_pixels`; attributes outside ``known`` embed as one constant vector."""

    def __init__(self, num_attributes, width, known, distance):
        super().__init__(num_attributes, width)
        self.known, self.distance, self.pairs = torch.as_tensor(known, dtype=torch.bool), distance, 0

    def features(self, images):
        return images[:, 0, 0, :self.num_attributes].round().long() - 1

    def embed_from_features(self, feats, attributes):
        self.pairs += len(attributes)
        values = feats.gather(1, attributes[:, None])[:, 0]
        one_hot = torch.nn.functional.one_hot(values.clamp_min(0), self.embed_dim).float()
        known = self.known.to(attributes.device)[attributes, None]
        return torch.where(known, one_hot, torch.ones_like(one_hot))


def label_pixels(labels):
    """An in-memory split whose image i holds ``labels[i, a] + 1`` at pixel (0, 0, a); mean 0
    and std 1/255 make the model see those numbers."""
    images = torch.zeros(len(labels), 3, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, :labels.shape[1]] = (labels + 1).to(torch.uint8)
    return ImageSplit(labels, 8, images=images, mean=(0.0,) * 3, std=(1 / 255,) * 3, name="test")


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_triplet_relation_on_models_that_know_every_some_or_no_condition(distance):
    from fgfs_lib.data import synth

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (60, 3), generator=g)
    labels[torch.rand(60, 3, generator=g) < 0.2] = -1
    split = label_pixels(labels)
    rows = synth.relation_triplets(labels, 400, seed=1)
    perfect = OneHotOfValue(3, 4, [True, True, True], distance)
    assert evaluate.triplet_relation(perfect, split, rows, batch_size=7) == 100.0
    images = torch.cat([rows[:, [k, 3]] for k in range(3)])
    assert perfect.pairs == len(torch.unique(images, dim=0))  # each (image, condition) embedded once
    assert evaluate.triplet_relation(OneHotOfValue(3, 4, [False] * 3, distance), split, rows) == 0.0  # ties are wrong
    # knowing conditions 0 and 2 only: exactly the rows of those conditions are right
    partial = evaluate.triplet_relation(OneHotOfValue(3, 4, [True, False, True], distance), split, rows)
    assert partial == pytest.approx(100 * float((rows[:, 3] != 1).double().mean()))
    assert 0 < partial < 100
    with pytest.raises(ValueError, match=r"\[T, 4\]"):
        evaluate.triplet_relation(perfect, split, rows[:0])


# ----------------------------------------------------------------------------- command line


def test_cli_train_then_evaluate_on_tiny_fashionsynth(tmp_path, monkeypatch):
    from fgfs_lib.data import synth

    monkeypatch.setenv("FGFS_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("FGFS_DATA_DIR", str(tmp_path / "data"))
    root = synth.make_fashionsynth(tmp_path / "synth", profile="quick", seed=0, num_images=240, image_size=32,
                                   processes=1)
    out = tmp_path / "run"
    code = train.cli_train(["--model", "csn", "--data", "fashionsynth", "--root", str(root), "--profile", "quick",
                            "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "16", "--seed", "1",
                            "--option", "mask=\"fixed\"", "--out", str(out)])
    assert code == 0 and (out / "last.pt").is_file()
    metrics_file = tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "fgfs_lib", "evaluate", "--checkpoint", str(out / "best.pt"),
                           "--out", str(metrics_file)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(metrics_file.read_text())
    assert 0 <= report["map"] <= 100 and report["seed"] == 1 and report["split"] == "test"
    assert {k: v for k, v in report["config"]["model"].items() if k != "constructor"} == {
        "name": "csn", "options": {"mask": "fixed"}, "version": CSN.version,
        "backbone_weights": [file_digest(SMALL_CNN_WEIGHTS)]}
    assert report["config"]["model"]["constructor"]["mask"] == "fixed"
    assert set(report["per_attribute"]) <= set(report["config"]["meta"]["attribute_names"])
    assert {"git_commit", "device", "random_map", "num_queries"} <= set(report)


def test_cli_evaluate_reports_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.cli_evaluate(["--checkpoint", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
