"""A preview montage: one row per source image, the original first, then its augmented copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.augment.save import check_format, to_uint8_image, write_image
from pixelforge.data.resize import resize
from pixelforge.errors import ParameterError

GAP = 2  # pixels between cells, in the background colour


def _cell(image: np.ndarray, size: int) -> np.ndarray:
    img = to_uint8_image(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return resize(img, (size, size), "pad", "area" if max(img.shape[:2]) > size else "nearest", pad_value=255)


def montage(rows: list[list[np.ndarray]], cell: int | None = None) -> np.ndarray:
    """Rows of HWC images → one RGB uint8 grid (cells letterboxed to ``cell`` pixels, white gaps)."""
    if not rows:
        raise ParameterError("montage needs at least one row")
    if cell is None:
        biggest = max(max(img.shape[:2]) for row in rows for img in row)
        cell = int(min(160, max(biggest, 64)))  # small digits get enlarged, photos shrunk
    n_cols = max(len(row) for row in rows)
    height = len(rows) * (cell + GAP) + GAP
    width = n_cols * (cell + GAP) + GAP
    grid = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            top, left = GAP + r * (cell + GAP), GAP + c * (cell + GAP)
            grid[top : top + cell, left : left + cell] = _cell(img, cell)
    return grid


def write_montage(path, rows: list[list[np.ndarray]], cell: int | None = None) -> Path:
    path = Path(path)
    fmt = check_format(path.suffix or ".png")
    return write_image(path, montage(rows, cell), fmt)
