"""Learning curve of notebook 03's classifier trained from scratch on one FashionSynth setting.

    PYTHONPATH=. python scripts/classifier_curve.py --epochs 8 --set framing='"full"' --set detail_scale=1.15 \
        --out results/synth_calibration/curve_full_framing.json

Prints, after each epoch of ``--steps-per-epoch`` steps (batch ``--batch``, Adam, one cosine
schedule over all epochs, seed 0, ``--threads`` CPU threads), the validation accuracy minus
the majority value's accuracy per attribute. With ``--out`` writes the rows as JSON and the
backbone's weights beside it (``.pt``, not committed).
"""
import argparse, json, sys, tempfile, time
import torch
from fgfs_lib import config as config_module, data as data_module, train, utils
from fgfs_lib.models import classifier as clf
p = argparse.ArgumentParser()
p.add_argument("--set", action="append", default=[])
p.add_argument("--steps-per-epoch", type=int, default=500)
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--width", type=int, default=32)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--out", default=None)
a = p.parse_args()
torch.set_num_threads(a.threads)
opts = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
cfg = config_module.load("quick")
data = data_module.load("fashionsynth", cfg=cfg, **opts)
names = list(data.meta.attribute_names)
# accuracy of always answering the training split's most frequent value, on the valid split
lab, tl = data.valid.labels, data.train.labels
major = []
for i in range(len(names)):
    t = tl[:, i][tl[:, i] >= 0]; k = lab[:, i] >= 0
    major.append(float((lab[k, i] == torch.bincount(t).argmax()).float().mean()))
utils.seed_everything(0)
model = clf.build_classifier(data.meta, cfg, width=a.width)
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as folder:
    res = train.fit(model, data, config_module.load("quick", 0), out_dir=folder, verbose=False, sampling="classification",
                    epochs=a.epochs, steps_per_epoch=a.steps_per_epoch, batch_size=a.batch, lr=a.lr,
                    lr_schedule="cosine", weight_decay=1e-4, validate=True)
hist = res.history
rows = []
for h in hist:
    d = {names[int(k)]: round(v / 100 - major[int(k)], 3) for k, v in h["valid_per_attribute"].items()}
    rows.append({"epoch": h["epoch"], "s": round(h["train_seconds"], 1), **d})
    print(h["epoch"], round(h["train_seconds"]), " ".join(f"{n[:6]}:{d[n]:+.2f}" for n in names), flush=True)
print("wall", time.perf_counter() - t0)
if a.out:
    json.dump({"args": vars(a), "rows": rows, "data": getattr(data, "config", None)}, open(a.out, "w"), indent=1, default=str)
    torch.save(model.backbone.state_dict(), a.out.replace(".json", ".pt"))
