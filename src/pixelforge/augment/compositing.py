"""Ops for images whose background is not the training data's: the object pasted on new backgrounds
(``background``), and object and background painted in random colours (``recolor``).

Both find the object the way the canonical preprocessing does (``data.canonical``): the background
level is the median of the border ring, and a pixel's "objectness" is its distance from that level,
relative to the image's strongest distance. That is exact for what this is for: digits, sketches
and product shots on a plain background. Images whose border is not mostly uniform (a natural
photo) are passed through unchanged, and so are images without contrast.

Amounts are fractions of the object/background contrast, so one spec means the same for uint8 and
float batches and for either polarity.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.base import Op, chosen, from_work, register, to_work
from pixelforge.augment.spec import SpecError, number, probability

KINDS = ("solid", "gradient", "noise", "texture")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as the grayscale op
UNIFORM_SHARE = 0.6  # a background is plain when this share of the border ring is near its median
UNIFORM_TOLERANCE = 32 / 255  # "near": within this fraction of the value range
CHUNK_PIXELS = 1 << 18  # pixels per chunk of images worked on in float


def scene(x: np.ndarray, lo: float, hi: float):
    """Per image of a float32 NHWC batch: background colour (N, C), object colour (N, C), objectness
    alpha (N, H, W, 1) in [0, 1], and whether the image qualifies (plain border, some contrast)."""
    ring = np.concatenate([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1)  # (N, K, C)
    bg = np.median(ring, axis=1)
    span = (hi - lo) if np.isfinite(hi - lo) else 255.0
    near = np.abs(ring - bg[:, None]).max(axis=2) <= UNIFORM_TOLERANCE * span
    diff = np.abs(x - bg[:, None, None])
    dist = diff[..., 0].copy()  # (N, H, W): the largest channel difference (channel by channel is faster)
    for c in range(1, x.shape[3]):
        np.maximum(dist, diff[..., c], out=dist)
    n = len(x)
    peak = np.percentile(dist.reshape(n, -1), 99, axis=1).astype(np.float32)
    alpha = np.clip((dist - 0.05 * peak[:, None, None]) / (0.9 * peak[:, None, None] + 1e-6), 0, 1)[..., None]
    solid = (alpha >= 0.5).astype(np.float32).reshape(n, -1, 1)
    count = solid.sum(axis=1)  # (N, 1)
    obj = (x.reshape(n, -1, x.shape[3]).transpose(0, 2, 1) @ solid)[..., 0] / np.maximum(count, 1)  # mean colour
    usable = (near.mean(axis=1) >= UNIFORM_SHARE) & (peak >= 0.08 * span) & (count[:, 0] > 0)
    return bg, obj, alpha, usable


def _pattern(kind: str, rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """One background pattern (H, W, C) with values in [0, 1]; random per channel (colour)."""
    if kind == "solid":
        return np.broadcast_to(rng.random((1, 1, c), dtype=np.float32), (h, w, c))
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.float32(np.cos(angle) / max(w - 1, 1)) * cols + np.float32(np.sin(angle) / max(h - 1, 1)) * rows
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        a, b = rng.random((2, 1, 1, c), dtype=np.float32)
        return a + (b - a) * t[..., None]
    if kind == "noise":
        mean, std = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
        base = rng.standard_normal((h, w, 1), dtype=np.float32) * std + mean
        return np.clip(base + rng.normal(0, 0.15, (1, 1, c)).astype(np.float32), 0, 1)
    # texture: clouds (smoothed noise), stripes or a checkerboard, generated here
    style = rng.integers(3)
    if style == 0:  # noise on a coarse grid, enlarged smoothly (a wide blur would cost far more)
        cells = rng.uniform(2, max(3.0, min(h, w) / 2))
        grid = rng.standard_normal((max(2, round(h / max(h, w) * cells)), max(2, round(w / max(h, w) * cells))),
                                   dtype=np.float32)
        t = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    elif style == 1:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, max(4.0, max(h, w) / 3))
        k = np.float32(2 * np.pi / period)
        t = np.sin(k * np.float32(np.cos(angle)) * cols + k * np.float32(np.sin(angle)) * rows
                   + np.float32(rng.uniform(0, 2 * np.pi)))
    else:
        cell = rng.integers(2, max(3, min(h, w) // 4) + 1)
        t = ((rows // cell + cols // cell) % 2).astype(np.float32)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    low, high = np.sort(rng.random((2, 1, 1, c), dtype=np.float32), axis=0)  # per-channel tint
    return low + (high - low) * t[..., None]


@register
class Background(Op):
    """Paste the object on a new background with probability p: a solid colour, a gradient, noise or
    a generated texture (clouds, stripes, checkerboard), one kind per image drawn from ``kinds``.

    The new background stays at least ``contrast`` (a fraction of the object/background difference,
    per channel) away from the object, so the object never disappears; edges keep their
    anti-aliasing (each pixel moves by its background share of the change)."""

    name = "background"
    main = "p"
    defaults = {"p": 0.5, "kinds": list(KINDS), "contrast": 0.3}

    def setup(self, p, kinds, contrast):
        self.p = probability("background p", p)
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list | tuple) or not kinds or any(k not in KINDS for k in kinds):
            raise SpecError(f"background kinds must be a list among {list(KINDS)}, got {kinds!r}")
        self.kinds = list(kinds)
        self.contrast = number("background contrast", contrast, low=0, high=1)

    @property
    def is_identity(self) -> bool:
        return not self.p or self.contrast == 1

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        n, h, w, c = x.shape
        kinds = rng.integers(len(self.kinds), size=len(idx))
        patterns = [_pattern(self.kinds[k], rng, h, w, c) for k in kinds]
        out = x.copy()
        step = max(1, CHUNK_PIXELS // (h * w))  # a few images at a time: float copies stay in cache
        for start in range(0, len(idx), step):
            rows = idx[start : start + step]
            work = to_work(x[rows])
            bg, obj, alpha, usable = scene(work, lo, hi)
            # the new background, between the old one and (1 - contrast) of the way to the object
            reach = ((obj - bg) * np.float32(1 - self.contrast))[:, None, None]
            new = bg[:, None, None] + reach * np.stack(patterns[start : start + step])
            work += (1 - alpha) * (new - bg[:, None, None])
            keep = np.flatnonzero(usable)
            out[rows[keep]] = from_work(work[keep], x.dtype, lo, hi)
        return out


def _with_luma(colours: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """Random RGB colours (N, 3) in [0, 1] moved towards black or white to have the given luma."""
    have = colours @ LUMA
    darker = colours * (luma / np.maximum(have, 1e-6))[:, None]
    lighter = colours + (1 - colours) * ((luma - have) / np.maximum(1 - have, 1e-6))[:, None]
    return np.where((have > luma)[:, None], darker, lighter)


@register
class Recolor(Op):
    """Paint object and background in two random colours with probability p (a duotone: each pixel
    keeps its place between background and object). For one-channel batches the model then sees the
    grayscale conversion of that coloured image — how a grayscale-trained model meets colour photos.

    The two colours differ in luma by at least ``contrast`` of the range; ``keep_polarity`` keeps
    the object on its side (brighter or darker than the background)."""

    name = "recolor"
    main = "p"
    defaults = {"p": 0.5, "contrast": 0.25, "keep_polarity": True}

    def setup(self, p, contrast, keep_polarity):
        self.p = probability("recolor p", p)
        self.contrast = number("recolor contrast", contrast, low=0, high=1)
        if not isinstance(keep_polarity, bool):
            raise SpecError(f"recolor keep_polarity must be true or false, got {keep_polarity!r}")
        self.keep_polarity = keep_polarity

    @property
    def is_identity(self) -> bool:
        return not self.p

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if not len(idx):
            return x
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise SpecError("recolor needs a bounded value range (set the pipeline's value_range)")
        if x.shape[3] not in (1, 3):
            raise SpecError(f"recolor takes 1- or 3-channel images, got {x.shape[3]} channels")
        n, h, w, c = len(idx), *x.shape[1:]
        # every draw up front, so that the result does not depend on how the work is chunked
        flip = None if self.keep_polarity else rng.random(n) < 0.5
        gap = rng.uniform(self.contrast, 1.0, n)
        low = rng.uniform(0, 1, n) * (1 - gap)
        raw = rng.random((2, n, 3))
        out = x.copy()
        step = max(1, CHUNK_PIXELS // (h * w))
        for start in range(0, n, step):
            part = slice(start, start + step)
            rows = idx[part]
            work = (to_work(x[rows]) - np.float32(lo)) / np.float32(hi - lo)  # [0, 1]
            gray = work if c == 1 else (work[..., :3] @ LUMA)[..., None]
            bg, obj, _alpha, usable = scene(gray, 0.0, 1.0)
            span = np.where(np.abs(obj - bg) < 1e-6, 1, obj - bg).astype(np.float32)
            level = np.clip((gray - bg[:, None, None]) / span[:, None, None], 0, 1)
            # lumas |object - background| >= contrast, the object on its old side unless allowed to flip
            brighter = (obj > bg)[:, 0] if flip is None else flip[part]
            light, dark = low[part] + gap[part], low[part]
            fg = _with_luma(raw[0, part], np.where(brighter, light, dark)).astype(np.float32)
            back = _with_luma(raw[1, part], np.where(brighter, dark, light)).astype(np.float32)
            if c == 1:  # luma is linear: the gray of the painted image, without painting it
                fg, back = (fg @ LUMA)[:, None], (back @ LUMA)[:, None]
            painted = back[:, None, None] + level * (fg - back)[:, None, None]
            keep = np.flatnonzero(usable)
            out[rows[keep]] = from_work(np.float32(lo) + painted[keep] * np.float32(hi - lo), x.dtype, lo, hi)
        return out
