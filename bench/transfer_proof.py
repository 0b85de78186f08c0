"""Offline proof of transfer learning: a backbone pre-trained here on CIFAR-10, fine-tuned on clothing5's
real photos, against the same architecture trained from scratch on the same budget.

    flock /tmp/pixelforge-heavy.lock python -m bench.transfer_proof --pretrained runs/cifar-resnet18 \
        [--size 64] [--epochs 30] [--seeds 0 1]

The pre-trained model comes from ``make transfer-pretrain`` (``pixelforge train`` on CIFAR-10's 50,000
training JPEGs, ResNet-18 at 64 px). No internet, no published weights: the gain measured here is what
pre-training on *other* data buys a small photo set, the situation ImageNet weights are used in.

Per seed, on clothing5 (858 train / 108 validation / 150 test photos, 5 classes), same epochs,
batch, augmentation, optimizer and schedule:
  scratch        ``--model resnet18`` from random weights, at lr 0.05 and at the fine-tune's 0.01
  fine-tune      ``--pretrained`` + ``--unfreeze-after 2`` (head first, then every layer at
                 discriminative rates)
  linear head    ``pixelforge features --backbone <pretrained> --head``: logistic regression on the
                 frozen backbone's features (seconds)
Also the zoo's small ``resnet`` (ResNet-9 style) from scratch, the issue's baseline.
Writes bench/results/transfer_proof.json and .md (test accuracy of the checkpoint-best model, epochs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pixelforge.data.preprocess import Preprocess
from pixelforge.data.read import read_dataset
from pixelforge.train.features import linear_probe, load_extractor, write_features
from pixelforge.train.run import train_run

ROOT = Path(__file__).resolve().parents[1]
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing5"
RESULTS = ROOT / "bench" / "results"
REACH = 0.75  # validation accuracy whose first epoch measures how fast a contender learns
AUGMENT = "width_shift_range=0.1,height_shift_range=0.1,horizontal_flip,zoom_range=0.1"


def run(manifest, out: Path, **options) -> dict:
    started = time.perf_counter()
    summary = train_run(manifest, out, progress=False, verbose=False, threads=2, **options)
    metrics = summary["metrics"]
    history = json.loads((out / "history.json").read_text())
    history = history.get("history", history)
    reached = next((i + 1 for i, v in enumerate(history["val_accuracy"]) if v >= REACH), None)
    return {"test_accuracy": metrics["test_accuracy"], "best_val_accuracy": max(history["val_accuracy"]),
            "epochs": summary["epochs_run"], "epochs_to_reach": reached,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, help="the CIFAR-10 ResNet-18 run folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args()
    manifest = read_dataset(CLOTHING)
    work = Path(args.out or tempfile.mkdtemp(prefix="transfer-proof-"))
    common = dict(epochs=args.epochs, batch_size=32, augment=AUGMENT, schedule="cosine", optimizer="sgd",
                  momentum=0.9, weight_decay=5e-4, precision="bf16", monitor="val_accuracy")
    rows = []
    for seed in args.seeds:
        size = Preprocess(size=args.size)
        contenders = {
            "resnet18 from scratch, lr 0.05": dict(model="resnet18", preprocess=Preprocess(
                size=args.size, standardize="channel"), lr=0.05),
            "resnet18 from scratch, lr 0.01": dict(model="resnet18", preprocess=Preprocess(
                size=args.size, standardize="channel"), lr=0.01),
            "resnet18 fine-tuned from CIFAR-10": dict(model="resnet18", preprocess=size, lr=0.01,
                                                      pretrained=args.pretrained, unfreeze_after=2),
            "resnet (ResNet-9 style) from scratch": dict(model="resnet", preprocess=Preprocess(
                size=args.size, standardize="channel"), lr=0.05),
        }
        for name, options in contenders.items():
            result = run(manifest, work / f"run-{len(rows)}-seed{seed}", seed=seed, **common, **options)
            rows.append({"contender": name, "seed": seed, **result})
            print(json.dumps(rows[-1]), flush=True)
        started = time.perf_counter()
        extractor = load_extractor(args.pretrained)
        feats = work / f"features-{seed}.h5"
        write_features(manifest, feats, extractor)
        head = linear_probe(manifest, feats, extractor, work / f"head-{seed}", seed=seed)
        rows.append({"contender": "features + logistic head (CIFAR-10 backbone)", "seed": seed,
                     "test_accuracy": head["accuracy"], "epochs": 0,
                     "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for row in rows:
        summary.setdefault(row["contender"], []).append(row)
    lines = [f"# Transfer learning on clothing5: pre-trained on CIFAR-10 here vs from scratch ({args.size} px)", "",
             f"`python -m bench.transfer_proof --pretrained {args.pretrained} --size {args.size} --epochs "
             f"{args.epochs} --seeds {' '.join(map(str, args.seeds))}`; same epochs, batch 32, augmentation "
             f"`{AUGMENT}`, SGD momentum 0.9 + cosine, bf16; the checkpoint-best model (val accuracy) scored on "
             "the 150 test photos.", "",
             f"| contender | test accuracy (per seed) | mean | first epoch at {REACH:.0%} val accuracy | seconds per run |",
             "|---|---|---:|---|---:|"]
    for name, items in summary.items():
        accs = [r["test_accuracy"] for r in items]
        reached = ", ".join("–" if r.get("epochs_to_reach") is None else str(r["epochs_to_reach"]) for r in items)
        lines.append(f"| {name} | {', '.join(f'{a:.1%}' for a in accs)} | {statistics.mean(accs):.1%} | "
                     f"{reached if any(r['epochs'] for r in items) else 'no training'} | "
                     f"{statistics.mean(r['seconds'] for r in items):.0f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transfer_proof.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    (RESULTS / "transfer_proof.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
