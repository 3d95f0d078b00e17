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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=config.PROFILES, default=None)
    parser.add_argument("--pairs", type=int, default=None, help="(image, attribute) pairs per batch")
    parser.add_argument("--repeats", type=int, default=5)
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

    def timed(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(args.repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    slow = timed(lambda: per_image_crops(images_hwc, maps.numpy(), index.numpy(), threshold, crop))
    fast = timed(lambda: batched_crops(float_images, dev_maps, dev_index, threshold, crop))
    print(f"{cfg.profile}: {pairs} pairs, {size} px images, {grid}x{grid} maps, {crop} px crops, device {dev}, "
          f"torch threads {torch.get_num_threads()} (best of {args.repeats})")
    print(f"per-image (PIL + numpy, released procedure): {pairs / slow:10.0f} pairs/s  ({slow * 1e3:.1f} ms)")
    print(f"batched (interpolate + roi_align):           {pairs / fast:10.0f} pairs/s  ({fast * 1e3:.1f} ms)")
    print(f"batched / per-image: {slow / fast:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
