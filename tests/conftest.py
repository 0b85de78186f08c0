"""Shared fixtures: tiny image trees written on the fly, and the real datasets when present."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
os.environ.setdefault("OMP_NUM_THREADS", "2")


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def class_tree(tmp_path) -> Path:
    """root/<cat|dog>/img_i.png with 3 + 2 tiny RGB images, a hidden file and a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for label, n in (("cat", 3), ("dog", 2)):
        for i in range(n):
            write_png(root / label / f"img_{i}.png", rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
    (root / "cat" / ".DS_Store").write_bytes(b"junk")
    (root / "notes.txt").write_text("not an image")
    return root


def _extract(name: str, cache: Path) -> Path:
    archive = SHARED / f"{name}.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (real datasets live in ../shared/datasets)")
    target = cache / name
    if not target.exists():
        tmp = cache / f".{name}.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / name).rename(target)
    return target


@pytest.fixture(scope="session")
def real_datasets_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-datasets")


@pytest.fixture(scope="session")
def fashion_mnist_dir(real_datasets_cache) -> Path:
    """The extracted Fashion-MNIST PNG tree (skips when ../shared/datasets is absent)."""
    return _extract("fashion-mnist", real_datasets_cache)


@pytest.fixture(scope="session")
def mnist_dir(real_datasets_cache) -> Path:
    return _extract("mnist", real_datasets_cache)


@pytest.fixture(scope="session")
def clothing5_dir() -> Path:
    path = SHARED / "clothing5"
    if not path.is_dir():
        pytest.skip(f"{path} is absent (real datasets live in ../shared/datasets)")
    return path
