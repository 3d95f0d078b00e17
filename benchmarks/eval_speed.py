"""How fast does an evaluation embed a split on the CPU? The plain model against the inference copy.

Run: ``.venv/bin/python benchmarks/eval_speed.py`` (``--help`` for sizes).

Every evaluation of the course (a training run's validation after each epoch, test MAP, TR
accuracy) embeds a split through :func:`fgfs_lib.evaluate.embed_pairs`, which on a CPU runs
:func:`fgfs_lib.evaluate.inference_copy` of the model. Timed here (best of ``--repeats``), on
ASEN with the quick profile's pretrained small CNN, 64 px, one batch of ``--batch`` images:

* the model as trained (eval mode, contiguous memory, BatchNorm separate);
* BatchNorm folded into the convolutions only; channels-last memory only;
* the inference copy (both);
* the floor: the backbone's convolution FLOPs divided by the rate of one large float32 matrix
  product on this machine (what oneDNN reaches at best; the convolutions cannot beat it).

All variants must give the same features (to 1e-4); the script exits with status 1 if not.

For comparison, one training step of the same backbone (forward and backward of
``--train-batch`` training images, train mode) contiguous and channels-last: what channels-last would buy the
*training* on a CPU. The trainer uses it on CUDA only: on a CPU it changes the float rounding
of every step, so a run would no longer reproduce the committed runs bit for bit.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

import fgfs_lib
from fgfs_lib import config, evaluate, utils
from fgfs_lib.models.registry import build_model


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every Conv2d in ``model.features(x)``."""
    total = [0.0]

    def count(module, inputs, output):
        k = module.weight[0].numel()  # cin / groups x kh x kw
        total[0] += 2.0 * k * output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.features(x)
    for h in hooks:
        h.remove()
    return total[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=64, help="images of the training step (quick: 64)")
    args = parser.parse_args(argv)
    cfg = config.load("quick", 0)
    utils.seed_everything(0)
    data = fgfs_lib.data.load("fashionsynth", cfg=cfg)
    model = build_model("asen", data.meta, cfg).eval()
    x = data.test.batch(torch.arange(args.batch))
    last = torch.channels_last
    variants = {
        "as trained (contiguous, BatchNorm separate)": (model, x),
        "BatchNorm folded": (evaluate.fold_batchnorm(copy.deepcopy(model)), x),
        "channels-last": (copy.deepcopy(model).to(memory_format=last), x.contiguous(memory_format=last)),
        "inference copy (both)": (evaluate.inference_copy(model), x.contiguous(memory_format=last)),
    }
    with torch.inference_mode():
        reference = model.features(x)
        n = 2048
        a, b = torch.randn(n, n), torch.randn(n, n)
        rate = 2.0 * n ** 3 / best_time(lambda: a @ b, args.repeats)
        flops = conv_flops(model, x)
        print(f"{args.batch} images of {data.test.image_size} px, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}; backbone convolutions {flops / 1e9:.1f} GFLOP per batch")
        print(f"floor: {flops / rate:.3f} s (one {n}x{n} matrix product runs at {rate / 1e9:.0f} GFLOP/s)")
        base = None
        ok = True
        for label, (net, inp) in variants.items():
            seconds = best_time(lambda: net.features(inp), args.repeats)
            base = base or seconds
            same = torch.allclose(net.features(inp), reference, atol=1e-4)
            ok &= same
            print(f"{label:<46} {seconds:6.3f} s  {base / seconds:4.2f}x  {args.batch / seconds:6.0f} img/s"
                  f"  same features: {same}")
        print("one training step (backbone forward + backward, train mode):")
    for label, memory in (("contiguous", torch.contiguous_format), ("channels-last", last)):
        net = copy.deepcopy(model).train().to(memory_format=memory)
        inp = data.train.batch(torch.arange(args.train_batch)).contiguous(memory_format=memory)
        seconds = best_time(lambda: net.features(inp).float().square().mean().backward(), args.repeats)
        print(f"  {label:<44} {seconds:6.3f} s  {args.train_batch / seconds:6.0f} img/s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
