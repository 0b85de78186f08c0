"""Per-image work on a small thread pool: OpenCV releases the GIL, so large images go 2 at a time."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

THREAD_MIN_PIXELS = 64 * 64  # larger images are processed on a small thread pool (cv2 drops the GIL)
WORKERS = min(2, os.cpu_count() or 1)
_POOL = None


def for_each_image(func, n: int, pixels: int) -> None:
    """Run func(i) for every image, on 2 threads for large images (OpenCV releases the GIL)."""
    global _POOL
    if pixels < THREAD_MIN_PIXELS or n < 4 or WORKERS < 2:
        for i in range(n):
            func(i)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix="pixelforge-augment")
    chunks = np.array_split(np.arange(n), WORKERS)
    list(_POOL.map(lambda idx: [func(int(i)) for i in idx], chunks))
