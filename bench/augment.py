"""Augmentation throughput: pixelforge's Pipeline vs albumentations (per image, as used in a Dataset)
vs tf_keras' ImageDataGenerator, same policy, same images, same run; plus what the policy costs a
fmnist_baseline training epoch.

    python -m bench.augment [--seconds 3] [--tf-python /tmp/tfvenv/bin/python] [--skip-training]

Policy: horizontal flip + rotation ±15° + shift ±10% + zoom ±10% + brightness ×[0.8, 1.2].
Data: Fashion-MNIST 28x28 (4,096 training images, batches of 256) and clothing5 photos resized to
224x224 (256 photos, batches of 32); decoding is done once beforehand and not timed. tf_keras
runs in its own interpreter (tensorflow is kept out of pixelforge's environment; found via
--tf-python or PIXELFORGE_TF_KERAS_PYTHON) and reports its images/s back as JSON.
Writes bench/results/augment.json and augment.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"
CACHE = Path(tempfile.gettempdir()) / "pixelforge-bench-cache"
POLICY = ("horizontal_flip,rotation_range=15,width_shift_range=0.1,height_shift_range=0.1,"
          "zoom_range=0.1,brightness_range=[0.8,1.2]")
CASES = {"fmnist_28x28": 256, "clothing5_224x224": 32}  # batch sizes


# ---- data --------------------------------------------------------------------------------------
def fashion_mnist(split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST as uint8 (N, 28, 28, 1) + labels, read from the shared tar once and cached."""
    cache = CACHE / f"fashion-mnist-{split}.npz"
    if not cache.exists():
        from PIL import Image

        xs, ys = [], []
        with tarfile.open(SHARED / "fashion-mnist.tar.gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 3 and parts[-3] == split and parts[-1].endswith(".png"):
                    xs.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read()))))
                    ys.append(int(parts[-2]))
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=np.stack(xs)[:, :, :, None], y=np.asarray(ys, np.int64))
    data = np.load(cache)
    x, y = data["x"], data["y"]
    return (x[:limit], y[:limit]) if limit else (x, y)


def clothing5(n: int = 256, size: int = 224) -> np.ndarray:
    from pixelforge.data.loader import load_arrays
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset

    manifest = read_dataset(SHARED / "clothing5").split("train")
    rows = np.random.default_rng(0).choice(len(manifest), size=min(n, len(manifest)), replace=False)
    x, _ = load_arrays(manifest.subset(np.sort(rows)), Preprocess(size=size, channels=3))
    return x


# ---- timing ------------------------------------------------------------------------------------
def rate(step, seconds: float) -> float:
    """Images per second of ``step()`` (which returns how many images it did), after one warm-up."""
    step()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def pixelforge_rate(x: np.ndarray, batch_size: int, seconds: float, spec: str = POLICY) -> float:
    from pixelforge.augment import Pipeline

    pipe = Pipeline.from_spec(spec)
    state = {"b": 0}

    def step():
        b = state["b"] % (len(x) // batch_size)
        state["b"] += 1
        pipe(x[b * batch_size:(b + 1) * batch_size], np.random.default_rng([0, 0, state["b"]]))
        return batch_size

    return rate(step, seconds)


def albumentations_rate(x: np.ndarray, seconds: float) -> tuple[float, str]:
    import albumentations as A

    transform = A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-15, 15), translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)}, scale=(0.9, 1.1),
                 border_mode=cv2.BORDER_REPLICATE, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=1.0),
    ], seed=0)
    state = {"i": 0}

    def step():
        for _ in range(64):
            transform(image=x[state["i"] % len(x)])["image"]
            state["i"] += 1
        return 64

    return rate(step, seconds), A.__version__


def tf_keras_rates(data: dict, seconds: float, python: str | None) -> dict | str:
    if not python:
        return "not run: no interpreter with tf_keras (give --tf-python or PIXELFORGE_TF_KERAS_PYTHON)"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(src, names=np.array(list(data)), seconds=seconds, batch_size=32, **data)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}
        done = subprocess.run([python, str(ROOT / "bench" / "tf_keras_peer.py"), "bench", str(src), str(dst)],
                              capture_output=True, text=True, timeout=1200, env=env)
        if done.returncode != 0:
            return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        return json.loads(dst.read_text())


# ---- training cost -----------------------------------------------------------------------------
def training_cost(rounds: int = 3) -> dict:
    """Seconds per fmnist_baseline epoch (60,000 images, batch 32) without and with the policy.

    One epoch of each in turn for ``rounds`` rounds. Besides the wall time of each epoch (which
    other work on a shared machine can inflate), every training step is timed by a callback, and
    the median step x steps per epoch gives an epoch time that such bursts do not move.
    """
    import torch

    from pixelforge.train import Trainer
    from pixelforge.train.callbacks import Callback

    class StepTimer(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.stamps = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs):
            self.stamps.append(time.perf_counter())

    torch.set_num_threads(2)
    x, y = fashion_mnist("train")
    out = {"images": int(len(x)), "batch_size": 32, "rounds": rounds}
    for _ in range(rounds):
        for name, spec in (("plain", None), ("augmented", POLICY)):
            timer = StepTimer()
            trainer = Trainer("fmnist_baseline", augment=spec, seed=0, verbose=False)
            history = trainer.fit((x, y), epochs=1, batch_size=32, callbacks=[timer])
            steps = np.diff(timer.stamps)
            entry = out.setdefault(name, {"epoch_seconds": [], "median_step_ms": [], "accuracy": []})
            entry["epoch_seconds"].append(round(history.history["seconds"][0], 2))
            entry["median_step_ms"].append(round(float(np.median(steps)) * 1000, 3))
            entry["accuracy"].append(round(float(history.history["accuracy"][0]), 4))
            entry["steps"] = len(steps)
    for name in ("plain", "augmented"):
        out[name]["best"] = min(out[name]["epoch_seconds"])
        out[name]["median_epoch"] = round(min(out[name]["median_step_ms"]) * out[name]["steps"] / 1000, 2)
    out["ratio"] = round(out["augmented"]["median_epoch"] / out["plain"]["median_epoch"], 3)
    out["ratio_best_wall"] = round(out["augmented"]["best"] / out["plain"]["best"], 3)
    out["augmentation_only_seconds"] = round(60000 / pixelforge_rate(x[:4096], 32, 3.0), 2)
    return out


# ---- report ------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    lines = [
        "# Augmentation throughput (images/s, higher is better)",
        "",
        f"Policy: `{POLICY}`. {result['machine']}. Same process, same images; tf_keras in its own venv.",
        "",
        "| data | pixelforge | albumentations (per image) | tf_keras ImageDataGenerator | vs albumentations | vs tf_keras |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, row in result["throughput"].items():
        tf = row.get("tf_keras")
        tf_text = f"{tf:,.0f}" if isinstance(tf, int | float) else "—"
        vs_tf = f"{row['pixelforge'] / tf:.1f}x" if isinstance(tf, int | float) else "—"
        lines.append(f"| {case} (batch {CASES[case]}) | {row['pixelforge']:,.0f} | {row['albumentations']:,.0f} | "
                     f"{tf_text} | {row['pixelforge'] / row['albumentations']:.1f}x | {vs_tf} |")
    extra = result.get("engines_28x28")
    if extra:
        lines += ["", "Engines at 28x28 (same policy): " + ", ".join(f"{k} {v:,.0f} img/s" for k, v in extra.items())]
    if result.get("tf_keras_error"):
        lines += ["", f"tf_keras: {result['tf_keras_error']}"]
    lines += ["", f"Versions: albumentations {result.get('albumentations')}, tf_keras {result.get('tf_keras_version', '—')}. "
              f"Each figure is the best of {result.get('rounds')} alternating rounds (the machine is shared)."]
    cost = result.get("training")
    if isinstance(cost, dict):
        lines += [
            "", f"## Training cost (fmnist_baseline, 60,000 images, batch 32, {cost['rounds']} alternating rounds)", "",
            "| | epoch from median step (s) | median step (ms), per round | wall time per epoch (s), per round | "
            "train accuracy after 1 epoch |", "| --- | ---: | --- | --- | --- |",
            *(f"| {label} | {cost[key]['median_epoch']} | {cost[key]['median_step_ms']} | {cost[key]['epoch_seconds']} "
              f"| {cost[key]['accuracy'][0]} |" for label, key in (("no augmentation", "plain"), ("with the policy", "augmented"))),
            "", f"Ratio: **{cost['ratio']}x** the epoch time without augmentation from median steps (target ≤ 1.3x); "
            f"from the best wall-clock epochs {cost['ratio_best_wall']}x (inflated by other work on the shared machine). "
            f"Augmentation alone for 60,000 images in batches of 32: {cost['augmentation_only_seconds']} s.",
        ]
    elif cost:
        lines += ["", f"Training cost: {cost}"]
    return "\n".join(lines) + "\n"


# The ops for images unlike the training data, each alone at p=1 (bench.augment --wild-ops), beside
# albumentations' nearest op where it has one (when installed).
WILD_OPS = {
    "background": "background=1.0",
    "recolor": "recolor=1.0",
    "perspective": "perspective=0.1,perspective.p=1",
    "stroke": "stroke=1.0",
    "blur": "blur=1.5,blur.p=1",
    "noise": "noise=20,noise.p=1",
    "jpeg": "jpeg=[30,90],jpeg.p=1",
}


def _albumentations_wild():
    try:
        import albumentations as A
    except ImportError:
        return {}
    return {
        "perspective": A.Perspective(scale=(0.05, 0.1), p=1.0),
        "blur": A.GaussianBlur(sigma_limit=(0.1, 1.5), p=1.0),
        "noise": A.GaussNoise(p=1.0),
        "jpeg": A.ImageCompression(quality_range=(30, 90), p=1.0),
    }


def wild_ops_rates(data: dict, seconds: float) -> dict:
    """images/s of each wild op per case (pixelforge batched; albumentations per image if installed)."""
    peers = _albumentations_wild()
    out: dict = {}
    for case, x in data.items():
        for name, spec in WILD_OPS.items():
            row = out.setdefault(name, {})
            row[f"{case} pixelforge"] = round(pixelforge_rate(x, CASES[case], seconds, spec))
            if name in peers:
                state = {"i": 0}

                def step(transform=peers[name], x=x, state=state):
                    for _ in range(64):
                        transform(image=x[state["i"] % len(x)])
                        state["i"] += 1
                    return 64

                row[f"{case} albumentations"] = round(rate(step, seconds))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--tf-python", default=os.environ.get("PIXELFORGE_TF_KERAS_PYTHON"))
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--wild-ops", action="store_true", help="only time the wild-gap ops (augment_wild.json)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(2)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    data = {"fmnist_28x28": fashion_mnist("train", limit=4096)[0], "clothing5_224x224": clothing5()}
    if args.wild_ops:
        wild = wild_ops_rates(data, args.seconds)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "augment_wild.json").write_text(json.dumps(wild, indent=2) + "\n")
        print(json.dumps(wild, indent=2))
        return wild
    result = {
        "policy": POLICY,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"OpenCV {cv2.__version__}",
        "throughput": {},
        "rounds": args.rounds,
    }
    # the machine is shared: contenders alternate over several rounds and each keeps its best round
    samples: dict = {}
    for _ in range(args.rounds):
        for case, x in data.items():
            add = samples.setdefault(case, {"pixelforge": [], "albumentations": []})
            add["pixelforge"].append(pixelforge_rate(x, CASES[case], args.seconds))
            value, result["albumentations"] = albumentations_rate(x, args.seconds)
            add["albumentations"].append(value)
        for engine in ("opencv", "batched"):
            samples.setdefault("engines_28x28", {}).setdefault(engine, []).append(
                pixelforge_rate(data["fmnist_28x28"], 256, args.seconds, POLICY + f",engine={engine}"))
    result["samples"] = samples
    for case in data:
        result["throughput"][case] = {name: max(values) for name, values in samples[case].items()}
        print(case, {k: round(v) for k, v in result["throughput"][case].items()}, flush=True)
    result["engines_28x28"] = {name: max(values) for name, values in samples["engines_28x28"].items()}
    tf = tf_keras_rates(data, args.seconds * args.rounds, args.tf_python)
    if isinstance(tf, dict):
        result["tf_keras_version"] = tf["tf_keras"]
        for case, value in tf["images_per_s"].items():
            result["throughput"][case]["tf_keras"] = value
    else:
        result["tf_keras_error"] = tf
    print("tf_keras", tf, flush=True)
    if not args.skip_training:
        result["training"] = training_cost()
        print("training", result["training"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "augment.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (RESULTS / "augment.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
