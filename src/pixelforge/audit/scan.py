"""The audit's single streaming pass: decode every image once, keep a small thumbnail and a row of
features, and let every check work from those (no check decodes an image again).

Memory is bounded by the thumbnails (``thumb`` x ``thumb`` uint8, gray when the dataset is gray:
70,000 Fashion-MNIST images take 72 MB) plus a few dozen numbers per image.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from pixelforge.data.decode import decode_image
from pixelforge.data.manifest import Manifest
from pixelforge.data.workers import ordered_map
from pixelforge.errors import PixelforgeError

ANALYSIS_SIDE = 128  # quality features are measured with the longest side at most this many pixels
BLUR_SIDE = 256  # ... except blur, which needs finer detail: photos lose it when shrunk to 128

MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
EXTENSION_FORMATS = {
    "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "gif": "gif", "bmp": "bmp",
    "tif": "tiff", "tiff": "tiff", "webp": "webp", "ppm": "pnm", "pgm": "pnm", "pbm": "pnm", "pnm": "pnm",
}


def sniff_format(data: bytes) -> str:
    """The file format from its first bytes ("" when unknown)."""
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "pnm"
    return ""


@dataclass
class Scan:
    """Per-image features (arrays aligned with the Manifest rows) and thumbnails."""

    n: int
    thumb: int
    channels: int
    thumbs: np.ndarray  # (N, t, t, C) uint8
    ok: np.ndarray  # decoded successfully
    errors: dict[int, str] = field(default_factory=dict)
    nbytes: np.ndarray = None  # file size (-1 for arrays)
    width: np.ndarray = None
    height: np.ndarray = None
    mode: list[str] = None
    fmt: list[str] = None  # format from the magic bytes ("" unknown, "array" for arrays)
    ext: list[str] = None
    bits: np.ndarray = None  # 8 or 16
    alpha: np.ndarray = None
    brightness: np.ndarray = None  # mean gray level 0-255
    contrast: np.ndarray = None  # std of the gray levels
    entropy: np.ndarray = None  # bits, of the 256-bin gray histogram
    sharpness: np.ndarray = None  # log10(var(Laplacian) / var(gray)): contrast-free blur measure
    blur: np.ndarray = None  # no-reference blur effect, 0 (sharp) .. 1 (flat): how little a re-blur changes it
    gray_p5: np.ndarray = None  # 5th percentile of the gray levels (0-255)
    gray_p99: np.ndarray = None  # 99th percentile of the gray levels (0-255)
    chan_mean: np.ndarray = None  # (N, 3) per-channel mean (RGB; gray repeated)
    chan_sq: np.ndarray = None  # (N, 3) per-channel mean of squares
    pixels: np.ndarray = None  # analysed pixels per image (weights for global stats)
    content: list[bytes] = None  # blake2b digest of the file bytes (or of the array)


def _header(data: bytes) -> tuple[str, int, int, bool]:
    """(mode, width, height, has alpha) from the file header, without decoding the pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as img:
            alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
            return img.mode, img.width, img.height, alpha


def blur_effect(gray: np.ndarray) -> float:
    """Perceptual blur in [0, 1] (Crete et al., 2007): blur the image again along each axis and measure
    how much of its neighbour differences survive. A sharp image loses much of its fine detail (a
    low score); an image that is already blurred barely changes (a score near 1). It depends on the
    image's own edges, not on its contrast or content, so one cut works across classes."""
    g = gray.astype(np.float32)
    side = min(g.shape)
    if side < 8:
        return 0.0
    taps = 3 if side <= 64 else (5 if side <= 160 else 9)
    scores = []
    for axis in (0, 1):
        kernel = (1, taps) if axis == 1 else (taps, 1)
        blurred = cv2.blur(g, kernel[::-1], borderType=cv2.BORDER_REFLECT)
        d_orig = np.abs(np.diff(g, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        total = float(d_orig.sum())
        if total <= 0:
            return 1.0
        scores.append(1.0 - float(np.maximum(d_orig - d_blur, 0).sum()) / total)
    return max(scores)


def _percentile(hist: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of gray levels from their 256-bin histogram."""
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q / 100 * cdf[-1]))


def _features(manifest: Manifest, i: int, thumb: int, channels: int) -> dict:
    raw = manifest.read(i)
    name = manifest.describe(i)
    location = manifest.locations[i]
    ext = location.rsplit(".", 1)[-1].lower() if "." in location.rsplit("/", 1)[-1] else ""
    rec: dict = {"ext": ext}
    if isinstance(raw, np.ndarray):
        rec.update(nbytes=-1, fmt="array", content=hashlib.blake2b(
            np.ascontiguousarray(raw).tobytes() + str(raw.shape).encode(), digest_size=16).digest())
        shape = raw.shape
        rec.update(width=shape[1], height=shape[0], bits=16 if raw.dtype == np.uint16 else 8,
                   mode={1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(shape[2] if raw.ndim == 3 else 1, "?"))
        rec["alpha"] = raw.ndim == 3 and raw.shape[2] in (2, 4)
        arr = decode_image(raw, name=name)
    else:
        data = bytes(raw)
        rec.update(nbytes=len(data), fmt=sniff_format(data),
                   content=hashlib.blake2b(data, digest_size=16).digest())
        if not data:
            raise PixelforgeError(f"{name}: empty file (0 bytes)")
        try:
            mode, width, height, alpha = _header(data)
        except Exception as exc:  # noqa: BLE001 - any header failure is reported as unreadable
            raise PixelforgeError(f"{name}: not an image file Pillow can read ({type(exc).__name__})") from None
        rec.update(mode=mode, width=width, height=height, alpha=alpha,
                   bits=16 if mode.startswith("I;16") or mode == "I" else 8)
        arr = decode_image(data, name=name, draft_size=(BLUR_SIDE, BLUR_SIDE))
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = _shrink(arr, BLUR_SIDE)
    blur_gray = arr[:, :, 0] if arr.shape[2] == 1 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    arr = _shrink(arr, ANALYSIS_SIDE)
    rgb = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr
    gray = arr[:, :, 0] if arr.shape[2] == 1 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    g = gray.astype(np.float32)
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / gray.size
    lap = cv2.Laplacian(g, cv2.CV_32F)
    flat = rgb.reshape(-1, 3).astype(np.float64)
    small = cv2.resize(rgb if channels == 3 else gray, (thumb, thumb), interpolation=cv2.INTER_AREA)
    rec.update(
        brightness=float(g.mean()), contrast=float(g.std()), entropy=float(-(p * np.log2(p)).sum()),
        sharpness=float(np.log10(lap.var() + 1e-3) - np.log10(g.var() + 1e-3)),
        blur=blur_effect(blur_gray), gray_p5=_percentile(hist, 5), gray_p99=_percentile(hist, 99),
        chan_mean=flat.mean(0), chan_sq=(flat**2).mean(0), pixels=gray.size,
        thumb=small.reshape(thumb, thumb, channels),
    )
    return rec


def _shrink(arr: np.ndarray, side: int) -> np.ndarray:
    """HWC with the longest side at most ``side`` (area interpolation), channels kept."""
    h, w = arr.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return arr
    out = cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else out[:, :, None]


def _safe_features(manifest: Manifest, thumb: int, channels: int, i: int):
    try:
        return i, _features(manifest, i, thumb, channels), None
    except PixelforgeError as exc:
        return i, None, str(exc)
    except (OSError, ValueError, MemoryError, cv2.error) as exc:
        return i, None, f"{manifest.describe(i)}: {exc}"


def _guess_channels(manifest: Manifest, probe: int = 32) -> int:
    """3 unless the first images all decode to one channel (then gray thumbnails are enough)."""
    for i in range(min(probe, len(manifest))):
        try:
            raw = manifest.read(i)
            if isinstance(raw, np.ndarray):
                if raw.ndim == 3 and raw.shape[2] >= 3:
                    return 3
            elif _header(bytes(raw))[0] not in ("L", "1", "I;16", "I", "LA"):
                return 3
        except Exception:  # noqa: BLE001 - unreadable images are found by the scan itself
            continue
    return 1


def _guess_thumb(manifest: Manifest, probe: int = 32, largest: int = 32) -> int:
    """The thumbnail side: the images' own when the first ones are all the same square of at most
    ``largest`` pixels (Fashion-MNIST keeps its 28x28 pixels, no resampling), else ``largest``."""
    sizes = set()
    for i in range(min(probe, len(manifest))):
        try:
            raw = manifest.read(i)
            sizes.add(tuple(raw.shape[:2]) if isinstance(raw, np.ndarray) else _header(bytes(raw))[1:3])
        except Exception:  # noqa: BLE001 - unreadable images are found by the scan itself
            continue
    if len(sizes) == 1:
        (h, w), = sizes
        if h == w and 8 <= h <= largest:
            return int(h)
    return largest


def scan_manifest(manifest: Manifest, *, thumb: int | None = None, workers: int = 2, progress=None,
                  kind: str = "thread") -> Scan:
    """Decode every row once (on ``workers`` threads, in row order) and collect features and thumbnails
    (``thumb`` pixels square; by default the images' own size when they are small and square, else 32).
    ``kind="ray"``: the decoding runs in Ray tasks of 256 images (``--engine ray``)."""
    n = len(manifest)
    thumb = _guess_thumb(manifest) if thumb is None else int(thumb)
    channels = _guess_channels(manifest)
    scan = Scan(n=n, thumb=thumb, channels=channels,
                thumbs=np.zeros((n, thumb, thumb, channels), np.uint8), ok=np.zeros(n, bool))
    nums = {k: np.zeros(n) for k in ("brightness", "contrast", "entropy", "sharpness", "blur", "gray_p5", "gray_p99")}
    scan.nbytes, scan.width, scan.height = (np.full(n, -1, np.int64) for _ in range(3))
    scan.bits, scan.pixels = np.full(n, 8, np.int16), np.zeros(n, np.int64)
    scan.alpha = np.zeros(n, bool)
    scan.chan_mean, scan.chan_sq = np.zeros((n, 3)), np.zeros((n, 3))
    scan.mode, scan.fmt, scan.ext = [""] * n, [""] * n, [""] * n
    scan.content = [b""] * n
    task = progress.add_task("decode + features", total=n) if progress else None
    chunk = 512  # images in flight at most, and the progress bar moves every this many
    ray = kind == "ray"
    for i, rec, error in ordered_map(_safe_features, range(n), workers=workers, context=(manifest, thumb, channels),
                                     ahead=8 if ray else chunk, kind=kind, group=256 if ray else 1):
        if error is not None:
            scan.errors[i] = error
            # keep what is known about a broken file (size, magic bytes, extension)
            _fill_raw(manifest, i, scan)
        else:
            scan.ok[i] = True
            scan.thumbs[i] = rec["thumb"]
            for k in nums:
                nums[k][i] = rec[k]
            scan.nbytes[i], scan.width[i], scan.height[i] = rec["nbytes"], rec["width"], rec["height"]
            scan.bits[i], scan.pixels[i], scan.alpha[i] = rec["bits"], rec["pixels"], rec["alpha"]
            scan.chan_mean[i], scan.chan_sq[i] = rec["chan_mean"], rec["chan_sq"]
            scan.mode[i], scan.fmt[i], scan.ext[i] = rec["mode"], rec["fmt"], rec["ext"]
            scan.content[i] = rec["content"]
        if progress and (i + 1 == n or (i + 1) % chunk == 0):
            progress.update(task, completed=i + 1)
    for k, v in nums.items():
        setattr(scan, k, v)
    return scan


def _fill_raw(manifest: Manifest, i: int, scan: Scan) -> None:
    location = manifest.locations[i]
    scan.ext[i] = location.rsplit(".", 1)[-1].lower() if "." in location.rsplit("/", 1)[-1] else ""
    try:
        raw = manifest.read(i)
    except Exception:  # noqa: BLE001 - unreadable: nothing more to learn
        return
    if isinstance(raw, bytes | bytearray):
        scan.nbytes[i] = len(raw)
        scan.fmt[i] = sniff_format(bytes(raw))
