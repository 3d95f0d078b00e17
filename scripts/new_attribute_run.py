"""A new attribute without retraining (notebook 10): add a held-out attribute to a trained ASEN.

    python scripts/new_attribute_run.py                            # quick profile, seeds 0 1 2
    python scripts/new_attribute_run.py --attribute collar_design --seeds 0

For each seed:

1. ``full``: ASEN trained on every attribute (``train_or_load``: notebook 06's runs are reused);
2. ``held out``: the same run with the attribute's labels hidden (``new_attribute.hold_out``);
3. ``added``: the held-out model plus ``add_attribute``: only the attribute's rows of the
   attention and gate embeddings trained, everything else frozen.

Reports test MAP per attribute for the three, the added attribute's MAP as a fraction of full
retraining, whether the other attributes' MAP moved between (2) and (3) (it must not: their
embeddings are bit-identical), and the seconds each training took. Writes
``results/10_new_attribute.json`` (config, seeds, device, commit).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from fgfs_lib import config, data as data_module, evaluate, train, utils
from fgfs_lib.models.registry import build_model
from fgfs_lib.new_attribute import add_attribute, hold_out
from fgfs_lib.search import resolve_attribute

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, model, out_dir: Path) -> float:
    """Run a training function; load its best weights; return the training seconds."""
    started = time.perf_counter()
    result = fn(out_dir)
    if (out_dir / "best.pt").is_file() and result.stopped is None:
        train.load_checkpoint(out_dir / "best.pt", model)
    return sum(h.get("train_seconds", 0.0) for h in result.history) or time.perf_counter() - started


def one_seed(seed: int, attribute_name: str, add_epochs: int, add_lr: float) -> dict:
    cfg = config.load(seed=seed)
    data = data_module.load("fashionsynth", cfg=cfg)
    a = resolve_attribute(data.meta, attribute_name)
    full = train.train_or_load("asen", data, cfg)
    full_seconds = sum(h.get("train_seconds", 0.0) for h in full.history)
    utils.seed_everything(seed)
    model = build_model("asen", data.meta, cfg)
    folder = cfg.checkpoint_dir / f"new_attribute-{attribute_name}-seed{seed}"
    held_data = hold_out(data, a)
    held_seconds = timed(lambda out: train.fit(model, held_data, cfg, out_dir=out, verbose=False), model,
                         folder / "held_out")
    held = evaluate.retrieval_map(model, data, "test")["per_attribute"]
    add_seconds = timed(lambda out: add_attribute(model, data, a, cfg, out_dir=out, verbose=False, epochs=add_epochs,
                                                  lr=add_lr), model, folder / f"added-{add_epochs}ep-lr{add_lr:g}")
    added = evaluate.retrieval_map(model, data, "test")["per_attribute"]
    full_map = evaluate.retrieval_map(full.model, data, "test")["per_attribute"]
    others = [b for b in range(data.meta.num_attributes) if b != a]
    return {
        "seed": seed, "attribute": attribute_name, "attribute_id": a,
        "full": full_map, "held_out": held, "added": added,
        "fraction_of_full": added[a] / full_map[a],
        "others_max_change": max(abs(added[b] - held[b]) for b in others),
        "others_mean_full_minus_held": sum(full_map[b] - held[b] for b in others) / len(others),
        "seconds": {"full": full_seconds, "held_out": held_seconds, "add": add_seconds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--attribute", default="neckline_design")
    parser.add_argument("--add-epochs", type=int, default=2)
    parser.add_argument("--add-lr", type=float, default=1e-2,
                        help="learning rate of the new rows (they start from their random initialisation)")
    parser.add_argument("--out", default=str(ROOT / "results" / "10_new_attribute.json"))
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(seed, args.attribute, args.add_epochs, args.add_lr))
        r = runs[-1]
        a = r["attribute_id"]
        print(f"seed {seed}: {args.attribute} full {r['full'][a]:.2f}, held out {r['held_out'][a]:.2f}, "
              f"added {r['added'][a]:.2f} ({100 * r['fraction_of_full']:.0f}% of full); others moved "
              f"{r['others_max_change']:.4f}; seconds {r['seconds']}")
        cfg = config.load(seed=seed)
        utils.atomic_write_json(args.out, {
            "what": "a held-out attribute added to a trained ASEN by training only its embedding rows",
            "attribute": args.attribute, "add_epochs": args.add_epochs, "add_lr": args.add_lr, "profile": cfg.profile,
            "seeds": args.seeds, "runs": runs, "settings": train.default_settings(cfg).__dict__,
            "env": utils.env_report(cfg),
            "command": f"python scripts/new_attribute_run.py --attribute {args.attribute} --add-epochs {args.add_epochs} "
                       f"--add-lr {args.add_lr:g} --seeds " + " ".join(map(str, args.seeds))})


if __name__ == "__main__":
    main()
