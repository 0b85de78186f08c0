"""Decode a Manifest in batches, in order, in parallel, counting every skipped item.

Work goes out in small chunks of rows (so per-task overhead stays small next to decoding 28x28 PNGs)
with a bounded number of chunks in flight (so memory stays bounded however large the dataset).
Two kinds of workers: threads (Pillow's decoders and OpenCV release the GIL, nothing is copied
between them) and processes (forked when safe, for large datasets of small images where the Python part of
each decode holds the GIL). "auto" picks by what ``python -m bench.decode`` measured. The pools
themselves (worker count, executors, ordered map with bounded look-ahead) are ``data/workers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pixelforge.data.manifest import Manifest, Skip
from pixelforge.data.workers import default_workers, fork_is_safe, ordered_map
from pixelforge.errors import ParameterError, PixelforgeError

ON_ERROR = ("skip", "fail")
EXECUTORS = ("auto", "thread", "process", "ray")
THREAD_CHUNK_ROWS = 32  # rows per task on threads (nothing crosses a process boundary)
PROCESS_CHUNK_ROWS = 256  # rows per task on processes: fewer, larger messages (measured: 32 → 29k/s, 512 → 44k/s)
CHUNK_BYTES = 8 << 20  # but a task's images stay under ~8 MB, so memory in flight stays bounded
PROCESS_MIN_ROWS = 4096  # below this, starting processes costs more than it saves
FORKSERVER_PRELOAD = ("pixelforge.data.loader", "pixelforge.data.preprocess")


def _load_one(manifest, spec, i):
    try:
        return i, spec.load(manifest, i), None
    except PixelforgeError as exc:
        return i, None, str(exc)
    except (OSError, ValueError, MemoryError) as exc:  # anything else from a broken file
        return i, None, f"{manifest.describe(i)}: {exc}"


def _load_chunk(manifest, spec, rows):
    """Decode some rows: (kept rows, images stacked into one array when they agree, [(row, error)])."""
    kept, images, errors = [], [], []
    for i in rows:
        i, img, error = _load_one(manifest, spec, int(i))
        if error is None:
            kept.append(i)
            images.append(img)
        else:
            errors.append((i, error))
    if images and all(im.shape == images[0].shape and im.dtype == images[0].dtype for im in images):
        images = np.stack(images)  # one array crosses a process boundary much faster than many
    return kept, images, errors


def choose_executor(manifest: Manifest, n_rows: int, workers: int, executor: str = "auto") -> str:
    """"thread" or "process" for a job: processes for many small files when forking is safe here
    (measured on 28x28 PNGs: 2 threads ~16k images/s, 2 processes ~40k/s; on JPEGs they tie)."""
    if executor not in EXECUTORS:
        raise ParameterError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if executor != "auto":
        return executor
    files = getattr(manifest.storage, "kind", "") == "file"
    worth_it = files and workers > 1 and n_rows >= PROCESS_MIN_ROWS
    return "process" if worth_it and fork_is_safe() else "thread"


def chunk_size(spec, kind: str) -> int:
    """Rows per task: large for processes, capped by the bytes of the spec's output size."""
    rows = THREAD_CHUNK_ROWS if kind == "thread" else PROCESS_CHUNK_ROWS
    size = getattr(spec, "size", None)
    if size is not None:
        rows = min(rows, max(4, CHUNK_BYTES // (size[0] * size[1] * (getattr(spec, "channels", None) or 3))))
    return rows


def _chunk_results(manifest, spec, rows: np.ndarray, workers: int, kind: str, chunk_rows: int):
    """``_load_chunk`` results in row order, with at most ``4 * workers`` chunks in flight; manifest
    and spec go to each worker process once, only row numbers and images travel per chunk."""
    chunks = [rows[s : s + chunk_rows] for s in range(0, len(rows), chunk_rows)]
    return ordered_map(_load_chunk, chunks, workers=workers, kind=kind, context=(manifest, spec),
                       ahead=4 * workers, preload=FORKSERVER_PRELOAD)


def iterate_decoded(
    manifest: Manifest,
    spec,
    batch_size: int = 256,
    *,
    indices=None,
    on_error: str = "skip",
    skipped: list[Skip] | None = None,
    workers: int | None = None,
    executor: str = "auto",
    chunk_rows: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(images NHWC, label indices, row indices)`` batches in row order; skips go to ``skipped``.

    With ``on_error="fail"`` the first undecodable image raises a PixelforgeError naming it.
    Images must come out at one shape (set ``spec.size`` for sources of mixed sizes).
    ``executor``: "thread", "process", "ray" (tasks on Ray, see ``ray_engine``) or "auto" (see
    ``choose_executor``); ``chunk_rows``: rows per task.
    """
    if on_error not in ON_ERROR:
        raise ParameterError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    rows = np.arange(len(manifest)) if indices is None else np.asarray(indices, dtype=np.int64)
    labels = manifest.label_indices()
    workers = default_workers() if workers is None else max(1, workers)
    kind = choose_executor(manifest, len(rows), workers, executor)
    chunk_rows = chunk_size(spec, kind) if chunk_rows is None else max(1, chunk_rows)
    parts: list[np.ndarray] = []  # decoded images waiting to be batched, in row order
    part_rows: list[np.ndarray] = []
    waiting = 0
    first = None  # (shape, dtype) every image must share

    def mismatch(i, img):
        return PixelforgeError(
            f"{manifest.describe(i)}: shape {img.shape} {img.dtype} differs from {first[0]} {first[1]}; "
            "give a size (e.g. --size 64) and channels to get one shape"
        )

    for kept, images, errors in _chunk_results(manifest, spec, rows, workers, kind, chunk_rows):
        for i, error in errors:
            if on_error == "fail":
                raise PixelforgeError(error)
            if skipped is not None:
                name = manifest.describe(i)
                reason = error[len(name) + 2 :] if error.startswith(name + ": ") else error
                skipped.append(Skip(name, reason))
        if not kept:
            continue
        if first is None:
            first = (images[0].shape, images[0].dtype)
        if isinstance(images, list):  # shapes disagree inside the chunk: name the first odd one
            odd = next(j for j, im in enumerate(images) if (im.shape, im.dtype) != first)
            raise mismatch(kept[odd], images[odd])
        if (images.shape[1:], images.dtype) != first:
            raise mismatch(kept[0], images[0])
        parts.append(images)
        part_rows.append(np.asarray(kept, dtype=np.int64))
        waiting += len(kept)
        while waiting >= batch_size:
            batch, batch_rows = np.concatenate(parts), np.concatenate(part_rows)
            yield batch[:batch_size], labels[batch_rows[:batch_size]], batch_rows[:batch_size]
            parts, part_rows = [batch[batch_size:]], [batch_rows[batch_size:]]
            waiting -= batch_size
    if waiting:
        batch_rows = np.concatenate(part_rows)
        yield np.concatenate(parts), labels[batch_rows], batch_rows


def load_arrays(manifest: Manifest, spec, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole Manifest into ``(x NHWC, y)`` arrays — only when the caller asks for arrays."""
    xs, ys = [], []
    for batch, labels, _ in iterate_decoded(manifest, spec, **kwargs):
        xs.append(batch)
        ys.append(labels)
    if not xs:
        raise PixelforgeError("no image could be decoded")
    return np.concatenate(xs), np.concatenate(ys)
