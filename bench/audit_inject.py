"""Defect injection for the audit evidence harness (``bench/audit.py``): pure functions of arrays + a rng.

Images are ``uint8`` arrays, H x W (gray) or H x W x 3 (RGB). Nothing here touches files or pixelforge,
so unit tests can import these functions and check them on tiny arrays.

Per-image operations
  darken(img, f)                 x' = x * f                        (f = 0.02 ... 0.2: 2-20% of the brightness)
  brighten(img, f)               x' = 255 - (255 - x) * f          (blend toward white)
  blur(img, sigma)               Gaussian blur, sigma in pixels at the image's own resolution
  near_edit(img, edit, rng)      one of NEAR_EDITS (shift + brightness, contrast, JPEG, rescale, resize,
                                 crop, flip); returns (edited image, description of the parameters)
  leak_edit(img, edit, rng)      one of LEAK_EDITS (exact copy, JPEG re-encode, 1 px shift)

Dataset-level injection
  ``inject(data, kind, strength, rng) -> (ImageSet, truth)``: a new ImageSet (untouched rows share
  their arrays with the input, which is never modified) and the ground truth (``rows``, ``pairs`` of
  (original row, copy row) or ``class``). Kinds: KINDS.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

KINDS = ("dark", "bright", "blur", "near_duplicate", "label_flip", "minority", "leak")

NEAR_EDITS = ("shift_brightness", "contrast", "jpeg", "rescale", "resize", "crop", "hflip")
LEAK_EDITS = ("exact", "jpeg", "shift")

# strengths per kind: the full sweep and the one --quick uses
STRENGTHS = {
    "dark": (0.02, 0.05, 0.1, 0.2),
    "bright": (0.05, 0.1, 0.2),
    "blur": (1, 2, 3),
    "near_duplicate": NEAR_EDITS,
    "label_flip": (0.02, 0.04, 0.06),
    "minority": (0.07,),
    "leak": ("jpeg", "shift"),
}
QUICK_STRENGTHS = {
    "dark": (0.1,), "bright": (0.1,), "blur": (2,), "near_duplicate": ("mixed",),
    "label_flip": (0.04,), "minority": (0.07,), "leak": ("mixed",),
}

AFFECTED_FRACTION = 0.015  # share of the rows a defect touches (dark, bright, blur, near duplicates, leak)
AFFECTED_MINIMUM = 20


# ---------------------------------------------------------------------------------------------- images


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def darken(img: np.ndarray, factor: float) -> np.ndarray:
    """Scale every pixel by ``factor`` (0.1 keeps 10% of the brightness)."""
    return _u8(img.astype(np.float32) * factor)


def brighten(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend toward white: ``255 - (255 - x) * factor`` (0.1 leaves 10% of the distance to white)."""
    return _u8(255.0 - (255.0 - img.astype(np.float32)) * factor)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (kernel of +-3 sigma), edges reflected."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


def shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels, repeating the edge pixels into the uncovered border."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[ys][:, xs].copy()


def scale_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    return _u8(img.astype(np.float32) * factor)


def scale_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """Stretch (factor > 1) or squeeze the gray levels around the image's mean."""
    x = img.astype(np.float32)
    return _u8(x.mean() + (x - x.mean()) * factor)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode again (4:2:0 chroma, as Pillow does by default)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return out.reshape(img.shape) if out.size == img.size else out


def resize_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    method = cv2.INTER_AREA if height * width < h * w else cv2.INTER_LINEAR
    out = cv2.resize(img, (int(width), int(height)), interpolation=method)
    return out.reshape(int(height), int(width), *img.shape[2:])


def crop_resize(img: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop the box and resize it back to the image's size."""
    h, w = img.shape[:2]
    return resize_to(img[top : top + height, left : left + width], h, w)


def near_edit(img: np.ndarray, edit: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A near-duplicate of ``img`` made by ``edit`` (one of NEAR_EDITS), and its parameters in words."""
    h, w = img.shape[:2]
    sign = lambda: 1 if rng.random() < 0.5 else -1  # noqa: E731
    if edit == "shift_brightness":
        dy, dx = int(sign() * rng.integers(1, 3)), int(sign() * rng.integers(1, 3))
        factor = 1 + sign() * rng.uniform(0.10, 0.15)
        return scale_brightness(shift(img, dy, dx), factor), f"shift ({dy:+d},{dx:+d}) px, brightness x{factor:.2f}"
    if edit == "contrast":
        factor = 1 + sign() * 0.15
        return scale_contrast(img, factor), f"contrast x{factor:.2f}"
    if edit == "jpeg":
        quality = int(rng.integers(70, 91))
        return jpeg(img, quality), f"JPEG q{quality}"
    if edit == "rescale":
        factor = rng.uniform(0.5, 0.75)
        small = resize_to(img, max(2, round(h * factor)), max(2, round(w * factor)))
        return resize_to(small, h, w), f"down to {factor:.2f}x and back up"
    if edit == "resize":
        factor = rng.uniform(0.7, 0.85) if rng.random() < 0.5 else rng.uniform(1.25, 1.5)
        nh, nw = max(2, round(h * factor)), max(2, round(w * factor))
        return resize_to(img, nh, nw), f"resized to {nw}x{nh} ({factor:.2f}x)"
    if edit == "crop":
        frac = rng.uniform(0.05, 0.10)
        ch, cw = max(2, round(h * (1 - frac))), max(2, round(w * (1 - frac)))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return crop_resize(img, top, left, ch, cw), f"crop {frac:.0%} at ({top},{left}), resized back"
    if edit == "hflip":
        return img[:, ::-1].copy(), "horizontal flip"
    raise ValueError(f"unknown near-duplicate edit {edit!r}; expected one of {NEAR_EDITS}")


def leak_edit(img: np.ndarray, edit: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A light edit of a leaked test image: an exact copy, a JPEG re-encode or a 1 px shift."""
    if edit == "exact":
        return img.copy(), "exact copy"
    if edit == "jpeg":
        quality = int(rng.integers(75, 91))
        return jpeg(img, quality), f"JPEG q{quality}"
    if edit == "shift":
        dy, dx = [(1, 0), (-1, 0), (0, 1), (0, -1)][int(rng.integers(4))]
        return shift(img, dy, dx), f"shift ({dy:+d},{dx:+d}) px"
    raise ValueError(f"unknown leak edit {edit!r}; expected one of {LEAK_EDITS}")


# -------------------------------------------------------------------------------------------- datasets


@dataclass
class ImageSet:
    """Images (list of uint8 arrays, sizes may differ), integer labels, split names, class names, and a
    stable id per row (file names are made from it; new rows get new ids)."""

    images: list[np.ndarray]
    labels: np.ndarray
    splits: np.ndarray
    classes: list[str]
    ids: np.ndarray = field(default=None)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, np.int64)
        self.splits = np.asarray(self.splits, dtype=object)
        self.ids = np.arange(len(self.images)) if self.ids is None else np.asarray(self.ids, np.int64)
        if not (len(self.images) == len(self.labels) == len(self.splits) == len(self.ids)):
            raise ValueError("images, labels, splits and ids must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    def copy(self) -> ImageSet:
        """A new table sharing the image arrays (replace entries, never modify them in place)."""
        return ImageSet(list(self.images), self.labels.copy(), self.splits.copy(), list(self.classes), self.ids.copy())

    def take(self, rows) -> ImageSet:
        rows = np.asarray(rows, np.int64)
        return ImageSet([self.images[i] for i in rows], self.labels[rows], self.splits[rows], list(self.classes),
                        self.ids[rows])

    def append(self, images, labels, splits) -> np.ndarray:
        """Add rows (in place on this table); returns their row indices."""
        start, nid = len(self.images), int(self.ids.max()) + 1 if len(self.ids) else 0
        self.images.extend(images)
        self.labels = np.concatenate([self.labels, np.asarray(labels, np.int64)])
        self.splits = np.concatenate([self.splits, np.asarray(splits, dtype=object)])
        self.ids = np.concatenate([self.ids, np.arange(nid, nid + len(images))])
        return np.arange(start, len(self.images))


def affected_count(n: int, fraction: float = AFFECTED_FRACTION, minimum: int = AFFECTED_MINIMUM) -> int:
    """How many of ``n`` rows a defect touches: ``fraction`` of them, at least ``minimum`` (at most n)."""
    return int(min(n, max(minimum, round(n * fraction))))


def _pick(rng: np.random.Generator, rows: np.ndarray, k: int) -> np.ndarray:
    return np.sort(rng.choice(rows, size=min(k, len(rows)), replace=False))


def inject_pixels(data: ImageSet, op, rng: np.random.Generator, *, fraction=AFFECTED_FRACTION,
                  minimum=AFFECTED_MINIMUM) -> tuple[ImageSet, dict]:
    """Apply ``op(image)`` to a random set of rows (any split); truth: those rows."""
    out = data.copy()
    rows = _pick(rng, np.arange(len(data)), affected_count(len(data), fraction, minimum))
    for r in rows:
        out.images[r] = op(data.images[r])
    return out, {"rows": rows.tolist()}


def inject_near_duplicates(data: ImageSet, edit: str, rng: np.random.Generator, *, fraction=AFFECTED_FRACTION,
                           minimum=AFFECTED_MINIMUM) -> tuple[ImageSet, dict]:
    """Add edited copies of random rows as new rows (same label and split as the original).

    ``edit`` is one of NEAR_EDITS, or "mixed" (each copy gets a random one). Truth: ``pairs`` of
    (original row, copy row), with ``edits`` (edit name per pair) and ``details`` (its parameters).
    """
    out = data.copy()
    originals = _pick(rng, np.arange(len(data)), affected_count(len(data), fraction, minimum))
    originals = rng.permutation(originals)
    edits = [edit if edit != "mixed" else NEAR_EDITS[i % len(NEAR_EDITS)] for i in range(len(originals))]
    images, details = [], []
    for r, e in zip(originals, edits, strict=True):
        img, text = near_edit(data.images[r], e, rng)
        images.append(img)
        details.append(text)
    copies = out.append(images, data.labels[originals], data.splits[originals])
    pairs = [[int(a), int(b)] for a, b in zip(originals, copies, strict=True)]
    return out, {"pairs": pairs, "edits": edits, "details": details}


def inject_label_flips(data: ImageSet, rate: float, rng: np.random.Generator, *, split: str = "train"
                       ) -> tuple[ImageSet, dict]:
    """Give ``rate`` of the ``split`` rows a uniformly random other class; truth: those rows."""
    out = data.copy()
    pool = np.flatnonzero(data.splits == split)
    rows = _pick(rng, pool, max(1, round(len(pool) * rate)))
    k = len(data.classes)
    shift_by = rng.integers(1, k, size=len(rows))  # 1..k-1: never the same class
    out.labels[rows] = (data.labels[rows] + shift_by) % k
    return out, {"rows": rows.tolist(), "from": data.labels[rows].tolist(), "to": out.labels[rows].tolist()}


def inject_minority(data: ImageSet, ratio: float, rng: np.random.Generator, *, split: str = "train",
                    target: int | None = None) -> tuple[ImageSet, dict]:
    """Remove ``split`` images of one class (random, or ``target``) until it has ``ratio`` times the
    images of the largest other class in that split; other splits untouched. Truth: the class."""
    in_split = data.splits == split
    counts = np.bincount(data.labels[in_split], minlength=len(data.classes))
    present = np.flatnonzero(counts > 0)
    if target is None:
        target = int(rng.choice(present))
    largest = int(np.delete(counts, target).max())
    keep_n = max(1, round(ratio * largest))
    members = np.flatnonzero(in_split & (data.labels == target))
    drop = _pick(rng, members, max(0, len(members) - keep_n))
    keep = np.setdiff1d(np.arange(len(data)), drop)
    return data.take(keep), {"class": data.classes[target], "class_index": target, "removed": len(drop),
                             "kept": int(min(keep_n, len(members))), "largest": largest}


def inject_leak(data: ImageSet, edit: str, rng: np.random.Generator, *, source: str = "test", target: str = "train",
                fraction: float = 0.01, minimum: int = AFFECTED_MINIMUM) -> tuple[ImageSet, dict]:
    """Copy ``fraction`` of the ``source`` split (at least ``minimum``, at most a fifth of it) into
    ``target`` with a light edit (one of LEAK_EDITS, or "mixed": JPEG and shift alternately).
    Truth: ``pairs`` of (source row, copy row)."""
    out = data.copy()
    pool = np.flatnonzero(data.splits == source)
    k = min(max(minimum, round(len(pool) * fraction)), max(1, len(pool) // 5))
    originals = rng.permutation(_pick(rng, pool, k))
    edits = [edit if edit != "mixed" else ("jpeg", "shift")[i % 2] for i in range(len(originals))]
    images, details = [], []
    for r, e in zip(originals, edits, strict=True):
        img, text = leak_edit(data.images[r], e, rng)
        images.append(img)
        details.append(text)
    copies = out.append(images, data.labels[originals], [target] * len(originals))
    pairs = [[int(a), int(b)] for a, b in zip(originals, copies, strict=True)]
    return out, {"pairs": pairs, "edits": edits, "details": details}


def inject(data: ImageSet, kind: str, strength, rng: np.random.Generator) -> tuple[ImageSet, dict]:
    """One defect ``kind`` (KINDS) at ``strength`` (see STRENGTHS) into a new copy of ``data``."""
    if kind == "dark":
        return inject_pixels(data, lambda im: darken(im, float(strength)), rng)
    if kind == "bright":
        return inject_pixels(data, lambda im: brighten(im, float(strength)), rng)
    if kind == "blur":
        return inject_pixels(data, lambda im: blur(im, float(strength)), rng)
    if kind == "near_duplicate":
        return inject_near_duplicates(data, str(strength), rng)
    if kind == "label_flip":
        return inject_label_flips(data, float(strength), rng)
    if kind == "minority":
        return inject_minority(data, float(strength), rng)
    if kind == "leak":
        return inject_leak(data, str(strength), rng)
    raise ValueError(f"unknown defect kind {kind!r}; expected one of {KINDS}")
