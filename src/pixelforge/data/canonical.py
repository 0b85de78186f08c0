"""Canonicalizing steps of the Preprocess spec: make an image look like the training data's framing.

Each step is optional (``Preprocess(canonical=[...])``) and runs per image, in this fixed order:

  ``polarity``  invert an image whose background polarity (background darker or lighter than the
                object) differs from the training data's, measured once by ``measure_polarity``
  ``crop``      crop to the foreground's bounding box (plus a margin) and pad to the target aspect
                ratio with the background colour
  ``center``    what MNIST did to its digits: the bounding box fitted into 20/28 of the target size,
                aspect ratio kept, then placed by its centre of mass in the middle of the target
  ``stretch``   percentile contrast stretch (the 1st..99th percentile → the full range), at model size

The foreground is what differs from the background level, estimated as the median of a thin ring of
border pixels; images whose foreground cannot be found (blank, or no contrast) pass unchanged.
Functions here are pure (array in, array out), so they run in the data-loading workers.
"""

from __future__ import annotations

import cv2
import numpy as np

CANONICAL_STEPS = ("polarity", "crop", "center", "stretch")
POLARITIES = ("dark", "light")  # the background is darker ("dark", MNIST) or lighter than the object
BOX_FRACTION = 20 / 28  # MNIST: the digit's box is 20x20 inside 28x28
CROP_MARGIN = 0.1  # crop keeps this fraction of the box's longer side around it
STRETCH_PERCENTILES = (1.0, 99.0)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as the grayscale op
ANALYSIS_SIDE = 4  # images larger than this many times the target side are shrunk first (speed)


def peak_value(img: np.ndarray) -> float:
    return 65535.0 if img.dtype == np.uint16 else 255.0


def quantile(values: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100, lower value) of an array; 8-bit data by histogram, which is
    several times faster than np.percentile on the small images this runs on."""
    values = values.reshape(-1)
    if values.dtype != np.uint8:
        return float(np.percentile(values, q, method="lower"))
    counts = np.cumsum(np.bincount(values, minlength=256))
    k = min(max(int(np.ceil(q / 100 * values.size)), 1), values.size)
    return float(np.searchsorted(counts, k))


def gray_levels(img: np.ndarray) -> np.ndarray:
    """HW luminance of an HWC image in its own dtype (the channel itself for one-channel images)."""
    if img.shape[2] == 1:
        return img[..., 0]
    if img.dtype == np.uint8:
        return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return np.rint(img[..., :3].astype(np.float32) @ LUMA).astype(img.dtype)


def border_ring(img: np.ndarray) -> np.ndarray:
    """The pixels of a ring about 3% of the shorter side thick (at least one pixel), as (K, 1, C)."""
    t = max(1, int(round(min(img.shape[:2]) * 0.03)))
    c = img.shape[2]
    parts = [img[:t].reshape(-1, c), img[-t:].reshape(-1, c), img[t:-t, :t].reshape(-1, c), img[t:-t, -t:].reshape(-1, c)]
    return np.concatenate(parts, axis=0)[:, None, :]


def foreground_distance(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """HW, the image's dtype: how far each pixel is from the background colour (largest channel
    difference)."""
    level = np.rint(bg).astype(img.dtype)
    dist = cv2.absdiff(img, np.broadcast_to(level, img.shape).copy()) if img.dtype == np.uint8 else (
        np.abs(img.astype(np.int64) - level.astype(np.int64)).astype(img.dtype))
    dist = dist.reshape(img.shape)
    return dist[..., 0] if img.shape[2] == 1 else dist.max(axis=2)


class Scene:
    """One image's background colour and foreground mask, measured once and shared by the steps.

    A pixel is foreground when it differs from the background colour (the median of the border ring)
    by more than a quarter of the image's strongest difference and clearly more than the border ring
    itself varies (texture, noise, JPEG ringing). ``mask`` is None when there is no object to find.
    """

    def __init__(self, img: np.ndarray):
        self.img = img if img.ndim == 3 else img[..., None]
        ring = border_ring(self.img)
        self.bg = np.array([quantile(ring[..., c], 50) for c in range(self.img.shape[2])], np.float32)
        dist = foreground_distance(self.img, self.bg)
        if min(dist.shape) >= 64:  # photos: a 3x3 mean keeps isolated noisy pixels out of the box
            dist = cv2.blur(dist, (3, 3))
        peak = quantile(dist, 99.5)
        floor = 3.0 * quantile(foreground_distance(ring, self.bg), 50) + 0.02 * peak_value(self.img)
        self.mask = dist > max(0.25 * peak, floor) if peak > floor else None
        if self.mask is not None and not self.mask.any():
            self.mask = None

    @property
    def polarity(self) -> str | None:
        """"dark" when the background is darker than the object, "light" when lighter, None if unknown."""
        if self.mask is None:
            return None
        gray = gray_levels(self.img)
        background = quantile(border_ring(gray[..., None]), 50)
        return "light" if quantile(gray[self.mask], 50) < background else "dark"

    def inverted(self) -> Scene:
        """The same scene with the image inverted (the mask does not change)."""
        out = object.__new__(Scene)
        peak = peak_value(self.img)
        out.img = (peak - self.img.astype(np.float32)).astype(self.img.dtype)
        out.bg, out.mask = peak - self.bg, self.mask
        return out


def background_colour(img: np.ndarray) -> np.ndarray:
    """Median colour of the border ring of an HWC image, per channel (float32, shape (C,))."""
    return Scene(img).bg


def image_polarity(img: np.ndarray) -> str | None:
    """"dark" when the background is darker than the object, "light" when lighter, None if unknown."""
    return Scene(img).polarity


def measure_polarity(images) -> str:
    """The training data's background polarity: the majority over ``images`` (an iterable of HWC
    arrays); "dark" when no image tells (blank images)."""
    votes = {"dark": 0, "light": 0}
    for img in images:
        found = image_polarity(np.asarray(img))
        if found is not None:
            votes[found] += 1
    return "light" if votes["light"] > votes["dark"] else "dark"


def match_polarity(scene: Scene, polarity: str) -> Scene:
    """The scene, inverted when its background polarity is not ``polarity``."""
    found = scene.polarity
    return scene.inverted() if found is not None and found != polarity else scene


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive, of the True pixels of ``mask``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _fill(bg: np.ndarray, dtype) -> tuple:
    return tuple(float(v) for v in np.rint(bg)) if np.dtype(dtype).kind in "ui" else tuple(float(v) for v in bg)


def crop_to_content(scene: Scene, aspect: float = 1.0) -> np.ndarray:
    """Crop to the foreground box plus CROP_MARGIN, padded with the background colour to the
    height/width ratio ``aspect`` (1 = square). The image as it is when no foreground is found."""
    if scene.mask is None:
        return scene.img
    top, bottom, left, right = bounding_box(scene.mask)
    h, w = bottom - top, right - left
    margin = int(round(CROP_MARGIN * max(h, w)))
    # the padded frame: the box plus margins, widened along one axis to the target aspect ratio
    fh, fw = h + 2 * margin, w + 2 * margin
    if fh / fw > aspect:
        fw = int(round(fh / aspect))
    else:
        fh = int(round(fw * aspect))
    return _window(scene.img, top - (fh - h) // 2, left - (fw - w) // 2, fh, fw, scene.bg)


def _window(img: np.ndarray, y0: int, x0: int, fh: int, fw: int, bg: np.ndarray) -> np.ndarray:
    """img[y0:y0+fh, x0:x0+fw], with the parts outside the image filled with the colour ``bg``."""
    H, W = img.shape[:2]
    pad = (max(0, -y0), max(0, y0 + fh - H), max(0, -x0), max(0, x0 + fw - W))
    inner = img[max(0, y0) : min(H, y0 + fh), max(0, x0) : min(W, x0 + fw)]
    if not any(pad):
        return inner
    out = cv2.copyMakeBorder(inner, *pad, cv2.BORDER_CONSTANT, value=_fill(bg, img.dtype))
    return out.reshape(fh, fw, img.shape[2])


def center_by_mass(scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """MNIST's normalization at ``size``: the foreground box scaled (aspect kept) to fit BOX_FRACTION
    of the size, then placed so that its centre of mass is the image centre. When no foreground is
    found the image is only resized."""
    img, bg = scene.img, scene.bg
    th, tw = size
    if scene.mask is None:
        return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA).reshape(th, tw, img.shape[2])
    top, bottom, left, right = bounding_box(scene.mask)
    box = img[top:bottom, left:right]
    scale = min(th * BOX_FRACTION / box.shape[0], tw * BOX_FRACTION / box.shape[1])
    ph, pw = max(1, int(round(box.shape[0] * scale))), max(1, int(round(box.shape[1] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(box, (pw, ph), interpolation=interpolation).reshape(ph, pw, img.shape[2])
    weight = foreground_distance(patch, bg).astype(np.float32)
    total = float(weight.sum())
    cy, cx = (ph - 1) / 2, (pw - 1) / 2
    if total > 0:
        cy = float(weight.sum(axis=1) @ np.arange(ph, dtype=np.float32)) / total
        cx = float(weight.sum(axis=0) @ np.arange(pw, dtype=np.float32)) / total
    # whole-pixel placement at (h/2, w/2), where MNIST has its centres of mass (measured: 14.0, 14.0)
    y0 = int(np.clip(round(th / 2 - cy), 0, th - ph))
    x0 = int(np.clip(round(tw / 2 - cx), 0, tw - pw))
    out = np.empty((th, tw, img.shape[2]), dtype=img.dtype)
    out[...] = np.asarray(_fill(bg, img.dtype)).astype(img.dtype)
    out[y0 : y0 + ph, x0 : x0 + pw] = patch
    return out


def stretch_contrast(img: np.ndarray) -> np.ndarray:
    """Map the STRETCH_PERCENTILES of the image's values (all channels together, so colours keep
    their hue) to the full range; unchanged when the image is flat."""
    lo, hi = (quantile(img, q) for q in STRETCH_PERCENTILES)
    if hi - lo < 1:
        return img
    peak = peak_value(img)
    if img.dtype == np.uint8:  # one lookup table instead of float arithmetic per pixel
        table = np.clip(np.rint((np.arange(256, dtype=np.float32) - lo) * (peak / (hi - lo))), 0, peak).astype(np.uint8)
        return cv2.LUT(img, table).reshape(img.shape)
    out = (img.astype(np.float32) - np.float32(lo)) * np.float32(peak / (hi - lo))
    return np.clip(np.rint(out), 0, peak).astype(img.dtype)


def canonicalize(img: np.ndarray, steps, size: tuple[int, int] | None, polarity: str | None) -> np.ndarray:
    """The geometric and polarity steps of ``steps`` on one HWC image (before the resize to ``size``;
    "stretch" runs after it, see ``Preprocess.canonicalize``)."""
    img = shrink_for_analysis(img if img.ndim == 3 else img[..., None], size)
    if not {"polarity", "center", "crop"} & set(steps):
        return img
    scene = Scene(img)
    if "polarity" in steps:
        scene = match_polarity(scene, polarity)
    if "center" in steps:
        return center_by_mass(scene, size or scene.img.shape[:2])
    if "crop" in steps:
        return crop_to_content(scene, size[0] / size[1] if size else 1.0)
    return scene.img


def shrink_for_analysis(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Large photos are shrunk (area averaging) to ANALYSIS_SIDE times the target side first: the
    steps then cost the same for a 4000-pixel photo as for a small one, at no loss at model size."""
    if size is None:
        return img
    limit = ANALYSIS_SIDE * max(size)
    h, w = img.shape[:2]
    if min(h, w) <= limit:
        return img
    f = limit / min(h, w)
    out = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return out.reshape(out.shape[0], out.shape[1], -1) if img.ndim == 3 else out
