"""Training data as uint8 batches: a decoded in-memory cache when it fits, else a streamed Manifest.

The hot path gathers a batch from one contiguous uint8 array with a single index operation (no
per-sample Python, no per-sample DataLoader collation) and hands it to the model, which normalizes
it (see ``normalize.BatchTransform``). Datasets over the memory budget are decoded batch by batch by
the loader's workers, in a background thread one batch ahead of the model (``data/workers.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pixelforge.data.manifest import Manifest, Skip, class_order
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.workers import prefetch
from pixelforge.errors import PixelforgeError

DEFAULT_MEMORY_BUDGET = 4 << 30  # bytes of decoded uint8 pixels kept in memory at most


def memory_budget() -> int:
    """The default cache budget: 4 GiB, or half the available memory when that is less."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY_BUDGET
    return int(min(DEFAULT_MEMORY_BUDGET, available // 2))


@dataclass
class ArrayData:
    """Decoded images (N x H x W x C uint8/uint16) and class indices, with the class names."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    skipped: list[Skip] = field(default_factory=list)
    rows: np.ndarray | None = None  # row of each image in the source Manifest (for reports)
    source: object = None

    def __post_init__(self):
        if self.x.ndim == 3:
            self.x = self.x[..., None]
        self.y = np.asarray(self.y, dtype=np.int64)
        if len(self.x) != len(self.y):
            raise PixelforgeError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def subset(self, idx) -> ArrayData:
        idx = np.asarray(idx, dtype=np.int64)
        rows = None if self.rows is None else self.rows[idx]
        return ArrayData(self.x[idx], self.y[idx], self.classes, [], rows, self.source)

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = np.arange(len(self)) if order is None else order
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and np.all(np.diff(idx) == 1):
                yield self.x[idx[0] : idx[-1] + 1], self.y[idx[0] : idx[-1] + 1]  # a view, no gather
            else:
                yield self.x[idx], self.y[idx]


@dataclass
class StreamData:
    """A Manifest decoded on the fly, one batch ahead, for datasets over the memory budget."""

    manifest: Manifest
    spec: Preprocess
    classes: list[str]
    image_shape: tuple[int, int, int]
    workers: int | None = None
    skipped: list[Skip] = field(default_factory=list)

    def __post_init__(self):
        self.y_all = class_indices(self.manifest, self.classes)
        self._seen_skips: set[str] = set()

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def y(self) -> np.ndarray:
        return self.y_all

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from pixelforge.data.loader import iterate_decoded

        skipped: list[Skip] = []
        source = iterate_decoded(
            self.manifest, self.spec, batch_size, indices=order, skipped=skipped, workers=self.workers
        )
        for images, _labels, rows in prefetch(source):
            yield images, self.y_all[rows]
        for skip in skipped:  # every epoch meets the same broken files; report each once
            if skip.item not in self._seen_skips:
                self._seen_skips.add(skip.item)
                self.skipped.append(skip)


def class_indices(manifest: Manifest, classes: list[str]) -> np.ndarray:
    """Class index of every row in ``classes`` order; labels outside ``classes`` are an error."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(manifest.labels) - set(index))
    if unknown:
        raise PixelforgeError(
            f"{manifest.source or 'data'}: {len(unknown)} class(es) the model does not know: "
            f"{', '.join(unknown[:5])}; the model's {len(classes)} classes are {', '.join(classes[:12])}"
        )
    return np.fromiter((index[label] for label in manifest.labels), dtype=np.int64, count=len(manifest))


def complete_spec(spec: Preprocess, sample: np.ndarray) -> Preprocess:
    """Fix size and channels from a first decoded image when the spec leaves them open, so the saved
    model always knows the exact input it expects."""
    changes = {}
    if spec.size is None:
        changes["size"] = tuple(sample.shape[:2])
    if spec.channels is None:
        changes["channels"] = 1 if sample.ndim == 2 else int(sample.shape[2])
    if not changes:
        return spec
    return Preprocess.from_dict({**spec.to_dict(), **changes})


def _decode_into(manifest: Manifest, spec: Preprocess, image_shape, dtype, workers) -> ArrayData:
    from pixelforge.data.loader import iterate_decoded

    x = np.empty((len(manifest), *image_shape), dtype=dtype)
    rows = np.empty(len(manifest), dtype=np.int64)
    skipped: list[Skip] = []
    n = 0
    for images, _labels, kept in iterate_decoded(manifest, spec, 1024, skipped=skipped, workers=workers):
        x[n : n + len(images)] = images.reshape(len(images), *image_shape)
        rows[n : n + len(images)] = kept
        n += len(images)
    if n == 0:
        raise PixelforgeError(f"{manifest.source or 'data'}: no image could be decoded ({len(skipped)} skipped)")
    return x[:n], rows[:n], skipped


def _stacked_fast_path(manifest: Manifest, spec: Preprocess, image_shape):
    """Images already stored as one stacked array at the right shape (in memory, or an HDF5 store
    converted at this size): gather them in a few block reads instead of decoding one by one."""
    storage = manifest.storage
    images = getattr(storage, "images", None)
    key = None
    if not isinstance(images, np.ndarray) and hasattr(storage, "read_rows"):
        keys = {loc.partition("#")[0] for loc in manifest.locations[:1000]}
        if len(keys) == 1 and all("#" in loc for loc in manifest.locations[:1000]):
            key = keys.pop()
            try:
                images = storage.dataset(key)
            except (KeyError, OSError, PixelforgeError):
                return None
    if images is None or getattr(images, "ndim", 0) not in (3, 4) or images.dtype not in (np.uint8, np.uint16):
        return None
    shape = images.shape[1:] if images.ndim == 4 else (*images.shape[1:], 1)
    if tuple(shape) != tuple(image_shape):
        return None
    try:
        idx = np.asarray([int(loc.partition("#")[2] if key else loc) for loc in manifest.locations], dtype=np.int64)
    except ValueError:
        return None
    if key is None:
        return images[idx].reshape(len(idx), *image_shape)
    out = np.empty((len(idx), *image_shape), dtype=images.dtype)
    order = np.argsort(idx, kind="stable")
    block = 1 << 14
    for start in range(0, len(order), block):  # sorted rows → contiguous HDF5 reads
        rows = idx[order[start : start + block]]
        chunk = storage.read_rows(key, int(rows[0]), int(rows[-1]) + 1)
        out[order[start : start + block]] = chunk[rows - rows[0]].reshape(len(rows), *image_shape)
    return out


def prepare(
    data,
    spec: Preprocess,
    classes: list[str] | None = None,
    budget: int | None = None,
    workers: int | None = None,
):
    """Turn a Manifest, ``(x, y)`` arrays, ArrayData or StreamData into batchable data.

    Returns ``(data, spec)`` where the spec has size and channels filled in from the data.
    ``classes`` fixes the class order (a model's classes); by default the data's own.
    """
    if isinstance(data, ArrayData | StreamData):
        return data, spec
    if isinstance(data, tuple) and len(data) == 2:
        return _prepare_arrays(data, spec, classes)
    if not isinstance(data, Manifest):
        raise PixelforgeError(f"expected a Manifest or an (x, y) pair of arrays, got {type(data).__name__}")
    if len(data) == 0:
        raise PixelforgeError(f"{data.source or 'data'}: no images")
    classes = list(classes) if classes is not None else list(data.classes)
    if "polarity" in spec.canonical and spec.polarity is None:  # measured once, on the training data
        spec = Preprocess.from_dict(spec.to_dict()).fit_polarity(data)
    first = spec.load(data, 0)
    spec = complete_spec(spec, first)
    sample = spec.load(data, 0) if first.shape[:2] != spec.size else first
    image_shape = (*spec.size, spec.channels)
    if sample.ndim == 2:
        sample = sample[..., None]
    budget = memory_budget() if budget is None else budget
    if len(data) * int(np.prod(image_shape)) * sample.dtype.itemsize > budget:
        return StreamData(data, spec, classes, image_shape, workers), spec
    y = class_indices(data, classes)
    x = None if spec.canonical else _stacked_fast_path(data, spec, image_shape)  # canonical steps must run
    if x is not None:
        return ArrayData(x, y, classes, [], np.arange(len(data)), data), spec
    x, rows, skipped = _decode_into(data, spec, image_shape, sample.dtype, workers)
    return ArrayData(x, y[rows], classes, skipped, rows, data), spec


def _prepare_arrays(data, spec: Preprocess, classes):
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise PixelforgeError(f"expected images shaped (N, H, W) or (N, H, W, C), got {x.shape}")
    if y.ndim == 2:  # one-hot, Keras style
        y = y.argmax(axis=1)
    if y.dtype.kind in ("U", "S", "O"):
        names = class_order({str(v) for v in y}) if classes is None else list(classes)
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise PixelforgeError(f"labels not among the classes: {unknown[:5]}")
        y = np.fromiter((index[str(v)] for v in y), dtype=np.int64, count=len(y))
        classes = names
    else:
        y = y.astype(np.int64)
        if classes is None:
            classes = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise PixelforgeError(f"label indices must be in [0, {len(classes)}), got {y.min()}..{y.max()}")
    if "polarity" in spec.canonical and spec.polarity is None and x.dtype in (np.uint8, np.uint16):
        spec = Preprocess.from_dict(spec.to_dict()).fit_polarity(x)
    spec = complete_spec(spec, x[0])
    shaped = x.shape[1:3] == spec.size and x.shape[3] == spec.channels
    if x.dtype == np.float32 and shaped:  # float values on the raw pixel scale (or features): used as they are
        return ArrayData(np.ascontiguousarray(x), y, list(classes)), spec
    if x.dtype not in (np.uint8, np.uint16) or not shaped or spec.canonical:
        x = np.stack([spec.decode(img, name=f"array[{i}]") for i, img in enumerate(x)])
        if x.ndim == 3:
            x = x[..., None]
    return ArrayData(np.ascontiguousarray(x), y, list(classes)), spec
