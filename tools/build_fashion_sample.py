"""Build ``src/pixelforge/datasets/fashion_sample.npz`` from the Fashion-MNIST archive.

Seeded and reproducible: the same archive and seed give the same images in the same order.
Picks ``--train`` images per class from ``train/`` and ``--test`` per class from ``test/``, keeps the
original member names as provenance, and stores everything with numpy's compressed npz.

    python tools/build_fashion_sample.py [--archive ../shared/datasets/fashion-mnist.tar.gz]
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "datasets" / "fashion-mnist.tar.gz"
DEFAULT_OUT = ROOT / "src" / "pixelforge" / "datasets" / "fashion_sample.npz"
# Official label order of Fashion-MNIST (index = the digit folder name in the archive).
FASHION_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_members(archive: Path) -> dict[str, bytes]:
    """All PNG members as {"train/3/0001.png": bytes} (about 25 MB for the full archive)."""
    members = {}
    with tarfile.open(archive) as tar:
        for info in tar:
            if not info.isfile() or not info.name.endswith(".png"):
                continue
            parts = info.name.split("/")
            rel = "/".join(parts[-3:])  # split/label/file.png, whatever the wrapper folder
            members[rel] = tar.extractfile(info).read()
    return members


def build(archive: Path, out: Path, n_train: int, n_test: int, seed: int) -> dict:
    members = read_members(archive)
    rng = np.random.default_rng(seed)
    images, labels, splits, files = [], [], [], []
    for split, per_class in (("train", n_train), ("test", n_test)):
        for digit in range(10):
            names = sorted(n for n in members if n.startswith(f"{split}/{digit}/"))
            if len(names) < per_class:
                raise SystemExit(f"{archive}: only {len(names)} images in {split}/{digit}, need {per_class}")
            chosen = sorted(rng.choice(len(names), size=per_class, replace=False))
            for j in chosen:
                name = names[j]
                img = np.asarray(Image.open(io.BytesIO(members[name])))
                if img.shape != (28, 28) or img.dtype != np.uint8:
                    raise SystemExit(f"{name}: expected a 28x28 grayscale image, got {img.shape} {img.dtype}")
                images.append(img)
                labels.append(digit)
                splits.append(split)
                files.append(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(
        tmp,
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.uint8),
        splits=np.asarray(splits),
        files=np.asarray(files),
        class_names=np.asarray(FASHION_NAMES),
        seed=np.asarray(seed),
    )
    tmp.replace(out)
    return {"images": len(images), "bytes": out.stat().st_size, "out": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train", type=int, default=300, help="training images per class")
    parser.add_argument("--test", type=int, default=60, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build(args.archive, args.out, args.train, args.test, args.seed))


if __name__ == "__main__":
    main()
