"""ASEN++'s region crops: the batched tensor path against the released per-image path.

Usage: .venv/bin/python benchmarks/roi_speed.py [--profile quick|full] [--pairs N] [--repeats R]

Both paths take the same attention maps and images and produce crops of the attribute's
square region resized to the local branch's input size:

* per image (as released, re-stated): for each (image, attribute) pair, resize the map to the
  image with PIL (bilinear), min-max normalise, threshold, bounding box of the foreground,
  square and shift it with numpy, crop and resize the image with PIL, convert to a tensor;
* batched (``fgfs_lib.models.asen_global_local``): one interpolation, one thresholding, one
  ``roi_align`` for all pairs, on whatever device the images are on.

Prints pairs/s for each and the ratio, measured in the same run on the same inputs.

``--model`` also times what the crop costs inside ASEN++ (FashionSynth images of the profile,
``build_model("asenpp")``): a stage-2 training step (forward, backward, Adam; batch
``--batch`` images, one crop per annotated (image, attribute) pair) and evaluation
(``embed`` of ``--batch`` (image, attribute) pairs), each with the model's batched crops and
with the per-image crops above (uint8 images on the CPU, as in the released data path), from
the same weights, in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fgfs_lib import config, utils
from fgfs_lib.models import asen_global_local as agl


def per_image_crops(images_hwc: np.ndarray, maps: np.ndarray, image_index: np.ndarray, threshold: float,
                    crop: int) -> torch.Tensor:
    from PIL import Image

    out = []
    h, w = images_hwc.shape[1:3]
    for m, i in zip(maps, image_index):
        big = np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
        big = (big - big.min()) / max(float(big.max() - big.min()), 1e-12)
        ys, xs = np.nonzero(big > threshold)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        side = min(max(x1 - x0, y1 - y0), min(h, w))
        nx0 = min(max(int(round((x0 + x1 - side) / 2)), 0), w - side)
        ny0 = min(max(int(round((y0 + y1 - side) / 2)), 0), h - side)
        patch = Image.fromarray(images_hwc[i]).crop((nx0, ny0, nx0 + side, ny0 + side)).resize((crop, crop),
                                                                                             Image.BILINEAR)
        out.append(torch.from_numpy(np.asarray(patch)).permute(2, 0, 1))
    return torch.stack(out)


def batched_crops(images: torch.Tensor, maps: torch.Tensor, image_index: torch.Tensor, threshold: float,
                  crop: int) -> torch.Tensor:
    boxes = agl.roi_boxes(maps, tuple(images.shape[-2:]), threshold)
    return agl.crop_pairs(images, image_index, boxes, crop)


def timed(fn, dev: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


class PerImageCropModel(agl.ASENGlobalLocal):
    """ASEN++ whose local branch gets the released per-image crops of ``raw_hwc`` (the batch's
    uint8 images, set before each call), normalised by ``normalize``."""

    raw_hwc: np.ndarray
    normalize: object

    def _local(self, feats, index, attributes, alpha):
        crops = per_image_crops(self.raw_hwc, alpha.detach().float().cpu().numpy(), index.cpu().numpy(),
                                self.threshold, self.crop_size)
        crops = self.normalize(crops.to(feats["images"].device))
        x, _ = self.local_head(self.local_backbone(crops), self.attribute_embedding(attributes))
        return x, None


def model_speed(cfg, batch: int, repeats: int) -> None:
    """Stage-2 training step and evaluation images/s, batched crops against per-image crops."""
    import fgfs_lib
    from fgfs_lib.models.registry import build_model

    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    dev = utils.device()
    split = data.train
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(split.labels), generator=g)[:batch]
    raw = split.raw(idx)
    images, labels = split.normalize(raw.to(dev)), split.labels[idx].to(dev)
    known = (labels >= 0).float()
    attributes = torch.multinomial(known, 1, generator=None).flatten()  # one annotated attribute per image
    torch.manual_seed(0)
    batched = build_model("asenpp", data.meta, cfg).to(dev)
    per_image = PerImageCropModel(data.meta.num_attributes, **agl.default_options(cfg)).to(dev)
    per_image.load_state_dict(batched.state_dict())
    per_image.raw_hwc = raw.permute(0, 2, 3, 1).contiguous().numpy()
    per_image.normalize = split.normalize

    def step(model, optimizer):
        loss, _ = model.loss({"images": images, "labels": labels})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def embed(model):
        with torch.no_grad():
            model.embed(images, attributes)

    rates = {}
    for label, model in (("batched", batched), ("per-image", per_image)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        for what, fn in (("train", lambda: step(model, optimizer)), ("eval", lambda: embed(model))):
            rates[label, what] = batch / timed(fn, dev, repeats)
    crops = int(known.sum())
    print(f"ASEN++ stage 2, {cfg.profile} profile, batch {batch} images ({crops} crops per training step), "
          f"device {dev}, torch threads {torch.get_num_threads()} (best of {repeats})")
    for what in ("train", "eval"):
        b, p = rates["batched", what], rates["per-image", what]
        print(f"{what:<6} batched {b:8.1f} img/s   per-image crops {p:8.1f} img/s   batched / per-image {b / p:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=config.PROFILES, default=None)
    parser.add_argument("--pairs", type=int, default=None, help="(image, attribute) pairs per batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", action="store_true", help="also time ASEN++ stage-2 steps and evaluation")
    parser.add_argument("--batch", type=int, default=64, help="images per step for --model")
    args = parser.parse_args(argv)
    cfg = config.load(args.profile)
    size, grid, crop = cfg.pick(quick=(64, 8, 32), full=(224, 14, 112))
    pairs = args.pairs or cfg.pick(quick=320, full=320)
    dev = utils.device()
    g = torch.Generator().manual_seed(0)
    n_images = max(1, pairs // 5)  # about 5 annotated attributes per FashionSynth image
    images = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8, generator=g)
    maps = torch.softmax((torch.randn(pairs, grid * grid, generator=g) * 3), 1).view(pairs, grid, grid)
    index = torch.randint(n_images, (pairs,), generator=g)
    threshold = cfg.pick(quick=0.4, full=0.1)
    images_hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    float_images, dev_maps, dev_index = images.float().to(dev), maps.to(dev), index.to(dev)

    slow = timed(lambda: per_image_crops(images_hwc, maps.numpy(), index.numpy(), threshold, crop), dev, args.repeats)
    fast = timed(lambda: batched_crops(float_images, dev_maps, dev_index, threshold, crop), dev, args.repeats)
    print(f"{cfg.profile}: {pairs} pairs, {size} px images, {grid}x{grid} maps, {crop} px crops, device {dev}, "
          f"torch threads {torch.get_num_threads()} (best of {args.repeats})")
    print(f"per-image (PIL + numpy, released procedure): {pairs / slow:10.0f} pairs/s  ({slow * 1e3:.1f} ms)")
    print(f"batched (interpolate + roi_align):           {pairs / fast:10.0f} pairs/s  ({fast * 1e3:.1f} ms)")
    print(f"batched / per-image: {slow / fast:.1f}x")
    if args.model:
        model_speed(cfg, args.batch, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
