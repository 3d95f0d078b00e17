"""Training throughput (images/s) of the one training loop, per model and batch kind; in the
full profile also the data path and the model alone, and a re-statement of the authors'
training step, all measured side by side in one run.

Usage (quick profile, CPU):   .venv/bin/python benchmarks/train_speed.py
       (full profile, GPU):   .venv/bin/python benchmarks/train_speed.py --profile full --out results/full/train_speed.json
Options: --models asen [--sampling in_batch triplets] [--steps N] [--in-batch-size B] [--no-amp]
         [--no-channels-last] [--images N] [--workers N]

Rows (full profile):

* ``fgfs <model> <kind> batch B``: :func:`fgfs_lib.train.fit` as users run it (uint8 images
  from the memory-mapped FashionSynth cache, pinned, flipped and normalised on the GPU, bf16
  autocast, channels-last), with peak GPU memory and mean GPU utilisation.
* ``data path only``: the same batches delivered to the GPU with no model: if it is not well
  above the training rate, the data path is the limit.
* ``model only``: the same step on one batch already on the GPU (no data path): the ceiling
  the loop can reach, the floor of the time per image.
* ``authors' step``: the released ASEN training step re-stated from its description: JPEG
  files decoded by PIL in DataLoader workers, resize to 224 + centre crop + flip, fp32, NCHW,
  batches of 16 triplets with anchor, positive and negative each through the backbone
  (3 passes of 16 images), Adam. Same network (ASEN, ResNet-50 to layer3), same GPU.

One warm-up (not timed) precedes every row. The images are FashionSynth renderings (the
authors' path reads them as JPEG, as FashionAI ships).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from fgfs_lib import config, train, utils


def _gpu_sampler(stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        try:
            samples.append(float(torch.cuda.utilization()))
        except Exception:  # noqa: BLE001 - pynvml missing: no utilisation figure
            return
        time.sleep(0.05)


class GpuMonitor:
    """Peak memory and mean utilisation (nvidia-smi's figure, sampled every 50 ms) of a block."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.samples: list[float] = []

    def __enter__(self) -> "GpuMonitor":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.stop = threading.Event()
            self.thread = threading.Thread(target=_gpu_sampler, args=(self.stop, self.samples), daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.stop.set()
            self.thread.join()
            self.peak_gib = torch.cuda.max_memory_allocated() / 2**30

    def figures(self) -> dict[str, float | None]:
        if not self.cuda:
            return {"peak_memory_gib": None, "gpu_utilisation": None}
        return {"peak_memory_gib": round(self.peak_gib, 2),
                "gpu_utilisation": round(sum(self.samples) / len(self.samples), 1) if self.samples else None}


def _fit(model, data, cfg, settings, tmp: str, tag: str):
    return train.fit(model, data, cfg, out_dir=f"{tmp}/{tag}", settings=settings, verbose=False, resume=False)


def bench_fgfs(name: str, data, cfg, settings, tmp: str) -> dict:
    from fgfs_lib.models.registry import build_model

    utils.seed_everything(cfg.seed)
    model = build_model(name, data.meta, cfg)
    _fit(model, data, cfg, dataclasses.replace(settings, epochs=1, steps_per_epoch=5), tmp, f"{name}-warm")
    with GpuMonitor(utils.device()) as gpu:
        result = _fit(model, data, cfg, settings, tmp, f"{name}-{settings.sampling}")
    per_item = 1 if settings.sampling == "in_batch" else 3
    return {"row": f"fgfs {name} {settings.sampling} batch {settings.batch_size} x {per_item} img",
            "images_per_second": round(result.images_per_second, 1), **gpu.figures()}


def bench_data_path(data, cfg, settings) -> dict:
    """Images/s of the batches alone, delivered to the device and normalised."""
    from fgfs_lib import batches

    dev = utils.device()
    kind = batches.batch_kind(settings.sampling)
    source = batches.BatchSource(data.train, kind, dev, workers=settings.num_workers, seed=0,
                                 channels_last=dev.type == "cuda")
    plan = batches.epoch_plan(data.train.labels, settings, torch.Generator().manual_seed(0))
    for _ in zip(range(3), source.batches(plan)):
        pass
    t0 = time.perf_counter()
    n = 0
    for _, batch in source.batches(plan):
        n += sum(v.shape[0] for v in batch.values() if v.dim() == 4)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return {"row": f"data path only ({settings.sampling}, batch {settings.batch_size})",
            "images_per_second": round(n / (time.perf_counter() - t0), 1)}


def bench_model_only(name: str, data, cfg, settings, steps: int) -> dict:
    """The loop's step on one batch kept on the device: no data path at all."""
    from fgfs_lib import batches
    from fgfs_lib.models.registry import build_model

    dev = utils.device()
    model = build_model(name, data.meta, cfg).to(dev).train()
    cl = dev.type == "cuda" and settings.channels_last
    if cl:
        model.to(memory_format=torch.channels_last)
    kind = batches.batch_kind(settings.sampling)
    source = batches.BatchSource(data.train, kind, dev, channels_last=cl)
    plan = batches.epoch_plan(data.train.labels, settings, torch.Generator().manual_seed(0))
    _, batch = next(iter(source.batches(plan)))
    optimizer, _ = model.configure_optimizers(settings)
    amp = dev.type == "cuda" and settings.amp

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    with GpuMonitor(dev) as gpu:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    images = settings.batch_size * kind.images_per_item * steps
    return {"row": f"model only {name} {settings.sampling} batch {settings.batch_size}",
            "images_per_second": round(images / seconds, 1), **gpu.figures()}


# ------------------------------------------------------------------------------ the authors' step


class JpegTriplets(torch.utils.data.Dataset):
    """(anchor, positive, negative) images decoded from JPEG files by PIL, as the released
    code's data loader does: resize the short side to 224, centre crop, random flip,
    ToTensor, ImageNet normalisation, per image in the worker."""

    def __init__(self, paths: list[Path], triplets: torch.Tensor, size: int):
        import torchvision.transforms as T

        self.paths, self.triplets = paths, triplets
        self.transform = T.Compose([T.Resize(size), T.CenterCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def __len__(self) -> int:
        return len(self.triplets)

    def _image(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB"))

    def __getitem__(self, k: int):
        a, p, n, attribute = (int(v) for v in self.triplets[k])
        return self._image(a), self._image(p), self._image(n), attribute


def bench_authors_step(data, cfg, jpeg_paths: list[Path], steps: int, workers: int) -> dict:
    from fgfs_lib import losses, sampling
    from fgfs_lib.models.registry import build_model

    dev = utils.device()
    utils.seed_everything(0)
    model = build_model("asen", data.meta, cfg).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = 16
    triplets = sampling.sample_triplets(data.train.labels, (steps + 5) * batch, torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(JpegTriplets(jpeg_paths, triplets, data.train.image_size),
                                         batch_size=batch, shuffle=True, num_workers=workers, pin_memory=True,
                                         drop_last=True)
    with GpuMonitor(dev) as gpu:
        t0, n = None, 0
        for i, (a, p, q, attribute) in enumerate(loader):
            if i == 5:  # warm-up done (workers started, cuDNN tuned)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0, n = time.perf_counter(), 0
            attribute = attribute.to(dev)
            ea, ep, en = (model.embed(x.to(dev), attribute) for x in (a, p, q))  # 3 backbone passes
            loss = losses.cosine_triplet_loss(ea, ep, en, margin=0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += 3 * batch
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return {"row": f"authors' step (PIL JPEG, {workers} workers, fp32, NCHW, 3 x 16 img)",
            "images_per_second": round(n / seconds, 1), **gpu.figures()}


def write_jpegs(data, folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(data.train)):
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(data.train.raw([i])[0].permute(1, 2, 0).numpy()).save(path, quality=95)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=config.PROFILES, default=None)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--sampling", nargs="+", default=["in_batch", "triplets"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--in-batch-size", type=int, nargs="+", default=None)
    parser.add_argument("--images", type=int, default=2400, help="full profile: FashionSynth images rendered")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers of the authors' step")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and the environment as JSON")
    args = parser.parse_args(argv)
    cfg = config.load(args.profile)
    print(cfg.banner())
    dev = utils.device()
    print(f"device {dev} ({utils.env_report(cfg)['device_name']}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    from fgfs_lib import data as data_module

    tmp = tempfile.mkdtemp(prefix="fgfs-speed-")
    if cfg.quick:
        data = data_module.load("fashionsynth", cfg=cfg)
    else:
        from fgfs_lib.data import synth

        t0 = time.perf_counter()
        folder = synth.make_fashionsynth(Path(tmp) / "fs", profile="full", num_images=args.images)
        data = data_module.load("fashionsynth", root=folder, cfg=cfg)
        print(f"rendered {args.images} FashionSynth images at 224 px in {time.perf_counter() - t0:.1f} s")
    models = args.models or (["triplet", "csn"] if cfg.quick else ["asen"])
    steps = args.steps or cfg.pick(quick=30, full=60)
    in_batch_sizes = args.in_batch_size or [cfg.pick(quick=64, full=64)]
    rows = []

    def report(row: dict) -> None:
        rows.append(row)
        extra = "".join(f"  {k} {row[k]}" for k in ("peak_memory_gib", "gpu_utilisation") if row.get(k) is not None)
        print(f"{row['row']:<62s} {row['images_per_second']:8.1f} img/s{extra}", flush=True)

    for name in models:
        for sampling in args.sampling:
            for batch in (in_batch_sizes if sampling == "in_batch" else [cfg.pick(quick=32, full=16)]):
                settings = train.default_settings(cfg, sampling=sampling, epochs=1, steps_per_epoch=steps,
                                                  batch_size=batch, validate=False, checkpoint_every=0,
                                                  amp=not args.no_amp, channels_last=not args.no_channels_last)
                report(bench_fgfs(name, data, cfg, settings, tmp))
                if cfg.full:
                    report(bench_data_path(data, cfg, settings))
                    report(bench_model_only(name, data, cfg, settings, steps))
    if cfg.full:
        workers = args.workers if args.workers is not None else min(16, len(os.sched_getaffinity(0)))
        jpegs = write_jpegs(data, Path(tmp) / "jpeg")
        report(bench_authors_step(data, cfg, jpegs, steps, workers))
    if args.out:
        utils.atomic_write_json(args.out, {"rows": rows, "command": " ".join(["benchmarks/train_speed.py", *sys.argv[1:]]),
                                           "environment": utils.env_report(cfg), "steps": steps})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
