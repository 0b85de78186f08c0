"""Geometric ops from the data-curation material: exact quarter turns, rotation without clipping,
zoom as random crop + resize, and shift by rolling (wrap-around, like np.roll); and perspective
(a photo taken at an angle).

Rotation without clipping and crop-zoom are single affine warps (the canvas expansion and the
resize back folded into one matrix), so they interpolate once and share the batched engine.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.affine import CV2_BORDERS, FILL_MODES, warp
from pixelforge.augment.base import Op, chosen, image_view, register
from pixelforge.augment.spec import SpecError, interval, number, probability


@register
class Rot90(Op):
    """Rotate by a random multiple of 90° chosen from ``k`` (exact: np.rot90, no interpolation)."""

    name = "rot90"
    main = "k"
    defaults = {"k": [0, 1, 2, 3]}

    def setup(self, k):
        values = k if isinstance(k, list | tuple) else [k]
        if not values:
            raise SpecError("rot90: k must list quarter turns among 0, 1, 2, 3")
        self.k = [number("rot90 k", v, low=0, high=3, integer=True) for v in values]

    @property
    def is_identity(self) -> bool:
        return set(self.k) == {0}

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        turns = rng.choice(np.asarray(self.k), len(x))
        if x.shape[1] != x.shape[2] and np.any(turns % 2):
            raise SpecError(
                f"rot90 with odd quarter turns needs square images, got {x.shape[1]}x{x.shape[2]}; use rot90=[0,2]"
            )
        out = x.copy()
        for k in (1, 2, 3):
            idx = np.flatnonzero(turns == k)
            if len(idx):
                out[idx] = np.rot90(x[idx], k, axes=(1, 2))
        return out


@register
class RotateExpand(Op):
    """Rotate by uniform(-range, range) degrees (or a [low, high] pair) onto a canvas big enough for
    the whole image, then resize that canvas back to the original size: nothing is cut off."""

    name = "rotate_expand"
    main = "range"
    defaults = {"range": 30.0, "cval": 0.0}

    def setup(self, range, cval):
        self.range = interval("rotate_expand range", range, low=-360, high=360)
        self.cval = number("rotate_expand cval", cval)

    @property
    def is_identity(self) -> bool:
        return self.range == (0.0, 0.0)

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        degrees = rng.uniform(self.range[0], self.range[1], len(x))
        return warp(x, rotate_expand_matrices(degrees, *x.shape[1:3]), "constant", self.cval)


def rotate_expand_matrices(degrees, height: int, width: int) -> np.ndarray:
    """Output→input (row, col) matrices: rotate about the centre, scaled so the rotated image fits."""
    t = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    cos, sin = np.cos(t), np.sin(t)
    canvas_h = height * np.abs(cos) + width * np.abs(sin)
    canvas_w = width * np.abs(cos) + height * np.abs(sin)
    sr, sc = canvas_h / height, canvas_w / width  # output pixel → canvas pixel
    cr, cc = (height - 1) / 2, (width - 1) / 2
    m = np.empty(t.shape + (2, 3))
    # input = R(-t) · S · (output - centre) + centre
    m[..., 0, 0], m[..., 0, 1] = cos * sr, -sin * sc
    m[..., 1, 0], m[..., 1, 1] = sin * sr, cos * sc
    m[..., 0, 2] = cr - (m[..., 0, 0] * cr + m[..., 0, 1] * cc)
    m[..., 1, 2] = cc - (m[..., 1, 0] * cr + m[..., 1, 1] * cc)
    return m


@register
class CropZoom(Op):
    """Zoom in by cropping a random window of scale s ∈ range (of each side) and resizing it back.

    ``crop_zoom=0.2`` means s ∈ [0.8, 1.0]; a pair gives the scale range directly.
    """

    name = "crop_zoom"
    main = "range"
    defaults = {"range": 0.2}

    def setup(self, range):
        if isinstance(range, list | tuple):
            self.scale = interval("crop_zoom", range, low=0.05, high=1.0)
        else:
            z = number("crop_zoom", range, low=0, high=0.95)
            self.scale = (1.0 - z, 1.0)

    @property
    def is_identity(self) -> bool:
        return self.scale == (1.0, 1.0)

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        n, h, w = x.shape[:3]
        s = rng.uniform(self.scale[0], self.scale[1], n)
        top = rng.uniform(0, 1, n) * h * (1 - s)
        left = rng.uniform(0, 1, n) * w * (1 - s)
        m = np.zeros((n, 2, 3))
        # pixel centres: input = (output + 0.5) * s - 0.5 + offset (what cv2.resize does)
        m[:, 0, 0] = m[:, 1, 1] = s
        m[:, 0, 2] = 0.5 * s - 0.5 + top
        m[:, 1, 2] = 0.5 * s - 0.5 + left
        return warp(x, m, "nearest")


@register
class RollShift(Op):
    """Shift by whole pixels with wrap-around (np.roll), at most ``max`` of each side (default 20%)."""

    name = "roll_shift"
    main = "max"
    defaults = {"max": 0.2}

    def setup(self, max):
        self.max = number("roll_shift max", max, low=0, high=1)

    @property
    def is_identity(self) -> bool:
        return not self.max

    def draw(self, rng, n, h, w):
        dy = rng.integers(-int(self.max * h), int(self.max * h) + 1, n)
        dx = rng.integers(-int(self.max * w), int(self.max * w) + 1, n)
        return dy, dx

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        n, h, w = x.shape[:3]
        dy, dx = self.draw(rng, n, h, w)
        return roll_batch(x, dy, dx)


def roll_batch(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """out[i] = np.roll(x[i], (dy[i], dx[i]), axis=(0, 1)), in one gather for the whole batch."""
    n, h, w = x.shape[:3]
    rows = (np.arange(h)[None, :] - np.asarray(dy)[:, None]) % h
    cols = (np.arange(w)[None, :] - np.asarray(dx)[:, None]) % w
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


@register
class Perspective(Op):
    """Perspective distortion with probability p: each corner moves by up to ``scale`` of the image
    side, inwards or outwards (Keras' RandomPerspective ``scale``); uncovered pixels follow
    ``fill_mode`` (Keras' names; ``cval`` for "constant")."""

    name = "perspective"
    main = "scale"
    defaults = {"scale": 0.1, "p": 0.5, "fill_mode": "nearest", "cval": 0.0}

    def setup(self, scale, p, fill_mode, cval):
        self.scale = number("perspective scale", scale, low=0, high=0.5)
        self.p = probability("perspective p", p)
        if fill_mode not in FILL_MODES:
            raise SpecError(f"perspective fill_mode must be one of {list(FILL_MODES)}, got {fill_mode!r}")
        self.cval = number("perspective cval", cval)

    @property
    def is_identity(self) -> bool:
        return not self.p or not self.scale

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        h, w = x.shape[1:3]
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
        moves = rng.uniform(-self.scale, self.scale, (len(idx), 4, 2)) * np.array([w, h])
        out = x.copy()
        src = x if x.dtype != np.float16 else x.astype(np.float32)
        border = CV2_BORDERS[self.params["fill_mode"]]
        for i, move in zip(idx, moves, strict=True):
            matrix = cv2.getPerspectiveTransform(corners, (corners + move).astype(np.float32))
            warped = cv2.warpPerspective(image_view(src, i), matrix, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=border, borderValue=(self.cval,) * 4)
            out[i] = warped.reshape(x.shape[1:])
        return out
