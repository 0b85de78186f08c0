"""Decode a Manifest in batches, in order, with a thread pool, counting every skipped item.

Pillow's decoders and OpenCV's resize release the GIL, so threads overlap the heavy part of decoding
without the cost of pickling arrays between processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pixelforge.data.manifest import Manifest, Skip
from pixelforge.errors import PixelforgeError

ON_ERROR = ("skip", "fail")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _load_one(args):
    manifest, spec, i = args
    try:
        return i, spec.load(manifest, i), None
    except PixelforgeError as exc:
        return i, None, str(exc)
    except (OSError, ValueError, MemoryError) as exc:  # anything else from a broken file
        return i, None, f"{manifest.describe(i)}: {exc}"


def iterate_decoded(
    manifest: Manifest,
    spec,
    batch_size: int = 256,
    *,
    indices=None,
    on_error: str = "skip",
    skipped: list[Skip] | None = None,
    workers: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(images NHWC, label indices, row indices)`` batches; skips go to ``skipped``.

    With ``on_error="fail"`` the first undecodable image raises a PixelforgeError naming it.
    Images must come out at one shape (set ``spec.size`` for sources of mixed sizes).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    rows = np.arange(len(manifest)) if indices is None else np.asarray(indices, dtype=np.int64)
    labels = manifest.label_indices()
    workers = default_workers() if workers is None else max(1, workers)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            jobs = [(manifest, spec, int(i)) for i in chunk]
            results = pool.map(_load_one, jobs) if pool else map(_load_one, jobs)
            images, kept = [], []
            for i, img, error in results:
                if error is not None:
                    if on_error == "fail":
                        raise PixelforgeError(error)
                    if skipped is not None:
                        name = manifest.describe(i)
                        reason = error[len(name) + 2 :] if error.startswith(name + ": ") else error
                        skipped.append(Skip(name, reason))
                    continue
                if images and img.shape != images[0].shape:
                    message = (
                        f"{manifest.describe(i)}: shape {img.shape} differs from {images[0].shape}; "
                        "give a size (e.g. --size 64) to resize images to one shape"
                    )
                    raise PixelforgeError(message)
                images.append(img)
                kept.append(i)
            if not images:
                continue
            kept_arr = np.asarray(kept, dtype=np.int64)
            yield np.stack(images), labels[kept_arr], kept_arr
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)


def load_arrays(manifest: Manifest, spec, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole Manifest into ``(x NHWC, y)`` arrays — only when the caller asks for arrays."""
    xs, ys = [], []
    for batch, labels, _ in iterate_decoded(manifest, spec, **kwargs):
        xs.append(batch)
        ys.append(labels)
    if not xs:
        raise PixelforgeError("no image could be decoded")
    return np.concatenate(xs), np.concatenate(ys)
