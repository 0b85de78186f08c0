"""Shift diagnosis: how a user's own images differ from the training data, axis by axis.

Every image is measured on the same axes (``AXES``) at the model's input size, in one streaming pass
over a seeded sample of each set (only the numbers are kept, never the images):

  polarity              1 when the background is brighter than the object, else 0
  background_brightness the background's brightness, 0-1, measured after inverting the images whose
                        polarity is not the training majority (so that a polarity flip counts once)
  background_colour     median chroma (max - min of R, G, B) of the background's pixels, 0-1
  background_texture    spread of the background's pixels, lightly smoothed: (p90 - p10) / 2.56
  position              distance of the object's centre of mass from the image centre, / image side
  scale                 the object's bounding box, its larger side / the image side
  stroke_width          2 x area / perimeter of the object, / its bounding box's larger side
  colour_saturation     median chroma of the object's pixels, 0-1
  sharpness             steepness of the object's edges: p75 of the gradient on its outline / contrast
  noise                 pixel noise, Immerkær's estimate with a median (robust to edges), 0-1
  aspect_ratio          log2(width / height) before resizing
  size                  log2(sqrt(width x height)) before resizing

The background is the image's outer ring of pixels (its brightness the ring's median; its colour and
texture from the ring's pixels outside the object), the object the pixels that differ from that
median by more than half the image's contrast (p99 of |pixel - background|).

The distance of the wild set from the training set on an axis is

    distance = W1(wild, train) / max(IQR_train, unit)

W1 is the 1-Wasserstein distance of the two distributions (the mean absolute difference of their
quantiles), IQR_train the training set's interquartile range, and ``unit`` the smallest difference
that matters on that axis (so that an axis on which the training set does not vary at all, like
MNIST's black background, still gets a finite distance). An axis *differs* when its distance is at
least ``CUT`` (1.0: the sets are a training spread apart); the axes are ranked by distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pixelforge.errors import ParameterError, PixelforgeError

CUT = 1.0
DEFAULT_LIMIT = 2000
ANALYSIS_SIZE = (32, 32)  # when neither a spec nor a size says the model's input
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, what Pillow's "L" conversion uses


@dataclass(frozen=True)
class Axis:
    name: str
    description: str
    unit: float  # smallest difference that matters: the floor of the spread
    remedy: str


AXES = [
    Axis("polarity", "background brighter than the object (share of images)", 0.1,
         "auto-polarity preprocessing, or invert augmentation"),
    Axis("background_brightness", "background brightness, after matching polarity", 0.05,
         "contrast stretch preprocessing, or background / brightness augmentation"),
    Axis("background_colour", "background chroma", 0.05, "background compositing or colour jitter augmentation"),
    Axis("background_texture", "background non-uniformity (texture, gradient)", 0.03,
         "background compositing augmentation"),
    Axis("position", "object's distance from the centre (fraction of the side)", 0.03,
         "centre-by-mass preprocessing, or shift augmentation"),
    Axis("scale", "object's size (bounding box / image side)", 0.05,
         "crop-to-content and scale-to-box preprocessing, or zoom augmentation"),
    Axis("stroke_width", "stroke width relative to the object's size", 0.02, "stroke width (dilate/erode) augmentation"),
    Axis("colour_saturation", "object's chroma", 0.05, "colour jitter augmentation (or train on grayscale)"),
    Axis("sharpness", "edge steepness (1 = a one-pixel step)", 0.05, "blur augmentation"),
    Axis("noise", "pixel noise (standard deviation, 0-1)", 0.01, "noise / JPEG augmentation"),
    Axis("aspect_ratio", "log2(width / height) before resizing", 0.15, "pad-to-square preprocessing (resize='pad')"),
    Axis("size", "log2 of the image's side before resizing", 1.0, "none needed unless very small: resizing handles it"),
]
AXIS_NAMES = [a.name for a in AXES]
FORMULA = "distance = W1(wild, train) / max(IQR_train, unit); differs when distance >= 1"


# ---- measuring one image ------------------------------------------------------------------------
def _ring(h: int, w: int) -> np.ndarray:
    """Boolean mask of the outer ring of pixels (about 1/14 of the side, at least one pixel)."""
    b = max(1, round(min(h, w) / 14))
    ring = np.ones((h, w), bool)
    ring[b : h - b, b : w - b] = False
    return ring


def _immerkaer(gray: np.ndarray) -> float:
    """Noise standard deviation: the median of |Immerkær's 3x3 high-pass| (its gain on white noise
    is 6), divided by the normal's 0.6745 so that a median stands in for the mean absolute value."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.median(np.abs(response)) / (6 * 0.6745))


def measure_image(small: np.ndarray, native_hw: tuple[int, int]) -> dict[str, float]:
    """The axes of one image: ``small`` is the uint8 RGB image at the analysis size (H x W x 3),
    ``native_hw`` its (height, width) before resizing. Object axes are NaN when the image is blank."""
    x = small.astype(np.float32) / 255
    gray = x @ LUMA
    h, w = gray.shape
    ring = _ring(h, w)
    chroma = x.max(axis=2) - x.min(axis=2)
    bg = float(np.median(gray[ring]))
    dev = np.abs(gray - bg)
    contrast = float(np.percentile(dev, 99))
    mask = dev > 0.5 * contrast
    # the background's own pixels: the ring less any part of the object that reaches the edge
    back = ring & ~mask if np.count_nonzero(ring & ~mask) >= 8 else ring
    border = cv2.GaussianBlur(gray, (0, 0), 1.0)[back]  # smoothed: pixel noise is the noise axis
    out = {
        "background_brightness": bg,
        "background_colour": float(np.median(chroma[back])),
        "background_texture": float((np.percentile(border, 90) - np.percentile(border, 10)) / 2.56),
        "noise": _immerkaer(gray),
        "aspect_ratio": float(np.log2(native_hw[1] / native_hw[0])),
        "size": float(np.log2(np.sqrt(native_hw[0] * native_hw[1]))),
    }
    if contrast < 0.05 or not mask.any():  # a blank image: no object to measure
        return out | {k: float("nan") for k in ("polarity", "position", "scale", "stroke_width",
                                                 "colour_saturation", "sharpness")}
    ys, xs = np.nonzero(mask)
    mass = dev[ys, xs]
    cy, cx = np.average(ys, weights=mass), np.average(xs, weights=mass)
    box = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    padded = np.pad(mask, 1)
    perimeter = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    gy, gx = np.gradient(gray)
    kernel = np.ones((3, 3), np.uint8)
    m8 = mask.astype(np.uint8)
    outline = (cv2.dilate(m8, kernel) - cv2.erode(m8, kernel)).astype(bool)
    return out | {
        "polarity": float(bg > float(gray[mask].mean())),
        "position": float(np.hypot((cx - (w - 1) / 2) / w, (cy - (h - 1) / 2) / h)),
        "scale": float(box / max(h, w)),
        "stroke_width": float(2 * len(ys) / perimeter / box),
        "colour_saturation": float(np.median(chroma[mask])),
        "sharpness": float(np.percentile(np.hypot(gx, gy)[outline], 75) / contrast),
    }


# ---- reading a set --------------------------------------------------------------------------------
def _as_manifest(source, what: str, prefer_train: bool):
    """A Manifest (its train split when ``prefer_train`` and it has one), or None for arrays."""
    from pixelforge.data.manifest import Manifest

    if isinstance(source, np.ndarray | list | tuple):
        return None
    if not isinstance(source, Manifest):
        from pixelforge.data.read import read_dataset

        source = read_dataset(str(source))
    if prefer_train and "train" in source.split_names:
        source = source.split("train")
    if len(source) == 0:
        raise PixelforgeError(f"{what}: no images")
    return source


def _iterate_images(source, what: str, size, spec, limit, seed, prefer_train, skipped, examples=0):
    """Yield (name, image at the analysis size as RGB uint8, native (h, w), whether it is one of
    ``examples`` images spread evenly over the sample) for a seeded sample."""
    from pixelforge.data.decode import decode_image, sniff_header
    from pixelforge.data.resize import resize

    method = getattr(spec, "resize", "squash")
    interpolation = getattr(spec, "interpolation", "auto")
    manifest = _as_manifest(source, what, prefer_train)
    if manifest is None:
        images = list(source) if isinstance(source, list | tuple) else np.asarray(source)
        if isinstance(images, np.ndarray) and images.ndim not in (3, 4):
            raise ParameterError(f"{what}: expected N x H x W (x C) images, got shape {images.shape}")
        n = len(images)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, limit), replace=False)) if limit else range(n)
        read = (lambda i: images[i]), (lambda i: f"{what}[{i}]")
    else:
        from pixelforge.robustness.suite import _sample

        rows = _sample(manifest.label_indices(), limit, seed)
        read = manifest.read, manifest.describe
    picks = set(np.linspace(0, len(rows) - 1, examples).round().astype(int).tolist()) if examples else set()
    for k, i in enumerate(rows):
        name = read[1](int(i))
        try:
            data = read[0](int(i))
            header = sniff_header(bytes(data)) if isinstance(data, bytes | bytearray) else None
            img = decode_image(data, name=name, channels=3, draft_size=size)
            native = (header.height, header.width) if header is not None else img.shape[:2]
            small = resize(img if img.dtype == np.uint8 else (img // 257).astype(np.uint8), size, method, interpolation)
        except (PixelforgeError, OSError, ValueError) as exc:
            skipped.append({"item": name, "reason": str(exc)})
            continue
        yield name, small, native, k in picks


def measure_set(source, *, spec=None, size=None, limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                what: str = "images", prefer_train: bool = False, examples: int = 0):
    """Measure a seeded sample of a set: ({axis: float array}, names, skipped, example images)."""
    size = _analysis_size(spec, size)
    values: dict[str, list[float]] = {a: [] for a in AXIS_NAMES}
    names, skipped, kept = [], [], []
    for name, small, native, example in _iterate_images(source, what, size, spec, limit, seed, prefer_train,
                                                        skipped, examples):
        for axis, v in measure_image(small, native).items():
            values[axis].append(v)
        names.append(name)
        if example:
            kept.append(small)
    if not names:
        first = f": {skipped[0]['item']}: {skipped[0]['reason']}" if skipped else ""
        raise PixelforgeError(f"{what}: no image could be read{first}")
    return {a: np.asarray(v, np.float64) for a, v in values.items()}, names, skipped, kept


def _analysis_size(spec, size) -> tuple[int, int]:
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
    else:
        size = getattr(spec, "size", None) or ANALYSIS_SIZE
    if len(size) != 2 or min(size) < 8:
        raise ParameterError(f"size must be (height, width) of at least 8 pixels, got {size}")
    return int(size[0]), int(size[1])


# ---- comparing two sets ---------------------------------------------------------------------------
QUANTILES = np.linspace(0.005, 0.995, 100)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance of two samples: the mean absolute difference of their quantiles."""
    return float(np.mean(np.abs(np.quantile(a, QUANTILES) - np.quantile(b, QUANTILES))))


def compare(train: dict[str, np.ndarray], wild: dict[str, np.ndarray], cut: float = CUT) -> list[dict]:
    """One row per axis, ranked by distance (largest first); see the module docstring."""
    train, wild = dict(train), dict(wild)
    # background brightness is read in the training majority's polarity: flipped images count once
    pol = train["polarity"][~np.isnan(train["polarity"])]
    majority = float(np.mean(pol) > 0.5) if len(pol) else 0.0
    for values in (train, wild):
        flipped = values["polarity"] == 1 - majority
        values["background_brightness"] = np.where(flipped, 1 - values["background_brightness"],
                                                   values["background_brightness"])
    rows = []
    for axis in AXES:
        t, w = train[axis.name], wild[axis.name]
        t, w = t[~np.isnan(t)], w[~np.isnan(w)]
        if len(t) == 0 or len(w) == 0:
            continue
        t25, t50, t75 = np.percentile(t, [25, 50, 75])
        w25, w50, w75 = np.percentile(w, [25, 50, 75])
        spread = max(float(t75 - t25), axis.unit)
        distance = wasserstein(w, t) / spread
        mean_shift = float(np.mean(w) - np.mean(t))
        rows.append({
            "axis": axis.name, "description": axis.description, "distance": round(distance, 3),
            "differs": bool(distance >= cut), "direction": "higher" if mean_shift > 0 else "lower",
            "train": {"median": float(t50), "p25": float(t25), "p75": float(t75), "mean": float(np.mean(t))},
            "wild": {"median": float(w50), "p25": float(w25), "p75": float(w75), "mean": float(np.mean(w))},
            "spread": spread, "unit": axis.unit, "remedy": axis.remedy,
            "outside": float(np.mean((w < np.percentile(t, 1)) | (w > np.percentile(t, 99)))),
        })
    return sorted(rows, key=lambda r: -r["distance"])


def diagnose_shift(train, wild, spec=None, *, size=None, limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                   cut: float = CUT, examples: int = 0, examples_out: dict | None = None) -> dict:
    """How ``wild`` differs from ``train``: per-axis distances, ranked, and the axes that differ.

    train, wild: a Manifest or a dataset path (for ``train``, its train split when it has one), or
        uint8 images (an N x H x W (x C) array or a list of H x W (x C) arrays).
    spec: the model's Preprocess (its size, resize and interpolation give the analysis size; a saved
        model's ``.preprocess`` is what to pass), or None with ``size`` (default 32 x 32).
    limit: measure a seeded (stratified, for a Manifest) sample of at most this many images per set.
    cut: the distance from which an axis counts as differing.
    examples, examples_out: with a dict, it receives ``{"wild": [...], "train": [...]}``, up to
        ``examples`` uint8 RGB images of each set at the analysis size (for the report's side by side).

    Returns a JSON-able dict: ``axes`` (rows of ``compare``), ``differs`` (the names of the axes that
    differ, largest first), ``summary`` (one line), ``formula``, ``cut`` and per-set counts.
    """
    if cut <= 0:
        raise ParameterError(f"cut must be positive, got {cut}")
    spec = getattr(spec, "preprocess", spec)
    # the wild set first: a problem with the user's folder shows before the long pass over training data
    w_values, w_names, w_skipped, w_examples = measure_set(
        wild, spec=spec, size=size, limit=limit, seed=seed, what="wild images", examples=examples)
    t_values, t_names, t_skipped, t_examples = measure_set(
        train, spec=spec, size=size, limit=limit, seed=seed, what="training images", prefer_train=True,
        examples=examples)
    rows = compare(t_values, w_values, cut)
    differs = [r["axis"] for r in rows if r["differs"]]
    if examples_out is not None:
        examples_out.update(wild=w_examples, train=t_examples)
    return {
        "formula": FORMULA,
        "cut": cut,
        "size": list(_analysis_size(spec, size)),
        "seed": seed,
        "train": {"images": len(t_names), "skipped": t_skipped[:20], "skipped_count": len(t_skipped)},
        "wild": {"images": len(w_names), "skipped": w_skipped[:20], "skipped_count": len(w_skipped)},
        "axes": rows,
        "differs": differs,
        "summary": summarize(rows, differs),
    }


def summarize(rows: list[dict], differs: list[str]) -> str:
    """One line: the axes that differ with their distances, or that none does."""
    if not differs:
        top = rows[0] if rows else None
        return "your images look like the training data on every axis" + (
            f" (largest: {top['axis']} {top['distance']:.2f})" if top else "")
    by = {r["axis"]: r for r in rows}
    parts = [f"{a} {by[a]['distance']:.1f} ({by[a]['direction']})" for a in differs]
    return "your images differ from the training data in " + ", ".join(parts)
