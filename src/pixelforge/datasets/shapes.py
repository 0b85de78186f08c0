"""A seeded synthetic ``shapes`` dataset (circles, squares, triangles, crosses, …) with known defects.

Colour, background, lighting, perspective (position, scale, rotation), label noise and a per-class
background bias are parameters, and defects are injected on request: exact and near duplicates,
duplicates across train/test, flipped labels, dark and blurry images, a class far smaller than the
others, a class shot on its own uniform background, and (when written to disk) corrupt files and
wrong extensions. The result carries the ground truth of every injection, so audits can be scored
for precision and recall.

    data = make_shapes(200, label_noise=0.05, dark=8, blurry=8)
    data.manifest, data.truth["dark"]           # Manifest (ArrayStorage) and the dark images' locations
    make_shapes(200, write_to="shapes/")        # the same as a train/test folder tree of PNG files
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.errors import PixelforgeError

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "star")

# A preset with every defect kind the audit looks for (used by tests and `pixelforge demo`-style runs).
DEFECTS = {
    "label_noise": 0.05,
    "exact_duplicates": 6,
    "near_duplicates": 6,
    "cross_split_duplicates": 5,
    "dark": 8,
    "blurry": 8,
    "imbalance": {"cross": 0.08},
    "background_bias": {"triangle": (40, 170, 60)},
}


@dataclass
class ShapesData:
    """The generated dataset: a Manifest, the ground truth of injected defects, and the true labels.

    ``truth`` maps a defect kind to the Manifest locations (or class names, for class-level defects)
    that were injected: exact_duplicates, near_duplicates, cross_split_duplicates (every image of an
    injected group, original included), label_errors, dark, blurry, imbalance, background_shortcut,
    and for folders corrupt and wrong_extension. ``true_labels`` maps a flipped image to its real class.
    """

    manifest: Manifest
    truth: dict[str, list[str]]
    true_labels: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    def __iter__(self):  # allows ``manifest, truth = make_shapes(...)``
        return iter((self.manifest, self.truth))


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if kind == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        scale = r * 0.8
    elif kind == "triangle":
        pts = [(np.cos(a), np.sin(a)) for a in np.deg2rad([-90, 30, 150])]
        scale = r
    elif kind == "diamond":
        pts = [(0, -1), (0.7, 0), (0, 1), (-0.7, 0)]
        scale = r
    elif kind == "cross":
        w = 0.33
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
               (-1, -w), (-w, -w)]
        scale = r
    elif kind == "star":
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.45
            a = np.deg2rad(-90 + 36 * k)
            pts.append((rad * np.cos(a), rad * np.sin(a)))
        scale = r
    else:
        raise PixelforgeError(f"unknown shape {kind!r}; expected one of {SHAPES}")
    pts = np.asarray(pts, dtype=np.float64) * scale
    c, s = np.cos(angle), np.sin(angle)
    rot = pts @ np.array([[c, s], [-s, c]])
    return rot + np.array([cx, cy])


def _draw(kind: str, size: int, rng: np.random.Generator, p: dict, flat_background) -> np.ndarray:
    """One image: background (colour + lighting gradient + texture), the shape, lighting, noise."""
    lo, hi = p["background"]
    if flat_background is not None:
        img = np.empty((size, size, 3), np.float32)
        img[:] = np.asarray(flat_background, np.float32)
    else:
        base = rng.uniform(lo, hi, 3).astype(np.float32)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(theta) * xx + np.sin(theta) * yy) * rng.uniform(0, p["gradient"])
        img = base[None, None, :] + ramp[:, :, None]
        img += rng.normal(0, p["texture"], (size, size, 3)).astype(np.float32)
    luma = np.array([0.299, 0.587, 0.114], np.float32)  # stand out in gray too, not only in colour
    bg_luma = float(img.reshape(-1, 3).mean(0) @ luma)
    colour = p["colors"].get(kind) if isinstance(p["colors"], dict) else None
    if colour is None:
        for _ in range(50):
            colour = rng.uniform(0, 255, 3)
            if abs(float(colour @ luma) - bg_luma) > 50:
                break
    r = size * rng.uniform(*p["scale"]) / 2
    cx = size / 2 + rng.uniform(-1, 1) * p["position_jitter"] * size
    cy = size / 2 + rng.uniform(-1, 1) * p["position_jitter"] * size
    layer = np.zeros((size * 4, size * 4), np.uint8)  # draw at 4x, then area-downsample: smooth edges
    if kind == "circle":
        cv2.circle(layer, (int(cx * 4), int(cy * 4)), int(r * 4 * 0.85), 255, -1, cv2.LINE_AA)
    else:
        angle = np.deg2rad(rng.uniform(-p["rotation"], p["rotation"]))
        poly = _polygon(kind, cx * 4, cy * 4, r * 4, angle)
        cv2.fillPoly(layer, [np.round(poly).astype(np.int32)], 255, cv2.LINE_AA)
    mask = cv2.resize(layer, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)[:, :, None] / 255
    img = img * (1 - mask) + np.asarray(colour, np.float32)[None, None, :] * mask
    img *= rng.uniform(*p["lighting"])
    img += rng.normal(0, p["noise"], img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _as_count(value, total: int) -> int:
    """Counts may be given as numbers of images or as a fraction (< 1) of the dataset."""
    if isinstance(value, float) and 0 < value < 1:
        return int(round(value * total))
    return int(value)


def make_shapes(
    n_per_class: int = 200,
    *,
    classes=("circle", "square", "triangle", "cross"),
    size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.2,
    colors: dict | None = None,
    background: tuple[float, float] = (70, 190),
    gradient: float = 40.0,
    texture: float = 7.0,
    lighting: tuple[float, float] = (0.85, 1.15),
    position_jitter: float = 0.08,
    scale: tuple[float, float] = (0.5, 0.7),
    rotation: float = 12.0,
    noise: float = 3.0,
    imbalance: dict[str, float] | None = None,
    background_bias: dict[str, tuple[int, int, int]] | None = None,
    label_noise: float = 0.0,
    exact_duplicates: int = 0,
    near_duplicates: int = 0,
    cross_split_duplicates: int = 0,
    dark: int = 0,
    blurry: int = 0,
    corrupt: int = 0,
    wrong_extension: int = 0,
    write_to: str | os.PathLike | None = None,
) -> ShapesData:
    """Generate the dataset (see the module docstring). Same arguments and seed → same images.

    imbalance: ``{class: fraction of n_per_class}`` (e.g. ``{"cross": 0.08}``).
    background_bias: ``{class: (r, g, b)}`` gives that class a flat background of that colour.
    label_noise: fraction of images whose label is flipped to another class.
    corrupt / wrong_extension: only with ``write_to`` (a zero-byte, a truncated and a text file
    named .png, cycling; PNG bytes saved as .jpg).
    """
    classes = list(classes)
    for name in classes:
        if name not in SHAPES:
            raise PixelforgeError(f"unknown shape {name!r}; expected some of {SHAPES}")
    if len(set(classes)) != len(classes) or not classes:
        raise PixelforgeError("classes must be distinct shape names")
    if n_per_class < 2:
        raise PixelforgeError(f"n_per_class must be at least 2, got {n_per_class}")
    if (corrupt or wrong_extension) and write_to is None:
        raise PixelforgeError("corrupt and wrong_extension files need write_to=<folder>")
    params = {
        "background": background, "gradient": gradient, "texture": texture, "lighting": lighting,
        "position_jitter": position_jitter, "scale": scale, "rotation": rotation, "noise": noise,
        "colors": colors or {},
    }
    imbalance = imbalance or {}
    background_bias = background_bias or {}
    rng = np.random.default_rng(seed)

    images, labels = [], []
    for name in classes:
        count = max(2, int(round(n_per_class * imbalance.get(name, 1.0))))
        for _ in range(count):
            images.append(_draw(name, size, rng, params, background_bias.get(name)))
            labels.append(name)
    n = len(images)
    labels_arr = np.asarray(labels)
    splits = np.full(n, "train", dtype=object)
    for name in classes:  # stratified test split
        members = np.flatnonzero(labels_arr == name)
        k = int(round(test_fraction * len(members)))
        splits[rng.choice(members, size=k, replace=False)] = "test"

    # Disjoint sets of images receive each defect, so every kind's ground truth is clean.
    order = list(rng.permutation(n))

    def take(k, where=None):
        chosen = []
        for i in list(order):
            if len(chosen) == k:
                break
            if where is None or where(i):
                chosen.append(i)
                order.remove(i)
        if len(chosen) < k:
            raise PixelforgeError(f"dataset too small to inject {k} defects of one kind")
        return chosen

    minority = set(imbalance)
    n_flip = _as_count(float(label_noise), n) if label_noise else 0
    flip = take(n_flip, lambda i: labels[i] not in minority)
    dark_idx = take(_as_count(dark, n))
    blur_idx = take(_as_count(blurry, n))
    exact_src = take(_as_count(exact_duplicates, n))
    near_src = take(_as_count(near_duplicates, n))
    cross_src = take(_as_count(cross_split_duplicates, n), lambda i: splits[i] == "train")

    true_labels: dict[int, str] = {}
    others = {c: [o for o in classes if o != c and o not in minority] for c in classes}
    for i in flip:
        true_labels[i] = labels[i]
        labels[i] = others[labels[i]][rng.integers(len(others[labels[i]]))]
    for i in dark_idx:
        images[i] = np.round(images[i].astype(np.float32) * rng.uniform(0.12, 0.22)).astype(np.uint8)
    for i in blur_idx:
        images[i] = cv2.GaussianBlur(images[i], (0, 0), sigmaX=rng.uniform(1.3, 1.8))

    groups = {"exact_duplicates": [], "near_duplicates": [], "cross_split_duplicates": []}
    split_list = list(splits)
    for i in exact_src:
        images.append(images[i].copy())
        labels.append(labels[i])
        split_list.append(split_list[i])
        groups["exact_duplicates"].append((i, len(images) - 1))
    for i in near_src:
        shifted = images[i].astype(np.float32) + rng.uniform(-5, 5) + rng.normal(0, 2.0, images[i].shape)
        images.append(np.clip(np.round(shifted), 0, 255).astype(np.uint8))
        labels.append(labels[i])
        split_list.append(split_list[i])
        groups["near_duplicates"].append((i, len(images) - 1))
    for i in cross_src:
        images.append(images[i].copy())
        labels.append(labels[i])
        split_list.append("test")
        groups["cross_split_duplicates"].append((i, len(images) - 1))
        groups["exact_duplicates"].append((i, len(images) - 1))

    stack = np.stack(images)
    truth_idx: dict[str, list[int]] = {
        kind: sorted({j for pair in pairs for j in pair}) for kind, pairs in groups.items()
    }
    truth_idx["label_errors"] = sorted(flip)
    truth_idx["dark"] = sorted(dark_idx)
    truth_idx["blurry"] = sorted(blur_idx)

    if write_to is None:
        manifest = Manifest(
            [str(i) for i in range(len(stack))], labels, ArrayStorage(stack, name="shapes"),
            splits=split_list, classes=sorted(classes), layout="arrays", source="shapes",
        )
        truth = {kind: [str(i) for i in idx] for kind, idx in truth_idx.items()}
        root = None
        true_map = {str(i): c for i, c in true_labels.items()}
    else:
        root = Path(write_to)
        locations = _write_tree(root, stack, labels, split_list, rng, wrong_extension)
        truth = {kind: [locations[i] for i in idx] for kind, idx in truth_idx.items()}
        truth["wrong_extension"] = [loc for loc in locations if loc.endswith(".jpg")]
        truth["corrupt"] = _write_corrupt(root, classes, corrupt)
        from pixelforge.data.read import read_dataset

        manifest = read_dataset(root)
        true_map = {locations[i]: c for i, c in true_labels.items()}
    truth["imbalance"] = sorted(minority)
    truth["background_shortcut"] = sorted(background_bias)
    return ShapesData(manifest, truth, true_map, root)


def _write_tree(root: Path, stack, labels, splits, rng, wrong_extension: int) -> list[str]:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    renamed = set(rng.choice(len(stack), size=min(wrong_extension, len(stack)), replace=False).tolist())
    locations = []
    for i, (img, label, split) in enumerate(zip(stack, labels, splits, strict=True)):
        ext = ".jpg" if i in renamed else ".png"  # PNG bytes under a .jpg name
        rel = f"{split}/{label}/{label}_{i:05d}{ext}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path, format="PNG")
        locations.append(rel)
    return locations


def _write_corrupt(root: Path, classes: list[str], count: int) -> list[str]:
    """Broken files inside class folders: zero bytes, a truncated PNG, text named .png (cycling)."""
    from PIL import Image

    out = []
    for k in range(count):
        rel = f"train/{classes[k % len(classes)]}/broken_{k:03d}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = k % 3
        if kind == 0:
            path.write_bytes(b"")
        elif kind == 1:
            import io

            buf = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buf, format="PNG")
            path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        else:
            path.write_text("this is not an image\n")
        out.append(rel)
    return out
