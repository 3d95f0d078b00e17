"""Training under torchrun (DistributedDataParallel, gloo on the CPU): the same result as one
process with the same global batch, the same batches whatever the number of processes, and a
killed multi-process run that resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgfs_lib import batches, distributed, train

WORKER = Path(__file__).parent / "helpers" / "ddp_worker.py"
ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, *args: str, processes: int = 0, check: bool = True) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes else [sys.executable])
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", FGFS_DEVICE="cpu")
    proc = subprocess.run(launcher + [str(WORKER), str(out), *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)


@pytest.mark.parametrize("processes", [2, 4])
def test_every_process_count_sees_the_same_global_batches(monkeypatch, processes):
    """The plan is drawn once from the seed; the shards of N ranks put back together are the
    single-process batch, images and flips alike, for both batch kinds."""
    labels = torch.randint(0, 3, (64, 2), generator=torch.Generator().manual_seed(1))
    for sampling in ("in_batch", "triplets"):
        settings = train.TrainSettings(sampling=sampling, steps_per_epoch=3, batch_size=8)
        kind = batches.batch_kind(sampling)
        plan = batches.epoch_plan(labels, settings, torch.Generator().manual_seed(0))
        for step in range(3):
            whole_rows, whole_flips = batches.local_step(plan, step, kind)  # one process
            parts = []
            for r in range(processes):
                monkeypatch.setattr(distributed, "rank", lambda r=r: r)
                monkeypatch.setattr(distributed, "world_size", lambda: processes)
                parts.append(batches.local_step(plan, step, kind))
            monkeypatch.undo()
            assert torch.equal(torch.cat([rows for rows, _ in parts]), whole_rows)
            # each rank's images and flips, regrouped by image slot (anchor, positive, negative)
            k = kind.images_per_item
            idx = torch.cat([kind.image_indices(rows).view(k, -1) for rows, _ in parts], dim=1)
            flips = torch.cat([f.view(k, -1) for _, f in parts], dim=1)
            assert torch.equal(idx.reshape(-1), kind.image_indices(whole_rows))
            assert torch.equal(flips.reshape(-1), whole_flips)


@pytest.mark.parametrize("sampling", ["in_batch", "triplets"])
def test_two_processes_after_one_step_equal_one_process_with_the_global_batch(tmp_path, sampling):
    _run(tmp_path / "ddp", "--sampling", sampling, processes=2)
    _run(tmp_path / "single", "--sampling", sampling)
    rank0, rank1 = _weights(tmp_path / "ddp" / "rank0.pt"), _weights(tmp_path / "ddp" / "rank1.pt")
    single = _weights(tmp_path / "single" / "rank0.pt")
    for k in rank0:  # identical on both ranks: the gradients were averaged; every embedding gathered
        assert torch.equal(rank0[k], rank1[k]), k
    _assert_close(rank0, single)
    assert rank0["_embeddings"].abs().sum(1).gt(0).all()  # no pair left unembedded by the shared evaluation
    initial = torch.load(tmp_path / "ddp" / "run" / "last.pt", weights_only=True)
    assert initial["global_step"] == 1
    assert any(not torch.equal(single[k], v) for k, v in _initial_weights().items() if k in single)  # it trained


def _initial_weights() -> dict[str, torch.Tensor]:
    sys.path.insert(0, str(WORKER.parent))
    try:
        import ddp_worker
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    return ddp_worker.TinyEmbedder(2).state_dict()


def test_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    args = ["--steps", "3", "--epochs", "2", "--batch-size", "8"]
    _run(tmp_path / "whole", *args, processes=2)
    killed = _run(tmp_path / "cut", *args, "--kill-at", "4", processes=2, check=False)
    assert killed.returncode != 0
    saved = torch.load(tmp_path / "cut" / "run" / "last.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["finished"]) == (1, 0, False)  # the last save before step 4
    _run(tmp_path / "cut", *args, processes=2)  # resumes from last.pt
    _assert_close(_weights(tmp_path / "cut" / "rank0.pt"), _weights(tmp_path / "whole" / "rank0.pt"))
