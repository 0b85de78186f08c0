"""Deterministic corruptions of uint8 NHWC batches: the derived test sets of the wild-test suite.

Every corruption takes ``(batch, level, rng)`` and returns a new batch of the same shape and dtype.
``corrupt(name, batch, severity, rng)`` looks the level up in the registry: severity 0 is the identity,
severity k uses the k-th level. Anything random (a direction, a sign, the noise itself) comes from the
``rng`` argument, so a seed gives the same derived test set every time.

A corruption that has an augmentation op is that op at a fixed strength (``invert``, ``blur``,
``noise``, ``jpeg``, ``grayscale``, ``dilate``/``erode``, ``scale_shift`` for brightness and contrast),
or its engine where the op draws what the corruption fixes (``roll_batch`` of ``roll_shift``, the
affine ops' ``warp`` for shift, rotation and zoom). Gamma, hue and the background replacements have
no augmentation op and are implemented here.

Geometric corruptions fill uncovered pixels with the image's own border colour (black for MNIST,
white for a sketch on paper), so they move the object rather than add a frame. Background and stroke
corruptions find the foreground by its difference from the border colour: they are meant for images
on a uniform background (digits, line drawings, product shots) and are reported as not applicable when
the border is not uniform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pixelforge.augment.affine import warp
from pixelforge.augment.geometric import roll_batch
from pixelforge.augment.morphology import Dilate, Erode
from pixelforge.augment.photometric import (
    GaussianBlur,
    GaussianNoise,
    Grayscale,
    Invert,
    JpegCompression,
    ScaleShift,
    apply_scale_shift,
)
from pixelforge.errors import PixelforgeError

# A background counts as uniform when this share of the border ring is within BORDER_TOLERANCE
# levels of the ring's median colour (objects may touch the edges, as Fashion-MNIST's trousers do).
UNIFORM_BORDER_SHARE = 0.6
BORDER_TOLERANCE = 32


# ---- helpers ----------------------------------------------------------------------------------
def border_colour(img: np.ndarray) -> np.ndarray:
    """Median colour of the outermost ring of pixels of one HWC image, per channel (float)."""
    ring = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]], axis=0)
    return np.median(ring.reshape(-1, img.shape[-1]), axis=0)


def border_agreement(img: np.ndarray) -> float:
    """Share of the border ring within BORDER_TOLERANCE levels of its median colour."""
    ring = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]], axis=0).reshape(-1, img.shape[-1])
    ring = ring.astype(np.float32)
    close = np.abs(ring - np.median(ring, axis=0)).max(axis=1) <= BORDER_TOLERANCE
    return float(close.mean())


def has_uniform_background(batch: np.ndarray) -> bool:
    """True when most images of the batch have a mostly uniform border (a plain background)."""
    shares = [border_agreement(img) for img in batch[: min(len(batch), 64)]]
    return bool(np.median(shares) >= UNIFORM_BORDER_SHARE) if shares else False


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _warp_filled(batch: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Warp image i by the OpenCV (x, y) matrix ``forward[i]`` (input → output) with the affine ops'
    engine (``augment.affine.warp``, linear), filling uncovered pixels with the image's own border
    colour. The engine fills with one value, so images (or, for a coloured border, channels) are
    warped in groups that share their fill."""
    if not len(batch):
        return batch.copy()
    inverse = np.stack([cv2.invertAffineTransform(m) for m in forward])  # output → input, (x, y)
    matrices = inverse[:, ::-1][:, :, [1, 0, 2]]  # the engine's (row, col) order
    fills = np.stack([border_colour(img) for img in batch])
    out = np.empty_like(batch)
    for colour in np.unique(fills, axis=0):
        idx = np.flatnonzero((fills == colour).all(axis=1))
        grey = np.all(colour == colour[0])
        for plane in [slice(None)] if grey else [slice(c, c + 1) for c in range(len(colour))]:
            images = np.ascontiguousarray(batch[idx][..., plane])
            out[idx, ..., plane] = warp(images, matrices[idx], "constant", float(colour[plane][0]))
    return out


def _per_image(batch: np.ndarray, fn) -> np.ndarray:
    return np.stack([fn(i, img) for i, img in enumerate(batch)]) if len(batch) else batch.copy()


def _foreground_alpha(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Soft foreground mask (H, W, 1) in [0, 1]: distance from the border colour, scaled by the
    image's strongest stroke, with a small dead zone so that compression noise stays background."""
    dist = np.abs(img.astype(np.float32) - bg).max(axis=-1, keepdims=True)
    peak = max(float(np.percentile(dist, 99)), 1.0)
    return np.clip((dist - 0.08 * peak) / (0.92 * peak), 0.0, 1.0)


def _on_groups(batch: np.ndarray, groups: np.ndarray, ops: dict, rng) -> np.ndarray:
    """Apply ``ops[g]`` (an augmentation op) to the images whose group is g."""
    out = batch.copy()
    for group, op in ops.items():
        idx = np.flatnonzero(groups == group)
        if len(idx):
            out[idx] = op(batch[idx], rng, 0.0, 255.0)
    return out


# ---- pixel-value corruptions ------------------------------------------------------------------
def invert(batch, level, rng):
    """Negative image, blended in by ``level`` (1 = full inversion: white digits become black).

    The ``invert`` op on every image."""
    inverted = Invert(p=1.0)(batch, rng, 0.0, 255.0)
    if level >= 1:
        return inverted
    return _to_uint8(batch * (1 - level) + inverted * level)


def brightness(batch, level, rng):
    """Add ``level`` x 255 to every pixel, brighter or darker at random per image.

    The ``scale_shift`` op with its brightness shift fixed at +-``level`` x 255."""
    signs = rng.choice([-1.0, 1.0], size=len(batch))
    ops = {s: ScaleShift(contrast_range=[1.0, 1.0], brightness_shift=[s * level * 255.0] * 2) for s in (-1.0, 1.0)}
    return _on_groups(batch, signs, ops, rng)


def contrast(batch, level, rng):
    """Scale each image's distance from its mean by ``level`` (< 1 washes it out).

    The ``scale_shift`` op's alpha·x + beta with alpha = ``level`` and beta = (1 - ``level``) x the
    image's mean (one lookup table per image, so an output level may differ by one from rounding
    (x - mean)·level + mean computed pixel by pixel)."""
    mean = batch.astype(np.float32).mean(axis=(1, 2, 3))
    return apply_scale_shift(batch, level, (1 - level) * mean, 0.0, 255.0)


def gamma(batch, level, rng):
    """Gamma curve x**g with g = level or 1/level at random per image."""
    flip = rng.random(len(batch)) < 0.5
    g = np.where(flip, 1.0 / level, level).reshape(-1, 1, 1, 1)
    return _to_uint8(255.0 * (batch / 255.0) ** g)


def gaussian_noise(batch, level, rng):
    """Additive Gaussian noise with standard deviation ``level`` x 255.

    The ``noise`` op on every image, its std fixed."""
    std = level * 255.0
    return GaussianNoise(std=[std, std], p=1.0)(batch, rng, 0.0, 255.0)


def gaussian_blur(batch, level, rng):
    """Gaussian blur, sigma = ``level`` pixels per 28 pixels of image side.

    The ``blur`` op on every image, its sigma fixed."""
    sigma = level * max(batch.shape[1:3]) / 28.0
    return GaussianBlur(sigma=[sigma, sigma], p=1.0)(batch, rng, 0.0, 255.0)


def jpeg(batch, level, rng):
    """Encode and decode as JPEG at quality ``level``.

    The ``jpeg`` op on every image, its quality fixed."""
    return JpegCompression(quality=[int(level), int(level)], p=1.0)(batch, rng, 0.0, 255.0)


# ---- geometric corruptions --------------------------------------------------------------------
# The affine ops (affine, rotate_expand, crop_zoom) draw their parameters from ranges; these fix
# them (a distance, an angle, a scale) and draw only a direction, so they build the matrices and call
# the ops' warp engine. (KerasAffine's matrices also keep Keras' centre, which is off by
# (h - w) / 2 on non-square images; these turn and scale about the true centre.)
def roll(batch, level, rng):
    """Roll (wrap around) every image right by ``level`` x width pixels, as ``np.roll`` does: the
    data-curation material's "shifted" test set is a 4-pixel roll of 28-pixel digits.

    The ``roll_shift`` op's roll, its shift fixed."""
    pixels = int(round(level * batch.shape[2]))
    return roll_batch(batch, np.zeros(len(batch), np.int64), np.full(len(batch), pixels))


def shift(batch, level, rng):
    """Translate by ``level`` x side in a random direction per image, filling with the border colour."""
    h, w = batch.shape[1:3]
    angles = rng.uniform(0, 2 * np.pi, size=len(batch))
    forward = np.zeros((len(batch), 2, 3))
    forward[:, 0, 0] = forward[:, 1, 1] = 1.0
    # float32, as the matrices always were: the same warps, pixel for pixel
    forward[:, 0, 2] = (level * w * np.cos(angles)).astype(np.float32)
    forward[:, 1, 2] = (level * h * np.sin(angles)).astype(np.float32)
    return _warp_filled(batch, forward)


def rotation(batch, level, rng):
    """Rotate by ``level`` degrees about the centre, clockwise or not at random per image."""
    h, w = batch.shape[1:3]
    signs = rng.choice([-1.0, 1.0], size=len(batch))
    centre = ((w - 1) / 2, (h - 1) / 2)
    return _warp_filled(batch, np.stack([cv2.getRotationMatrix2D(centre, float(s * level), 1.0) for s in signs]))


def zoom(batch, level, rng):
    """Scale about the centre by ``level`` (> 1 zooms in and crops, < 1 shrinks and pads)."""
    h, w = batch.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, float(level))
    return _warp_filled(batch, np.repeat(matrix[None], len(batch), axis=0))


# ---- stroke and background corruptions (uniform backgrounds) ----------------------------------
def _morph(batch, level, thicker: bool, rng):
    """The ``dilate`` / ``erode`` ops with an elliptical kernel of fixed size, on every image: which of
    the two depends on the image's polarity (bright strokes on dark, or dark strokes on light)."""
    size = max(2, int(round(level * max(batch.shape[1:3]) / 28.0)))
    bright_strokes = np.array([float(border_colour(img).mean()) < float(img.mean()) for img in batch], bool)
    grow = bright_strokes == thicker  # thick bright strokes = dilate; thick dark strokes = erode
    ops = {True: Dilate(p=1.0, size=size, shape="ellipse"), False: Erode(p=1.0, size=size, shape="ellipse")}
    return _on_groups(batch, grow, ops, rng)


def thicken(batch, level, rng):
    """Thicker strokes: grey-level dilation (erosion for dark strokes on a light background), with an
    elliptical kernel of ``level`` pixels per 28 pixels of image side."""
    return _morph(batch, level, True, rng)


def thin(batch, level, rng):
    """Thinner strokes: the opposite morphology of :func:`thicken`."""
    return _morph(batch, level, False, rng)


def _replace_background(batch, new_background: Callable[[int, np.ndarray, np.ndarray], np.ndarray]):
    def one(i, img):
        bg = border_colour(img)
        alpha = _foreground_alpha(img, bg)
        return _to_uint8(alpha * img + (1 - alpha) * new_background(i, img, bg))
    return _per_image(batch, one)


def _away_from(bg: np.ndarray, distance: float) -> np.ndarray:
    """A grey value ``distance`` (0-1) of the way from the background towards the opposite end."""
    target = 255.0 if bg.mean() < 128 else 0.0
    return bg + (target - bg) * distance


def background_gray(batch, level, rng):
    """Uniform grey background, ``level`` of the way from the old background to the other extreme."""
    return _replace_background(batch, lambda i, img, bg: np.full_like(bg, _away_from(bg, level).mean()))


def background_color(batch, level, rng):
    """Uniform background of a random other colour, at distance ``level`` from the old one (a grey
    value for one-channel images)."""
    colours = rng.uniform(0, 255, size=(len(batch), 3))

    def new(i, img, bg):
        colour = colours[i] if img.shape[-1] == 3 else colours[i, :1]
        direction = colour - bg
        norm = np.abs(direction).max()
        if norm < 1:
            return _away_from(bg, level)
        # scale so that the largest channel change is ``level`` of the full range
        return np.clip(bg + direction / norm * level * 255.0, 0, 255)
    return _replace_background(batch, new)


def background_texture(batch, level, rng):
    """Textured background: smoothed noise of amplitude ``level`` x 255 around a shifted grey."""
    h, w, c = batch.shape[1:]
    noise = rng.normal(0, 1, size=(len(batch), h, w, c)).astype(np.float32)

    def new(i, img, bg):
        tex = cv2.GaussianBlur(noise[i], (0, 0), max(h, w) / 28.0).reshape(h, w, c)
        tex = tex / (np.abs(tex).max() + 1e-6)
        return np.clip(_away_from(bg, level * 0.5) + tex * level * 255.0, 0, 255)
    return _replace_background(batch, new)


# ---- colour corruptions (three-channel images) ------------------------------------------------
def grayscale(batch, level, rng):
    """Desaturate: blend ``level`` of the way to the luminance image (colour → grey).

    The ``grayscale`` op on every image (on float values, so the blend rounds once)."""
    gray = Grayscale(p=1.0)(batch.astype(np.float32), rng, 0.0, 255.0)
    return _to_uint8(batch * (1 - level) + gray * level)


def hue_shift(batch, level, rng):
    """Rotate the hue by ``level`` degrees (either way at random); a grey image given colour by
    tinting it with a random hue at saturation ``level`` / 180 (grey → colour)."""
    signs = rng.choice([-1.0, 1.0], size=len(batch))
    tints = rng.uniform(0, 180, size=len(batch))

    def one(i, img):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)  # OpenCV hue is 0-180
        if hsv[..., 1].mean() < 10:  # grey picture: colourize
            hsv[..., 0] = tints[i]
            hsv[..., 1] = 255.0 * min(level / 180.0, 1.0)
        else:
            hsv[..., 0] = (hsv[..., 0] + signs[i] * level / 2.0) % 180.0
        return cv2.cvtColor(_to_uint8(hsv), cv2.COLOR_HSV2RGB)
    return _per_image(batch, one)


# ---- registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corruption:
    name: str
    function: Callable
    levels: tuple  # parameter for severity 1, 2, ...
    unit: str
    family: str  # "pixel", "geometry", "stroke", "background", "colour"
    needs_color: bool = False
    needs_uniform_background: bool = False

    @property
    def severities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.levels) + 1))

    def level(self, severity: int):
        if not 0 <= severity <= len(self.levels):
            raise PixelforgeError(
                f"corruption {self.name!r} has severities 0-{len(self.levels)}, got {severity}"
            )
        return None if severity == 0 else self.levels[severity - 1]

    def applies_to(self, batch: np.ndarray) -> str | None:
        """None when the corruption makes sense for this batch, else the reason it does not."""
        if self.needs_color and batch.shape[-1] != 3:
            return "needs colour (3-channel) images"
        if self.needs_uniform_background and not has_uniform_background(batch):
            return "needs images on a uniform background (border pixels vary)"
        return None

    @property
    def description(self) -> str:
        return (self.function.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("invert", invert, (1.0,), "blend", "pixel"),
    Corruption("roll", roll, (1 / 28, 2 / 28, 4 / 28, 6 / 28, 8 / 28), "fraction of width", "geometry"),
    Corruption("shift", shift, (0.05, 0.1, 0.15, 0.2, 0.3), "fraction of side", "geometry"),
    Corruption("rotation", rotation, (5, 10, 20, 30, 45), "degrees", "geometry"),
    Corruption("zoom_in", zoom, (1.1, 1.2, 1.35, 1.5, 1.75), "scale", "geometry"),
    Corruption("zoom_out", zoom, (0.9, 0.8, 0.7, 0.6, 0.5), "scale", "geometry"),
    Corruption("brightness", brightness, (0.1, 0.2, 0.3, 0.4, 0.5), "fraction of range", "pixel"),
    Corruption("contrast", contrast, (0.75, 0.5, 0.35, 0.2, 0.1), "scale", "pixel"),
    Corruption("gamma", gamma, (1.5, 2.0, 3.0, 4.0, 6.0), "exponent", "pixel"),
    Corruption("blur", gaussian_blur, (0.5, 0.75, 1.0, 1.5, 2.0), "sigma px per 28 px", "pixel"),
    Corruption("noise", gaussian_noise, (0.04, 0.08, 0.12, 0.18, 0.26), "std fraction", "pixel"),
    Corruption("jpeg", jpeg, (80, 50, 30, 15, 8), "quality", "pixel"),
    Corruption("thicken", thicken, (2, 3, 4, 5, 6), "kernel px per 28 px", "stroke", needs_uniform_background=True),
    Corruption("thin", thin, (2, 3, 4, 5, 6), "kernel px per 28 px", "stroke", needs_uniform_background=True),
    Corruption("background_gray", background_gray, (0.2, 0.35, 0.5, 0.65, 0.8), "distance", "background",
               needs_uniform_background=True),
    Corruption("background_color", background_color, (0.2, 0.35, 0.5, 0.65, 0.8), "distance", "background",
               needs_uniform_background=True),
    Corruption("background_texture", background_texture, (0.1, 0.2, 0.3, 0.4, 0.5), "amplitude",
               "background", needs_uniform_background=True),
    Corruption("grayscale", grayscale, (0.25, 0.5, 0.75, 1.0), "blend", "colour", needs_color=True),
    Corruption("hue_shift", hue_shift, (30, 60, 90, 120, 180), "degrees", "colour", needs_color=True),
)}


def get_corruption(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        raise PixelforgeError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def _check_batch(batch) -> tuple[np.ndarray, bool]:
    batch = np.asarray(batch)
    if batch.dtype != np.uint8:
        raise PixelforgeError(f"corruptions take uint8 images, got {batch.dtype}")
    squeeze = batch.ndim == 3  # N, H, W grey batch
    if squeeze:
        batch = batch[..., None]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
        raise PixelforgeError(f"corruptions take N x H x W x C batches with C 1 or 3, got shape {batch.shape}")
    return batch, squeeze


def corrupt(name: str, batch: np.ndarray, severity: int, rng: np.random.Generator | int | None = None):
    """Apply corruption ``name`` at ``severity`` (0 = identity) to a uint8 NHWC (or NHW) batch.

    ``rng`` is a Generator or a seed; the same seed gives the same output. Returns a new array of
    the same shape and dtype.
    """
    corruption = get_corruption(name)
    level = corruption.level(int(severity))
    batch, squeeze = _check_batch(batch)
    if level is None:
        out = batch.copy()
    else:
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        out = np.ascontiguousarray(corruption.function(batch, level, rng), dtype=np.uint8)
    return out[..., 0] if squeeze else out
