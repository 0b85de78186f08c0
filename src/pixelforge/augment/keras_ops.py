"""The ImageDataGenerator transforms, with Keras' parameter names, defaults and meaning.

Keras applies them per image in this order: affine (rotation, shift, shear, zoom in one matrix),
channel shift, flips, brightness. Here each is one op over the whole batch, drawing the same kinds
of random numbers per image.

One deliberate difference: tf_keras draws its ``tx`` from ``height_shift_range`` and its ``ty``
from ``width_shift_range`` but ``apply_affine_transform`` shifts columns by ``tx``, so its
height_shift_range moves images sideways. Here width_shift_range moves along the width, as
documented.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.affine import FILL_MODES, keras_matrices, warp
from pixelforge.augment.base import (
    LEVELS,
    Op,
    apply_luts,
    compose_tables,
    from_work,
    lut_tables,
    register,
    to_work,
)
from pixelforge.augment.spec import SpecError, interval, number

ENGINES = ("auto", "batched", "opencv")


def check_shift_range(name: str, value):
    """Keras accepts a float (fraction if < 1, else pixels), an int (pixels) or a list of choices."""
    if isinstance(value, list | tuple):
        if not value:
            raise SpecError(f"{name}: the list of choices is empty")
        return [number(name, v) for v in value]
    if isinstance(value, bool):
        raise SpecError(f"{name} must be a float, an int or a list of choices, got {value!r}")
    if isinstance(value, int):
        return number(name, value, low=0, integer=True)
    return number(name, value, low=0)


def draw_shift(rng: np.random.Generator, value, n: int, size: int) -> np.ndarray:
    """Per-image shifts in pixels, drawn as Keras' get_random_transform does."""
    if isinstance(value, list):
        shift = rng.choice(np.asarray(value, dtype=np.float64), n) * rng.choice([-1.0, 1.0], n)
    elif isinstance(value, int):
        shift = rng.integers(0, value, n).astype(np.float64) * rng.choice([-1.0, 1.0], n)
    else:
        shift = rng.uniform(-value, value, n)
    if np.max(value) < 1:
        shift *= size
    return shift


def keras_zoom_range(value) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise SpecError(f"zoom_range should be a float or a list of two floats, got {value!r}")
        lo, hi = (number("zoom_range", v) for v in value)
    else:
        z = number("zoom_range", value)
        lo, hi = 1 - z, 1 + z
    if lo <= 0 or lo > hi:
        raise SpecError(f"zoom_range must give 0 < low <= high, got {value!r} → [{lo}, {hi}]")
    return lo, hi


@register
class KerasAffine(Op):
    """rotation_range (degrees), width/height_shift_range, shear_range (degrees), zoom_range."""

    name = "affine"
    defaults = {
        "rotation_range": 0.0, "width_shift_range": 0.0, "height_shift_range": 0.0,
        "shear_range": 0.0, "zoom_range": 0.0, "fill_mode": "nearest", "cval": 0.0,
        "interpolation_order": 1, "engine": "auto",
    }

    def setup(self, rotation_range, width_shift_range, height_shift_range, shear_range, zoom_range,
              fill_mode, cval, interpolation_order, engine):
        self.rotation = number("rotation_range", rotation_range, low=0, high=360)
        self.wshift = check_shift_range("width_shift_range", width_shift_range)
        self.hshift = check_shift_range("height_shift_range", height_shift_range)
        self.shear = number("shear_range", shear_range, low=0, high=90)
        self.zoom = keras_zoom_range(zoom_range)
        if fill_mode not in FILL_MODES:
            raise SpecError(f"fill_mode must be one of {list(FILL_MODES)}, got {fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = number("cval", cval)
        self.order = number("interpolation_order", interpolation_order, low=0, high=1, integer=True)
        if engine not in ENGINES:
            raise SpecError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
        self.engine = engine

    @property
    def is_identity(self) -> bool:
        no_shift = not np.any(self.wshift) and not np.any(self.hshift)
        return not self.rotation and no_shift and not self.shear and self.zoom == (1.0, 1.0)

    def draw(self, rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
        """Per-image (N, 2, 3) matrices; the draws are independent per parameter, as in Keras."""
        zeros = np.zeros(n)
        theta = rng.uniform(-self.rotation, self.rotation, n) if self.rotation else zeros
        col = draw_shift(rng, self.wshift, n, width) if np.any(self.wshift) else zeros
        row = draw_shift(rng, self.hshift, n, height) if np.any(self.hshift) else zeros
        shear = rng.uniform(-self.shear, self.shear, n) if self.shear else zeros
        if self.zoom == (1.0, 1.0):
            zx = zy = np.ones(n)
        else:
            zx, zy = rng.uniform(self.zoom[0], self.zoom[1], (2, n))
        # Keras' apply_affine_transform shifts columns by tx and rows by ty
        return keras_matrices(theta, col, row, shear, zx, zy, height, width)

    def __call__(self, x, rng, lo, hi, flip_before: Flip | None = None, flip_after: Flip | None = None,
                 point_ops=()):
        """Warp the batch. A Flip op right before or after, and point operations right after
        (uint8 lookup tables: brightness, contrast, colour), are folded into the same pass over
        the pixels: same random draws in the same order, same result."""
        n, h, w = x.shape[:3]
        if self.is_identity or not n:
            for flip in (flip_before, flip_after):
                x = flip(x, rng, lo, hi) if flip is not None else x
            for op in point_ops:
                x = op(x, rng, lo, hi)
            return x
        before = flip_before.draw(rng, n) if flip_before is not None else None
        matrices = self.draw(rng, n, h, w)
        if before is not None:
            matrices = mirror(matrices, *before, h, w, side="input")
        if flip_after is not None:
            matrices = mirror(matrices, *flip_after.draw(rng, n), h, w, side="output")
        tables = None
        for op in point_ops:
            table = lut_tables(op.uint8_tables(rng, n, x.shape[3]))
            tables = table if tables is None else compose_tables(tables, table)
        return warp(x, matrices, self.fill_mode, self.cval, self.order, self.engine, tables)


def mirror(matrices: np.ndarray, horizontal, vertical, height: int, width: int, side: str) -> np.ndarray:
    """Compose mirroring (col → width-1-col, row → height-1-row) into output→input matrices, on the
    output side (flip after the warp) or the input side (flip before it)."""
    m = matrices.copy()
    for axis, mask, size in ((1, horizontal, width), (0, vertical, height)):
        flip = np.asarray(mask, dtype=bool)
        if side == "output":  # input = A·(out with out[axis] → size-1-out[axis]) + b
            m[flip, :, 2] += m[flip, :, axis] * (size - 1)
            m[flip, :, axis] *= -1
        else:  # input = mirror(A·out + b): row `axis` of the matrix negated and offset by size-1
            m[flip, axis, :] *= -1
            m[flip, axis, 2] += size - 1
    return m


@register
class Flip(Op):
    """horizontal_flip / vertical_flip: each image flipped with probability 1/2."""

    name = "flip"
    defaults = {"horizontal_flip": False, "vertical_flip": False}

    def setup(self, horizontal_flip, vertical_flip):
        for key, value in (("horizontal_flip", horizontal_flip), ("vertical_flip", vertical_flip)):
            if not isinstance(value, bool):
                raise SpecError(f"{key} must be true or false, got {value!r}")

    @property
    def is_identity(self) -> bool:
        return not (self.params["horizontal_flip"] or self.params["vertical_flip"])

    def draw(self, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks (horizontal, vertical): which images flip."""
        none = np.zeros(n, dtype=bool)
        horizontal = rng.random(n) < 0.5 if self.params["horizontal_flip"] else none
        vertical = rng.random(n) < 0.5 if self.params["vertical_flip"] else none
        return horizontal, vertical

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        horizontal, vertical = self.draw(rng, len(x))
        out = x.copy()
        codes = np.where(horizontal & vertical, -1, np.where(horizontal, 1, 0))  # cv2.flip codes
        for i in np.flatnonzero(horizontal | vertical):
            out[i] = cv2.flip(x[i], int(codes[i])).reshape(x.shape[1:])
        return out


@register
class ChannelShift(Op):
    """channel_shift_range: add one uniform(-r, r) to every channel, clipped to the image's own range."""

    name = "channel_shift"
    main = "channel_shift_range"
    defaults = {"channel_shift_range": 0.0}

    def setup(self, channel_shift_range):
        self.range = number("channel_shift_range", channel_shift_range, low=0)

    @property
    def is_identity(self) -> bool:
        return not self.range

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        shift = rng.uniform(-self.range, self.range, len(x)).astype(np.float32)[:, None, None, None]
        low = x.min(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        high = x.max(axis=(1, 2, 3), keepdims=True).astype(np.float32)
        if x.dtype == np.uint8:
            return apply_luts(x, np.clip(LEVELS + shift[:, :, 0, 0], low[:, :, 0, 0], high[:, :, 0, 0]))
        return from_work(np.clip(to_work(x) + shift, low, high), x.dtype, lo, hi)


@register
class Brightness(Op):
    """brightness_range [lo, hi]: multiply by uniform(lo, hi), saturating (Keras/PIL Brightness)."""

    name = "brightness"
    main = "brightness_range"
    defaults = {"brightness_range": None}

    def setup(self, brightness_range):
        if brightness_range is None:
            self.range = None
            return
        if not isinstance(brightness_range, list | tuple):
            raise SpecError(f"brightness_range must be a pair [low, high], got {brightness_range!r}")
        self.range = interval("brightness_range", brightness_range, low=0)

    @property
    def is_identity(self) -> bool:
        return self.range is None or self.range == (1.0, 1.0)

    def uint8_tables(self, rng, n: int, channels: int) -> np.ndarray:
        """The op as one lookup table per 8-bit image (lets the pipeline fold it into a warp)."""
        return LEVELS * rng.uniform(self.range[0], self.range[1], n).astype(np.float32)[:, None]

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        if x.dtype == np.uint8:
            return apply_luts(x, self.uint8_tables(rng, len(x), x.shape[3]))
        factor = rng.uniform(self.range[0], self.range[1], len(x)).astype(np.float32)
        return from_work(to_work(x) * factor[:, None, None, None], x.dtype, lo, hi)


KERAS_KEYS = {key: op.name for op in (KerasAffine, Flip, ChannelShift, Brightness) for key in op.defaults}
