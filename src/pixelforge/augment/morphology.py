"""Stroke thickness for line drawings (digits, sketches): dilation thickens bright strokes on a
dark background (MNIST-style), erosion thins them. For dark ink on white paper the roles swap.
The kernel is a size×size square (default) or the ellipse inscribed in it (``shape=ellipse``).
``stroke`` finds each image's polarity first, so it thickens or thins the object either way."""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.base import Op, chosen, register
from pixelforge.augment.spec import SpecError, number, probability

SHAPES = {"square": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE}  # kernel shapes


class _Morphology(Op):
    main = "p"
    defaults = {"p": 0.5, "size": [2, 3], "shape": "square"}
    operation = staticmethod(cv2.dilate)

    def setup(self, p, size, shape):
        self.p = probability(f"{self.name} p", p)
        sizes = size if isinstance(size, list | tuple) else [size]
        if not sizes:
            raise SpecError(f"{self.name} size must list kernel sizes (pixels)")
        # no upper bound: the robustness suite's strokes grow with the image side (6 px per 28 px)
        self.sizes = [number(f"{self.name} size", s, low=1, integer=True) for s in sizes]
        if shape not in SHAPES:
            raise SpecError(f"{self.name} shape must be one of {list(SHAPES)}, got {shape!r}")
        self.shape = shape

    @property
    def is_identity(self) -> bool:
        return not self.p or set(self.sizes) == {1}

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        sizes = rng.choice(np.asarray(self.sizes), len(idx))
        out = x.copy()
        for i, k in zip(idx, sizes, strict=True):
            kernel = cv2.getStructuringElement(SHAPES[self.shape], (int(k), int(k)))
            out[i] = self.operation(x[i], kernel, borderType=cv2.BORDER_REPLICATE).reshape(x.shape[1:])
        return out


@register
class Dilate(_Morphology):
    """Thicken bright strokes: max over a size×size window (size chosen per image)."""

    name = "dilate"
    operation = staticmethod(cv2.dilate)


@register
class Erode(_Morphology):
    """Thin bright strokes: min over a size×size window (size chosen per image)."""

    name = "erode"
    operation = staticmethod(cv2.erode)


@register
class Stroke(_Morphology):
    """Thicker or thinner strokes (one or the other at random per image), whatever the polarity:
    dilation thickens bright strokes on a dark background, erosion dark strokes on a light one."""

    name = "stroke"
    defaults = {"p": 0.5, "size": [2, 3], "shape": "ellipse"}

    def __call__(self, x, rng, lo, hi):
        idx = chosen(rng, len(x), self.p)
        if self.is_identity or not len(idx):
            return x
        sizes = rng.choice(np.asarray(self.sizes), len(idx))
        thicker = rng.random(len(idx)) < 0.5
        ring = np.concatenate([x[idx, 0], x[idx, -1], x[idx, :, 0], x[idx, :, -1]], axis=1)
        bright = np.median(ring.reshape(len(idx), -1), axis=1) < x[idx].reshape(len(idx), -1).mean(axis=1)
        out = x.copy()
        for i, k, grow, light_object in zip(idx, sizes, thicker, bright, strict=True):
            kernel = cv2.getStructuringElement(SHAPES[self.shape], (int(k), int(k)))
            operation = cv2.dilate if grow == light_object else cv2.erode
            out[i] = operation(x[i], kernel, borderType=cv2.BORDER_REPLICATE).reshape(x.shape[1:])
        return out
