"""Photometric ops: contrast/brightness as alpha·x + beta, colour multipliers, inversion,
grayscale, Gaussian noise and blur, JPEG re-compression, random erasing.

Values saturate to the batch's value range (0–255 for uint8, [0, 1] for float by default), like
cv2.convertScaleAbs. Amounts that are pixel levels (``brightness_shift``, noise ``std``, erasing
``value``) are given on the 0–255 scale and scaled to the value range of float batches, so one
spec means the same before and after normalization to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.base import LEVELS, Op, apply_luts, chosen, from_work, register, to_work
from pixelforge.augment.spec import SpecError, interval, number, probability


def level_scale(lo: float, hi: float) -> float:
    """How much one 0–255 level is worth in this value range."""
    return (hi - lo) / 255.0 if np.isfinite(hi - lo) else 1.0 / 255.0


def per_image(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32).reshape(len(values), 1, 1, -1)


@register
class ScaleShift(Op):
    """y = saturate(alpha·x + beta): contrast alpha ∈ contrast_range, beta ∈ ±brightness_shift levels.

    ``abs=true`` takes |alpha·x + beta| before saturating, exactly cv2.convertScaleAbs.
    """

    name = "scale_shift"
    main = "contrast_range"
    defaults = {"contrast_range": 0.2, "brightness_shift": 0.0, "abs": False}

    def setup(self, contrast_range, brightness_shift, abs):
        self.alpha = interval("contrast_range", contrast_range, around=1.0, low=0)
        self.beta = interval("brightness_shift", brightness_shift)
        if not isinstance(abs, bool):
            raise SpecError(f"scale_shift abs must be true or false, got {abs!r}")

    @property
    def is_identity(self) -> bool:
        return self.alpha == (1.0, 1.0) and self.beta == (0.0, 0.0)

    def uint8_tables(self, rng, n: int, channels: int) -> np.ndarray:
        """The op as one lookup table per 8-bit image (lets the pipeline fold it into a warp)."""
        alpha = rng.uniform(*self.alpha, n).astype(np.float32)[:, None]
        beta = rng.uniform(*self.beta, n).astype(np.float32)[:, None]
        luts = LEVELS * alpha + beta
        return np.abs(luts) if self.params["abs"] else luts

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        if x.dtype == np.uint8:
            return apply_luts(x, self.uint8_tables(rng, len(x), x.shape[3]))
        n = len(x)
        alpha = per_image(rng.uniform(*self.alpha, n))
        beta = per_image(rng.uniform(*self.beta, n) * level_scale(lo, hi))
        return apply_scale_shift(x, alpha, beta, lo, hi, self.params["abs"])


def apply_scale_shift(x, alpha, beta, lo, hi, take_abs=False):
    """saturate(alpha·x + beta) with alpha/beta scalars or per-image arrays (N, 1, 1, 1)."""
    alpha = np.broadcast_to(np.asarray(alpha, np.float32).reshape(-1, 1, 1, 1), (len(x), 1, 1, 1))
    beta = np.broadcast_to(np.asarray(beta, np.float32).reshape(-1, 1, 1, 1), (len(x), 1, 1, 1))
    if x.dtype == np.uint8:
        luts = LEVELS * alpha[:, :, 0, 0] + beta[:, :, 0, 0]
        return apply_luts(x, np.abs(luts) if take_abs else luts)
    y = to_work(x) * alpha + beta
    if take_abs:
        np.abs(y, out=y)
    return from_work(y, x.dtype, lo, hi)


@register
class ColorMultiply(Op):
    """Multiply each channel by its own factor from ``range`` (c → [1 - c, 1 + c])."""

    name = "color"
    main = "range"
    defaults = {"range": 0.1}

    def setup(self, range):
        self.range = interval("color range", range, around=1.0, low=0)

    @property
    def is_identity(self) -> bool:
        return self.range == (1.0, 1.0)

    def uint8_tables(self, rng, n: int, channels: int) -> np.ndarray:
        """One lookup table per 8-bit image and channel (lets the pipeline fold it into a warp)."""
        return rng.uniform(*self.range, (n, channels)).astype(np.float32)[:, :, None] * LEVELS

    def __call__(self, x, rng, lo, hi):
        if self.is_identity:
            return x
        if x.dtype == np.uint8:
            return apply_luts(x, self.uint8_tables(rng, len(x), x.shape[3]))
        factors = per_image(rng.uniform(*self.range, (len(x), x.shape[3])).astype(np.float32))
        return from_work(to_work(x) * factors, x.dtype, lo, hi)


class ChanceOp(Op):
    """An op whose only parameter is the probability p that it applies to an image."""

    main = "p"
    defaults = {"p": 0.5}

    def setup(self, p):
        self.p = probability(f"{self.name} p", p)

    @property
    def is_identity(self) -> bool:
        return not self.p


@register
class Invert(ChanceOp):
    """Negative image (hi + lo - x) with probability p."""

    name = "invert"

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if not len(idx):
            return x
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise SpecError("invert needs a bounded value range (set the pipeline's value_range)")
        out = x.copy()
        out[idx] = from_work(np.float32(hi + lo) - to_work(x[idx]), x.dtype, lo, hi)
        return out


@register
class Grayscale(ChanceOp):
    """Replace colour by luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) in every channel, with probability p."""

    name = "grayscale"

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if x.shape[3] < 3 or not len(idx):
            return x
        out = x.copy()
        rgb = to_work(x[idx][..., :3])
        luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out[idx, :, :, :3] = from_work(luma, x.dtype, lo, hi)[..., None]
        return out


@register
class GaussianNoise(Op):
    """Add N(0, std) noise, std in 0–255 levels drawn from ``std`` (v → [0, v]), with probability p."""

    name = "noise"
    main = "std"
    defaults = {"std": 10.0, "p": 0.5}

    def setup(self, std, p):
        self.std = interval("noise std", std, low=0) if isinstance(std, list | tuple) else (
            0.0, number("noise std", std, low=0))
        self.p = probability("noise p", p)

    @property
    def is_identity(self) -> bool:
        return not self.p or self.std == (0.0, 0.0)

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        std = per_image(rng.uniform(*self.std, len(idx)) * level_scale(lo, hi))
        noise = rng.standard_normal((len(idx),) + x.shape[1:], dtype=np.float32) * std
        out = x.copy()
        out[idx] = from_work(to_work(x[idx]) + noise, x.dtype, lo, hi)
        return out


@register
class GaussianBlur(Op):
    """Gaussian blur with sigma from ``sigma`` (v → [0.1, v]) pixels, with probability p."""

    name = "blur"
    main = "sigma"
    defaults = {"sigma": 1.5, "p": 0.5}

    def setup(self, sigma, p):
        self.sigma = interval("blur sigma", sigma, low=0) if isinstance(sigma, list | tuple) else (
            min(0.1, number("blur sigma", sigma, low=0)), float(sigma))
        self.p = probability("blur p", p)

    @property
    def is_identity(self) -> bool:
        return not self.p or self.sigma[1] == 0

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        sigmas = rng.uniform(*self.sigma, len(idx))
        out = x.copy()
        for i, sigma in zip(idx, sigmas, strict=True):
            if sigma > 0:
                blurred = cv2.GaussianBlur(x[i], (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)
                out[i] = blurred.reshape(x.shape[1:])
        return out


@register
class JpegCompression(Op):
    """Re-encode as JPEG at a quality from ``quality`` ([lo, hi], 1–100), with probability p."""

    name = "jpeg"
    main = "quality"
    defaults = {"quality": [30, 90], "p": 0.5}

    def setup(self, quality, p):
        if not isinstance(quality, list | tuple):
            quality = [quality, quality]
        self.quality = interval("jpeg quality", quality, low=1, high=100)
        self.p = probability("jpeg p", p)

    @property
    def is_identity(self) -> bool:
        return not self.p

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if not len(idx):
            return x
        qualities = rng.integers(int(self.quality[0]), int(self.quality[1]) + 1, len(idx))
        as_uint8 = x.dtype == np.uint8
        if not as_uint8 and not (np.isfinite(lo) and np.isfinite(hi)):
            raise SpecError("jpeg needs a bounded value range for float batches (the pipeline's value_range)")
        out = x.copy()
        for i, quality in zip(idx, qualities, strict=True):
            img = x[i] if as_uint8 else np.clip(np.rint((x[i] - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
            if img.shape[2] == 3:
                img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if img.shape[2] != 3 else cv2.IMREAD_COLOR)
            if img.shape[2] == 3:
                decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
            decoded = decoded.reshape(x.shape[1:])
            out[i] = decoded if as_uint8 else decoded.astype(np.float32) / 255 * (hi - lo) + lo
        return out


@register
class RandomErasing(Op):
    """Erase a random rectangle (cutout) with probability p: area fraction from ``area``, aspect
    ratio from ``ratio`` (log-uniform), filled with ``value`` (0–255 levels) or "random" noise."""

    name = "erasing"
    main = "p"
    defaults = {"p": 0.5, "area": [0.02, 0.25], "ratio": [0.3, 3.3], "value": 0}

    def setup(self, p, area, ratio, value):
        self.p = probability("erasing p", p)
        self.area = interval("erasing area", area, low=0, high=1)
        self.ratio = interval("erasing ratio", ratio, low=1e-3)
        if value != "random":
            number("erasing value", value)
        self.value = value

    @property
    def is_identity(self) -> bool:
        return not self.p or self.area[1] == 0

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        n, (h, w) = len(idx), x.shape[1:3]
        area = rng.uniform(*self.area, n) * h * w
        ratio = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), n))
        eh = np.clip(np.rint(np.sqrt(area * ratio)), 1, h).astype(int)
        ew = np.clip(np.rint(np.sqrt(area / ratio)), 1, w).astype(int)
        top = rng.integers(0, h - eh + 1)
        left = rng.integers(0, w - ew + 1)
        rows, cols = np.arange(h), np.arange(w)
        inside = (
            ((rows[None] >= top[:, None]) & (rows[None] < (top + eh)[:, None]))[:, :, None]
            & ((cols[None] >= left[:, None]) & (cols[None] < (left + ew)[:, None]))[:, None, :]
        )[..., None]
        if self.value == "random":
            fill = rng.uniform(0, 255, (n,) + x.shape[1:]).astype(np.float32)
        else:
            fill = np.float32(self.value)
        fill = from_work(lo + fill * level_scale(lo, hi) if np.isfinite(lo) else fill, x.dtype, lo, hi)
        out = x.copy()
        out[idx] = np.where(inside, fill, x[idx])
        return out
