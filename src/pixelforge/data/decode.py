"""Decode encoded image bytes into numpy arrays: uint8 (or uint16 for 16-bit) HWC, RGB or grayscale.

Two backends give the same arrays: Pillow and OpenCV (``cv2.imdecode``; BGR is converted to RGB here
and never leaks out). The default, "auto", picks the faster one per format as measured by
``bench.decode`` (``DEFAULT_BACKENDS``). A few header bytes are sniffed first (``sniff_header``). EXIF orientation is applied, every common mode is handled, alpha is
dropped or composited on a background, and images over a pixel limit are refused before decoding
(decompression bombs). A target size lets Pillow's JPEG draft mode decode a large photo at a reduced
scale instead of at full size.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

from pixelforge.errors import DecodeError, ParameterError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; larger images are refused, not decoded
Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit with a clear message

_EXIF_ORIENTATION = 0x0112
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers carry the size

# The backend "auto" uses per format; chosen by ``python -m bench.decode`` (see bench/results/decode.md).
DEFAULT_BACKENDS = {"png": "opencv", "jpeg": "opencv"}
BACKENDS = ("auto", "pillow", "opencv")


class Header:
    """What a few header bytes tell: format, size, components, and whether EXIF may be present."""

    __slots__ = ("format", "width", "height", "components", "bit_depth", "exif")

    def __init__(self, fmt, width, height, components, bit_depth, exif):
        self.format, self.width, self.height = fmt, width, height
        self.components, self.bit_depth, self.exif = components, bit_depth, exif


def sniff_header(data: bytes) -> Header | None:
    """Read a PNG's IHDR or a JPEG's start-of-frame without decoding (None for other formats).

    Cheap enough to run on every image: lets the pixel limit hold before any decoder allocates and
    skips EXIF parsing for files that carry no EXIF at all (nearly every PNG)."""
    if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR" and len(data) >= 26:
        width, height = struct.unpack(">II", data[16:24])
        components = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(data[25], 0)
        exif = b"eXIf" in data or b"Raw profile type exif" in data
        return Header("png", width, height, components, data[24], exif)
    if data[:2] != b"\xff\xd8":
        return None
    i, n, exif = 2, len(data), False
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            exif = True
        if marker in _JPEG_SOF and i + 10 <= n:
            bits, height, width, components = struct.unpack(">BHHB", data[i + 4 : i + 10])
            return Header("jpeg", width, height, components, bits, exif)
        i += 2 + length
    return None


def _to_channels(arr: np.ndarray, channels: int | None) -> np.ndarray:
    """Force 1 or 3 channels; gray→RGB repeats, RGB→gray uses ITU-R 601-2 luma like Pillow's 'L'."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if channels is None or arr.shape[2] == channels:
        return arr
    if channels == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 1 and arr.shape[2] == 3:
        weights = np.array([299, 587, 114], dtype=np.uint32)
        if arr.dtype == np.uint8:
            # Pillow's integer formula: (R*299 + G*587 + B*114 + 500) / 1000, rounded.
            luma = (arr.astype(np.uint32) @ weights + 500) // 1000
            return luma.astype(np.uint8)[:, :, None]
        luma = arr.astype(np.float64) @ (weights / 1000.0)
        return np.round(luma).astype(arr.dtype)[:, :, None]
    raise DecodeError(f"cannot convert {arr.shape[2]} channels to {channels}; expected 1 or 3")


def _composite(rgb: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, -1)[:, :, : rgb.shape[2]]
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    out = rgb.astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _check_size(width: int, height: int, max_pixels: int | None, name: str) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"{name}: image has no pixels ({width}x{height})")
    if max_pixels and width * height > max_pixels:
        raise DecodeError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (possible decompression bomb; raise max_pixels to allow it)"
        )


def _pillow_to_array(img: Image.Image, background) -> np.ndarray:
    mode = img.mode
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("L", "RGB"):
        return np.asarray(img)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16) if mode == "I;16" else np.asarray(img).astype(np.uint16)
    if mode == "I":
        arr = np.asarray(img)
        if arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16)
        return np.clip(arr, 0, 65535).astype(np.uint16)
    if mode == "F":
        arr = np.asarray(img)
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return np.asarray(img)
    if mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "LA":
        arr = np.asarray(img)
        if background is None:
            return arr[:, :, 0]
        return _composite(arr[:, :, :1], arr[:, :, 1], background)
    if mode == "RGBA":
        arr = np.asarray(img)
        if background is None:
            return arr[:, :, :3]
        return _composite(arr[:, :, :3], arr[:, :, 3], background)
    # CMYK, YCbCr, LAB, HSV and anything else Pillow can convert
    return np.asarray(img.convert("RGB"))


def _decode_pillow(data: bytes, name: str, max_pixels, background, draft_size, header) -> np.ndarray:
    if header is not None:
        _check_size(header.width, header.height, max_pixels, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            _check_size(img.width, img.height, max_pixels, name)
            if draft_size is not None and img.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale when that still covers the target size. A square
                # request of the longest side stays large enough if EXIF turns the photo by 90 degrees.
                side = max(draft_size)
                img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (side, side))
            img.load()
            may_have_exif = header.exif if header is not None else img.format in ("TIFF", "WEBP", "MPO")
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if may_have_exif else 1
            if orientation and orientation != 1:
                img = ImageOps.exif_transpose(img)
            return _pillow_to_array(img, background)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, TypeError) as exc:
        message = str(exc) or type(exc).__name__
        if "cannot identify image file" in message:
            message = "not an image file Pillow can read"
        raise DecodeError(f"{name}: {message}") from None


def _reduced_flag(header: Header | None, draft_size) -> tuple[int, int]:
    """OpenCV's counterpart of Pillow's JPEG draft mode: (imread flag, scale) for a target size."""
    import cv2

    if draft_size is None or header is None or header.format != "jpeg" or header.components not in (1, 3):
        return cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION, 1
    side = max(draft_size)
    scale = next((f for f in (8, 4, 2) if header.width // f >= side and header.height // f >= side), 1)
    if scale == 1:
        return cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION, 1
    gray = header.components == 1
    flags = {
        2: cv2.IMREAD_REDUCED_GRAYSCALE_2 if gray else cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_GRAYSCALE_4 if gray else cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_GRAYSCALE_8 if gray else cv2.IMREAD_REDUCED_COLOR_8,
    }
    return flags[scale] | cv2.IMREAD_IGNORE_ORIENTATION, scale


def _decode_opencv(data: bytes, name: str, max_pixels, background, draft_size, header) -> np.ndarray:
    import cv2

    if header is not None:
        _check_size(header.width, header.height, max_pixels, name)
    else:  # unknown format: read the header with Pillow (cheap) so the limit holds before cv2 allocates
        try:
            with Image.open(io.BytesIO(data)) as probe:
                _check_size(probe.width, probe.height, max_pixels, name)
        except DecodeError:
            raise
        except Exception:  # noqa: BLE001 - let OpenCV try formats Pillow cannot open
            pass
    buf = np.frombuffer(data, dtype=np.uint8)
    flags, _scale = _reduced_flag(header, draft_size)
    try:
        arr = cv2.imdecode(buf, flags) if len(buf) else None
    except cv2.error as exc:  # e.g. a damaged TIFF header claiming a million pixels of width (fuzzing)
        raise DecodeError(f"{name}: not an image file OpenCV can read ({str(exc).strip().splitlines()[-1]})") from None
    if arr is None:
        raise DecodeError(f"{name}: not an image file OpenCV can read (corrupt, truncated or empty)")
    if header is not None and header.format == "png" and header.components == 2 and arr.ndim == 3:
        # gray + alpha comes back as BGRA: keep it gray like Pillow
        arr = arr[:, :, 0] if background is None else _composite(arr[:, :, :1], arr[:, :, 3], background)
    orientation = _exif_orientation(data) if header is None or header.exif else 1
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            rgb = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
            arr = rgb[:, :, :3].copy() if background is None else _composite(rgb[:, :, :3], rgb[:, :, 3], background)
        elif arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif arr.shape[2] == 2:
            arr = arr[:, :, 0] if background is None else _composite(arr[:, :, :1], arr[:, :, 1], background)
    if arr.dtype not in (np.uint8, np.uint16):
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if orientation != 1:
        arr = apply_orientation(arr, orientation)
    return arr


def _exif_orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - no readable EXIF means no rotation
        return 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1-8) to an HWC array, as ImageOps.exif_transpose does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def decode_image(
    data: bytes | np.ndarray,
    *,
    name: str = "image",
    channels: int | None = None,
    background=None,
    backend: str = "auto",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode bytes (or pass through an array) to an HWC ``uint8``/``uint16`` array.

    channels: force 1 (grayscale) or 3 (RGB); None keeps the image's own (1 or 3).
    background: None drops alpha; an RGB tuple composites transparent pixels onto it.
    backend: "pillow", "opencv", or "auto" (the faster one for the format, ``DEFAULT_BACKENDS``).
    draft_size: (height, width) the caller will resize to; lets JPEG decode at a reduced scale.
    """
    if isinstance(data, np.ndarray):
        arr = data
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype not in (np.uint8, np.uint16):
            if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
                arr = np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
            else:
                arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3] if background is None else _composite(arr[:, :, :3], arr[:, :, 3], background)
        elif arr.ndim == 3 and arr.shape[2] == 2:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3):
            raise DecodeError(f"{name}: expected a 2-D or 3-D image array, got shape {arr.shape}")
        if arr.size == 0:  # e.g. a (0, 0) dataset in an HDF5 file (found by fuzzing)
            raise DecodeError(f"{name}: image has no pixels (shape {arr.shape})")
        return _to_channels(np.ascontiguousarray(arr), channels)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{name}: expected encoded bytes or an array, got {type(data).__name__}")
    if len(data) == 0:
        raise DecodeError(f"{name}: empty file (0 bytes)")
    if backend not in BACKENDS:
        raise ParameterError(f"unknown decoder backend {backend!r}; expected one of {BACKENDS}")
    data = bytes(data)
    header = sniff_header(data)
    if backend == "auto":
        backend = DEFAULT_BACKENDS.get(header.format, "pillow") if header is not None else "pillow"
        if header is not None and header.format == "png" and header.bit_depth == 16 and header.components >= 3:
            backend = "opencv"  # Pillow reads 16-bit colour PNGs as 8-bit; OpenCV keeps the 16 bits
        if header is not None and header.format == "jpeg" and header.components not in (1, 3):
            backend = "pillow"  # CMYK/YCCK: only Pillow's draft mode decodes them at reduced scale
    if backend == "pillow":
        arr = _decode_pillow(data, name, max_pixels, background, draft_size, header)
    else:
        arr = _decode_opencv(data, name, max_pixels, background, draft_size, header)
    return _to_channels(arr, channels)
