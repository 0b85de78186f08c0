"""A small real Fashion-MNIST sample shipped inside the package (no download, no other files needed).

3,600 images (300 train + 60 test per class), 28x28 grayscale uint8, chosen with a fixed seed from
the Fashion-MNIST archive by ``tools/build_fashion_sample.py``; every row keeps the original file name
(e.g. ``train/3/0412.png``) as provenance.

Class indices: like every pixelforge Manifest, indices follow the *sorted* class names, so they differ
from Fashion-MNIST's official label numbers. ``FASHION_CLASSES`` lists the official order
(official label i is ``FASHION_CLASSES[i]``); ``OFFICIAL_LABEL`` maps a class name back to it:

    pixelforge index: 0 Ankle boot, 1 Bag, 2 Coat, 3 Dress, 4 Pullover, 5 Sandal, 6 Shirt,
                      7 Sneaker, 8 T-shirt/top, 9 Trouser
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.errors import ParameterError

SAMPLE_PATH = Path(__file__).with_name("fashion_sample.npz")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
OFFICIAL_LABEL = {name: i for i, name in enumerate(FASHION_CLASSES)}


class SampleStorage(ArrayStorage):
    """ArrayStorage whose items are described by their original Fashion-MNIST file names."""

    def __init__(self, images: np.ndarray, files: list[str]):
        super().__init__(images, name="fashion_sample")
        self.files = files

    def describe(self, location: str) -> str:
        return f"fashion_sample:{self.files[int(location)]}"


@lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    with np.load(SAMPLE_PATH, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load_fashion_sample(split: str | None = None) -> Manifest:
    """The embedded sample as a Manifest with "train"/"test" splits (or only ``split``'s rows)."""
    data = _arrays()
    images = data["images"]
    images.flags.writeable = False  # shared between calls: nobody may change it in place
    names = [str(n) for n in data["class_names"]]
    labels = [names[int(i)] for i in data["labels"]]
    manifest = Manifest(
        locations=[str(i) for i in range(len(images))],
        labels=labels,
        storage=SampleStorage(images, [str(f) for f in data["files"]]),
        splits=[str(s) for s in data["splits"]],
        layout="builtin",
        source="pixelforge.datasets.fashion_sample",
        notes=["Fashion-MNIST sample (MIT, Zalando SE); class indices follow sorted class names"],
    )
    if split is None:
        return manifest
    if split not in ("train", "test"):
        raise ParameterError(f"split must be 'train', 'test' or None, got {split!r}")
    return manifest.split(split)
