"""Decode + resize throughput: pixelforge's loader vs a plain Pillow loop, same machine, same run.

    flock /tmp/pixelforge-heavy.lock python -m bench.decode [--fashion N] [--rounds 3]

Workloads
  fashion   Fashion-MNIST PNGs (28x28 grayscale), decoded as they are (no resize)
  clothing5 clothing5 JPEG photos (about 400x530 to 890x940), resized to 128x128 RGB
Contenders
  plain Pillow loop   ``np.asarray(Image.open(f).convert(mode).resize(size))`` one file after another
  pixelforge          ``iterate_decoded(manifest, Preprocess(size, channels))`` with its defaults
                      (auto backend per format, JPEG draft mode, OpenCV area resize, parallel workers)
  pixelforge 1 worker the same on one thread, to separate per-image work from parallelism
  thread / process    the loader's two executors, to set the "auto" policy
Also: Pillow vs OpenCV backend per format (single thread, bytes already in memory), to pick the default.

Rounds interleave the contenders so that machine noise hits them alike; the best round counts.
Writes bench/results/decode.json and bench/results/decode.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.data.decode import DEFAULT_BACKENDS, decode_image
from pixelforge.data.loader import iterate_decoded
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.read import read_dataset
from pixelforge.data.resize import resize
from pixelforge.data.workers import default_workers

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"


def fashion_tree() -> Path:
    """The extracted Fashion-MNIST tree (/tmp/ds or a cache extracted from ../shared/datasets)."""
    for candidate in (Path("/tmp/ds/fashion-mnist"), Path("/tmp/pixelforge-bench/fashion-mnist")):
        if (candidate / "train").is_dir():
            return candidate
    cache = Path("/tmp/pixelforge-bench")
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(SHARED / "fashion-mnist.tar.gz") as tar:
        tar.extractall(cache, filter="data")
    return cache / "fashion-mnist"


def workloads(n_fashion: int) -> list[dict]:
    fashion = read_dataset(fashion_tree()).split("train")
    step = max(1, len(fashion) // n_fashion)
    fashion = fashion.subset(np.arange(0, len(fashion), step)[:n_fashion])
    clothing = read_dataset(SHARED / "clothing5")
    return [
        {"name": "fashion-mnist PNG 28x28, no resize", "key": "fashion", "manifest": fashion,
         "size": None, "mode": "L", "channels": 1, "format": "png"},
        {"name": "clothing5 JPEG, resized to 128x128", "key": "clothing5", "manifest": clothing,
         "size": (128, 128), "mode": "RGB", "channels": 3, "format": "jpeg"},
    ]


def plain_pillow_loop(paths: list[str], mode: str, size) -> int:
    """What a user writes without pixelforge: open, convert, resize, asarray, one file at a time."""
    n = 0
    for path in paths:
        img = Image.open(path).convert(mode)
        if size is not None:
            img = img.resize((size[1], size[0]))
        np.asarray(img)
        n += 1
    return n


def pixelforge_loader(manifest, spec: Preprocess, **kwargs) -> int:
    return sum(len(batch) for batch, _, _ in iterate_decoded(manifest, spec, 256, **kwargs))


def backend_rates(datas: list[bytes], channels: int, size) -> dict[str, float]:
    """Images/s of decode (+ resize) per backend on one thread, bytes already in memory."""
    rates = {}
    for backend in ("pillow", "opencv"):
        start = time.perf_counter()
        for data in datas:
            img = decode_image(data, channels=channels, backend=backend, draft_size=size)
            if size is not None:
                resize(img, size)
        rates[backend] = len(datas) / (time.perf_counter() - start)
    return rates


def same_pixels(manifest, spec: Preprocess, mode: str, size, count: int = 50) -> float:
    """Mean absolute difference (0-255) between pixelforge's arrays and the plain loop's."""
    diffs = []
    for i in range(0, len(manifest), max(1, len(manifest) // count)):
        ours = spec.load(manifest, i).astype(np.float64)
        img = Image.open(manifest.storage.local_path(manifest.locations[i])).convert(mode)
        if size is not None:
            img = img.resize((size[1], size[0]))
        theirs = np.asarray(img, dtype=np.float64).reshape(ours.shape)
        diffs.append(np.abs(ours - theirs).mean())
    return float(np.mean(diffs))


def measure(load: dict, rounds: int, workers: int) -> dict:
    manifest, size = load["manifest"], load["size"]
    spec = Preprocess(size=size, channels=load["channels"])
    paths = [str(manifest.storage.local_path(loc)) for loc in manifest.locations]
    datas = [Path(p).read_bytes() for p in paths]  # also warms the page cache for everyone
    contenders = {
        "plain Pillow loop": (plain_pillow_loop, (paths, load["mode"], size), {}),
        "pixelforge": (pixelforge_loader, (manifest, spec), {}),
        "pixelforge, 1 worker": (pixelforge_loader, (manifest, spec), {"workers": 1}),
        f"pixelforge, {workers} threads": (pixelforge_loader, (manifest, spec), {"executor": "thread"}),
        f"pixelforge, {workers} processes": (pixelforge_loader, (manifest, spec), {"executor": "process"}),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    backend_runs: list[dict[str, float]] = []
    for _ in range(rounds):
        for name, (fn, args, kwargs) in contenders.items():
            start = time.perf_counter()
            n = fn(*args, **kwargs)
            times[name].append(time.perf_counter() - start)
            if n != len(manifest):
                raise SystemExit(f"{name} decoded {n} of {len(manifest)} images")
        backend_runs.append(backend_rates(datas[:2000], load["channels"], size))
    rates = {name: len(manifest) / min(ts) for name, ts in times.items()}
    backends = {b: max(r[b] for r in backend_runs) for b in ("pillow", "opencv")}
    return {
        "workload": load["name"], "images": len(manifest), "format": load["format"],
        "images_per_s": {k: round(v, 1) for k, v in rates.items()},
        "seconds_per_round": {k: [round(t, 3) for t in ts] for k, ts in times.items()},
        "ratio_vs_plain": {k: round(v / rates["plain Pillow loop"], 2) for k, v in rates.items()},
        "backend_images_per_s": {k: round(v, 1) for k, v in backends.items()},
        "faster_backend": max(backends, key=backends.get), "default_backend": DEFAULT_BACKENDS[load["format"]],
        "mean_abs_pixel_difference_vs_plain": round(same_pixels(manifest, spec, load["mode"], size), 3),
    }


def run(n_fashion: int, rounds: int) -> dict:
    import cv2

    workers = default_workers()
    report = {
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "pillow": Image.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
                    "load_average_at_start": os.getloadavg()},
        "workers": workers, "rounds": rounds, "workloads": [],
    }
    for load in workloads(n_fashion):
        report["workloads"].append(measure(load, rounds, workers))
    report["machine"]["load_average_at_end"] = os.getloadavg()
    return report


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Decode + resize throughput: pixelforge vs a plain Pillow loop",
        "",
        f"`python -m bench.decode` on {m['affinity']} CPU core(s), Python {m['python']}, Pillow {m['pillow']}, "
        f"OpenCV {m['opencv']}; best of {report['rounds']} interleaved rounds; load average at start "
        f"{m['load_average_at_start'][0]:.2f}, at end {m['load_average_at_end'][0]:.2f} (shared machine).",
        "",
        "| workload | images | contender | images/s | ratio vs plain loop |",
        "|---|---:|---|---:|---:|",
    ]
    for w in report["workloads"]:
        for name, rate in w["images_per_s"].items():
            lines.append(f"| {w['workload']} | {w['images']:,} | {name} | {rate:,.0f} | {w['ratio_vs_plain'][name]:.2f}x |")
    lines += ["", "## Decoder backend per format (one thread, bytes in memory, incl. resize/draft)", "",
              "| format | Pillow images/s | OpenCV images/s | faster | default (`DEFAULT_BACKENDS`) |",
              "|---|---:|---:|---|---|"]
    for w in report["workloads"]:
        b = w["backend_images_per_s"]
        lines.append(f"| {w['format']} | {b['pillow']:,.0f} | {b['opencv']:,.0f} | {w['faster_backend']} | "
                     f"{w['default_backend']} |")
    lines += ["", "Pixel agreement with the plain loop (mean absolute difference, 0-255): "
              + ", ".join(f"{w['format']} {w['mean_abs_pixel_difference_vs_plain']}" for w in report["workloads"])
              + " (PNG: identical; JPEG: draft-mode decoding and area vs bicubic resampling).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion", type=int, default=10_000, help="Fashion-MNIST PNGs to decode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.fashion, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decode.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "decode.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
