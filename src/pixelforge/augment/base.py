"""The op protocol: a named, validated, JSON-able random transform of an NHWC batch.

Every op receives the whole batch and a ``numpy.random.Generator`` and draws one set of random
parameters per image, vectorized where it can. ``lo``/``hi`` is the value range pixels saturate
to (0–255 for uint8, the pipeline's ``value_range`` for float batches, unbounded when None).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.spec import SpecError

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
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise SpecError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; expected some of {sorted(self.defaults)}"
            )
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


def apply_luts(x: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """uint8 point operation via one 256-entry table per image ((N, 256)) or per image and channel
    ((N, C, 256)); cv2.LUT is several times faster than float arithmetic on 8-bit images."""
    tables = np.clip(np.rint(luts), 0, 255).astype(np.uint8)
    out = np.empty_like(x)
    shape = x.shape[1:]
    for i in range(len(x)):
        table = tables[i] if tables.ndim == 2 else tables[i].T[:, None, :]
        if tables.ndim == 3 and shape[2] == 1:
            table = tables[i, 0]
        out[i] = cv2.LUT(x[i], table).reshape(shape)
    return out


LEVELS = np.arange(256, dtype=np.float32)
