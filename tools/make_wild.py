"""Make a "wild" evidence set: class folders of images unlike the training data, seeded.

    python tools/make_wild.py --kind digits  --seed 0 --out /tmp/wild/digits-s0  --per-class 60
    python tools/make_wild.py --kind clothes --seed 0 --out /tmp/wild/clothes-s0 --per-class 60

digits (for MNIST, folders 0-9): printed digits in every TrueType font found (system fonts and
matplotlib's, Pillow's scalable default as a fallback) at many weights, and hand-drawn-looking digits
(stroke templates with jitter, slant and varied pen width); on solid, gradient, noise and generated
texture backgrounds (clouds, stripes, ruled paper, grain) of varied colour; both polarities;
off-centre, scaled, rotated; some blurred, noisy or JPEG-compressed; 64-160 px RGB. No MNIST image
is used.

clothes (for Fashion-MNIST, folders 0-9 as in its archive): garments of Fashion-MNIST's *test* split
made dark-on-light (inverted), tinted, scaled up, rotated a little and placed off-centre on light
varied backgrounds; some blurred, noisy or JPEG-compressed; 64-160 px RGB.

The file name records how an image was made (source, background, polarity), e.g.
``0007_font-DejaVuSans-Bold_texture_dark-on-light.jpg``. The set is written to a temporary folder
beside --out and renamed into place, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

DIGITS = "0123456789"
DEFAULT_FASHION = Path("/tmp/ds/fashion-mnist")
# Fonts whose digits are not plain digits (size variants of symbols, math extension fonts).
SKIP_FONTS = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "Math", "DejaVuSansDisplay", "DejaVuSerifDisplay")


# ---- fonts ------------------------------------------------------------------------------------
def font_files() -> list[Path]:
    """TrueType/OpenType fonts on this machine that render ten distinct digits."""
    roots = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    try:
        import matplotlib

        roots.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    seen, out = set(), []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf") or path.name in seen:
                continue
            if any(s in path.name for s in SKIP_FONTS):
                continue
            seen.add(path.name)
            if _renders_digits(ImageFont.truetype(str(path), 48)):
                out.append(path)
    return out


def _renders_digits(font) -> bool:
    glyphs = []
    for d in DIGITS:
        mask = _glyph(font, d, 0)
        if mask is None:
            return False
        glyphs.append(cv2.resize(mask, (12, 16)).tobytes())
    return len(set(glyphs)) == len(DIGITS)  # a font without digits draws one box for all of them


def _glyph(font, text: str, stroke: int) -> np.ndarray | None:
    """The glyph as a float mask in [0, 1], cropped to its ink."""
    size = int(font.size * 2 + 4 * stroke + 8)
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).text((size / 2, size / 2), text, fill=255, font=font, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    box = canvas.getbbox()
    if box is None:
        return None
    return np.asarray(canvas.crop(box), np.float32) / 255


# ---- hand-drawn digits ------------------------------------------------------------------------
def _arc(cx, cy, rx, ry, start, stop, n=28):
    """Points of an elliptic arc; angles in degrees, 0 = right, 90 = down (image coordinates)."""
    t = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points):
    return np.array(points, dtype=np.float64)


def digit_strokes(d: int, rng) -> list[np.ndarray]:
    """Pen strokes of one digit in a unit box (x right, y down), with some variants per digit."""
    v = rng.random()
    if d == 0:
        return [_arc(0.5, 0.5, 0.4, 0.48, -90 + 20 * v, 275 + 20 * v, 48)]
    if d == 1:
        strokes = [_line((0.5, 0.02), (0.5, 0.98))]
        if v < 0.6:
            strokes.append(_line((0.25, 0.25), (0.5, 0.02)))
        if v < 0.3:
            strokes.append(_line((0.25, 0.98), (0.75, 0.98)))
        return strokes
    if d == 2:
        top = _arc(0.5, 0.3, 0.4, 0.28, 180, 400)
        return [np.concatenate([top, _line((0.08, 0.98), (0.92, 0.98))])]
    if d == 3:
        return [np.concatenate([_arc(0.5, 0.27, 0.36, 0.25, 200, 450), _arc(0.5, 0.74, 0.4, 0.24, 270, 520)])]
    if d == 4:
        if v < 0.5:
            return [_line((0.65, 0.98), (0.65, 0.02), (0.05, 0.7), (0.95, 0.7))]
        return [_line((0.3, 0.02), (0.12, 0.62), (0.92, 0.62)), _line((0.68, 0.3), (0.68, 0.98))]
    if d == 5:
        return [np.concatenate([_line((0.85, 0.02), (0.22, 0.02), (0.17, 0.47)),
                                _arc(0.5, 0.68, 0.38, 0.3, 220, 510)])]
    if d == 6:
        return [np.concatenate([_line((0.78, 0.02), (0.45, 0.15), (0.22, 0.42)),
                                _arc(0.5, 0.72, 0.34, 0.26, 180, 540)])]
    if d == 7:
        strokes = [_line((0.08, 0.02), (0.92, 0.02), (0.38 + 0.1 * v, 0.98))]
        if v < 0.3:
            strokes.append(_line((0.35, 0.5), (0.85, 0.5)))
        return strokes
    if d == 8:
        return [_arc(0.5, 0.26, 0.3, 0.24, 90, 450), _arc(0.5, 0.74, 0.38, 0.25, -90, 270)]
    # 9: a loop and a tail, straight or curved
    loop = _arc(0.5, 0.3, 0.36, 0.27, 0, 360)
    tail = _line((0.86, 0.3), (0.8, 0.98)) if v < 0.5 else _arc(0.35, 0.3, 0.51, 0.68, 0, 90, 16)
    return [loop, tail]


def hand_drawn(d: int, rng, height: int = 160) -> np.ndarray:
    """A digit drawn with a jittery pen: float mask in [0, 1], cropped to its ink."""
    strokes = digit_strokes(d, rng)
    slant = rng.uniform(-0.3, 0.3)
    sx = rng.uniform(0.55, 0.9)  # width of the digit relative to its height
    pen = max(2, int(height * rng.uniform(0.04, 0.16)))
    pad = pen + 8
    canvas = np.zeros((height + 2 * pad, int(height * (sx + 0.6)) + 2 * pad), np.uint8)
    for pts in strokes:
        pts = pts.copy()
        # smooth wobble: a random walk along the stroke, plus jitter of the whole stroke
        walk = np.cumsum(rng.normal(0, 0.012, size=pts.shape), axis=0)
        walk -= walk.mean(axis=0)
        pts += walk + rng.normal(0, 0.03, size=2)
        x = (pts[:, 0] * sx + slant * (1 - pts[:, 1])) * height + pad + 0.3 * height * max(0, -slant)
        y = pts[:, 1] * height + pad
        poly = np.round(np.stack([x, y], axis=1) * 4).astype(np.int32)  # 2 bits of sub-pixel precision
        cv2.polylines(canvas, [poly], False, 255, pen, lineType=cv2.LINE_AA, shift=2)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255


def font_digit(d: int, fonts: list, rng) -> tuple[np.ndarray, str]:
    """A printed digit in a random font and weight: (mask in [0, 1], font name)."""
    choice = int(rng.integers(len(fonts) + 1))
    if choice == len(fonts):  # Pillow's built-in scalable font, always there
        font, name = ImageFont.load_default(size=120), "pillow-default"
    else:
        font, name = ImageFont.truetype(str(fonts[choice]), 120), fonts[choice].stem
    stroke = int(rng.choice([0, 0, 0, 2, 4, 7]))  # heavier weights than the font's own
    mask = _glyph(font, DIGITS[d], stroke)
    if rng.random() < 0.2:  # lighter weights: thin the strokes
        k = int(rng.integers(2, 5))
        thin = cv2.erode(mask, np.ones((k, k), np.uint8))
        if thin.max() > 0.5:
            mask = thin
    return mask, name


# ---- colours and backgrounds --------------------------------------------------------------------
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _colour(rng, light: bool) -> np.ndarray:
    """An RGB colour in [0, 1], random hue and saturation: light (value 0.7-1 and luma at least 0.55)
    or dark (value 0-0.35), so that light on dark stays legible in grayscale too (saturated blue is
    bright in value but dark in luma)."""
    while True:
        hue = rng.uniform(0, 180)
        sat = rng.choice([0.0, rng.uniform(0, 0.3), rng.uniform(0.3, 0.9)])
        val = rng.uniform(0.7, 1.0) if light else rng.uniform(0.0, 0.35)
        hsv = np.array([[[hue, sat * 255, val * 255]]], np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
        if not light or rgb @ LUMA >= 0.55:
            return rgb


def _smooth_field(h, w, rng, cells: int) -> np.ndarray:
    """Low-frequency random field in [0, 1] (a coarse random grid enlarged with cubic interpolation)."""
    grid = rng.random((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(grid, (w + 2 * w // cells, h + 2 * h // cells), interpolation=cv2.INTER_CUBIC)
    field = big[h // cells : h // cells + h, w // cells : w // cells + w]
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-6)


def background(h, w, rng, light: bool) -> tuple[np.ndarray, str]:
    """(H x W x 3 float background, kind): solid, gradient, noise or one of the generated textures."""
    c1, c2 = _colour(rng, light), _colour(rng, light)
    kind = str(rng.choice(["solid", "gradient", "noise", "texture"]))
    if kind == "solid":
        return np.broadcast_to(c1, (h, w, 3)).copy(), kind
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return c1 + t[..., None] * (c2 - c1), kind
    if kind == "noise":
        sigma = rng.uniform(0.03, 0.12)
        mono = rng.random() < 0.5
        noise = rng.normal(0, sigma, (h, w, 1) if mono else (h, w, 3)).astype(np.float32)
        return np.clip(c1 + noise, 0, 1), kind
    texture = str(rng.choice(["clouds", "stripes", "ruled", "grain"]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if texture == "clouds":
        t = _smooth_field(h, w, rng, int(rng.integers(3, 9)))
    elif texture == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif texture == "ruled":  # lined or squared paper
        period = rng.uniform(8, 20)
        t = (np.abs((yy % period) - period / 2) > period / 2 - 1).astype(np.float32)
        if rng.random() < 0.5:
            t = np.maximum(t, np.abs((xx % period) - period / 2) > period / 2 - 1)
        c2 = c1 * 0.6 + _colour(rng, not light) * 0.4  # faint lines
    else:  # grain: blurred noise, like paper or fabric
        t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), rng.uniform(0.8, 2.5))
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    return c1 + t[..., None] * (c2 - c1), f"texture-{texture}"


# ---- placing an object ------------------------------------------------------------------------
def place(layers: np.ndarray, h: int, w: int, rng, fill: tuple[float, float], angle: float) -> np.ndarray:
    """Rotate ``layers`` (M x N x K, channel 0 the object's mask in [0, 1]) by up to ``angle`` degrees,
    scale the object's longer side to ``fill`` of the canvas and put it at a random position where it
    stays inside: H x W x K, zero outside the object."""
    mh, mw, k = layers.shape
    side = max(mh, mw) + 4
    square = np.zeros((side, side, k), np.float32)
    square[(side - mh) // 2 : (side - mh) // 2 + mh, (side - mw) // 2 : (side - mw) // 2 + mw] = layers
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-angle, angle), 1.0)
    square = cv2.warpAffine(square, rot, (side, side), flags=cv2.INTER_LINEAR).reshape(side, side, k)
    ys, xs = np.nonzero(square[..., 0] > 0.02)
    square = square[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = rng.uniform(*fill) * min(h, w) / max(square.shape[:2])
    nh, nw = max(2, min(h, round(square.shape[0] * scale))), max(2, min(w, round(square.shape[1] * scale)))
    small = cv2.resize(square, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    out = np.zeros((h, w, k), np.float32)
    top, left = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    out[top : top + nh, left : left + nw] = np.clip(small.reshape(nh, nw, k), 0, 1)
    return out


def finish(img: np.ndarray, rng) -> tuple[np.ndarray, int | None]:
    """Camera-ish degradations: some blur, some sensor noise; returns (uint8 image, JPEG quality or None)."""
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 2.2))
    if rng.random() < 0.2:
        img = img + rng.normal(0, rng.uniform(0.02, 0.08), img.shape).astype(np.float32)
    quality = int(rng.integers(15, 90)) if rng.random() < 0.5 else None
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), quality


def _canvas_size(rng) -> tuple[int, int]:
    side = int(rng.integers(64, 161))
    if rng.random() < 0.7:
        return side, side
    aspect = rng.uniform(0.75, 1.33)
    return side, int(np.clip(round(side * aspect), 64, 160))


# ---- the two kinds ------------------------------------------------------------------------------
def make_digit(d: int, fonts: list, rng) -> tuple[np.ndarray, int | None, str]:
    h, w = _canvas_size(rng)
    if rng.random() < 0.35:
        mask, source = hand_drawn(d, rng), "hand"
    else:
        mask, name = font_digit(d, fonts, rng)
        source = f"font-{name}"
    light_bg = bool(rng.random() < 0.5)
    bg, kind = background(h, w, rng, light_bg)
    fg = _colour(rng, not light_bg)
    alpha = place(mask[..., None], h, w, rng, fill=(0.3, 0.9), angle=25)
    img, quality = finish(bg * (1 - alpha) + fg * alpha, rng)
    return img, quality, f"{source}_{kind}_{'dark-on-light' if light_bg else 'light-on-dark'}"


def garment_mask(img: np.ndarray) -> np.ndarray:
    """Where a Fashion-MNIST garment is (its pixels are > 0 on a black background), holes filled."""
    solid = cv2.morphologyEx((img > 8).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    flood = np.pad(solid, 1).copy()
    cv2.floodFill(flood, None, (0, 0), 2)  # everything the border reaches is outside
    return (flood[1:-1, 1:-1] != 2).astype(np.float32)


def make_garment(img28: np.ndarray, rng) -> tuple[np.ndarray, int | None, str]:
    h, w = _canvas_size(rng)
    up = 6  # work at 168 px so that the enlarged garment is smooth
    big = cv2.resize(img28, (28 * up, 28 * up), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    mask = cv2.resize(garment_mask(img28), (28 * up, 28 * up), interpolation=cv2.INTER_LINEAR)
    mask = cv2.GaussianBlur(mask, (0, 0), up / 3)
    shade = 1 - np.clip(big, 0, 1)  # inverted: the garment's bright pixels become dark
    placed = place(np.stack([mask, shade * mask], axis=-1), h, w, rng, fill=(0.4, 0.95), angle=12)
    alpha = placed[..., :1]
    shade = placed[..., 1:] / np.maximum(alpha, 1e-3)
    tint = _colour(rng, light=False)
    light = rng.uniform(0.8, 1.0)
    garment = tint + shade * (light - tint)  # the tint where the garment was bright, light where dark
    bg, kind = background(h, w, rng, light=True)
    out, quality = finish(bg * (1 - alpha) + garment * alpha, rng)
    return out, quality, f"fashion-test_{kind}_dark-on-light"


def fashion_test_images(root: Path) -> dict[str, list[Path]]:
    """{class folder: sorted PNG paths} of the Fashion-MNIST test split."""
    test = root / "test"
    if not test.is_dir():
        raise SystemExit(f"{test}: not found; extract fashion-mnist.tar.gz (e.g. into /tmp/ds) or pass --fashion-dir")
    classes = {d.name: sorted(d.glob("*.png")) for d in sorted(test.iterdir()) if d.is_dir()}
    if not classes or not all(classes.values()):
        raise SystemExit(f"{test}: expected one folder of PNGs per class")
    return classes


# ---- writing ------------------------------------------------------------------------------------
def write_set(kind: str, out: Path, seed: int, per_class: int, fashion_dir: Path = DEFAULT_FASHION,
              force: bool = False) -> dict:
    """Generate the set into a temporary folder beside ``out``, then rename it into place."""
    if out.exists() and not force:
        raise SystemExit(f"{out}: exists; pass --force to replace it")
    rng = np.random.default_rng([seed, 0 if kind == "digits" else 1])
    if kind == "digits":
        fonts = font_files()
        classes = {d: None for d in DIGITS}
    else:
        fonts, classes = [], fashion_test_images(fashion_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, int] = {}
    try:
        for name, files in classes.items():
            (tmp / name).mkdir(parents=True)
            if files is not None:  # garments: distinct test images per class, seeded
                picks = rng.choice(len(files), size=per_class, replace=per_class > len(files))
            for i in range(per_class):
                if kind == "digits":
                    img, quality, how = make_digit(int(name), fonts, rng)
                else:
                    gray = np.asarray(Image.open(files[picks[i]]).convert("L"))
                    img, quality, how = make_garment(gray, rng)
                target = tmp / name / f"{i:04d}_{how}.{'jpg' if quality else 'png'}"
                if quality:
                    Image.fromarray(img).save(target, quality=quality)
                else:
                    Image.fromarray(img).save(target)
                for part in how.split("_"):
                    counts[part] = counts.get(part, 0) + 1
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "images": per_class * len(classes), "fonts": len(fonts), "counts": counts}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["digits", "clothes"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="Folder to create (one sub-folder per class).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--fashion-dir", type=Path, default=DEFAULT_FASHION,
                        help="Extracted Fashion-MNIST (with test/<class>/*.png), for --kind clothes.")
    parser.add_argument("--force", action="store_true", help="Replace --out if it exists.")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be 1 or more")
    started = time.perf_counter()
    info = write_set(args.kind, args.out, args.seed, args.per_class, args.fashion_dir, args.force)
    sources = {k: v for k, v in sorted(info["counts"].items()) if k in ("hand", "fashion-test") or k.startswith(
        ("solid", "gradient", "noise", "texture", "dark-on", "light-on"))}
    print(f"{info['images']} images in {info['out']} ({time.perf_counter() - started:.1f} s; "
          f"{info['fonts']} fonts): {sources}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
