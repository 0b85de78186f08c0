"""Tiny, easy image data for the trainer tests: each class is a bright square in its own corner."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded torch: exact repeatability, and no OpenMP stalls on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_images(n_per_class: int = 30, size: int = 12, classes: int = 3, channels: int = 1, seed: int = 0):
    """(x uint8 N x size x size x channels, y class indices) — learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    half = size // 2
    corners = [(0, 0), (0, half), (half, 0), (half, half)]
    xs, ys = [], []
    for k in range(classes):
        img = rng.integers(0, 60, (n_per_class, size, size, channels), dtype=np.uint8)
        r, c = corners[k % 4]
        img[:, r : r + half, c : c + half, :] += np.uint8(150 + 40 * (k // 4))
        xs.append(img)
        ys.append(np.full(n_per_class, k))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


def toy_names(y, names=("alpha", "beta", "gamma", "delta")) -> np.ndarray:
    return np.asarray(names)[y]
