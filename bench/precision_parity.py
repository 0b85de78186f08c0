"""Accuracy and time of fp32 vs bf16 training, same seeds, same machine: is ``--precision auto`` safe?

    flock /tmp/pixelforge-heavy.lock python -m bench.precision_parity

fmnist_baseline on Fashion-MNIST (60,000 train / 10,000 test, 3 epochs, SGD 0.01/0.9, seeds 0 and 1;
its hand-written step multiplies in bf16) and the zoo's ResNet-9 (``resnet``) on clothing5 at 64 px
(20 epochs, cosine, flips and shifts, seed 0; CPU autocast). Writes bench/results/precision_parity.json/.md.
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

from pixelforge.data.preprocess import Preprocess
from pixelforge.data.read import read_dataset
from pixelforge.train.speed import native_bf16
from pixelforge.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"


def fashion() -> Path:
    target = Path("/tmp/ds/fashion-mnist")
    if not (target / "train").is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(SHARED / "fashion-mnist.tar.gz") as tar:
            tar.extractall(target.parent, filter="data")
    return target


def run(manifest, model: str, spec: Preprocess, precision: str, seed: int, epochs: int, **options) -> dict:
    started = time.perf_counter()
    trainer = Trainer(model, spec, seed=seed, precision=precision, verbose=False, threads=2, **options)
    trainer.fit(manifest.split("train"), epochs=epochs, batch_size=32)
    return {"model": model, "precision": precision, "seed": seed,
            "test_accuracy": trainer.evaluate(manifest.split("test"))["accuracy"],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    rows = []
    fmnist = read_dataset(fashion())
    clothing = read_dataset(SHARED / "clothing5")
    for precision in ("fp32", "bf16"):
        for seed in (0, 1):
            rows.append(run(fmnist, "fmnist_baseline", Preprocess(), precision, seed, 3, optimizer="sgd", lr=0.01,
                            momentum=0.9))
            print(json.dumps(rows[-1]), flush=True)
        rows.append(run(clothing, "resnet", Preprocess(size=64, standardize="channel"), precision, 0, 20, lr=0.05,
                        schedule="cosine", augment="width_shift_range=0.1,height_shift_range=0.1,horizontal_flip"))
        print(json.dumps(rows[-1]), flush=True)
    lines = ["# fp32 vs bf16 training: accuracy parity and time", "",
             f"`python -m bench.precision_parity`; native bf16 on this CPU: {native_bf16()}; the model after the last "
             "epoch, scored on the test split.", "",
             "| model, data | precision | seed | test accuracy | seconds |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['precision']} | {r['seed']} | {r['test_accuracy']:.2%} | {r['seconds']} |"
              for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "precision_parity.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "precision_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
