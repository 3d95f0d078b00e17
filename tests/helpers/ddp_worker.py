"""A tiny training run used by tests/test_distributed.py, under torchrun or alone.

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT [options]
    python ddp_worker.py OUT [options]          # the single-process reference

Trains a small BatchNorm-free model (so that per-rank batches give exactly the single-process
result) through ``fgfs_lib.train.fit``, then embeds the valid pairs (shared out over the ranks)
and saves each rank's weights, embeddings and valid MAP to ``OUT/rank<r>.pt``.
``--kill-at K`` ends every process abruptly (``os._exit``) after optimiser step K, as a crash.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn

from fgfs_lib import config, distributed, evaluate, train
from fgfs_lib.data import DatasetMeta, ImageSplit, RetrievalData
from fgfs_lib.models.base import ConditionalEmbedder


class TinyEmbedder(ConditionalEmbedder):
    """conv -> ReLU -> mean pool -> one linear head per attribute -> L2 norm (no BatchNorm)."""

    def __init__(self, num_attributes: int, embed_dim: int = 8):
        super().__init__(num_attributes, embed_dim)
        self.conv = nn.Conv2d(3, 12, 3, stride=2)
        self.heads = nn.Parameter(torch.randn(num_attributes, 12, embed_dim) * 0.3)

    def features(self, images):
        return torch.relu(self.conv(images)).mean(dim=(2, 3))

    def embed_from_features(self, feats, attributes):
        return nn.functional.normalize(torch.einsum("bc,bcd->bd", feats, self.heads[attributes]), dim=-1)


def tiny_data(n: int = 96, size: int = 16) -> RetrievalData:
    g = torch.Generator().manual_seed(123)
    labels = torch.stack([torch.randint(3, (n,), generator=g), torch.randint(2, (n,), generator=g)], 1)
    labels[::5, 1] = -1  # some "not applicable" entries
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    split = ImageSplit(labels, size, images=images, name="train")
    meta = DatasetMeta("tiny", ["colour", "side"], [["r", "g", "b"], ["left", "right"]])
    rows = torch.stack([torch.arange(8), torch.zeros(8, dtype=torch.long), labels[:8, 0]], 1)
    return RetrievalData(meta, split, split, split, rows, rows, rows, rows, root=None, config={"tiny": 1})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--sampling", default="in_batch")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--kill-at", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = config.load("quick", 0)
    data = tiny_data()
    torch.manual_seed(0)
    model = TinyEmbedder(data.meta.num_attributes)

    def crash(step: int, logs: dict) -> None:
        if args.kill_at and step == args.kill_at:
            sys.stdout.flush()
            os._exit(17)

    out = Path(args.out)
    settings = train.default_settings(cfg, sampling=args.sampling, epochs=args.epochs, steps_per_epoch=args.steps,
                                      batch_size=args.batch_size, lr=1e-2, validate=False, checkpoint_every=1)
    train.fit(model, data, cfg, out_dir=out / "run", settings=settings, verbose=False, on_step=crash)
    # evaluation shared out over the ranks: every rank must end up with every embedding
    pairs = torch.cat([data.valid_queries, data.valid_candidates])
    embeddings = evaluate.embed_pairs(model, data.valid, pairs, batch_size=4)
    valid_map = evaluate.retrieval_map(model, data, "valid", batch_size=4)["overall"]
    torch.save({**{k: v.detach().cpu() for k, v in model.state_dict().items()},
                "_embeddings": embeddings, "_valid_map": torch.tensor(valid_map)},
               out / f"rank{distributed.rank()}.pt")
    distributed.barrier()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
