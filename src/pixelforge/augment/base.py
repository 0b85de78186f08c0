"""The op protocol: a named, validated, JSON-able random transform of an NHWC batch.

Every op receives the whole batch and a ``numpy.random.Generator`` and draws one set of random
parameters per image, vectorized where it can. ``lo``/``hi`` is the value range pixels saturate
to (0–255 for uint8, the pipeline's ``value_range`` for float batches, unbounded when None).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.spec import SpecError
from pixelforge.augment.threads import THREAD_MIN_PIXELS, for_each_image
from pixelforge.errors import check_keys

OPS: dict[str, type[Op]] = {}


def register(cls):
    OPS[cls.name] = cls
    return cls


class Op:
    name: str = ""
    main: str | None = None  # the parameter that ``name=value`` sets
    defaults: dict = {}
    # "pixels": works on raw pixel values (uint8 or float); "normalize": turns pixels into model
    # inputs (needs float); ops after a "normalize" op run on normalized values.
    stage = "pixels"

    def __init__(self, **params):
        check_keys(params, self.defaults, f"{self.name} parameter", SpecError)
        self.params = {**self.defaults, **params}
        self.setup(**self.params)

    def setup(self, **params):  # validate and store; subclasses override
        pass

    @property
    def is_identity(self) -> bool:
        return False

    def __call__(self, x: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"op": self.name, **{k: _jsonable(v) for k, v in self.params.items()}}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({inner})"


def _jsonable(value):
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def chosen(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Indices of the images an op with probability p applies to (one draw per image)."""
    return np.flatnonzero(rng.random(n) < p)


def to_work(x: np.ndarray) -> np.ndarray:
    """A float32 working copy (uint8 arithmetic would wrap around)."""
    return x.astype(np.float32)


def from_work(values: np.ndarray, dtype, lo: float, hi: float) -> np.ndarray:
    """Back to the batch's dtype, saturating to [lo, hi] and rounding for integer types."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return np.clip(np.rint(values), lo, hi).astype(dtype)
    if np.isfinite(lo) or np.isfinite(hi):
        values = np.clip(values, lo, hi)
    return values.astype(dtype, copy=False)


def lut_tables(luts: np.ndarray) -> np.ndarray:
    """Float lookup values → uint8 tables, saturating like cv2.convertScaleAbs."""
    return np.clip(np.rint(luts), 0, 255).astype(np.uint8)


def compose_tables(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The table of applying ``first`` then ``second`` (uint8 tables, (N, 256) or (N, C, 256))."""
    if first.ndim == 2 and second.ndim == 2:
        return np.take_along_axis(second, first.astype(np.intp), axis=1)
    channels = max(t.shape[1] for t in (first, second) if t.ndim == 3)
    first, second = (t if t.ndim == 3 else np.repeat(t[:, None, :], channels, axis=1) for t in (first, second))
    return np.take_along_axis(second, first.astype(np.intp), axis=2)


def lut_in_place(img: np.ndarray, tables: np.ndarray, i: int) -> None:
    """Apply image i's table(s) to an HW or HWC uint8 view, in place."""
    table = tables[i]
    if table.ndim == 2:  # per channel
        table = table[0] if img.ndim == 2 or img.shape[2] == 1 else np.ascontiguousarray(table.T[:, None, :])
    cv2.LUT(img, table, dst=img)


def image_view(batch: np.ndarray, i: int) -> np.ndarray:
    """Image i as OpenCV wants it: HW for one channel (a view, so OpenCV writes into the batch)."""
    return batch[i, :, :, 0] if batch.shape[3] == 1 else batch[i]


def lookup(x: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Apply per-image uint8 tables to a whole batch with one numpy gather (small images)."""
    images = np.arange(len(x))[:, None, None, None]
    if tables.ndim == 2:
        return tables[images, x]
    return tables[images, np.arange(x.shape[3]), x]


def apply_luts(x: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """uint8 point operation via one 256-entry table per image ((N, 256)) or per image and channel
    ((N, C, 256)); table lookups are several times faster than float arithmetic on 8-bit images."""
    tables = lut_tables(luts)
    if x.shape[1] * x.shape[2] < THREAD_MIN_PIXELS:
        return lookup(x, tables)
    out = x.copy()
    for_each_image(lambda i: lut_in_place(image_view(out, i), tables, i), len(x), x.shape[1] * x.shape[2])
    return out


LEVELS = np.arange(256, dtype=np.float32)
